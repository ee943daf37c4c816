//! Deliberately broken targets: each must make its class of check fail.

use realtime_conformance::Kind;
use realtime_conformance::Outcome;
use serde_json::json;

use crate::support::{ProxyResponse, Tamper, Target, failure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_status_fails_the_example() {
    let target = Target::broken(|_| {
        Tamper::after(|request, response| {
            if request.path == "/v1/realtime/event/types" && response.status == 200 {
                response.status = 202;
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Example]).await;
    assert!(!report.passed());
    let mismatch = failure(&report, "example/event.types");
    assert!(mismatch.contains("status 202") && mismatch.contains("expected 200"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_field_fails_schema_validation() {
    let target = Target::broken(|_| {
        Tamper::after(|request, response| {
            if request.path == "/v1/realtime/publish" && response.status == 200 {
                let mut body = response.body_json();
                body.as_object_mut().map(|fields| fields.remove("message_id"));
                response.set_body_json(&body);
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Example]).await;
    let mismatch = failure(&report, "example/publish");
    assert!(mismatch.contains("message_id") && mismatch.contains("schema"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_a_new_id_fails_idempotency() {
    let target = Target::broken(|_| {
        Tamper::after(|request, response| {
            let replay = response.header("idempotent-replayed") == Some("true");
            if request.path == "/v1/realtime/publish" && replay {
                let mut body = response.body_json();
                body["message_id"] = json!("01JFAKEFAKEFAKEFAKEFAKEFAK");
                response.set_body_json(&body);
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Idempotency]).await;
    let mismatch = failure(&report, "idempotency/publish replay returns the first response");
    assert!(mismatch.contains("/message_id"), "{mismatch}");
    failure(&report, "idempotency/idempotency_key body field is honoured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_charges_again_fails_idempotency() {
    // The proxy drops the key, so the "replay" is a second, billed publish.
    let target = Target::broken(|_| {
        Tamper::before(|request| {
            if request.path == "/v1/realtime/publish" {
                request.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("idempotency-key"));
            }
            None
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Idempotency]).await;
    failure(&report, "idempotency/publish replay returns the first response");
    let mismatch = failure(&report, "idempotency/publish replay is charged once");
    assert!(mismatch.contains("the replay was charged"), "{mismatch}");
    let mismatch = failure(&report, "idempotency/publish replay is delivered once");
    assert!(mismatch.contains("2 times"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_402_that_still_publishes_fails_the_credit_path() {
    // The proxy publishes the zero-credit account's request with the funded key and then
    // answers 402 anyway: the refusal is a lie, and the subscriber sees it.
    let target = Target::broken(|target| {
        let zero = format!("Bearer {}", target.zero_key);
        let funded = format!("Bearer {}", target.funded_key);
        Tamper {
            before: Box::new(move |request| {
                if request.path == "/v1/realtime/publish" && request.header("authorization") == Some(zero.as_str()) {
                    request.set_header("authorization", &funded);
                    request.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("idempotency-key"));
                }
                None
            }),
            after: Box::new(|request, response| {
                if request.path == "/v1/realtime/publish"
                    && request.body.windows(19).any(|w| w == b"conformance.refused")
                {
                    *response = ProxyResponse::json(
                        402,
                        "application/problem+json",
                        &json!({
                            "type": "urn:realtime:problem:insufficient-credit",
                            "title": "Insufficient credit",
                            "status": 402,
                            "code": "INSUFFICIENT_CREDIT",
                            "topup_url": "/v1/account/topup"
                        }),
                    );
                }
            }),
            ..Tamper::default()
        }
    })
    .await;
    let report = target.certify_only(&[Kind::Credit]).await;
    let mismatch = failure(&report, "credit/publish without credit is 402 and is not delivered");
    assert!(mismatch.contains("delivered to a live subscriber"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_that_does_not_cut_the_socket_fails_the_live_check() {
    let target = Target::broken(|_| {
        Tamper::before(|request| {
            if request.path == "/v1/realtime/token/revoke" {
                let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let jti = body["token_or_jti"].as_str().unwrap_or_default().to_owned();
                return Some(ProxyResponse::json(
                    200,
                    "application/json",
                    &json!({"revoked": true, "jti": jti, "disconnected": 1}),
                ));
            }
            None
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Live]).await;
    let mismatch = failure(&report, "live/token.revoke closes the socket (4003)");
    assert!(mismatch.contains("still open"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_text_error_fails_the_auth_checks() {
    let target = Target::broken(|_| {
        Tamper::after(|_, response| {
            if response.status == 401 {
                *response = ProxyResponse {
                    status: 401,
                    headers: vec![("content-type".to_owned(), "text/plain; charset=utf-8".to_owned())],
                    body: b"unauthorized".to_vec(),
                };
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Auth]).await;
    let unauthenticated: Vec<_> =
        report.checks.iter().filter(|check| check.id.ends_with("is 401 UNAUTHENTICATED")).collect();
    assert_eq!(unauthenticated.len(), 16);
    for check in unauthenticated {
        assert!(matches!(check.outcome, Outcome::Fail(_)), "{} passed a plain-text 401", check.id);
    }
    let mismatch = failure(&report, "auth/account.get with no Authorization header is 401 UNAUTHENTICATED");
    assert!(mismatch.contains("problem code None"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_for_invalid_data_fails_the_negative_checks() {
    let target = Target::broken(|_| {
        Tamper::after(|request, response| {
            if request.path == "/v1/realtime/channel/create" && response.status == 422 {
                *response = ProxyResponse::json(
                    500,
                    "application/problem+json",
                    &json!({"type": "urn:realtime:problem:internal", "title": "Internal error", "status": 500, "code": "INTERNAL"}),
                );
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Negative]).await;
    let mismatch = failure(&report, "negative/realtime.channel.create with name over 164 bytes");
    assert!(mismatch.contains("status 500") && mismatch.contains("expected a 4xx"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_ignores_tenancy_fails_the_tenancy_checks() {
    // Every read by the second account is answered as if by the first.
    let target = Target::broken(|target| {
        let zero = format!("Bearer {}", target.zero_key);
        let funded = format!("Bearer {}", target.funded_key);
        Tamper::before(move |request| {
            if request.method == "GET"
                && request.path.starts_with("/v1/realtime/channel/")
                && request.header("authorization") == Some(zero.as_str())
            {
                request.set_header("authorization", &funded);
            }
            None
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Auth]).await;
    let mismatch = failure(&report, "auth/another account's channel is 404 NOT_FOUND");
    assert!(mismatch.contains("status 200"), "{mismatch}");
    let mismatch = failure(&report, "auth/another account's channel is not listed");
    assert!(mismatch.contains("lists"), "{mismatch}");
}
