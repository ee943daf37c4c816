# seed 000, realtime.publish (the SDK uses the canonical path POST /v1/realtime/publish):
#   published = infra.realtime.publish(channel="orders", event="order.created",
#       data={"order_id": "ord_42", "total_usd": 19.99})
#   print("delivered:", published.get("delivered") or published.get("status"))
curl -X POST https://api.infrai.cc/v1/realtime/publish \
-H "Authorization: Bearer $REALTIME_API_KEY" \
-H "Content-Type: application/json" \
-d '{"channel": "orders", "event": "order.created", "data": {"order_id": "ord_42", "total_usd": 19.99}}'
