# seed 001, realtime.publish.batch
curl -X POST https://api.infrai.cc/v1/realtime/publish/batch \
-H "Authorization: Bearer $REALTIME_API_KEY" \
-H "Content-Type: application/json" \
-d '{"messages": []}'
