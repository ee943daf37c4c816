//! The verdict: one outcome per check, rendered as a table, JUnit XML and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::coverage::Coverage;

/// What a check is about; the report groups checks by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A documented curl example, replayed.
    Example,
    /// Idempotent replay and key reuse.
    Idempotency,
    /// The 402 path, top-up and checkout.
    Credit,
    /// Missing, malformed and unknown API keys.
    Auth,
    /// Live delivery, presence and cuts over WebSocket.
    Live,
    /// Stream positions, history and recovery.
    History,
    /// User-addressed messages and commands.
    Messaging,
    /// Schema-violating requests.
    Negative,
    /// The WebSocket protocol itself: client frames, malformed frames and close codes.
    Protocol,
    /// What a token's channels, capabilities and lifetime allow.
    Scope,
    /// Read operations: pagination, counts and the presence snapshot.
    Reads,
    /// All-or-nothing writes.
    Atomicity,
    /// One account never reaches another's resources, over REST and WebSocket.
    Tenancy,
    /// Documented limits enforced (the request rate).
    Limits,
    /// What was answered survives a restart of the target.
    Durability,
    /// Every documented status and error code of the REST operations.
    Statuses,
    /// The run as a whole provoked every documented cell a client can reach
    /// (`--require-full-coverage`).
    Coverage,
    /// The Pusher profile: its signed HTTP API.
    PusherHttp,
    /// The Pusher profile: protocol 7 over WebSocket.
    PusherProtocol,
    /// The Pusher profile: signed webhooks.
    PusherWebhook,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 20] = [
        Kind::Example,
        Kind::Idempotency,
        Kind::Credit,
        Kind::Auth,
        Kind::Live,
        Kind::History,
        Kind::Messaging,
        Kind::Negative,
        Kind::Protocol,
        Kind::Scope,
        Kind::Reads,
        Kind::Atomicity,
        Kind::Tenancy,
        Kind::Limits,
        Kind::Durability,
        Kind::Statuses,
        Kind::Coverage,
        Kind::PusherHttp,
        Kind::PusherProtocol,
        Kind::PusherWebhook,
    ];

    /// The kinds of the Pusher profile.
    pub const PUSHER: [Kind; 3] = [Kind::PusherHttp, Kind::PusherProtocol, Kind::PusherWebhook];

    /// Whether the kind belongs to the Pusher profile.
    pub fn is_pusher(self) -> bool {
        Kind::PUSHER.contains(&self)
    }

    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Example => "example",
            Kind::Idempotency => "idempotency",
            Kind::Credit => "credit",
            Kind::Auth => "auth",
            Kind::Live => "live",
            Kind::History => "history",
            Kind::Messaging => "messaging",
            Kind::Negative => "negative",
            Kind::Protocol => "protocol",
            Kind::Scope => "scope",
            Kind::Reads => "reads",
            Kind::Atomicity => "atomicity",
            Kind::Tenancy => "tenancy",
            Kind::Limits => "limits",
            Kind::Durability => "durability",
            Kind::Statuses => "statuses",
            Kind::Coverage => "coverage",
            Kind::PusherHttp => "pusher_http",
            Kind::PusherProtocol => "pusher_protocol",
            Kind::PusherWebhook => "pusher_webhook",
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// The target did what the contract says.
    Pass,
    /// The target did something else; the text is the exact mismatch.
    Fail(String),
    /// The check could not run against this target; the text says why.
    Skip(String),
}

/// One check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable id, `kind/name`.
    pub id: String,
    /// What the check is about.
    pub kind: Kind,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it took, in milliseconds.
    pub millis: u64,
    /// What a failed check sent and received, to reproduce it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// What a failed check last sent and received: enough to reproduce it by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The last HTTP request, as a curl command; API keys are the shell variables
    /// `$REALTIME_API_KEY` and `$REALTIME_ZERO_CREDIT_API_KEY`, never the keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curl: Option<String>,
    /// Its response, whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpAnswer>,
    /// Why there is no response (connection refused, timeout, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_error: Option<String>,
    /// The WebSocket transcript of the check, one JSON object per frame or event:
    /// `{"socket":1,"sent":…}`, `{"socket":1,"received":…}`, `{"socket":1,"close":4003,"reason":…}`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub websocket: Vec<serde_json::Value>,
}

/// An HTTP response as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpAnswer {
    /// The status.
    pub status: u16,
    /// The header lines.
    pub headers: Vec<(String, String)>,
    /// The whole body (lossy UTF-8).
    pub body: String,
}

impl Evidence {
    /// The evidence as indented lines under a failed check in the table.
    pub fn render(&self, indent: &str) -> String {
        let mut out = String::new();
        if let Some(curl) = &self.curl {
            let _ = writeln!(out, "{indent}reproduce:");
            for line in curl.lines() {
                let _ = writeln!(out, "{indent}  {line}");
            }
        }
        if let Some(error) = &self.transport_error {
            let _ = writeln!(out, "{indent}no response: {error}");
        }
        if let Some(response) = &self.response {
            let _ = writeln!(out, "{indent}response: {}", response.status);
            for (name, value) in &response.headers {
                let _ = writeln!(out, "{indent}  {name}: {value}");
            }
            if !response.body.is_empty() {
                for line in response.body.lines() {
                    let _ = writeln!(out, "{indent}  {line}");
                }
            }
        }
        if !self.websocket.is_empty() {
            let _ = writeln!(out, "{indent}websocket transcript:");
            for line in &self.websocket {
                let _ = writeln!(out, "{indent}  {line}");
            }
        }
        out
    }
}

/// Every check of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The base URL that was certified.
    pub base_url: String,
    /// The seed of the run's names: `--seed` repeats them.
    pub seed: u64,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Wall time of the whole run, in milliseconds.
    pub millis: u64,
    /// What the run provoked of the documented statuses, codes, frames and close codes.
    pub coverage: Option<Coverage>,
}

/// Counts of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed.
    pub failed: usize,
    /// Checks that were skipped.
    pub skipped: usize,
}

impl Summary {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail(_) => self.failed += 1,
            Outcome::Skip(_) => self.skipped += 1,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped)
    }
}

impl Report {
    /// Records a finished check.
    pub fn push(&mut self, id: impl Into<String>, kind: Kind, outcome: Outcome, took: Duration) {
        self.push_with(id, kind, outcome, took, None);
    }

    /// Records a finished check and what it sent and received.
    pub fn push_with(
        &mut self,
        id: impl Into<String>,
        kind: Kind,
        outcome: Outcome,
        took: Duration,
        evidence: Option<Evidence>,
    ) {
        let millis = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.checks.push(Check { id: id.into(), kind, outcome, millis, evidence });
    }

    /// Counts over every check.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for check in &self.checks {
            summary.add(&check.outcome);
        }
        summary
    }

    /// Counts over the checks of one kind.
    pub fn summary_of(&self, kind: Kind) -> Summary {
        let mut summary = Summary::default();
        for check in self.checks.iter().filter(|check| check.kind == kind) {
            summary.add(&check.outcome);
        }
        summary
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.summary().failed == 0
    }

    /// The check with this id, if it ran.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.id == id)
    }

    /// The table people read: one line per check, the mismatch or reason under it, then
    /// the counts per kind and the summary line.
    pub fn render_table(&self) -> String {
        let width = self.checks.iter().map(|check| check.id.len()).max().unwrap_or(5).max(5);
        let mut out = String::new();
        let _ =
            writeln!(out, "conformance of {} (seed {}: repeat with --seed {})", self.base_url, self.seed, self.seed);
        let _ = writeln!(out, "{:<6}  {:<width$}  {:>7}  detail", "result", "check", "ms");
        for check in &self.checks {
            let (label, detail) = match &check.outcome {
                Outcome::Pass => ("pass", ""),
                Outcome::Fail(detail) => ("FAIL", detail.as_str()),
                Outcome::Skip(reason) => ("skip", reason.as_str()),
            };
            let _ = writeln!(out, "{label:<6}  {:<width$}  {:>7}  {detail}", check.id, check.millis);
            if let (Outcome::Fail(_), Some(evidence)) = (&check.outcome, &check.evidence) {
                out.push_str(&evidence.render("        "));
            }
        }
        let _ = writeln!(out);
        for kind in Kind::ALL {
            let summary = self.summary_of(kind);
            if summary != Summary::default() {
                let _ = writeln!(out, "{:<15} {summary}", kind.as_str());
            }
        }
        if let Some(coverage) = &self.coverage {
            let _ = writeln!(out);
            out.push_str(&coverage.render());
        }
        let _ = writeln!(out, "took {:.1} s", self.millis as f64 / 1000.0);
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// JUnit XML: one test suite per kind, one test case per check.
    pub fn render_junit(&self) -> String {
        let total = self.summary();
        let mut out = String::new();
        let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            out,
            r#"<testsuites name="realtime-conformance" tests="{}" failures="{}" skipped="{}" time="{:.3}">"#,
            self.checks.len(),
            total.failed,
            total.skipped,
            self.millis as f64 / 1000.0
        );
        // The run's properties, in every suite (JUnit readers look for them there).
        let mut properties = String::from("    <properties>\n");
        let _ = writeln!(properties, r#"      <property name="seed" value="{}"/>"#, self.seed);
        let _ = writeln!(properties, r#"      <property name="base_url" value="{}"/>"#, xml_escape(&self.base_url));
        if let Some(coverage) = &self.coverage {
            let _ = writeln!(properties, r#"      <property name="coverage" value="{:.1}%"/>"#, coverage.percent());
        }
        properties.push_str("    </properties>\n");
        for kind in Kind::ALL {
            let checks: Vec<&Check> = self.checks.iter().filter(|check| check.kind == kind).collect();
            if checks.is_empty() {
                continue;
            }
            let summary = self.summary_of(kind);
            let time: u64 = checks.iter().map(|check| check.millis).sum();
            let _ = writeln!(
                out,
                r#"  <testsuite name="{}" tests="{}" failures="{}" skipped="{}" time="{:.3}">"#,
                kind.as_str(),
                checks.len(),
                summary.failed,
                summary.skipped,
                time as f64 / 1000.0
            );
            out.push_str(&properties);
            for check in checks {
                let head = format!(
                    r#"    <testcase classname="conformance.{}" name="{}" time="{:.3}""#,
                    kind.as_str(),
                    xml_escape(&check.id),
                    check.millis as f64 / 1000.0
                );
                match &check.outcome {
                    Outcome::Pass => {
                        let _ = writeln!(out, "{head}/>");
                    }
                    Outcome::Fail(detail) => {
                        let _ = writeln!(out, "{head}>");
                        let mut text = detail.clone();
                        if let Some(evidence) = &check.evidence {
                            text.push('\n');
                            text.push_str(&evidence.render(""));
                        }
                        let _ = writeln!(
                            out,
                            r#"      <failure message="{}">{}</failure>"#,
                            xml_escape(detail),
                            xml_escape(&text)
                        );
                        let _ = writeln!(out, "    </testcase>");
                    }
                    Outcome::Skip(reason) => {
                        let _ = writeln!(out, "{head}>");
                        let _ = writeln!(out, r#"      <skipped message="{}"/>"#, xml_escape(reason));
                        let _ = writeln!(out, "    </testcase>");
                    }
                }
            }
            let _ = writeln!(out, "  </testsuite>");
        }
        let _ = writeln!(out, "</testsuites>");
        out
    }

    /// The report as JSON: the checks and the summary.
    pub fn render_json(&self) -> String {
        #[derive(Serialize)]
        struct Document<'a> {
            base_url: &'a str,
            seed: u64,
            millis: u64,
            summary: Summary,
            #[serde(skip_serializing_if = "Option::is_none")]
            coverage: Option<&'a Coverage>,
            checks: &'a [Check],
        }
        let document = Document {
            base_url: &self.base_url,
            seed: self.seed,
            millis: self.millis,
            summary: self.summary(),
            coverage: self.coverage.as_ref(),
            checks: &self.checks,
        };
        serde_json::to_string_pretty(&document).unwrap_or_default()
    }
}

/// Escapes text for an XML attribute or element, dropping characters XML 1.0 forbids.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// Adds a check to a run's report, and prints it first when the run shows progress: the
/// one way both profiles record a verdict.
pub(crate) fn record(
    report: &std::sync::Mutex<Report>,
    progress: bool,
    id: &str,
    kind: Kind,
    outcome: Outcome,
    took: std::time::Duration,
    evidence: Option<Evidence>,
) {
    if progress {
        let line = match &outcome {
            Outcome::Pass => format!("pass  {id}"),
            Outcome::Fail(mismatch) => format!("FAIL  {id}: {mismatch}"),
            Outcome::Skip(reason) => format!("skip  {id}: {reason}"),
        };
        eprintln!("{line}");
    }
    let mut report = report.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    report.push_with(id, kind, outcome, took, evidence);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut report = Report { base_url: "http://127.0.0.1:1".to_owned(), ..Report::default() };
        report.push("example/a", Kind::Example, Outcome::Pass, Duration::from_millis(3));
        report.push("auth/b", Kind::Auth, Outcome::Fail("status 200, expected 401 <&>".to_owned()), Duration::ZERO);
        report.push("credit/c", Kind::Credit, Outcome::Skip("no zero-credit key given".to_owned()), Duration::ZERO);
        report
    }

    #[test]
    fn summary_line_counts_each_outcome() {
        let report = report();
        assert_eq!(report.summary().to_string(), "1 passed, 1 failed, 1 skipped");
        assert!(!report.passed());
        assert!(report.render_table().ends_with("1 passed, 1 failed, 1 skipped\n"));
    }

    #[test]
    fn junit_escapes_mismatches_and_marks_skips() {
        let xml = report().render_junit();
        assert!(xml.contains(r#"tests="3" failures="1" skipped="1""#), "{xml}");
        assert!(xml.contains("expected 401 &lt;&amp;&gt;"), "{xml}");
        assert!(xml.contains(r#"<skipped message="no zero-credit key given"/>"#), "{xml}");
    }

    #[test]
    fn a_failure_carries_its_reproduction_in_every_rendering_and_the_seed_is_in_every_report() {
        let mut report = report();
        report.seed = 42;
        let evidence = Evidence {
            curl: Some("curl -sS -i -X GET 'http://127.0.0.1:1/v1/account'".to_owned()),
            response: Some(HttpAnswer {
                status: 200,
                headers: vec![("content-type".to_owned(), "application/json".to_owned())],
                body: format!(r#"{{"long":"{}"}}"#, "y".repeat(500)),
            }),
            transport_error: None,
            websocket: vec![serde_json::json!({"socket": 1, "close": 4003, "reason": "revoked"})],
        };
        report.checks[1].evidence = Some(evidence);
        let table = report.render_table();
        assert!(table.starts_with("conformance of http://127.0.0.1:1 (seed 42: repeat with --seed 42)"), "{table}");
        assert!(table.contains("        reproduce:\n          curl -sS -i -X GET 'http://127.0.0.1:1/v1/account'\n"));
        assert!(table.contains("        response: 200\n          content-type: application/json\n"), "{table}");
        assert!(table.contains(&"y".repeat(500)), "the whole body");
        assert!(table.contains(r#"          {"close":4003,"reason":"revoked","socket":1}"#), "{table}");
        let xml = report.render_junit();
        assert!(xml.contains(r#"<property name="seed" value="42"/>"#), "{xml}");
        assert!(xml.contains("reproduce:&#10;  curl -sS -i -X GET"), "{xml}");
        let json: serde_json::Value = serde_json::from_str(&report.render_json()).unwrap();
        assert_eq!(json["seed"], 42);
        assert_eq!(json["checks"][1]["evidence"]["response"]["status"], 200);
        assert_eq!(json["checks"][1]["evidence"]["websocket"][0]["close"], 4003);
        assert!(json["checks"][0].get("evidence").is_none());
    }

    #[test]
    fn json_report_carries_outcome_and_detail() {
        let json: serde_json::Value = serde_json::from_str(&report().render_json()).unwrap();
        assert_eq!(json["summary"]["failed"], 1);
        assert_eq!(json["checks"][1]["outcome"], "fail");
        assert_eq!(json["checks"][1]["detail"], "status 200, expected 401 <&>");
        assert_eq!(json["checks"][0]["kind"], "example");
    }
}
