//! The real Pusher libraries are the test: pusher-js (its Node build) subscribes to
//! public, private, presence, encrypted and cache channels of a running server, and receives
//! what the Node `pusher` package and the Python `pusher` package trigger, with socket
//! exclusion, batches, client events, presence, a native publish and events sent to a
//! signed-in user (`sendToUser`, `send_to_user`), the watchlist (`pusher.user.watchlist`),
//! and subscription counting: over a WebSocket,
//! and again over each of pusher-js's HTTP fallback transports. The scenario is
//! `tests/pusher-js/scenario.js`; `.ci/run` installs its pinned packages (`npm ci`) and
//! the Python package.

use std::path::Path;

use crate::pusher_support::{APP_ID, KEY, SECRET};
use crate::support::Env;

#[tokio::test]
async fn pusher_js_receives_what_the_node_and_python_libraries_trigger() {
    run_scenario("ws").await;
}

#[tokio::test]
async fn pusher_js_over_xhr_streaming_does_what_it_does_over_a_websocket() {
    run_scenario("xhr_streaming").await;
}

#[tokio::test]
async fn pusher_js_over_xhr_polling_does_what_it_does_over_a_websocket() {
    run_scenario("xhr_polling").await;
}

/// Runs the scenario with pusher-js restricted to `transport`; every check must pass.
async fn run_scenario(transport: &str) {
    // Over a WebSocket the server also counts subscriptions, as an app that enables it.
    let counting = transport == "ws";
    let env = Env::start_with(serde_json::json!({"pusher": {"subscription_count": counting}})).await;
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pusher-js");
    assert!(
        project.join("node_modules/pusher-js").is_dir() && project.join("node_modules/pusher").is_dir(),
        "the Pusher libraries are not installed: run `npm ci` in {} (.ci/run does)",
        project.display()
    );
    // Awaited, not waited on: the server runs on this test's runtime.
    let run = tokio::process::Command::new("node")
        .arg("scenario.js")
        .current_dir(&project)
        .env("REALTIME_URL", env.server.base_url())
        .env("REALTIME_API_KEY", &env.key)
        .env("PUSHER_APP_ID", APP_ID)
        .env("PUSHER_KEY", KEY)
        .env("PUSHER_SECRET", SECRET)
        .env("PUSHER_TRANSPORT", transport)
        .env("PUSHER_SUBSCRIPTION_COUNT", if counting { "1" } else { "0" })
        .output()
        .await;
    let output = run.expect("node is needed for the pusher-js test (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture: the checks that passed, with their timings.
    println!("over {transport}:\n{stdout}");
    assert!(output.status.success(), "the pusher-js scenario over {transport} failed:\n{stdout}\n{stderr}");
    // Every check printed its line: a scenario cut short cannot pass silently.
    assert_eq!(
        stdout.lines().filter(|line| line.starts_with("ok  ")).count(),
        if counting { 15 } else { 14 },
        "{stdout}"
    );
}
