//! Debian's headless Chromium driven over the DevTools protocol, for pages that must stay
//! open while a test acts (a one-shot `--dump-dom` cannot wait for that): open a page,
//! run script in it, wait for a condition, save a screenshot under `target/`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::PROMPTLY;

/// One page of a headless Chromium of its own, closed when dropped.
pub(crate) struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _chromium: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Page {
    /// Starts Chromium on `url` and connects to its page.
    pub(crate) async fn open(url: &str) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let mut chromium = tokio::process::Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("Debian's chromium is needed (.ci/run installs it)");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
        let mut lines = BufReader::new(chromium.stderr.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    return rest.split('/').next().unwrap().to_owned();
                }
            }
            panic!("chromium ended without a DevTools address");
        })
        .await
        .expect("chromium starts within 60 s");
        // Chromium keeps writing to stderr; it must not block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let list = format!("http://127.0.0.1:{port}/json/list");
        let targets: Vec<Value> = reqwest::get(list).await.unwrap().json().await.unwrap();
        let target = targets.iter().find(|target| target["type"] == "page").expect("the page");
        let address = target["webSocketDebuggerUrl"].as_str().unwrap();
        let (socket, _) = tokio_tungstenite::connect_async(address).await.unwrap();
        let mut page = Page { socket, next_id: 0, _chromium: chromium, _profile: profile };
        // The page starts as `about:blank` for a moment, and is complete there too.
        page.until("the page loaded", "location.protocol !== 'about:' && document.readyState === 'complete'").await;
        page
    }

    /// Calls a DevTools method and returns its result.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        let answer = self.send(method, params).await;
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Calls a DevTools method and returns its whole answer.
    async fn send(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.socket.send(Message::Text(command.to_string().into())).await.unwrap();
        loop {
            let message = tokio::time::timeout(PROMPTLY, self.socket.next()).await.expect("chromium answers");
            let Some(Ok(Message::Text(text))) = message else { continue };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                return answer;
            }
        }
    }

    /// The value of a script expression in the page, which must not throw.
    pub(crate) async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).await.unwrap_or_else(|error| panic!("{expression}: {error}"))
    }

    /// The value of a script expression, or why there is none (it threw, or the page was
    /// navigating).
    async fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let answer = self.send("Runtime.evaluate", json!({"expression": expression, "returnByValue": true})).await;
        match (answer.get("error"), answer["result"].get("exceptionDetails")) {
            (Some(error), _) | (None, Some(error)) => Err(error.clone()),
            (None, None) => Ok(answer["result"]["result"]["value"].clone()),
        }
    }

    /// Waits until `expression` is true in the page (which may navigate meanwhile).
    pub(crate) async fn until(&mut self, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.try_eval(expression).await != Ok(json!(true)) {
            if tokio::time::Instant::now() > deadline {
                let text = self.try_eval("document.body.innerText").await;
                panic!("{what} did not happen; the page says {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot as `target/<name>`.
    pub(crate) async fn screenshot(&mut self, name: &str) {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        assert!(png.len() > 10_000, "a screenshot of the page");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}
