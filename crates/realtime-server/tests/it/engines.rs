//! Real engines for tests: a PostgreSQL database and a Redis key prefix of the test's
//! own, removed when the test ends, and a private `redis-server` a test may stop and
//! start. A missing engine fails the test with what to start; nothing is skipped.
//!
//! `REALTIME_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`, a
//! role that may create databases) and `REALTIME_TEST_REDIS` (default
//! `redis://127.0.0.1:6379`) point elsewhere.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use realtime_server::broker::Broker;
use realtime_server::broker::memory::MemoryBroker;
use realtime_server::broker::redis::RedisBroker;
use realtime_server::hub::Hub;
use realtime_server::store::Store;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection};
use tokio_util::sync::CancellationToken;

/// Where the tests find PostgreSQL.
pub(crate) fn postgres_admin_url() -> String {
    std::env::var("REALTIME_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Where the tests find Redis.
pub(crate) fn redis_url() -> String {
    std::env::var("REALTIME_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(kind: &str) -> String {
    format!("realtime_test_{kind}_{}", ulid::Ulid::generate().to_string().to_lowercase())
}

/// Runs `work` to completion on a runtime of its own, on another thread: cleanup runs in
/// `Drop`, which may be called inside a runtime that cannot block.
fn run_apart<F: std::future::Future<Output = ()> + Send + 'static>(work: F) {
    let joined = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(work);
    })
    .join();
    if joined.is_err() {
        eprintln!("test cleanup panicked");
    }
}

/// A database of the test's own, dropped when this is.
pub(crate) struct PgDatabase {
    /// The URL of the new database.
    pub(crate) url: String,
    name: String,
}

impl PgDatabase {
    pub(crate) async fn create() -> PgDatabase {
        let admin = postgres_admin_url();
        let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|error| {
            panic!(
                "PostgreSQL is required at {admin} (start it, or set REALTIME_TEST_POSTGRES to a role that may \
                 create databases): {error}"
            )
        });
        let name = unique("db");
        // The name is ours: letters, digits and underscores.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("CREATE DATABASE");
        let _ = connection.close().await;
        let (base, _) = admin.rsplit_once('/').expect("the admin URL names a database");
        PgDatabase { url: format!("{base}/{name}"), name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = postgres_admin_url();
        let name = self.name.clone();
        run_apart(async move {
            let Ok(mut connection) = sqlx::PgConnection::connect(&admin).await else { return };
            let dropped = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut connection)
                .await;
            if let Err(error) = dropped {
                eprintln!("test database {name} not dropped: {error}");
            }
        });
    }
}

/// A Redis key prefix of the test's own; its keys are deleted when this is dropped.
pub(crate) struct RedisPrefix {
    /// The prefix (`redis_prefix` in a node's config).
    pub(crate) prefix: String,
    /// The Redis it lives in.
    pub(crate) url: String,
}

impl RedisPrefix {
    /// A prefix in the shared test Redis, which must answer.
    pub(crate) async fn create() -> RedisPrefix {
        Self::on(&redis_url()).await
    }

    /// A prefix in the Redis at `url`, which must answer.
    pub(crate) async fn on(url: &str) -> RedisPrefix {
        let client = Builder::from_config(Config::from_url(url).expect("a Redis URL")).build().expect("a client");
        let answered = tokio::time::timeout(Duration::from_secs(5), async {
            client.init().await?;
            client.ping::<String>(None).await
        })
        .await;
        match answered {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("Redis is required at {url} (start it, or set REALTIME_TEST_REDIS): {error}"),
            Err(_) => panic!("Redis is required at {url} (start it, or set REALTIME_TEST_REDIS): no answer in 5 s"),
        }
        let _ = client.quit().await;
        RedisPrefix { prefix: unique("redis"), url: url.to_owned() }
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}:*", self.prefix);
        run_apart(async move {
            let Ok(config) = Config::from_url(&url) else { return };
            let Ok(client) = Builder::from_config(config).build() else { return };
            let cleaned = tokio::time::timeout(Duration::from_secs(5), async {
                client.init().await?;
                let script = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1";
                client.eval::<i64, _, _, _>(script, Vec::<String>::new(), vec![pattern]).await
            })
            .await;
            if !matches!(cleaned, Ok(Ok(_))) {
                eprintln!("test keys in Redis not removed");
            }
            let _ = client.quit().await;
        });
    }
}

/// A `redis-server` of one test's own, on a free loopback port, that it may stop and
/// start again (on the same port, empty, as a restarted Redis without persistence is).
pub(crate) struct PrivateRedis {
    /// The port it listens on.
    pub(crate) port: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateRedis {
    pub(crate) async fn start() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("an address").port();
        let mut redis = PrivateRedis { port, child: None };
        redis.start_again().await;
        redis
    }

    /// The URL of this Redis.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it answers.
    pub(crate) async fn start_again(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("redis-server is required on the PATH (apt-get install redis-server): {error}")
            });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "redis-server did not listen on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Cuts every subscriber (pub/sub) connection, leaving command connections be; returns
    /// how many it cut. A node hears nothing until its subscriber reconnects.
    pub(crate) async fn cut_subscribers(&self) -> i64 {
        self.client_command(&["KILL", "TYPE", "pubsub"]).await.as_i64().expect("a count of killed clients")
    }

    /// How many connections are subscribed (in pub/sub mode) right now.
    pub(crate) async fn subscribers(&self) -> usize {
        let listed = self.client_command(&["LIST", "TYPE", "pubsub"]).await;
        listed.as_str().expect("a client list").lines().filter(|line| !line.is_empty()).count()
    }

    async fn client_command(&self, args: &[&str]) -> fred::prelude::Value {
        use fred::prelude::*;
        let client = Builder::from_config(fred::prelude::Config::from_url(&self.url()).unwrap()).build().unwrap();
        client.init().await.unwrap();
        let answer: Value = client.custom(fred::cmd!("CLIENT"), args.to_vec()).await.unwrap();
        let _ = client.quit().await;
        answer
    }

    /// Kills the server, as a crash would.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// A store of the kind the test asks for, and what keeps its data alive.
pub(crate) struct StoreEngine {
    pub(crate) store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _database: Option<PgDatabase>,
}

impl StoreEngine {
    pub(crate) async fn sqlite() -> StoreEngine {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = realtime_server::store::open(&url).await.expect("the SQLite store opens");
        StoreEngine { store, _dir: Some(dir), _database: None }
    }

    pub(crate) async fn postgres() -> StoreEngine {
        let database = PgDatabase::create().await;
        let store = realtime_server::store::open(&database.url).await.expect("the PostgreSQL store opens");
        StoreEngine { store, _dir: None, _database: Some(database) }
    }
}

/// A broker over a hub of its own (one node), and what keeps its engine alive.
pub(crate) struct BrokerEngine {
    pub(crate) hub: Arc<Hub>,
    pub(crate) broker: Arc<dyn Broker>,
    /// Kills the node the broker belongs to.
    pub(crate) kill: CancellationToken,
    /// The node's store (a Redis broker catches late routes up from it), when it has one.
    _store: Option<StoreEngine>,
}

impl BrokerEngine {
    pub(crate) fn memory() -> BrokerEngine {
        let hub = Arc::new(Hub::default());
        let broker = MemoryBroker::new(hub.clone());
        BrokerEngine { hub, broker, kill: CancellationToken::new(), _store: None }
    }

    /// A Redis broker node under `prefix`; `overrides` are node settings (e.g.
    /// `node_expiry_seconds`).
    pub(crate) async fn redis(prefix: &RedisPrefix, overrides: serde_json::Value) -> BrokerEngine {
        let mut settings = json!({"broker": prefix.url, "redis_prefix": prefix.prefix});
        if let (Some(settings), Some(overrides)) = (settings.as_object_mut(), overrides.as_object()) {
            settings.extend(overrides.clone());
        }
        let config = realtime_server::Config::with(settings).expect("a config");
        let hub = Arc::new(Hub::default());
        let kill = CancellationToken::new();
        let store = StoreEngine::sqlite().await;
        let broker = RedisBroker::connect(&config, hub.clone(), store.store.clone(), &kill)
            .await
            .expect("the Redis broker connects");
        BrokerEngine { hub, broker, kill, _store: Some(store) }
    }
}

impl Drop for BrokerEngine {
    fn drop(&mut self) {
        // Background tasks hold no strong reference; stopping the node ends them.
        self.kill.cancel();
    }
}
