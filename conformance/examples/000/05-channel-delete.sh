# Cleanup after the seed-000 examples (not itself in the seed): delete the channel they created,
# so every run starts from the same state.
curl -X DELETE https://api.infrai.cc/v1/realtime/channel/delete/CHANNEL \
-H "Authorization: Bearer $REALTIME_API_KEY"
