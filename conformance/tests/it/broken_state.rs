//! Broken targets for the stateful kinds: a batch published in part, an account that
//! reaches another's resources, a rate limit that never bites, writes lost or replayed
//! wrongly across a restart, and sockets a restart leaves wrongly.

use realtime_conformance::Kind;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::{ProxyResponse, Tamper, Target, failure};

const PARTIAL: &str = "x-test-partial-batch";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_published_in_part_fails_the_atomicity_checks() {
    let target = Target::broken(|_| Tamper {
        // The bad message is dropped before the batch goes upstream, so the good ones are
        // published and charged; the answer still refuses the batch.
        before: Box::new(|request| {
            if request.path != "/v1/realtime/publish/batch" {
                return None;
            }
            let mut body: Value = serde_json::from_slice(&request.body).ok()?;
            let messages = body["messages"].as_array_mut()?;
            let bad =
                |m: &Value| m["event"] == "" || m["channel"].as_str().is_some_and(|c| c.ends_with("atomic-missing"));
            if messages.len() == 3 && messages.iter().any(bad) {
                messages.retain(|m| !bad(m));
                request.body = body.to_string().into_bytes();
                request.set_header(PARTIAL, "1");
            }
            None
        }),
        after: Box::new(|request, response| {
            if request.header(PARTIAL).is_some() {
                let problem = json!({
                    "type": "urn:realtime:problem:validation-error", "title": "The request is not valid",
                    "status": 422, "code": "VALIDATION_ERROR", "detail": "one message is not valid",
                    "errors": [{"pointer": "/messages/1/event", "detail": "must not be empty"}],
                });
                *response = ProxyResponse::json(422, "application/problem+json", &problem);
            }
        }),
        ..Tamper::default()
    })
    .await;
    let report = target.certify_only(&[Kind::Atomicity]).await;
    for id in [
        "atomicity/a batch with one unknown channel is 404, publishes nothing and charges nothing",
        "atomicity/a batch with one invalid message is 422, publishes nothing and charges nothing",
    ] {
        let mismatch = failure(&report, id);
        assert!(mismatch.contains("status 422") || mismatch.contains("delivered"), "{id}: {mismatch}");
    }
    let invalid =
        failure(&report, "atomicity/a batch with one invalid message is 422, publishes nothing and charges nothing");
    assert!(invalid.contains("a refused batch delivered"), "{invalid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_leaks_across_accounts_fails_the_tenancy_checks() {
    let target = Target::broken(|target| {
        let (funded, other) = (format!("Bearer {}", target.funded_key), format!("Bearer {}", target.zero_key));
        // The second account's calls on resources of the first act as the first.
        Tamper::before(move |request| {
            let named = [
                "/token/revoke",
                "/user/disconnect",
                "/user/command/get/",
                "/channel/delete/",
                "/presence/get/",
                "/channel/history/",
            ];
            if request.header("authorization") == Some(other.as_str())
                && named.iter().any(|part| request.path.contains(part))
            {
                request.set_header("authorization", &funded);
            }
            None
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Tenancy]).await;
    for id in [
        "tenancy/another account's token.revoke of a token is 404 and the socket stays",
        "tenancy/another account's user.disconnect reaches none of this account's sockets",
        "tenancy/another account's channel.delete is 404 and the channel stays",
        "tenancy/another account's presence.get is 404",
        "tenancy/another account's channel.history is 404",
        "tenancy/another account's user.command.get is 404",
    ] {
        let mismatch = failure(&report, id);
        assert!(mismatch.contains("200") || mismatch.contains("disconnected"), "{id}: {mismatch}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_of_another_account_that_reaches_the_channel_fails_tenancy() {
    let target = Target::broken(|target| {
        let (funded, other) = (format!("Bearer {}", target.funded_key), format!("Bearer {}", target.zero_key));
        // The second account's token for the first's channel is issued by the first.
        Tamper::before(move |request| {
            let intruder = String::from_utf8_lossy(&request.body).contains("intruder");
            if request.header("authorization") == Some(other.as_str()) && intruder {
                request.set_header("authorization", &funded);
            }
            None
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Tenancy]).await;
    let mismatch =
        failure(&report, "tenancy/another account's socket can neither subscribe to nor publish in the channel");
    assert!(mismatch.contains("was answered"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_of_another_account_that_reaches_the_channel_fails_tenancy() {
    let target = Target::broken(|target| {
        let (funded, other) = (format!("Bearer {}", target.funded_key), format!("Bearer {}", target.zero_key));
        // The second account's publishes, one and in a batch, are made as the first.
        Tamper::before(move |request| {
            let publish = request.path.starts_with("/v1/realtime/publish");
            let intruder = String::from_utf8_lossy(&request.body).contains("conformance.tenancy-publish");
            if publish && intruder && request.header("authorization") == Some(other.as_str()) {
                request.set_header("authorization", &funded);
            }
            None
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Credit, Kind::Tenancy]).await;
    let mismatch = failure(
        &report,
        "tenancy/another account's publish and publish.batch (to the channel, or to its own of the same name) \
         reach none of the channel's subscribers",
    );
    assert!(mismatch.contains("status 200") && mismatch.contains("expected 404"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_that_never_bites_fails_the_limits_check() {
    let target = Target::broken(|_| {
        Tamper::after(|_, response| {
            if response.status == 429 {
                *response = ProxyResponse::json(200, "application/json", &json!({}));
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Limits]).await;
    let mismatch =
        failure(&report, "limits/driven past its documented rate limit, the target answers 429 with Retry-After");
    assert!(mismatch.contains("none was 429"), "{mismatch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_without_retry_after_fails_the_limits_check() {
    let target = Target::broken(|_| {
        Tamper::after(|_, response| {
            if response.status == 429 {
                response.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("retry-after"));
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Limits]).await;
    let mismatch =
        failure(&report, "limits/driven past its documented rate limit, the target answers 429 with Retry-After");
    assert!(mismatch.contains("Retry-After"), "{mismatch}");
}

/// A target whose "restart" (the harness's restart command touches a file) loses the first
/// message of every history and forgets that keys were used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_loses_writes_and_replays_fails_the_durability_checks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker: Arc<PathBuf> = Arc::new(dir.path().join("restarted"));
    let restarted = marker.clone();
    let target = Target::broken(move |_| {
        Tamper::after(move |request, response| {
            if !restarted.exists() {
                return;
            }
            if request.path.starts_with("/v1/realtime/channel/history/") && request.path.contains("durable") {
                let mut body = response.body_json();
                if request.path.contains("since=") {
                    return;
                }
                if let Some(messages) = body["messages"].as_array_mut()
                    && !messages.is_empty()
                {
                    messages.remove(0);
                }
                response.set_body_json(&body);
            }
            response.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("idempotent-replayed"));
        })
    })
    .await;
    let report = target
        .certify_with(|config| {
            config.restart_command = Some(format!("touch '{}'", marker.display()));
            config.only = vec![Kind::Durability];
        })
        .await;
    let survived = failure(&report, "durability/every answered write survives a restart of the target");
    assert!(survived.contains("not in the history"), "{survived}");
    let replayed = failure(&report, "durability/every idempotency key replays its first answer after the restart");
    assert!(replayed.contains("did not replay"), "{replayed}");
    let once = failure(&report, "durability/after the restart and the retries nothing is charged or published twice");
    assert!(once.contains("history holds"), "{once}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_that_skips_an_operation_or_outlasts_retry_after_fails_the_limits_checks() {
    let first_429 = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    let target = Target::broken(move |_| {
        Tamper::after(move |request, response| {
            let mut first = first_429.lock().unwrap();
            if response.status == 429 && first.is_none() {
                *first = Some(std::time::Instant::now());
            }
            if request.path == "/v1/realtime/publish" && response.status == 429 {
                // One operation escapes the limit.
                *response = ProxyResponse::json(200, "application/json", &json!({}));
            } else if request.path == "/v1/account"
                && first.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(8))
            {
                // The budget stays empty long after Retry-After.
                let problem = json!({"type": "urn:realtime:problem:rate-limited", "title": "Too many requests",
                    "status": 429, "code": "RATE_LIMITED", "detail": "slow down"});
                *response = ProxyResponse::json(429, "application/problem+json", &problem);
                response.headers.push(("retry-after".to_owned(), "1".to_owned()));
            }
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Limits]).await;
    let every =
        failure(&report, "limits/every operation answers 429 RATE_LIMITED while the account is over its budget");
    assert!(every.contains("realtime.publish was never answered 429"), "{every}");
    let recovers = failure(&report, "limits/after Retry-After the target serves the account again");
    assert!(recovers.contains("429"), "{recovers}");
}

/// A target whose graceful stop (the restart command touches a file the proxy watches)
/// closes its sockets with 1001 and no `disconnecting`, instead of 4200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_that_closes_with_another_code_fails_the_durability_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker: Arc<PathBuf> = Arc::new(dir.path().join("stopping"));
    let stopping = marker.clone();
    let target = Target::broken(move |_| Tamper {
        stop: Box::new(move || stopping.exists().then_some(1001)),
        ..Tamper::default()
    })
    .await;
    let report = target
        .certify_with(|config| {
            config.restart_command = Some(format!("touch '{}'", marker.display()));
            config.only = vec![Kind::Durability];
        })
        .await;
    let mismatch = failure(
        &report,
        "durability/a graceful restart sends a subscribed socket `disconnecting` and closes it with 4200",
    );
    assert!(mismatch.contains("close code 1001"), "{mismatch}");
    let coverage = report.coverage.as_ref().expect("the coverage");
    assert!(coverage.uncovered.iter().any(|cell| cell.cell.starts_with("4200 ")), "4200 is reachable and missed");
}

/// A target whose kill (the kill command touches a file the proxy watches) leaves its
/// sockets open but mute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_that_leaves_sockets_open_and_mute_fails_the_durability_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker: Arc<PathBuf> = Arc::new(dir.path().join("killed"));
    let killed = marker.clone();
    let target = Target::broken(move |_| Tamper {
        frames: Box::new(move |frame| (!killed.exists()).then(|| frame.to_owned())),
        ..Tamper::default()
    })
    .await;
    let report = target
        .certify_with(|config| {
            config.kill_command = Some(format!("touch '{}'", marker.display()));
            config.restart_command = Some("true".to_owned());
            config.only = vec![Kind::Durability];
        })
        .await;
    let mismatch = failure(
        &report,
        "durability/a subscribed socket open across the kill is dropped or still served, not half-open",
    );
    assert!(mismatch.contains("neither closed nor served"), "{mismatch}");
    let skipped =
        report.check("durability/a graceful restart sends a subscribed socket `disconnecting` and closes it with 4200");
    assert!(matches!(skipped.map(|check| &check.outcome), Some(realtime_conformance::Outcome::Skip(_))));
}

/// A target whose `account.get` fails for the key the limits checks drive with: the first
/// check fails saying so, and the other two are skipped with the reason, none left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_first_account_get_fails_the_limits_check_and_skips_the_others_with_the_reason() {
    let target = Target::broken(|target| {
        let zero = format!("Bearer {}", target.zero_key);
        Tamper::before(move |request| {
            let first = request.path == "/v1/account" && request.header("authorization") == Some(zero.as_str());
            first.then(|| ProxyResponse::json(502, "application/json", &json!({"error": "upstream down"})))
        })
    })
    .await;
    let report = target.certify_only(&[Kind::Limits]).await;
    let mismatch =
        failure(&report, "limits/driven past its documented rate limit, the target answers 429 with Retry-After");
    assert!(mismatch.contains("account.get before the drive"), "{mismatch}");
    for id in [
        "limits/every operation answers 429 RATE_LIMITED while the account is over its budget",
        "limits/after Retry-After the target serves the account again",
    ] {
        match report.check(id).map(|check| &check.outcome) {
            Some(realtime_conformance::Outcome::Skip(reason)) => {
                assert!(reason.contains("account.get failed before the drive"), "{id}: {reason}")
            }
            other => panic!("{id} should be skipped with the reason, it is {other:?}"),
        }
    }
}
