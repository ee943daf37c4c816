# seed 000, realtime.presence.get through the SDK path GET /v1/realtime/channels/{channel}/presence:
#   p = infra.realtime.presence.get(channel="orders")
#   print("members:", len(p.get("members", [])))
curl -X GET https://api.infrai.cc/v1/realtime/channels/CHANNEL/presence \
-H "Authorization: Bearer $REALTIME_API_KEY"
