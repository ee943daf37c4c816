//! The `realtime` binary (and so the Rust client) over `https://` and `wss://`: a
//! reference server behind a TLS-terminating proxy, its certificate from an authority the
//! command trusts through `SSL_CERT_FILE`, or does not.

use std::process::Stdio;
use std::time::Duration;

use realtime_server::testing::TestServer;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[path = "../../../realtime-server/tests/it/tls_support.rs"]
mod tls_support;

/// A server reachable only as `https://localhost:<port>`, its public URL.
struct BehindTls {
    server: TestServer,
    url: String,
    authority: tls_support::TestAuthority,
    _dir: tempfile::TempDir,
}

impl BehindTls {
    async fn start() -> BehindTls {
        let dir = tempfile::tempdir().unwrap();
        let authority = tls_support::TestAuthority::new(dir.path());
        let port = authority.port().await;
        let url = port.https_url();
        let server = TestServer::start_with(dir.path(), json!({"public_url": url})).await.unwrap();
        port.forward_to(server.base_url().trim_start_matches("http://").parse().unwrap());
        BehindTls { server, url, authority, _dir: dir }
    }

    /// `realtime <args>` against the https URL, trusting the test authority or not.
    fn command(&self, args: &[&str], trusting: bool) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_realtime"));
        command
            .args(args)
            .env("REALTIME_URL", &self.url)
            .env("REALTIME_API_KEY", self.server.api_key())
            .env("REALTIME_CLI_CONFIG", "/dev/null")
            .env_remove("SSL_CERT_FILE")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if trusting {
            command.env("SSL_CERT_FILE", &self.authority.ca_file);
        }
        command
    }
}

#[tokio::test]
async fn over_https_and_wss_subscribe_prints_what_publish_sends() {
    let tls = BehindTls::start().await;
    let created = tls.command(&["channel", "create", "secure-room"], true).output().await.unwrap();
    assert_eq!(created.status.code(), Some(0), "{}", String::from_utf8_lossy(&created.stderr));

    // The token's endpoint is the public URL's: the socket is wss:// through the proxy.
    let mut subscriber = tls
        .command(&["subscribe", "secure-room", "--count", "1"], true)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await.unwrap().unwrap();
        serde_json::from_str::<serde_json::Value>(&line.expect("a line")).unwrap()
    };
    assert_eq!(next_line().await["type"], "connected");
    assert_eq!(next_line().await["type"], "subscribed");

    let published =
        tls.command(&["publish", "secure-room", "greeting", r#"{"hello":"tls"}"#], true).output().await.unwrap();
    assert_eq!(published.status.code(), Some(0), "{}", String::from_utf8_lossy(&published.stderr));
    let message = next_line().await;
    assert_eq!(message["type"], "message");
    assert_eq!(message["data"], json!({"hello": "tls"}));
    let status = tokio::time::timeout(Duration::from_secs(10), subscriber.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_certificate_the_system_does_not_trust_is_refused_as_unreachable() {
    let tls = BehindTls::start().await;
    let refused = tls.command(&["channel", "list"], false).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "the server is unreachable as trusted: {stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "the error names the certificate: {stderr}");
}

#[tokio::test]
async fn the_harness_certifies_an_https_target_over_wss() {
    let tls = BehindTls::start().await;
    let mut command = tls.command(&["conformance", "--only", "live"], true);
    let ran = tokio::time::timeout(Duration::from_secs(60), command.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert_eq!(ran.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&ran.stderr));
    assert!(stdout.contains(&format!("conformance of {}", tls.url)), "{stdout}");
    let summary = stdout.lines().find(|line| line.starts_with("live ")).expect("the live checks ran");
    assert!(summary.contains(" 0 failed") && !summary.contains(" 0 passed"), "{summary}");
}
