"""Schemathesis hooks for `cargo xtask schemathesis` (loaded through SCHEMATHESIS_HOOKS).

Some answers are what the contract promises by rules that span more than one request or
more than one value, which JSON Schema cannot state. The failures they cause, and only
those, are dropped (the summary counts them as "dropped by `filter_failure`"):

- 422 IDEMPOTENCY_KEY_REUSED to a schema-valid request: the fuzzer draws idempotency keys
  from a small space ("0", the documented examples) and sends one key with different
  bodies; the contract answers exactly this 422 (the IETF Idempotency-Key draft's status).
  The positive-data check cannot know that the key was used before.
- 400 BAD_REQUEST to a request that carries both the `Idempotency-Key` header and the
  `idempotency_key` field naming different keys: "both given and different is a 400".
  The hook compares the two in the case itself, not the server's words.
- 404 to a channel "just created" when, by the server's own answers, it has been deleted
  since: `channel.delete` answered 200 for it after the last create that had an effect.
  Schemathesis relates a DELETE to a GET by a shared path, and this contract's paths are
  named by operation (`/channel/delete/{channel}`, `/channel/get/{channel}`). A create
  answered by an idempotent replay (`Idempotent-Replayed: true`) had no effect, so it
  does not bring the channel back; Hypothesis re-runs scenarios with the same data, key
  included. A 404 for a channel whose last effect was a create still fails.
Every other failure of every check fails the run.
"""

import atexit
import collections
import json
import sys
import threading

import schemathesis

# What the server's answers say each channel's last effect was: "created" or "deleted".
# Workers are threads of one process.
_channels = {}
_lock = threading.Lock()

_DELETE_PREFIX = "/v1/realtime/channel/delete/"

# How many failures each rule dropped, printed when the run ends.
_dropped = collections.Counter()


@atexit.register
def _print_dropped():
    if _dropped:
        rules = ", ".join(f"{rule}: {count}" for rule, count in sorted(_dropped.items()))
        print(f"schemathesis hooks: dropped failures by rule: {rules}", file=sys.stderr)


@schemathesis.hook
def after_call(context, case, response):
    if response.status_code != 200:
        return
    if case.method == "DELETE" and case.path.startswith(_DELETE_PREFIX):
        channel = (case.path_parameters or {}).get("channel")
        if isinstance(channel, str):
            with _lock:
                _channels[channel] = "deleted"
        return
    if response.headers.get("idempotent-replayed") == ["true"]:
        return
    body = _json(response)
    if case.method == "POST" and isinstance(body, dict) and "channel_id" in body and isinstance(body.get("name"), str):
        with _lock:
            _channels[body["name"]] = "created"


@schemathesis.hook
def filter_failure(context, failure, case, response):
    rule = _contract_rule(failure, case, response)
    if rule is None:
        return True
    with _lock:
        _dropped[rule] += 1
    return False


def _contract_rule(failure, case, response):
    """The rule of the contract that explains this failure, if one does."""
    kind = type(failure).__name__
    if kind == "RejectedPositiveData":
        body = _json(response)
        code = body.get("code") if isinstance(body, dict) else None
        if response.status_code == 422 and code == "IDEMPOTENCY_KEY_REUSED":
            return "key reused"
        if response.status_code == 400 and code == "BAD_REQUEST" and _keys_differ(case):
            return "header and field keys differ"
    if kind == "EnsureResourceAvailability" and response.status_code == 404:
        channel = (case.path_parameters or {}).get("channel")
        with _lock:
            if _channels.get(channel) == "deleted":
                return "channel deleted since"
    return None


def _json(response):
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _keys_differ(case):
    """Whether the header and the body field are both given and name different keys."""
    headers = case.headers or {}
    header = next((value for name, value in headers.items() if name.lower() == "idempotency-key"), None)
    field = case.body.get("idempotency_key") if isinstance(case.body, dict) else None
    if not isinstance(header, str) or not isinstance(field, str):
        return False
    # `"abc"` in the header is the key `abc` (a Structured Field string).
    if len(header) > 2 and header.startswith('"') and header.endswith('"'):
        header = header[1:-1]
    return header != field
