//! Starting and stopping the servers under test: ours, the bare baseline, nginx with
//! nchan and sockudo, each pinned to CPU 0 and stopped (by its own pid) when its handle
//! drops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::proc_stats;
use crate::target::TargetKind;

/// The CPU servers run on; the load generators get [`CLIENT_CPU`].
pub const SERVER_CPU: u32 = 0;
pub const CLIENT_CPU: u32 = 1;

/// What the nchan row says when the module is missing.
pub const NCHAN_MISSING: &str = "not installed: apt-get install nginx libnginx-mod-nchan";

/// A running server under test.
pub struct Server {
    pub kind: TargetKind,
    pub base_url: String,
    /// The admin secret (ours only), given to the load generator through its environment.
    pub admin_secret: Option<String>,
    child: Child,
    /// Every process whose CPU and memory count (nginx: master and workers).
    pids: Vec<u32>,
    log: PathBuf,
}

impl Server {
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Asks the server to stop (SIGTERM), and kills it if it has not after 5 s.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until && self.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Workers outlive a killed nginx master; these pids were started by us.
        for &pid in &self.pids[1..] {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `program` pinned to `cpu` with taskset when it is installed.
pub fn pinned(cpu: u32, program: &Path) -> Command {
    if has_taskset() {
        let mut command = Command::new("taskset");
        command.arg("-c").arg(cpu.to_string()).arg(program);
        command
    } else {
        Command::new(program)
    }
}

pub fn has_taskset() -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("taskset").is_file()))
}

/// How to start our server.
pub struct OursConfig<'a> {
    pub binary: &'a Path,
    /// Holds the SQLite file and the log.
    pub dir: &'a Path,
    pub name: &'a str,
    pub admin_secret: &'a str,
    /// Extra environment (the broker of the multi-node scenario).
    pub env: &'a [(&'a str, String)],
}

pub fn start_ours(config: &OursConfig<'_>) -> anyhow::Result<Server> {
    std::fs::create_dir_all(config.dir)?;
    let mut command = pinned(SERVER_CPU, config.binary);
    command
        .env("REALTIME_LISTEN", "127.0.0.1:0")
        .env("REALTIME_STORE", format!("sqlite://{}", config.dir.join("bench.db").display()))
        .env("REALTIME_ADMIN_SECRET", config.admin_secret)
        .env("REALTIME_GATEWAY__MAX_CONNECTIONS_PER_TOKEN", "100000")
        // The load is one account's; the per-account request budget would cap it.
        .env("REALTIME_RATE_LIMIT__REQUESTS_PER_SECOND", "0")
        .env("REALTIME_LOG", "warn")
        // A realtime.toml in the working directory would be read too.
        .current_dir(config.dir);
    for (key, value) in config.env {
        command.env(key, value);
    }
    let log = config.dir.join(format!("{}.log", config.name));
    let (child, base_url) = spawn_until_listening(command, &log)?;
    let pids = vec![child.id()];
    Ok(Server {
        kind: TargetKind::Realtime,
        base_url,
        admin_secret: Some(config.admin_secret.to_owned()),
        child,
        pids,
        log,
    })
}

pub fn start_baseline(bench_binary: &Path, dir: &Path) -> anyhow::Result<Server> {
    std::fs::create_dir_all(dir)?;
    let mut command = pinned(SERVER_CPU, bench_binary);
    command.arg("baseline").arg("--listen").arg("127.0.0.1:0");
    let log = dir.join("baseline.log");
    let (child, base_url) = spawn_until_listening(command, &log)?;
    let pids = vec![child.id()];
    Ok(Server { kind: TargetKind::Baseline, base_url, admin_secret: None, child, pids, log })
}

/// Whether nginx and the nchan module are installed.
pub fn nchan_installed() -> bool {
    let module = Command::new("dpkg")
        .args(["-s", "libnginx-mod-nchan"])
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).contains("install ok installed"));
    module && Path::new(NCHAN_MODULE).exists()
}

const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/// What the sockudo row says when the binary is missing.
pub const SOCKUDO_MISSING: &str =
    "not installed: cargo install sockudo --locked --no-default-features --features local --root target/peers";

/// The sockudo binary: `peers/bin/sockudo` in the target directory (where the command of
/// [`SOCKUDO_MISSING`] puts it), else the first on PATH.
pub fn sockudo_binary(target_dir: Option<&Path>) -> Option<PathBuf> {
    let installed = target_dir.map(|dir| dir.join("peers/bin/sockudo")).filter(|path| path.is_file());
    installed.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|dir| dir.join("sockudo")).find(|path| path.is_file())
    })
}

/// sockudo on a free loopback port, configured from its environment only (peers.md sec. 6):
/// one app with the bench's credentials, the local adapter and in-memory drivers, no rate
/// limiter, and room for the bench's connections (its default app allows 100).
pub fn start_sockudo(binary: &Path, dir: &Path, app: &crate::pusher::PusherApp) -> anyhow::Result<Server> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let log = dir.join("sockudo.log");
    let mut command = pinned(SERVER_CPU, binary);
    command
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("METRICS_ENABLED", "false")
        .env("METRICS_HOST", "127.0.0.1")
        .env("SOCKUDO_DEFAULT_APP_ENABLED", "true")
        .env("SOCKUDO_DEFAULT_APP_ID", &app.app_id)
        .env("SOCKUDO_DEFAULT_APP_KEY", &app.key)
        .env("SOCKUDO_DEFAULT_APP_SECRET", &app.secret)
        .env("SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS", "20000")
        .env("SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND", "100000")
        .env("ADAPTER_DRIVER", "local")
        .env("APP_MANAGER_DRIVER", "memory")
        .env("CACHE_DRIVER", "memory")
        .env("QUEUE_DRIVER", "memory")
        .env("RATE_LIMITER_DRIVER", "memory")
        .env("RATE_LIMITER_ENABLED", "false")
        // As quiet as ours (REALTIME_LOG=warn): logging per connection costs CPU.
        .env("RUST_LOG", "warn")
        // A config/ folder or .env in the working directory would be read too.
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log)?))
        .stderr(Stdio::from(std::fs::File::options().append(true).open(&log)?));
    let mut child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + Duration::from_secs(30);
    while !answers_up(addr, &app.app_id) {
        if let Some(status) = child.try_wait()? {
            bail!("sockudo exited at start ({status}): {}", log_tail(&log));
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            bail!("sockudo did not answer GET /up/{} within 30 s: {}", app.app_id, log_tail(&log));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pids = vec![child.id()];
    Ok(Server { kind: TargetKind::Sockudo, base_url: format!("http://{addr}"), admin_secret: None, child, pids, log })
}

/// Whether sockudo's health check, `GET /up/{app_id}`, answers 200.
fn answers_up(addr: SocketAddr, app_id: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /up/{app_id} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut answer = [0u8; 16];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read(&mut answer).is_ok_and(|n| answer[..n].starts_with(b"HTTP/1.1 200"))
}

/// nginx (one worker) with nchan, on a free loopback port, from a config written into `dir`.
pub fn start_nchan(dir: &Path) -> anyhow::Result<Server> {
    for sub in ["tmp", "logs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nchan_config(dir, port))?;
    let log = dir.join("logs/error.log");
    let mut command = pinned(SERVER_CPU, Path::new("nginx"));
    command.arg("-p").arg(dir).arg("-c").arg(&conf).arg("-e").arg(&log);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().context("starting nginx")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + Duration::from_secs(10);
    let mut workers = Vec::new();
    while workers.is_empty() {
        if let Some(status) = child.try_wait()? {
            bail!("nginx exited at start ({status}): {}", log_tail(&log));
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            bail!("nginx did not come up within 10 s: {}", log_tail(&log));
        }
        std::thread::sleep(Duration::from_millis(50));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            workers = proc_stats::children(child.id());
        }
    }
    let mut pids = vec![child.id()];
    pids.extend(workers);
    Ok(Server { kind: TargetKind::Nchan, base_url: format!("http://{addr}"), admin_secret: None, child, pids, log })
}

fn nchan_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"load_module {NCHAN_MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 16000; }}
http {{
  access_log off;
  client_body_buffer_size 64k;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  nchan_max_reserved_memory 64M;
  server {{
    listen 127.0.0.1:{port};
    location = /pub {{
      nchan_publisher http;
      nchan_channel_id $arg_id;
      nchan_message_buffer_length 16;
      nchan_message_timeout 60s;
    }}
    location = /nchan_status {{
      nchan_stub_status;
    }}
    location = /sub {{
      nchan_subscriber websocket;
      nchan_channel_id $arg_id;
      nchan_subscriber_first_message newest;
    }}
  }}
}}
"#
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `command` with its output going to `log`, and waits (at most 30 s) for the
/// line `... listening on http://ADDR` on stdout or stderr.
fn spawn_until_listening(mut command: Command, log: &Path) -> anyhow::Result<(Child, String)> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let file = std::fs::File::create(log)?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    copy_lines(stdout, file.try_clone()?, tx.clone());
    copy_lines(stderr, file, tx);
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(line) => {
                if let Some(url) = listening_url(&line) {
                    return Ok((child, url));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Some(status) = child.try_wait()? {
            bail!("the server exited at start ({status}): {}", log_tail(log));
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the server printed no 'listening on http://' line within 30 s: {}", log_tail(log));
        }
    }
}

/// Copies a child's output into the log on a thread of its own (which also keeps the
/// pipe from filling), and hands each line to `lines` while anyone listens.
fn copy_lines(from: impl Read + Send + 'static, mut log: std::fs::File, lines: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let _ = writeln!(log, "{line}");
            let _ = lines.send(line);
        }
    });
}

fn listening_url(line: &str) -> Option<String> {
    let start = line.find("listening on http://")? + "listening on ".len();
    let url: String =
        line[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'' && *c != ',').collect();
    Some(url.trim_end_matches('/').to_owned())
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// Whether a Redis answers PING on 127.0.0.1:6379.
pub fn redis_reachable() -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], 6379)), Duration::from_secs(1))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read(&mut answer).is_ok_and(|n| answer[..n].starts_with(b"+PONG"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_url_is_found_in_plain_and_logged_lines() {
        assert_eq!(
            listening_url("realtime-server listening on http://127.0.0.1:4123").as_deref(),
            Some("http://127.0.0.1:4123")
        );
        assert_eq!(
            listening_url(r#"{"level":"INFO","message":"listening on http://127.0.0.1:9/","x":1}"#).as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(listening_url("starting"), None);
    }
}
