//! The Pusher profile against the reference server, and against a target that accepts
//! what Pusher refuses.

use std::time::Duration;

use realtime_conformance::Outcome;
use realtime_conformance::pusher::{App, PusherConfig, WebhookReceiver, Webhooks};
use serde_json::{Value, json};

use realtime_server::testing::TestServer;

use crate::support::{ProxyResponse, Tamper, Target, failure};

/// The app every fresh reference server gives its dev account.
fn dev_app() -> App {
    App { app_id: "1".to_owned(), key: "dev-pusher-key".to_owned(), secret: "dev-pusher-secret".to_owned() }
}

async fn admin(server: &TestServer, path: &str, body: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .bearer_auth(server.admin_secret())
        .json(body)
        .send()
        .await
        .expect("the admin API answers");
    assert!(response.status().is_success(), "POST {path}: {}", response.status());
    response.json().await.expect("a JSON answer")
}

/// A receiver, and a new account's app whose webhooks go to it.
async fn webhooks(server: &TestServer) -> Webhooks {
    let receiver = WebhookReceiver::bind("127.0.0.1:0").await.expect("the receiver listens");
    let account = admin(server, "/admin/v1/accounts", &json!({"balance": 2_000_000})).await;
    let body = json!({"account_id": account["account_id"], "webhook_url": receiver.url()});
    let app = admin(server, "/admin/v1/pusher/apps", &body).await;
    let app = App {
        app_id: app["app_id"].to_string().trim_matches('"').to_owned(),
        key: app["key"].as_str().expect("a key").to_owned(),
        secret: app["secret"].as_str().expect("a secret").to_owned(),
    };
    Webhooks { receiver, app }
}

/// Checks that skip on a target without subscription counting (the reference server's
/// default; Pusher's too, until an app enables it), or with the default activity timeout
/// of 120 s, too long for the 4201 check to wait for.
const COUNTING: [&str; 3] = [
    "pusher-protocol/a socket that does not answer pusher:ping is closed with 4201",
    "pusher-protocol/pusher_internal:subscription_count tells subscribers how many there are",
    "pusher-webhook/subscription_count arrives signed when the count changes",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_passes_every_pusher_check() {
    // As an app that enables subscription counting, so that every check runs, with an
    // activity timeout short enough for the 4201 check to wait for.
    let dir = tempfile::tempdir().expect("temp dir");
    let pusher = json!({"subscription_count": true, "activity_timeout_seconds": 3, "pong_timeout_seconds": 2});
    let overrides = json!({ "pusher": pusher });
    let server = TestServer::start_with(dir.path(), overrides).await.expect("the reference server starts");
    let mut config = PusherConfig::new(server.base_url(), dev_app());
    config.webhooks = Some(webhooks(&server).await);
    let report = realtime_conformance::pusher::run(&config).await.expect("the harness runs");
    let table = report.render_table();
    assert_eq!(report.checks.len(), 43, "{table}");
    for check in &report.checks {
        assert!(check.kind.is_pusher(), "{} is not a Pusher check\n{table}", check.id);
        match &check.outcome {
            Outcome::Pass => {}
            Outcome::Fail(mismatch) => panic!("{} failed: {mismatch}\n{table}", check.id),
            Outcome::Skip(reason) => panic!("{} was skipped ({reason})\n{table}", check.id),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_receiver_the_webhook_checks_say_why_they_skip() {
    let target = Target::reference().await;
    let report = realtime_conformance::pusher::run(&PusherConfig::new(&target.base_url, dev_app()))
        .await
        .expect("the harness runs");
    let skipped: Vec<_> = report.checks.iter().filter(|check| matches!(check.outcome, Outcome::Skip(_))).collect();
    assert_eq!(skipped.len(), 9, "{}", report.render_table());
    for check in skipped {
        let Outcome::Skip(reason) = &check.outcome else { unreachable!() };
        if COUNTING.contains(&check.id.as_str()) {
            // Subscription counting is off on this target, or the activity timeout too long:
            // said so, whatever else is missing.
            let said = ["subscription counting is off", "--webhook-listen", "activity_timeout is 120 s"];
            assert!(said.iter().any(|why| reason.contains(why)), "{reason}");
            continue;
        }
        assert!(check.id.starts_with("pusher-webhook/"), "{}", check.id);
        assert!(reason.contains("--webhook-listen"), "{reason}");
    }
    assert!(report.passed(), "{}", report.render_table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_takes_wrong_signatures_fails_the_pusher_profile() {
    // Every refusal of the HTTP API becomes a success, as if signatures were not checked.
    let target = Target::broken(|_| {
        Tamper::after(|request, response| {
            if request.path.starts_with("/apps/") && response.status == 401 {
                *response = ProxyResponse::json(200, "application/json", &json!({}));
            }
        })
    })
    .await;
    let mut config = PusherConfig::new(&target.base_url, dev_app());
    config.live_bound = Duration::from_secs(2);
    let report = realtime_conformance::pusher::run(&config).await.expect("the harness runs");
    assert!(!report.passed());
    for id in [
        "pusher-http/a wrong auth_signature is 401",
        "pusher-http/an auth_timestamp an hour old is 401",
        "pusher-http/a body_md5 of another body is 401",
    ] {
        let mismatch = failure(&report, id);
        assert!(mismatch.contains("status 200") && mismatch.contains("expected 401"), "{mismatch}");
        let evidence = report.check(id).and_then(|check| check.evidence.clone()).expect("a reproduction");
        assert!(evidence.curl.is_some_and(|curl| curl.contains("/apps/1/")), "{id}");
        assert_eq!(evidence.response.map(|response| response.status), Some(200));
    }
    // What the proxy does not touch still passes.
    let check = report.check("pusher-http/a signed trigger to one channel is 200 {}").expect("the trigger check ran");
    assert_eq!(check.outcome, Outcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_echoes_client_events_fails_the_pusher_profile() {
    // The proxy sends each client event back to its sender, as a careless server would.
    let target = Target::broken(|_| {
        Tamper::echo(|frame| {
            let frame: Value = serde_json::from_str(frame).ok()?;
            let event = frame["event"].as_str()?;
            event.starts_with("client-").then(|| {
                json!({"event": event, "channel": frame["channel"], "data": frame["data"].to_string()}).to_string()
            })
        })
    })
    .await;
    let mut config = PusherConfig::new(&target.base_url, dev_app());
    config.live_bound = Duration::from_secs(2);
    let report = realtime_conformance::pusher::run(&config).await.expect("the harness runs");
    let mismatch = failure(&report, "pusher-protocol/a client event is not echoed to its sender");
    assert!(mismatch.contains("client-conformance"), "{mismatch}");
    let check = report.check("pusher-protocol/a client event is not echoed to its sender").unwrap();
    let transcript = check.evidence.clone().expect("a transcript").websocket;
    let echoed = |line: &&Value| line["received"]["event"].as_str().is_some_and(|event| event.starts_with("client-"));
    assert!(transcript.iter().any(|line| echoed(&line)), "{transcript:?}");
    // Everything else goes through the proxy untouched, and passes.
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|check| matches!(check.outcome, Outcome::Fail(_)))
        .map(|check| check.id.as_str())
        .collect();
    assert_eq!(failed, ["pusher-protocol/a client event is not echoed to its sender"], "{}", report.render_table());
}
