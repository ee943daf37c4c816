//! What a run provoked of what the documents promise: every (operation, documented
//! status), every documented error code per operation and status, every server frame
//! type and every close code, as covered/total per dimension with each uncovered cell
//! named.
//!
//! The cells come from the committed OpenAPI and AsyncAPI documents; what was observed
//! comes from every exchange and socket of the run (see `journal`). A cell that no
//! client can provoke from outside is in the `UNREACHABLE` table with the reason: it is
//! shown, and left out of the percentage.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::journal::{Entry, WsEvent};
use crate::spec::Spec;

/// One dimension of the coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// (operation, documented status).
    Status,
    /// (operation, status, documented error code).
    ErrorCode,
    /// A server frame type of the WebSocket protocol.
    FrameType,
    /// A close code of the WebSocket protocol.
    CloseCode,
}

impl Dimension {
    const ALL: [Dimension; 4] = [Dimension::Status, Dimension::ErrorCode, Dimension::FrameType, Dimension::CloseCode];

    fn as_str(self) -> &'static str {
        match self {
            Dimension::Status => "operation × status",
            Dimension::ErrorCode => "operation × error code",
            Dimension::FrameType => "frame type",
            Dimension::CloseCode => "close code",
        }
    }
}

/// Cells that cannot be provoked from outside, and why.
struct Unreachable {
    dimension: Dimension,
    /// The status (or close code).
    status: u16,
    /// The error code, or every one.
    code: Option<&'static str>,
    /// The operations it holds for.
    operations: Operations,
    /// Whether a graceful restart (`--restart-command` without `--kill-command`) makes
    /// them reachable.
    graceful_restart: bool,
    reason: &'static str,
}

const fn unreachable(
    dimension: Dimension,
    status: u16,
    code: Option<&'static str>,
    reason: &'static str,
) -> Unreachable {
    Unreachable { dimension, status, code, operations: Operations::All, graceful_restart: false, reason }
}

/// Which operations an [`Unreachable`] entry holds for.
enum Operations {
    All,
    Except(&'static [&'static str]),
    Only(&'static [&'static str]),
}

impl Operations {
    fn contains(&self, operation: &str) -> bool {
        match self {
            Operations::All => true,
            Operations::Except(names) => !names.contains(&operation),
            Operations::Only(names) => names.contains(&operation),
        }
    }
}

const COMMAND_NEEDS_CREDIT: &str = "a command needs its user online, which takes a token, which takes credit; an \
     offline user is refused (409 USER_OFFLINE) whatever the balance";

const FAULT: &str = "a fault inside the server; no request provokes it";
const OUTAGE: &str = "needs the store or the broker down, which a client cannot do";

/// The cells no client can provoke from outside, with the reason; they are reported and
/// left out of the percentage.
const UNREACHABLE: &[Unreachable] = &[
    unreachable(Dimension::Status, 500, None, FAULT),
    unreachable(Dimension::ErrorCode, 500, Some("INTERNAL"), FAULT),
    unreachable(Dimension::Status, 503, None, OUTAGE),
    unreachable(Dimension::ErrorCode, 503, Some("UNAVAILABLE"), OUTAGE),
    unreachable(
        Dimension::ErrorCode,
        409,
        Some("IDEMPOTENCY_KEY_IN_USE"),
        "a key is held only while its effect commits (a command's answer is sealed before its wait); a second \
         request cannot be timed into that window from outside",
    ),
    Unreachable {
        dimension: Dimension::ErrorCode,
        status: 409,
        code: Some("CONFLICT"),
        operations: Operations::Except(&["realtime.channel.create", "realtime.channel.create.alias"]),
        graceful_restart: false,
        reason: "the 409 description names CONFLICT \"where the operation says so\"; this operation has no conflict",
    },
    unreachable(
        Dimension::CloseCode,
        4101,
        None,
        "the server cannot serve the connection now (an overload or an outage inside it)",
    ),
    Unreachable {
        dimension: Dimension::Status,
        status: 402,
        code: None,
        operations: Operations::Only(&["realtime.user.command.send"]),
        graceful_restart: false,
        reason: COMMAND_NEEDS_CREDIT,
    },
    Unreachable {
        dimension: Dimension::ErrorCode,
        status: 402,
        code: Some("INSUFFICIENT_CREDIT"),
        operations: Operations::Only(&["realtime.user.command.send"]),
        graceful_restart: false,
        reason: COMMAND_NEEDS_CREDIT,
    },
    Unreachable {
        dimension: Dimension::CloseCode,
        status: 4200,
        code: None,
        operations: Operations::All,
        graceful_restart: true,
        reason: "the server is shutting down: reachable only when the run restarts the target gracefully \
                 (--restart-command alone, or with --stop-command; `cargo xtask conformance` does)",
    },
];

/// What a run observed on the wire.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    statuses: BTreeSet<(String, u16)>,
    codes: BTreeSet<(String, u16, String)>,
    frames: BTreeSet<String>,
    closes: BTreeSet<u16>,
}

impl Observed {
    /// Adds what `entries` show; requests outside `base_url` are not the target's.
    pub(crate) fn add(&mut self, spec: &Spec, base_url: &str, entries: &[Entry]) {
        for entry in entries {
            match entry {
                Entry::Http(exchange) => {
                    let Ok(answer) = &exchange.response else { continue };
                    let Some(path) = exchange.request.path.strip_prefix(base_url) else { continue };
                    let Some(operation) = spec.resolve(&exchange.request.method, path) else { continue };
                    self.statuses.insert((operation.id.clone(), answer.status));
                    let code = serde_json::from_slice::<serde_json::Value>(&answer.body)
                        .ok()
                        .and_then(|body| body.get("code").and_then(serde_json::Value::as_str).map(str::to_owned));
                    if let Some(code) = code {
                        self.codes.insert((operation.id.clone(), answer.status, code));
                    }
                }
                Entry::Ws { event: WsEvent::Received(text), .. } => {
                    let frame = serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
                    if let Some(kind) = frame.get("type").and_then(serde_json::Value::as_str) {
                        self.frames.insert(kind.to_owned());
                    }
                }
                Entry::Ws { event: WsEvent::Closed(Some(code), _), .. } => {
                    self.closes.insert(*code);
                }
                Entry::Ws { .. } => {}
            }
        }
    }
}

/// Covered and total cells of one dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tally {
    /// The dimension.
    pub dimension: Dimension,
    /// Cells observed (unreachable ones left out).
    pub covered: usize,
    /// Cells that can be provoked from outside.
    pub total: usize,
    /// `covered` over `total`, in percent (100 when there is no cell).
    pub percent: f64,
}

/// A documented cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// The dimension.
    pub dimension: Dimension,
    /// The cell, e.g. `realtime.publish 404 NOT_FOUND`.
    pub cell: String,
}

/// A documented cell that cannot be provoked from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreachableCell {
    /// The dimension.
    pub dimension: Dimension,
    /// The cell, e.g. `realtime.publish 500 INTERNAL`.
    pub cell: String,
    /// Why no client can provoke it.
    pub reason: String,
    /// Whether the run observed it anyway.
    pub observed: bool,
}

/// The coverage of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// Covered over reachable cells, all dimensions together, in percent.
    pub percent: f64,
    /// Covered/total per dimension.
    pub tallies: Vec<Tally>,
    /// Every reachable cell the run did not provoke, by name.
    pub uncovered: Vec<Cell>,
    /// The cells left out of the percentage, and why.
    pub unreachable: Vec<UnreachableCell>,
}

impl Coverage {
    /// The cells of the documents against what was observed. `restart` says whether the
    /// run restarts the target gracefully (which makes the shutdown close code reachable).
    pub(crate) fn compute(spec: &Spec, observed: &Observed, restart: bool) -> Coverage {
        let mut cells: Vec<(Dimension, String, bool, Option<&'static str>)> = Vec::new();
        for op in spec.operations() {
            for (status, codes) in &op.codes {
                let seen = observed.statuses.contains(&(op.id.clone(), *status));
                // A status whose every documented code is unreachable is unreachable too.
                let code_reasons: Vec<Option<&'static str>> = codes
                    .iter()
                    .map(|code| reason(Dimension::ErrorCode, &op.id, *status, Some(code), restart))
                    .collect();
                let every_code = match code_reasons.first() {
                    Some(Some(first)) if code_reasons.iter().all(Option::is_some) => Some(*first),
                    _ => None,
                };
                let why = reason(Dimension::Status, &op.id, *status, None, restart).or(every_code);
                cells.push((Dimension::Status, format!("{} {status}", op.id), seen, why));
                for code in codes {
                    let seen = observed.codes.contains(&(op.id.clone(), *status, code.clone()));
                    let why = reason(Dimension::ErrorCode, &op.id, *status, Some(code), restart);
                    cells.push((Dimension::ErrorCode, format!("{} {status} {code}", op.id), seen, why));
                }
            }
        }
        for kind in crate::protocol::server_frame_types() {
            let seen = observed.frames.contains(&kind);
            cells.push((Dimension::FrameType, kind, seen, None));
        }
        for (code, meaning) in crate::protocol::close_codes() {
            let seen = observed.closes.contains(&code);
            let why = reason(Dimension::CloseCode, "", code, None, restart);
            let name = if meaning.is_empty() { code.to_string() } else { format!("{code} ({meaning})") };
            cells.push((Dimension::CloseCode, name, seen, why));
        }
        let mut coverage =
            Coverage { percent: 100.0, tallies: Vec::new(), uncovered: Vec::new(), unreachable: Vec::new() };
        for dimension in Dimension::ALL {
            let mut tally = Tally { dimension, covered: 0, total: 0, percent: 100.0 };
            for (_, cell, seen, why) in cells.iter().filter(|cell| cell.0 == dimension) {
                match why {
                    Some(reason) => coverage.unreachable.push(UnreachableCell {
                        dimension,
                        cell: cell.clone(),
                        reason: (*reason).to_owned(),
                        observed: *seen,
                    }),
                    None => {
                        tally.total += 1;
                        if *seen {
                            tally.covered += 1;
                        } else {
                            coverage.uncovered.push(Cell { dimension, cell: cell.clone() });
                        }
                    }
                }
            }
            tally.percent = percent(tally.covered, tally.total);
            coverage.tallies.push(tally);
        }
        let covered: usize = coverage.tallies.iter().map(|tally| tally.covered).sum();
        let total: usize = coverage.tallies.iter().map(|tally| tally.total).sum();
        coverage.percent = percent(covered, total);
        coverage
    }

    /// Covered cells over reachable cells, all dimensions together, in percent.
    pub fn percent(&self) -> f64 {
        self.percent
    }

    /// The text summary: a line per dimension, the uncovered cells, then the cells that
    /// cannot be reached from outside (grouped by reason).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "coverage {:.1}% of the documented cells a client can provoke", self.percent());
        for tally in &self.tallies {
            let fraction = format!("{}/{}", tally.covered, tally.total);
            let _ = writeln!(out, "  {:<24} {fraction:>9}  {:5.1}%", tally.dimension.as_str(), tally.percent);
        }
        if !self.uncovered.is_empty() {
            let _ = writeln!(out, "not covered ({}):", self.uncovered.len());
            for Cell { dimension, cell } in &self.uncovered {
                let _ = writeln!(out, "  {:<24} {cell}", dimension.as_str());
            }
        }
        let mut reasons: Vec<&str> = self.unreachable.iter().map(|cell| cell.reason.as_str()).collect();
        reasons.dedup();
        let reasons: Vec<&str> = reasons.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        if !reasons.is_empty() {
            let _ = writeln!(out, "not reachable from outside ({} cells, not counted):", self.unreachable.len());
        }
        for reason in reasons {
            let cells: Vec<&str> =
                self.unreachable.iter().filter(|cell| cell.reason == reason).map(|cell| cell.cell.as_str()).collect();
            let _ = writeln!(out, "  {reason}:");
            let _ = writeln!(out, "    {}", cells.join(", "));
        }
        out
    }
}

/// `covered` over `total` in percent; 100 when there is nothing to cover.
fn percent(covered: usize, total: usize) -> f64 {
    if total == 0 { 100.0 } else { covered as f64 * 100.0 / total as f64 }
}

/// Why a cell cannot be reached from outside, when it cannot.
fn reason(
    dimension: Dimension,
    operation: &str,
    status: u16,
    code: Option<&str>,
    graceful_restart: bool,
) -> Option<&'static str> {
    UNREACHABLE
        .iter()
        .find(|entry| {
            entry.dimension == dimension
                && entry.status == status
                && entry.code.is_none_or(|wanted| Some(wanted) == code)
                && entry.operations.contains(operation)
                && !(entry.graceful_restart && graceful_restart)
        })
        .map(|entry| entry.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Request;
    use crate::journal::{Answer, Exchange};

    fn exchange(method: &str, path: &str, status: u16, body: &str) -> Entry {
        Entry::Http(Exchange {
            request: Request::new(method, format!("http://t{path}")),
            response: Ok(Answer { status, headers: Vec::new(), body: body.as_bytes().to_vec() }),
        })
    }

    #[test]
    fn observed_cells_are_covered_and_the_others_are_named() {
        let spec = Spec::committed().unwrap();
        let mut observed = Observed::default();
        let entries = vec![
            exchange("POST", "/v1/realtime/publish", 404, r#"{"code":"NOT_FOUND"}"#),
            exchange("GET", "/v1/account", 200, "{}"),
            exchange("GET", "http://elsewhere/v1/account", 401, "{}"),
            Entry::Ws { socket: 1, event: WsEvent::Received(r#"{"type":"connected"}"#.to_owned()) },
            Entry::Ws { socket: 1, event: WsEvent::Closed(Some(4003), "revoked".to_owned()) },
        ];
        observed.add(&spec, "http://t", &entries);
        let coverage = Coverage::compute(&spec, &observed, false);
        let uncovered: Vec<&str> = coverage.uncovered.iter().map(|cell| cell.cell.as_str()).collect();
        assert!(!uncovered.contains(&"realtime.publish 404 NOT_FOUND"));
        assert!(!uncovered.contains(&"account.get 200"));
        assert!(uncovered.contains(&"account.get 401"), "{uncovered:?}");
        assert!(!uncovered.iter().any(|cell| cell.starts_with("connected")));
        assert!(uncovered.iter().any(|cell| cell.starts_with("4001 ")));
        assert!(!uncovered.iter().any(|cell| cell.starts_with("4003 ")));
        let unreachable: Vec<&str> = coverage.unreachable.iter().map(|cell| cell.cell.as_str()).collect();
        assert!(unreachable.contains(&"realtime.publish 500 INTERNAL"), "{unreachable:?}");
        assert!(unreachable.iter().any(|cell| cell.starts_with("4200 ")));
        assert!(!uncovered.iter().any(|cell| cell.ends_with(" 500")));
        let text = coverage.render();
        assert!(text.contains("not reachable from outside"), "{text}");
    }

    #[test]
    fn the_percent_is_in_the_json_and_the_text_per_dimension_and_overall() {
        let spec = Spec::committed().unwrap();
        let mut observed = Observed::default();
        observed.add(&spec, "http://t", &[exchange("GET", "/v1/account", 200, "{}")]);
        let coverage = Coverage::compute(&spec, &observed, false);
        let json = serde_json::to_value(&coverage).unwrap();
        let percent = json["percent"].as_f64().expect("an overall percent");
        assert!(percent > 0.0 && percent < 100.0, "{json}");
        let status = &json["tallies"][0];
        assert_eq!(status["dimension"], "status");
        let expected = status["covered"].as_f64().unwrap() * 100.0 / status["total"].as_f64().unwrap();
        assert_eq!(status["percent"].as_f64(), Some(expected));
        let text = coverage.render();
        assert!(text.contains(&format!("coverage {percent:.1}%")), "{text}");
        assert!(text.contains(&format!("{expected:5.1}%")), "{text}");
    }

    #[test]
    fn the_restart_option_makes_the_shutdown_close_code_reachable() {
        let spec = Spec::committed().unwrap();
        let coverage = Coverage::compute(&spec, &Observed::default(), true);
        assert!(coverage.uncovered.iter().any(|cell| cell.cell.starts_with("4200 ")));
    }
}
