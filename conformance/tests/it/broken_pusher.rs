//! The Pusher profile's checks of encrypted channels, trigger `info`,
//! `terminate_connections` and the client-provoked error codes against a target that gets
//! each of them wrong: each check must fail, and say why.

use std::time::Duration;

use realtime_conformance::Outcome;
use realtime_conformance::pusher::{App, PusherConfig};
use serde_json::{Value, json};

use crate::support::{ProxyResponse, Tamper, Target, failure};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_ignores_pusher_s_channel_rules_and_error_codes_fails_those_checks() {
    let target = Target::broken(|_| Tamper {
        // It takes one event for an encrypted and a public channel, and answers no `info`.
        after: Box::new(|request, response| {
            let events = request.path.split('?').next().is_some_and(|path| path.ends_with("/events"));
            if events && response.status == 400 {
                *response = ProxyResponse::json(200, "application/json", &json!({}));
            }
            if events && response.body_json().get("channels").is_some() {
                response.set_body_json(&json!({}));
            }
        }),
        // It re-encodes what it relays, and sends no `pusher:error`.
        frames: Box::new(|frame| {
            let mut parsed: Value = serde_json::from_str(frame).ok()?;
            if parsed["event"] == "pusher:error" {
                return None;
            }
            if parsed["event"] == "conformance-sealed" {
                let data: Value = serde_json::from_str(parsed["data"].as_str()?).ok()?;
                parsed["data"] = json!(data.to_string() + " ");
            }
            Some(parsed.to_string())
        }),
        // And it closes with 1000 where Pusher has a code of its own.
        close: Box::new(|code| if (4000..4400).contains(&code) { 1000 } else { code }),
        ..Tamper::default()
    })
    .await;
    let app = App { app_id: "1".to_owned(), key: "dev-pusher-key".to_owned(), secret: "dev-pusher-secret".to_owned() };
    let mut config = PusherConfig::new(&target.base_url, app);
    config.live_bound = Duration::from_secs(2);
    let report = realtime_conformance::pusher::run(&config).await.expect("the harness runs");

    let several = failure(
        &report,
        "pusher-http/a trigger of one event to several channels including a private-encrypted- one is 400",
    );
    assert!(several.contains("status 200, expected 400"), "{several}");
    let relay = failure(
        &report,
        "pusher-protocol/an event on a private-encrypted- channel reaches its subscriber exactly as triggered",
    );
    assert!(relay.contains("expected exactly the string triggered"), "{relay}");
    let info =
        failure(&report, "pusher-http/a trigger with info=user_count,subscription_count answers them per channel");
    assert!(info.contains("user_count"), "{info}");
    let terminate = failure(&report, "pusher-http/terminate_connections closes the sockets signed in as the user");
    assert!(terminate.contains("close code 1000"), "{terminate}");
    for (id, code) in [
        ("pusher-protocol/a protocol version that is not a number is refused with 4006", "4006"),
        ("pusher-protocol/an unsupported protocol version is refused with 4007", "4007"),
        ("pusher-protocol/a connection without a protocol version is refused with 4008", "4008"),
        ("pusher-protocol/client events past the rate limit are refused with 4301", "4301"),
    ] {
        let mismatch = failure(&report, id);
        assert!(mismatch.contains(code), "{id}: {mismatch}");
    }
    // The reference server's default activity timeout (120 s) is too long to wait for.
    let pong = report.check("pusher-protocol/a socket that does not answer pusher:ping is closed with 4201").unwrap();
    assert!(matches!(&pong.outcome, Outcome::Skip(why) if why.contains("activity_timeout is 120 s")), "{pong:?}");
}
