//! Broken WebSocket gateways and reads: each check of the protocol, scope and reads
//! kinds fails against a target that gets its part wrong.

use realtime_conformance::Kind;
use serde_json::{Value, json};

use crate::support::{Tamper, Target, failure};

/// Rewrites a server frame's JSON; `None` drops it.
fn rewrite(frame: &str, change: impl Fn(&mut Value) -> bool) -> Option<String> {
    let mut value: Value = serde_json::from_str(frame).ok()?;
    change(&mut value).then(|| value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_bends_the_protocol_fails_each_protocol_check() {
    let target = Target::broken(|_| Tamper {
        frames: Box::new(|frame| {
            rewrite(frame, |value| match value["type"].as_str() {
                Some("published") => {
                    value.as_object_mut().map(|fields| fields.remove("request_id"));
                    true
                }
                Some("error") if value["code"] == "BAD_REQUEST" => {
                    value["code"] = json!("INTERNAL");
                    true
                }
                Some("error") if value["code"] == "FORBIDDEN" && value["request_id"] == "r-2" => {
                    value["request_id"] = json!("r-other");
                    true
                }
                Some("user.message.sent" | "user.command.done") => false,
                _ => true,
            })
        }),
        close: Box::new(|code| match code {
            4002 => 4001,
            4005 => 1000,
            4006 => 1008,
            4100 => 1011,
            4201 => 1000,
            other => other,
        }),
        ..Tamper::default()
    })
    .await;
    let report = target.certify_only(&[Kind::Protocol]).await;
    let published =
        failure(&report, "protocol/a client publish is answered `published` with its request_id and delivered");
    assert!(published.contains("r-1"), "{published}");
    failure(&report, "protocol/a refused client publish is an `error` with its request_id; the socket stays open");
    let malformed =
        failure(&report, "protocol/malformed and unknown frames are answered BAD_REQUEST; the socket stays open");
    assert!(malformed.contains("INTERNAL"), "{malformed}");
    failure(&report, "protocol/a client's user.message.send is answered `user.message.sent` and delivered");
    failure(&report, "protocol/a client's user.command.send gets the other client's response in `user.command.done`");
    for (id, code) in [
        ("protocol/a binary frame closes the socket (4005)", "4005"),
        ("protocol/a frame over 64 KiB closes the socket (4005)", "4005"),
        ("protocol/a live socket is closed when its token expires (4002)", "4002"),
        ("protocol/an expired token is refused (4002)", "4002"),
        ("protocol/a token's connections past the limit are closed (4006)", "4006"),
        ("protocol/a client that does not read is cut as a slow consumer (4100)", "4100"),
        ("protocol/a silent socket is closed after the heartbeat timeout (4201)", "4201"),
    ] {
        let mismatch = failure(&report, id);
        assert!(mismatch.contains(code), "{id}: {mismatch}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_ignores_the_token_scope_fails_the_scope_checks() {
    let target = Target::broken(|_| Tamper {
        // Refusals become acknowledgements, as if the gateway never looked at the token.
        frames: Box::new(|frame| {
            rewrite(frame, |value| {
                if value["type"] == "error" && value["code"] == "FORBIDDEN" {
                    *value = json!({"type": "subscribed", "channel": value["channel"], "recovered": false});
                }
                true
            })
        }),
        after: Box::new(|request, response| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            if request.path == "/v1/realtime/token/issue" && body["ttl_seconds"].as_i64() > Some(86_400) {
                let mut token = response.body_json();
                token["expires_at"] = json!("2099-01-01T00:00:00Z");
                response.set_body_json(&token);
            }
            if request.path.starts_with("/v1/realtime/presence/get/") && request.path.contains("scope-presence") {
                let mut presence = response.body_json();
                presence["members"] = json!([{"client_id": "someone", "user_id": "someone"}]);
                response.set_body_json(&presence);
            }
        }),
        ..Tamper::default()
    })
    .await;
    let report = target.certify_only(&[Kind::Scope]).await;
    for id in [
        "scope/subscribing to a private channel outside the token's list is FORBIDDEN",
        "scope/publishing to a channel outside the token's list is FORBIDDEN",
        "scope/a token without `subscribe` cannot subscribe",
        "scope/a token without `publish` cannot publish",
    ] {
        let mismatch = failure(&report, id);
        assert!(mismatch.contains("FORBIDDEN"), "{id}: {mismatch}");
    }
    let presence = failure(&report, "scope/a token without `presence` subscribes without becoming a member");
    assert!(presence.contains("someone"), "{presence}");
    let ttl = failure(&report, "scope/a TTL over the maximum is clamped, in expires_at and in `connected`");
    assert!(ttl.contains("2099"), "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_subtly_wrong_reads_fails_the_reads_checks() {
    let target = Target::broken(|_| Tamper {
        frames: Box::new(|frame| {
            rewrite(frame, |value| {
                if value["type"] == "subscribed" && value["members"].is_array() {
                    value["members"] = json!([]);
                }
                true
            })
        }),
        after: Box::new(|request, response| {
            let mut body = response.body_json();
            if request.path.starts_with("/v1/realtime/channel/list?limit=") && !request.path.contains("limit=100") {
                // An off-by-one cursor: the last channel of every page is skipped.
                let more = body["next_cursor"].is_string();
                if let Some(channels) = body["channels"].as_array_mut()
                    && more
                {
                    channels.pop();
                }
            } else if request.path == "/v1/realtime/publish" && response.status == 200 {
                body["delivered"] = json!(body["delivered"].as_u64().unwrap_or(0) + 1);
            } else if request.path.starts_with("/v1/realtime/channel/get/") && request.path.contains("members") {
                body["member_count"] = body["subscriber_count"].clone();
            } else {
                return;
            }
            response.set_body_json(&body);
        }),
        ..Tamper::default()
    })
    .await;
    let report = target.certify_only(&[Kind::Reads]).await;
    let pages =
        failure(&report, "reads/channel.list pages are complete, ordered by name and stable while channels change");
    assert!(pages.contains("never listed"), "{pages}");
    let delivered = failure(&report, "reads/publish counts `delivered` as the live subscribers");
    assert!(delivered.contains("delivered was"), "{delivered}");
    failure(&report, "reads/the `subscribed` frame of a presence channel lists the members already there");
    let members = failure(&report, "reads/member_count counts each member once");
    assert!(members.contains("member_count 3"), "{members}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_a_channel_list_that_reaches_nothing_fails_the_scope_check() {
    let target = Target::broken(|_| {
        Tamper::before(|request| {
            let mut body: Value = serde_json::from_slice(&request.body).ok()?;
            if request.path == "/v1/realtime/token/issue" && body.get("channels").is_none() {
                body["channels"] = json!(["nothing-at-all"]);
                request.body = body.to_string().into_bytes();
            }
            None
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Scope]).await;
    let mismatch = failure(&report, "scope/a token without a channel list reaches every channel of the account");
    assert!(mismatch.contains("subscribed"), "{mismatch}");
}
