# seed 000, realtime.channel.create through the SDK path POST /v1/realtime/channels:
#   ch = infra.realtime.channel.create(name="orders", type="presence")
#   print("channel_id:", ch.get("channel_id"))
curl -X POST https://api.infrai.cc/v1/realtime/channels \
-H "Authorization: Bearer $REALTIME_API_KEY" \
-H "Content-Type: application/json" \
-d '{"name": "orders", "type": "presence"}'
