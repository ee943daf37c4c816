# seed 001, the one-time setup note that precedes every example, verbatim but for the key's variable (REALTIME_API_KEY):
#   Get a project key by signing in at the console: Google/GitHub gives you
#   $2 free credit (email sign-in starts at $0). On 402 INSUFFICIENT_CREDIT,
#   POST /v1/account/topup and open the returned checkout_url.
# The note names the call but shows no curl; this is that call, written the way every
# other example of the seed is written. The amount is the contract's example amount.
curl -X POST https://api.infrai.cc/v1/account/topup \
-H "Authorization: Bearer $REALTIME_API_KEY" \
-H "Content-Type: application/json" \
-d '{"amount": 5000000}'
