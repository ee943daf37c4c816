//! Start-up failures of the real binary: each names what it could not use (the address,
//! the file, the URL with its password hidden) and the process exits non-zero.

use std::time::Duration;

/// Starts the binary in an empty directory with these variables; whether it exited with
/// success, and what it printed. A start that does not end within 30 s fails the test.
async fn start(env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = crate::support::server_binary(dir.path());
    command.current_dir(dir.path()).env("RUST_BACKTRACE", "0").stderr(std::process::Stdio::piped()).kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("a start that fails ends within 30 s")
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), said)
}

#[tokio::test]
async fn a_port_in_use_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (ok, said) = start(&[("REALTIME_LISTEN", &address)]).await;
    assert!(!ok && said.contains(&address), "{said}");
}

#[tokio::test]
async fn a_sqlite_file_that_cannot_be_created_is_named() {
    let store = "sqlite:///nonexistent-directory/realtime.db";
    let (ok, said) = start(&[("REALTIME_STORE", store)]).await;
    assert!(!ok && said.contains("/nonexistent-directory/realtime.db"), "{said}");
}

#[tokio::test]
async fn an_unreachable_postgresql_is_named_without_its_password() {
    let (ok, said) = start(&[("REALTIME_STORE", "postgres://realtime:hunter2@127.0.0.1:1/realtime")]).await;
    assert!(!ok && said.contains("postgres://realtime:<redacted>@127.0.0.1:1/realtime"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

#[tokio::test]
async fn an_unreachable_redis_is_named_without_its_password() {
    let (ok, said) = start(&[("REALTIME_BROKER", "redis://:hunter2@127.0.0.1:1")]).await;
    assert!(!ok && said.contains("redis://:<redacted>@127.0.0.1:1"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

#[tokio::test]
async fn an_unknown_store_or_broker_scheme_is_named_without_its_password() {
    for (variable, url) in
        [("REALTIME_STORE", "mysql://realtime:hunter2@db/realtime"), ("REALTIME_BROKER", "nats://realtime:hunter2@bus")]
    {
        let (ok, said) = start(&[(variable, url)]).await;
        assert!(!ok && said.contains("realtime:<redacted>@"), "{said}");
        assert!(!said.contains("hunter2"), "{said}");
    }
}

#[test]
fn a_config_file_that_cannot_be_read_as_toml_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.toml");
    for content in [&b"listen = \xff\xfe not text\n"[..], b"listen = [\n"] {
        std::fs::write(&file, content).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_realtime-server"))
            .args(["check-config", "--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && said.contains(file.to_str().unwrap()), "{said}");
    }
}
