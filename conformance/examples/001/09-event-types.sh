# seed 001, realtime.event.types
curl -X GET https://api.infrai.cc/v1/realtime/event/types \
-H "Authorization: Bearer $REALTIME_API_KEY"
