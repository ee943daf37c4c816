//! The `realtime-conformance` binary: a run that cannot start exits 2 and says why, apart
//! from failing checks (exit 1).

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

use crate::support::Target;

/// Runs the binary with `args` and no conformance variables from the environment.
async fn run(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_realtime-conformance"));
    command.args(args).kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("REALTIME_CONFORMANCE_") {
            command.env_remove(name);
        }
    }
    tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("it ends").expect("it runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn an_unreachable_url_exits_2_and_says_it_cannot_reach_it() {
    let output = run(&["--base-url", "http://127.0.0.1:1", "--api-key", "ifr_pk_x"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("cannot reach http://127.0.0.1:1"), "{text}");
    assert!(output.stdout.is_empty(), "no check ran: {}", String::from_utf8_lossy(&output.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_exits_2_and_says_which() {
    let target = Target::reference().await;
    let output = run(&["--base-url", &target.base_url, "--api-key", "ifr_pk_proj_0000000000000000000000000000"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("the key is refused") && text.contains("401 to --api-key"), "{text}");

    let output = run(&[
        "--base-url",
        &target.base_url,
        "--api-key",
        &target.funded_key,
        "--zero-credit-api-key",
        "ifr_pk_proj_1111111111111111111111111111",
    ])
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("401 to --zero-credit-api-key"), "{text}");
    assert!(!text.contains(&target.funded_key), "a key is never printed: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_serves_something_else_exits_2() {
    let target = Target::reference().await;
    let elsewhere = format!("{}/not-the-api", target.base_url);
    let output = run(&["--base-url", &elsewhere, "--api-key", &target.funded_key]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("does not serve the API: GET /v1/account answered 404"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_pusher_credentials_exit_2() {
    let target = Target::reference().await;
    let args =
        ["--profile", "pusher", "--base-url", &target.base_url, "--app-id", "1", "--key", "dev-pusher-key", "--secret"];
    let output = run(&[&args[..], &["not-the-secret"]].concat()).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--app-id/--key/--secret"), "{}", stderr(&output));
    let output =
        run(&[&args[..7], &["999", "--key", "dev-pusher-key", "--secret", "dev-pusher-secret"]].concat()).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[tokio::test]
async fn bad_usage_exits_2() {
    let output = run(&["--base-url", "http://127.0.0.1:1"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("needs --api-key"), "{}", stderr(&output));
    let output = run(&["--no-such-flag"]).await;
    assert_eq!(output.status.code(), Some(2));
}
