//! What a check did on the wire: its HTTP exchanges and WebSocket frames, kept per check
//! so that a failure can be reproduced and the run can count what it covered.
//!
//! The journal is task-local: [`crate::run`] scopes one around the scenarios, and
//! [`crate::http::Target::send`] and [`crate::ws::Socket`] append to it, so a scenario
//! records nothing by hand. Checks of a run follow one another in one task (a check may
//! `join!` futures, which stay in that task), so what was appended since the last verdict
//! belongs to the check being recorded. A task spawned to run beside the checks records
//! through [`Journal::background`]: what it sees counts for coverage only, since it
//! belongs to no one check. Outside a scope nothing is kept.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::http::Request;
use crate::report::{Evidence, HttpAnswer};

tokio::task_local! {
    static JOURNAL: Journal;
}

/// The wire events of a run since the last verdict.
#[derive(Clone, Default)]
pub(crate) struct Journal {
    inner: Arc<Mutex<State>>,
    /// Appends go to `State::background`.
    background: bool,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    background: Vec<Entry>,
    sockets: u32,
}

/// One thing seen on the wire.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// A request and what came back.
    Http(Exchange),
    /// A WebSocket event of socket `socket` (numbered from 1 in the run).
    Ws { socket: u32, event: WsEvent },
}

/// An HTTP request and its response (or why there is none).
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    /// The request, with its absolute URL in `path`.
    pub(crate) request: Request,
    /// The response, or the transport failure.
    pub(crate) response: Result<Answer, String>,
}

/// A response as received.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// A WebSocket event.
#[derive(Debug, Clone)]
pub(crate) enum WsEvent {
    /// A connection attempt to this URL.
    Connect(String),
    /// The upgrade was refused with this HTTP status.
    Rejected(u16),
    /// A text frame the harness sent.
    Sent(String),
    /// A binary frame the harness sent (its length).
    SentBinary(usize),
    /// A text frame the target sent.
    Received(String),
    /// A binary frame the target sent (its length).
    ReceivedBinary(usize),
    /// The connection ended: the close code when a close frame came, and the reason.
    Closed(Option<u16>, String),
}

impl Journal {
    /// Runs `future` with this journal as the task's.
    pub(crate) async fn scope<F: Future>(&self, future: F) -> F::Output {
        JOURNAL.scope(self.clone(), future).await
    }

    /// Runs `future` (to be spawned beside the checks) recording into this journal's
    /// background part, which counts for coverage only.
    pub(crate) fn background<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        let journal = Journal { inner: self.inner.clone(), background: true };
        JOURNAL.scope(journal, future)
    }

    /// Everything the checks appended since the last call.
    pub(crate) fn take(&self) -> Vec<Entry> {
        std::mem::take(&mut self.lock().entries)
    }

    /// Moves the last exchange to the background part: a cleanup step, which counts for
    /// coverage but is never a check's evidence.
    pub(crate) fn set_aside_last(&self) {
        let mut state = self.lock();
        if let Some(index) = state.entries.iter().rposition(|entry| matches!(entry, Entry::Http(_))) {
            let entry = state.entries.remove(index);
            state.background.push(entry);
        }
    }

    /// Everything background tasks appended since the last call.
    pub(crate) fn take_background(&self) -> Vec<Entry> {
        std::mem::take(&mut self.lock().background)
    }

    fn push(&self, entry: Entry) {
        let mut state = self.lock();
        if self.background { state.background.push(entry) } else { state.entries.push(entry) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Appends an exchange to the task's journal, if there is one.
pub(crate) fn exchange(exchange: Exchange) {
    let _ = JOURNAL.try_with(|journal| journal.push(Entry::Http(exchange)));
}

/// A number for a new socket (0 outside a journal).
pub(crate) fn new_socket() -> u32 {
    JOURNAL
        .try_with(|journal| {
            let mut state = journal.lock();
            state.sockets += 1;
            state.sockets
        })
        .unwrap_or(0)
}

/// Appends a WebSocket event of `socket` to the task's journal, if there is one.
pub(crate) fn ws(socket: u32, event: WsEvent) {
    let _ = JOURNAL.try_with(|journal| journal.push(Entry::Ws { socket, event }));
}

/// What a failed check last sent and received: the relevant HTTP exchange as a curl
/// command with its whole response, and the WebSocket transcript. The relevant exchange
/// is the last one `relevant` accepts (the last one when it accepts none). API keys in
/// `secrets` (`(key, variable)`) appear as shell variables only.
pub(crate) fn evidence(
    entries: &[Entry],
    secrets: &[(&str, &str)],
    relevant: impl Fn(&Exchange) -> bool,
) -> Option<Evidence> {
    let redact = |text: &str| {
        secrets
            .iter()
            .filter(|(secret, _)| !secret.is_empty())
            .fold(text.to_owned(), |text, (secret, variable)| text.replace(secret, &format!("${variable}")))
    };
    let mut evidence = Evidence::default();
    let exchanges = || {
        entries.iter().rev().filter_map(|entry| match entry {
            Entry::Http(exchange) => Some(exchange),
            Entry::Ws { .. } => None,
        })
    };
    let last = exchanges().find(|exchange| relevant(exchange)).or_else(|| exchanges().next());
    if let Some(exchange) = last {
        let request = &exchange.request;
        evidence.curl = Some(crate::curl::command(
            &request.method,
            &request.path,
            &request.headers,
            request.body.as_deref(),
            secrets,
        ));
        match &exchange.response {
            Ok(answer) => {
                evidence.response = Some(HttpAnswer {
                    status: answer.status,
                    headers: answer.headers.iter().map(|(name, value)| (name.clone(), redact(value))).collect(),
                    body: redact(&String::from_utf8_lossy(&answer.body)),
                });
            }
            Err(error) => evidence.transport_error = Some(redact(error)),
        }
    }
    for entry in entries {
        let Entry::Ws { socket, event } = entry else { continue };
        let frame = |text: &str| serde_json::from_str::<Value>(&redact(text)).unwrap_or_else(|_| json!(redact(text)));
        let line = match event {
            WsEvent::Connect(url) => json!({"socket": socket, "connect": redact(url)}),
            WsEvent::Rejected(status) => json!({"socket": socket, "rejected": status}),
            WsEvent::Sent(text) => json!({"socket": socket, "sent": frame(text)}),
            WsEvent::SentBinary(length) => json!({"socket": socket, "sent_binary": length}),
            WsEvent::Received(text) => json!({"socket": socket, "received": frame(text)}),
            WsEvent::ReceivedBinary(length) => json!({"socket": socket, "received_binary": length}),
            WsEvent::Closed(code, reason) => json!({"socket": socket, "close": code, "reason": redact(reason)}),
        };
        evidence.websocket.push(line);
    }
    if evidence.websocket.len() > TRANSCRIPT_LINES {
        let dropped = evidence.websocket.len() - TRANSCRIPT_LINES;
        evidence.websocket.drain(..dropped);
        evidence.websocket.insert(0, json!({"omitted": format!("{dropped} earlier events")}));
    }
    (evidence != Evidence::default()).then_some(evidence)
}

/// The most WebSocket events a failure shows (the last ones).
const TRANSCRIPT_LINES: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(path: &str, status: u16, body: &str) -> Entry {
        Entry::Http(Exchange {
            request: Request::new("POST", format!("http://t{path}"))
                .bearer("sk_secret")
                .json(&json!({"k": "sk_secret"})),
            response: Ok(Answer { status, headers: Vec::new(), body: body.as_bytes().to_vec() }),
        })
    }

    #[test]
    fn evidence_shows_the_relevant_exchange_and_the_transcript_without_the_keys() {
        let entries = vec![
            exchange("/v1/a", 409, r#"{"code":"CONFLICT","echo":"sk_secret"}"#),
            Entry::Ws { socket: 1, event: WsEvent::Sent(r#"{"type":"ping"}"#.to_owned()) },
            Entry::Ws { socket: 1, event: WsEvent::Closed(Some(4003), "revoked".to_owned()) },
            exchange("/v1/cleanup", 200, "{}"),
        ];
        let secrets = [("sk_secret", "REALTIME_API_KEY")];
        let shown =
            super::evidence(&entries, &secrets, |exchange| exchange.request.path.ends_with("/v1/a")).expect("evidence");
        let curl = shown.curl.unwrap();
        assert!(curl.contains("'http://t/v1/a'") && curl.contains(r#""$REALTIME_API_KEY""#), "{curl}");
        assert!(!curl.contains("sk_secret"), "{curl}");
        let response = shown.response.unwrap();
        assert_eq!(
            (response.status, response.body.as_str()),
            (409, r#"{"code":"CONFLICT","echo":"$REALTIME_API_KEY"}"#)
        );
        assert_eq!(
            shown.websocket,
            [json!({"socket": 1, "sent": {"type": "ping"}}), json!({"socket": 1, "close": 4003, "reason": "revoked"})]
        );
        let last = super::evidence(&entries, &secrets, |_| false).unwrap().curl.unwrap();
        assert!(last.contains("/v1/cleanup"), "{last}");
    }
}
