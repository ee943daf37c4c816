//! A webhook receiver on a local port: a small HTTP/1.1 server that answers every
//! request 200 and keeps what came (headers and the exact body), for the webhook checks.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Largest request body kept (Pusher's webhooks are far smaller).
const MAX_BODY: usize = 1024 * 1024;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Header names (lowercased) and values.
    pub headers: Vec<(String, String)>,
    /// The exact body.
    pub body: Vec<u8>,
}

impl Delivery {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Delivery>>,
    arrived: Notify,
}

/// Stops the accept loop when the last handle of the receiver goes.
#[derive(Debug)]
struct Accepting(JoinHandle<()>);

impl Drop for Accepting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running receiver; clones share it.
#[derive(Clone)]
pub struct WebhookReceiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    _accepting: Arc<Accepting>,
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver").field("address", &self.address).finish_non_exhaustive()
    }
}

impl WebhookReceiver {
    /// Listens on `address` (e.g. `127.0.0.1:0`) from now on, inside the current runtime.
    pub async fn bind(address: &str) -> std::io::Result<WebhookReceiver> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accepting = tokio::spawn(accept(listener, shared.clone()));
        Ok(WebhookReceiver { address, shared, _accepting: Arc::new(Accepting(accepting)) })
    }

    /// The URL to give the target as the app's `webhook_url`.
    pub fn url(&self) -> String {
        format!("http://{}/pusher/webhooks", self.address)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Delivery> {
        self.shared.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The first request received (before or until `deadline`) that `wanted` accepts.
    pub(crate) async fn wait_for(&self, deadline: Instant, wanted: impl Fn(&Delivery) -> bool) -> Option<Delivery> {
        loop {
            let mut arrived = pin!(self.shared.arrived.notified());
            arrived.as_mut().enable();
            if let Some(found) = self.received().into_iter().find(|delivery| wanted(delivery)) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(serve(stream, shared.clone()));
    }
}

/// Serves one connection, request after request (keep-alive), until it ends.
async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => {}
        }
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(0);
        if length > MAX_BODY {
            return;
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        shared.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Delivery { headers, body });
        shared.arrived.notify_waiters();
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if stream.get_mut().write_all(answer).await.is_err() {
            return;
        }
    }
}
