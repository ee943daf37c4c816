//! The `realtime` binary against a reference server on a loopback port.

use std::process::Stdio;
use std::time::Duration;

use realtime_server::testing::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

mod conformance;
mod serve;
mod tls;

/// A reference server, and `realtime` commands configured for it.
struct Cli {
    server: TestServer,
    _dir: tempfile::TempDir,
}

/// What a finished command printed.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Cli {
    async fn start() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await.unwrap();
        Cli { server, _dir: dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_realtime"));
        command
            .args(args)
            .env("REALTIME_URL", self.server.base_url())
            .env("REALTIME_API_KEY", self.server.api_key())
            .env("REALTIME_CLI_CONFIG", "/dev/null")
            .env_remove("REALTIME_ADMIN_SECRET")
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Ran {
        self.run_with_stdin(args, "").await
    }

    async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Ran {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

#[tokio::test]
async fn subscribe_prints_what_publish_sends_as_json_lines() {
    let cli = Cli::start().await;
    assert_eq!(cli.run(&["channel", "create", "room-42"]).await.code, Some(0));
    let mut subscriber = cli
        .command(&["subscribe", "room-42", "--client-id", "terminal-2", "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().expect("a line")
    };
    let connected = json(&next_line().await);
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["client_id"], "terminal-2");
    assert_eq!(json(&next_line().await)["type"], "subscribed");

    let published = cli.run(&["--json", "publish", "room-42", "message", r#"{"text":"hi"}"#]).await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);
    let published = json(&published.stdout);
    assert_eq!(published["delivered"], 1);

    let message = json(&next_line().await);
    assert_eq!(message["type"], "message");
    assert_eq!(message["data"], serde_json::json!({"text": "hi"}));
    assert_eq!(message["message_id"], published["message_id"]);
    let status = tokio::time::timeout(Duration::from_secs(10), subscriber.wait()).await.unwrap().unwrap();
    assert!(status.success(), "--count 1 exits after the first message");
}

#[tokio::test]
async fn a_problem_is_shown_with_title_code_and_detail_and_exits_1() {
    let cli = Cli::start().await;
    let ran = cli.run(&["channel", "get", "never-created"]).await;
    assert_eq!(ran.code, Some(1));
    assert!(ran.stderr.contains("Not found (NOT_FOUND, HTTP 404)"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty());
    let ran = cli.run(&["--json", "channel", "get", "never-created"]).await;
    assert_eq!(json(&ran.stderr)["code"], "NOT_FOUND");
}

#[tokio::test]
async fn an_unreachable_server_exits_3() {
    let cli = Cli::start().await;
    let ran = cli.run(&["--url", "http://127.0.0.1:9", "--retries", "0", "account", "show"]).await;
    assert_eq!(ran.code, Some(3), "{}", ran.stderr);
}

#[tokio::test]
async fn tables_for_people_and_json_for_scripts() {
    let cli = Cli::start().await;
    let created = cli.run(&["--json", "channel", "create", "lobby", "--type", "presence"]).await;
    assert_eq!(json(&created.stdout)["created"], true);
    let table = cli.run(&["channel", "list"]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    let mut lines = table.stdout.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{}", table.stdout);
    assert!(lines.next().unwrap().starts_with("lobby"), "{}", table.stdout);
    let listed = cli.run(&["--json", "channel", "list", "--all"]).await;
    assert_eq!(json(&listed.stdout)[0]["type"], "presence");
}

#[tokio::test]
async fn batch_publishes_json_lines_from_stdin() {
    let cli = Cli::start().await;
    cli.run(&["channel", "create", "room-42"]).await;
    let input =
        "{\"channel\":\"room-42\",\"event\":\"a\",\"data\":1}\n{\"channel\":\"room-42\",\"event\":\"b\",\"data\":2}\n";
    let ran = cli.run_with_stdin(&["--json", "batch"], input).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(json(&ran.stdout)["published"], 2);
}

#[tokio::test]
async fn publish_reads_data_from_stdin_and_replays_with_the_same_key() {
    let cli = Cli::start().await;
    cli.run(&["channel", "create", "room-42"]).await;
    let args = ["--json", "publish", "room-42", "tick", "--idempotency-key", "tick-1"];
    let first = cli.run_with_stdin(&args, "{\"n\":1}\n").await;
    let second = cli.run_with_stdin(&args, "{\"n\":1}\n").await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(json(&first.stdout)["message_id"], json(&second.stdout)["message_id"]);
    assert!(second.stderr.contains("replayed"), "{}", second.stderr);
}

#[tokio::test]
async fn account_create_uses_the_admin_secret() {
    let cli = Cli::start().await;
    let refused = cli.run(&["account", "create", "--balance", "0"]).await;
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("admin secret"), "{}", refused.stderr);
    let created = cli
        .run(&["--json", "account", "create", "--balance", "1000000", "--admin-secret", cli.server.admin_secret()])
        .await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let account = json(&created.stdout);
    let key = account["api_key"].as_str().unwrap();
    let shown = cli.run(&["--json", "--api-key", key, "account", "show"]).await;
    assert_eq!(json(&shown.stdout)["balance"], 1_000_000);
}

#[tokio::test]
async fn account_pusher_app_gives_an_account_a_pusher_app_with_chosen_or_generated_credentials() {
    let cli = Cli::start().await;
    let account = json(&cli.run(&["--json", "account", "show"]).await.stdout);
    let account_id = account["account_id"].as_str().unwrap();
    let admin = ["--admin-secret", cli.server.admin_secret()];
    let args = ["--json", "account", "pusher-app", "--account-id", account_id, "--app-id", "123456", "--key", "key1"];
    let chosen = cli.run(&[&args[..], &["--secret", "secret-one"], &admin[..]].concat()).await;
    assert_eq!(chosen.code, Some(0), "{}", chosen.stderr);
    let app = json(&chosen.stdout);
    assert_eq!(
        (app["app_id"].as_u64(), app["key"].as_str(), app["secret"].as_str()),
        (Some(123456), Some("key1"), Some("secret-one"))
    );

    let again = cli.run(&[&args[..], &admin[..]].concat()).await;
    assert_ne!(again.code, Some(0), "the id and key are taken: {}", again.stdout);
    let generated = cli.run(&["--json", "account", "pusher-app", "--account-id", account_id, admin[0], admin[1]]).await;
    assert_eq!(generated.code, Some(0), "{}", generated.stderr);
    assert!(json(&generated.stdout)["app_id"].as_u64().unwrap() >= 1_000_000);
}

#[tokio::test]
async fn completions_are_printed_for_a_shell() {
    let cli = Cli::start().await;
    let ran = cli.run(&["completions", "bash"]).await;
    assert_eq!(ran.code, Some(0));
    assert!(ran.stdout.contains("realtime"), "{}", ran.stdout);
}

#[tokio::test]
async fn history_shows_a_channels_messages_with_their_offsets() {
    let cli = Cli::start().await;
    assert_eq!(cli.run(&["channel", "create", "room-42"]).await.code, Some(0));
    for n in 1..=3 {
        let data = format!("{{\"n\":{n}}}");
        assert_eq!(cli.run(&["publish", "room-42", "tick", &data]).await.code, Some(0));
    }
    let table = cli.run(&["history", "room-42"]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    let rows: Vec<&str> = table.stdout.lines().collect();
    assert!(rows[0].starts_with("OFFSET"), "{}", table.stdout);
    assert_eq!(rows.len(), 4, "a header and three messages: {}", table.stdout);
    assert!(rows[1].starts_with('1') && rows[3].starts_with('3'), "oldest first: {}", table.stdout);
    let newest = cli.run(&["history", "room-42", "--backward", "--limit", "1", "--json"]).await;
    let body = json(&newest.stdout);
    assert_eq!(body["messages"][0]["offset"], 3);
    assert_eq!(body["next_since"], 3);
}

#[tokio::test]
async fn subscribe_as_a_user_prints_its_messages_and_answers_its_commands_with_a_program() {
    let cli = Cli::start().await;
    let sent = cli.run(&["user", "send", "user_123", "{\"n\":1}", "--reliable", "--json"]).await;
    assert_eq!(sent.code, Some(0), "{}", sent.stderr);
    let mut subscriber = cli
        .command(&["subscribe", "--user-id", "user_123", "--ack", "--answer", "cat"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().expect("a line")
    };
    assert_eq!(json(&next_line().await)["type"], "connected");
    let kept = json(&next_line().await);
    assert_eq!(
        (kept["type"].clone(), kept["payload"].clone()),
        (serde_json::json!("user.message"), serde_json::json!({"n": 1}))
    );

    let answered =
        cli.run(&["user", "command", "user_123", "ECHO", "{\"x\":1}", "--command-timeout", "10", "--json"]).await;
    assert_eq!(answered.code, Some(0), "{}", answered.stderr);
    let answer = json(&answered.stdout);
    assert_eq!(answer["status"], "answered");
    assert_eq!(answer["response"]["data"], serde_json::json!({"x": 1}), "the program saw the command frame");
    subscriber.kill().await.unwrap();

    // The message was acknowledged: a new session gets nothing back.
    let again = cli.run(&["user", "send", "user_123", "{\"n\":2}", "--json"]).await;
    assert_eq!(json(&again.stdout)["delivered"], 0, "nobody is connected now");
}

#[tokio::test]
async fn the_exit_codes_are_the_documented_ones() {
    let cli = Cli::start().await;
    let no_key = cli.command(&["channel", "list"]).env_remove("REALTIME_API_KEY").output().await.unwrap();
    assert_eq!(no_key.status.code(), Some(2), "a missing API key is a usage error");
    let unreachable = cli
        .command(&["channel", "list", "--retries", "0"])
        .env("REALTIME_URL", "http://127.0.0.1:1")
        .output()
        .await
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3), "{}", String::from_utf8_lossy(&unreachable.stderr));
    let problem = cli.run(&["channel", "get", "never-created"]).await;
    assert_eq!(problem.code, Some(1), "the server answered with a problem");
}

#[tokio::test]
async fn usage_and_configuration_mistakes_exit_2() {
    let cli = Cli::start().await;
    let dir = tempfile::tempdir().unwrap();
    let unknown_key = dir.path().join("config.toml");
    std::fs::write(&unknown_key, "colour = \"red\"\n").unwrap();
    for config in [unknown_key, dir.path().join("missing.toml")] {
        let ran = cli.command(&["channel", "list"]).env("REALTIME_CLI_CONFIG", &config).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&ran.stderr);
        assert_eq!(ran.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(config.to_str().unwrap()), "the file is named: {stderr}");
    }
    let no_secret = cli.run(&["account", "create"]).await;
    assert_eq!(no_secret.code, Some(2), "{}", no_secret.stderr);
    assert!(no_secret.stderr.contains("admin secret"), "{}", no_secret.stderr);
    let bad_key = cli.run(&["publish", "room-42", "e", "1", "--idempotency-key", "not a key!"]).await;
    assert_eq!(bad_key.code, Some(2), "{}", bad_key.stderr);
    let not_json = cli.run(&["publish", "room-42", "e", "plain words"]).await;
    assert_eq!(not_json.code, Some(2), "{}", not_json.stderr);
    assert!(not_json.stderr.contains("--string"), "{}", not_json.stderr);
}

#[tokio::test]
async fn an_unreachable_server_exits_3_from_subscribe_and_the_admin_commands() {
    let cli = Cli::start().await;
    let nobody = "http://127.0.0.1:1";
    let subscribe = cli.run(&["--url", nobody, "--retries", "0", "subscribe", "room-42"]).await;
    assert_eq!(subscribe.code, Some(3), "{}", subscribe.stderr);
    let create = cli.run(&["--url", nobody, "account", "create", "--admin-secret", "s"]).await;
    assert_eq!(create.code, Some(3), "{}", create.stderr);
    assert!(create.stderr.contains(nobody), "{}", create.stderr);
}

#[tokio::test]
async fn subscribe_to_a_channel_that_does_not_exist_ends_with_the_problem() {
    let cli = Cli::start().await;
    let ended = cli.run(&["subscribe", "never-created"]).await;
    assert_eq!(ended.code, Some(1), "{}", ended.stderr);
    assert!(ended.stderr.contains("never-created"), "{}", ended.stderr);
}

#[tokio::test]
async fn account_pusher_apps_lists_rotates_and_deletes_an_account_s_pusher_apps() {
    let cli = Cli::start().await;
    let account = json(&cli.run(&["--json", "account", "show"]).await.stdout);
    let account_id = account["account_id"].as_str().unwrap();
    let secret = cli.server.admin_secret();
    fn with_secret<'a>(args: &[&'a str], secret: &'a str) -> Vec<&'a str> {
        [args, &["--admin-secret", secret]].concat()
    }
    let args = ["--json", "account", "pusher-app", "--account-id", account_id, "--app-id", "654321", "--key", "key2"];
    let created = cli.run(&with_secret(&[&args[..], &["--secret", "secret-two"]].concat(), secret)).await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);

    let listed = cli.run(&with_secret(&["account", "pusher-apps", "--account-id", account_id], secret)).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert!(listed.stdout.contains("654321") && listed.stdout.contains("key2"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("secret-two"), "{}", listed.stdout);

    let set = ["--json", "account", "pusher-app-set", "--app-id", "654321", "--subscription-count", "true"];
    let set = cli.run(&with_secret(&set, secret)).await;
    assert_eq!(set.code, Some(0), "{}", set.stderr);
    assert_eq!(json(&set.stdout)["subscription_count"], true, "{}", set.stdout);
    assert_eq!(json(&set.stdout)["batch_webhooks"], false, "{}", set.stdout);
    let set = ["--json", "account", "pusher-app-set", "--app-id", "654321", "--batch-webhooks", "true"];
    let set = json(&cli.run(&with_secret(&set, secret)).await.stdout);
    assert_eq!((set["subscription_count"].clone(), set["batch_webhooks"].clone()), (true.into(), true.into()), "{set}");
    let nothing = cli.run(&with_secret(&["account", "pusher-app-set", "--app-id", "654321"], secret)).await;
    assert_eq!(nothing.code, Some(2), "a change needs a setting: {}", nothing.stderr);

    let rotated =
        cli.run(&with_secret(&["--json", "account", "pusher-app-rotate", "--app-id", "654321"], secret)).await;
    assert_eq!(rotated.code, Some(0), "{}", rotated.stderr);
    let new_secret = json(&rotated.stdout)["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.len() >= 32 && new_secret != "secret-two", "{new_secret}");

    let deleted = cli.run(&with_secret(&["account", "pusher-app-delete", "--app-id", "654321"], secret)).await;
    assert_eq!(deleted.code, Some(0), "{}", deleted.stderr);
    let again = cli.run(&with_secret(&["account", "pusher-app-delete", "--app-id", "654321"], secret)).await;
    assert_ne!(again.code, Some(0), "deleted already: {}", again.stdout);
    let listed = cli.run(&with_secret(&["--json", "account", "pusher-apps", "--account-id", account_id], secret)).await;
    let ids: Vec<u64> =
        json(&listed.stdout)["apps"].as_array().unwrap().iter().map(|a| a["app_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1], "only the dev app is left: {}", listed.stdout);
}
