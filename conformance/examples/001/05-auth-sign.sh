# seed 001, realtime.auth.sign
curl -X POST https://api.infrai.cc/v1/realtime/auth/sign \
-H "Authorization: Bearer $REALTIME_API_KEY" \
-H "Content-Type: application/json" \
-d '{"client_id": "...", "channels": []}'
