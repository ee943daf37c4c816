# seed 001, realtime.token.revoke
curl -X POST https://api.infrai.cc/v1/realtime/token/revoke \
-H "Authorization: Bearer $REALTIME_API_KEY" \
-H "Content-Type: application/json" \
-d '{"token_or_jti": "..."}'
