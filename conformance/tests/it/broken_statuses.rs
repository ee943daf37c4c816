//! Deliberately broken targets for the statuses scenario: each class of documented status
//! answered otherwise must fail its checks, and the failure must say how to reproduce it.

use realtime_conformance::Kind;
use realtime_conformance::Report;
use serde_json::json;

use crate::support::{ProxyRequest, ProxyResponse, Tamper, Target, failure};

/// A problem body for `status` and `code`.
fn problem(status: u16, code: &str) -> ProxyResponse {
    ProxyResponse::json(
        status,
        "application/problem+json",
        &json!({"type": "urn:broken", "title": "broken", "status": status, "code": code}),
    )
}

/// A target that answers `status` `code` problems with `to`'s status and code instead.
async fn answering(status: u16, code: &'static str, to: (u16, &'static str)) -> Report {
    let target = Target::broken(move |_| {
        Tamper::after(move |_, response| {
            if response.status == status && response.body_json()["code"] == code {
                *response = problem(to.0, to.1);
            }
        })
    })
    .await;
    target.certify_only(&[Kind::Statuses]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_key_answered_403_fails_and_prints_a_reproduction() {
    let target = Target::broken(|_| {
        Tamper::after(|request: &ProxyRequest, response| {
            if request.header("authorization").is_none() && response.status == 401 {
                *response = problem(403, "FORBIDDEN");
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Statuses]).await;
    let id = "statuses/realtime.event.types without a key is 401 UNAUTHENTICATED";
    let mismatch = failure(&report, id);
    assert!(mismatch.contains("status 403") && mismatch.contains("expected 401"), "{mismatch}");
    let evidence = report.check(id).and_then(|check| check.evidence.clone()).expect("the failure has evidence");
    let curl = evidence.curl.expect("a curl command");
    assert!(curl.starts_with("curl -sS -i -X GET '") && curl.contains("/v1/realtime/event/types"), "{curl}");
    let response = evidence.response.expect("the response");
    assert_eq!(response.status, 403);
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("the whole body, as JSON");
    assert_eq!(body, json!({"type": "urn:broken", "title": "broken", "status": 403, "code": "FORBIDDEN"}));
    let table = report.render_table();
    assert!(table.contains("        reproduce:\n          curl -sS -i -X GET"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_answered_422_fails() {
    let target = Target::broken(|_| {
        Tamper::before(|request| request.body.starts_with(b"{oops").then(|| problem(422, "VALIDATION_ERROR")))
    })
    .await;
    let report = target.certify_only(&[Kind::Statuses]).await;
    let mismatch = failure(&report, "statuses/realtime.token.issue with a body that is not JSON is 400 BAD_REQUEST");
    assert!(mismatch.contains("status 422") && mismatch.contains("expected 400"), "{mismatch}");
    let check = report.check("statuses/realtime.token.issue with a body that is not JSON is 400 BAD_REQUEST").unwrap();
    let curl = check.evidence.as_ref().and_then(|evidence| evidence.curl.clone()).unwrap();
    assert!(curl.contains(r#"-H 'Authorization: Bearer '"$REALTIME_API_KEY""#), "{curl}");
    assert!(!curl.contains(&target.funded_key), "the key itself is never printed: {curl}");
    assert!(curl.ends_with("--data-binary '{oops'"), "{curl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_2_mib_answered_400_fails() {
    let report = answering(413, "PAYLOAD_TOO_LARGE", (400, "BAD_REQUEST")).await;
    let id = "statuses/realtime.user.disconnect with a body over 2 MiB is 413 PAYLOAD_TOO_LARGE";
    let mismatch = failure(&report, id);
    assert!(mismatch.contains("status 400"), "{mismatch}");
    let curl = report.check(id).and_then(|check| check.evidence.clone()).and_then(|evidence| evidence.curl).unwrap();
    assert!(curl.starts_with(r#"{ printf %s '{"x":"'; head -c 2098176 /dev/zero | tr '\0' 'x'"#), "{curl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_media_type_answered_400_fails() {
    let report = answering(415, "UNSUPPORTED_MEDIA_TYPE", (400, "BAD_REQUEST")).await;
    let mismatch = failure(&report, "statuses/account.topup with a text/plain body is 415 UNSUPPORTED_MEDIA_TYPE");
    assert!(mismatch.contains("status 400"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_field_accepted_fails() {
    let target = Target::broken(|_| {
        Tamper::before(|request| {
            let unknown = String::from_utf8_lossy(&request.body).contains("conformance_unknown_field");
            unknown.then(|| ProxyResponse::json(200, "application/json", &json!({"disconnected": 0})))
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Statuses]).await;
    let id = "statuses/realtime.user.disconnect with an unknown field is 422 VALIDATION_ERROR";
    let mismatch = failure(&report, id);
    assert!(mismatch.contains("status 200") && mismatch.contains("expected 422"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_key_answered_as_still_running_fails() {
    // The target says a reused key is still running.
    let report = answering(422, "IDEMPOTENCY_KEY_REUSED", (409, "IDEMPOTENCY_KEY_IN_USE")).await;
    for operation in ["account.topup", "realtime.auth.sign", "realtime.publish.batch", "realtime.token.revoke"] {
        let id = format!("statuses/{operation} with a key reused with another body is 422 IDEMPOTENCY_KEY_REUSED");
        let mismatch = failure(&report, &id);
        assert!(mismatch.contains("status 409") && mismatch.contains("expected 422"), "{mismatch}");
    }
    let id = "statuses/realtime.channel.delete with a key reused for another channel is 422 IDEMPOTENCY_KEY_REUSED";
    failure(&report, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_created_again_with_another_type_answered_200_fails() {
    let target = Target::broken(|_| {
        Tamper::after(|_, response| {
            if response.status == 409 && response.body_json()["code"] == "CONFLICT" {
                *response = ProxyResponse::json(
                    200,
                    "application/json",
                    &json!({"channel_id": "ch_1", "name": "x", "type": "presence", "created": false}),
                );
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Statuses]).await;
    for operation in ["realtime.channel.create", "realtime.channel.create.alias"] {
        let id = format!("statuses/{operation} of an existing channel with another type is 409 CONFLICT");
        let mismatch = failure(&report, &id);
        assert!(mismatch.contains("status 200") && mismatch.contains("expected 409"), "{mismatch}");
        // The request that failed, not the cleanup after it.
        let curl = report.check(&id).and_then(|check| check.evidence.clone()).and_then(|e| e.curl).unwrap();
        assert!(curl.contains("-X POST") && curl.contains(r#""type":"presence""#), "{curl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billable_call_without_credit_answered_403_fails() {
    let report = answering(402, "INSUFFICIENT_CREDIT", (403, "FORBIDDEN")).await;
    for operation in ["realtime.token.issue.alias", "realtime.channel.create.alias", "realtime.user.message.send"] {
        let mismatch = failure(&report, &format!("statuses/{operation} without credit is 402 INSUFFICIENT_CREDIT"));
        assert!(mismatch.contains("status 403"), "{mismatch}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_send_answered_with_another_request_id_fails_and_prints_the_transcript() {
    let target = Target::broken(|_| {
        Tamper::echo(|frame| {
            frame.contains(r#""type":"user.message.send""#).then(|| {
                json!({"type": "user.message.sent", "message_id": "um_1", "delivered": 0, "request_id": "other"})
                    .to_string()
            })
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Statuses]).await;
    let id = "statuses/a socket's user.message.send and user.command.send are answered user.message.sent and \
              user.command.done";
    let mismatch = failure(&report, id);
    assert!(mismatch.contains(r#"expected "m1""#), "{mismatch}");
    let transcript = report.check(id).and_then(|check| check.evidence.clone()).unwrap().websocket;
    let sent = transcript.iter().find(|line| line["sent"]["type"] == "user.message.send").expect("the frame sent");
    let received =
        transcript.iter().find(|line| line["received"]["request_id"] == "other").expect("the frame received");
    assert_eq!(sent["socket"], received["socket"]);
    assert!(transcript.iter().any(|line| line.get("close").is_some()), "{transcript:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_with_limit_0_answered_200_fails() {
    let target = Target::broken(|_| {
        Tamper::before(|request| {
            let zero = request.path.starts_with("/v1/realtime/channel/history/") && request.path.contains("limit=0");
            zero.then(|| ProxyResponse::json(200, "application/json", &json!({"messages": [], "next_since": null})))
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Statuses]).await;
    let mismatch = failure(&report, "statuses/realtime.channel.history with limit 0 is 422 VALIDATION_ERROR");
    assert!(mismatch.contains("status 200") && mismatch.contains("expected 422"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_with_a_space_accepted_fails() {
    let target = Target::broken(|_| {
        // The malformed key is dropped on the way, so the request is served without one.
        Tamper::before(|request| {
            if request.header("idempotency-key") == Some("a b") {
                request.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("idempotency-key"));
            }
            None
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Statuses]).await;
    let mismatch =
        failure(&report, "statuses/realtime.channel.delete with an Idempotency-Key with a space is 400 BAD_REQUEST");
    assert!(mismatch.contains("expected 400") && !mismatch.contains("status 400"), "{mismatch}");
}
