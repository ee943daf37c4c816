# seed 000, realtime.token.issue through the SDK path POST /v1/realtime/token:
#   tok = infra.realtime.token.issue(user_id="u_123", channels=["orders"], ttl_seconds=300)
#   print("token:", (tok.get("token") or "")[:12], "...")
curl -X POST https://api.infrai.cc/v1/realtime/token \
-H "Authorization: Bearer $REALTIME_API_KEY" \
-H "Content-Type: application/json" \
-d '{"user_id": "u_123", "channels": ["orders"], "ttl_seconds": 300}'
