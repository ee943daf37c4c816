//! [`TestServer`]: a real node on a loopback port with its own SQLite file, for tests in
//! this crate and in others (client, CLI, conformance).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::{Config, RunningServer};

/// The admin secret test servers use.
pub const ADMIN_SECRET: &str = "test-admin-secret";

/// A node on `127.0.0.1:0` whose data lives in a directory of the test's.
pub struct TestServer {
    server: RunningServer,
    dir: PathBuf,
    api_key: String,
    overrides: serde_json::Value,
}

impl TestServer {
    /// Starts a node storing its data in `dir`, with a funded dev account.
    pub async fn start(dir: &Path) -> anyhow::Result<TestServer> {
        Self::start_with(dir, json!({})).await
    }

    /// Like [`start`](Self::start), with configuration overrides (e.g.
    /// `{"gateway": {"outbound_queue": 8}}`).
    pub async fn start_with(dir: &Path, overrides: serde_json::Value) -> anyhow::Result<TestServer> {
        let server = RunningServer::start(config(dir, &overrides)?).await?;
        let api_key =
            server.dev_api_key.clone().ok_or_else(|| anyhow::anyhow!("{} already holds data", dir.display()))?;
        Ok(TestServer { server, dir: dir.to_owned(), api_key, overrides })
    }

    /// Starts a node again on the data a killed node left in `dir`, for the same dev
    /// account (whose key only the first start printed).
    pub async fn reopen(dir: &Path, api_key: String) -> anyhow::Result<TestServer> {
        let overrides = json!({});
        let server = RunningServer::start(config(dir, &overrides)?).await?;
        Ok(TestServer { server, dir: dir.to_owned(), api_key, overrides })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The funded dev account's API key.
    pub fn api_key(&self) -> String {
        self.api_key.clone()
    }

    /// The admin secret.
    pub fn admin_secret(&self) -> &'static str {
        ADMIN_SECRET
    }

    /// The running node, for white-box checks.
    pub fn server(&self) -> &RunningServer {
        &self.server
    }

    /// Creates another account; returns its API key.
    pub async fn create_account(&self, balance: i64) -> anyhow::Result<String> {
        Ok(self.server.service.create_account(balance).await.map_err(|e| anyhow::anyhow!("{e}"))?.1)
    }

    /// Stops gracefully and starts again on the same data (on a new port).
    pub async fn restart(self) -> anyhow::Result<TestServer> {
        let TestServer { server, dir, api_key, overrides } = self;
        server.stop().await?;
        let server = RunningServer::start(config(&dir, &overrides)?).await?;
        Ok(TestServer { server, dir, api_key, overrides })
    }

    /// Stops gracefully.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await
    }

    /// Stops as a crash would.
    pub fn kill(self) {
        self.server.kill();
    }
}

fn config(dir: &Path, overrides: &serde_json::Value) -> anyhow::Result<Config> {
    let mut settings = json!({
        "listen": "127.0.0.1:0",
        "store": format!("sqlite://{}", dir.join("realtime.db").display()),
        "admin_secret": ADMIN_SECRET,
    });
    merge(&mut settings, overrides);
    Config::with(settings)
}

fn merge(base: &mut serde_json::Value, overrides: &serde_json::Value) {
    match (base, overrides) {
        (serde_json::Value::Object(base), serde_json::Value::Object(overrides)) => {
            for (key, value) in overrides {
                merge(base.entry(key.clone()).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, overrides) => *base = overrides.clone(),
    }
}
