//! What counts as a failure of the user-addressed messages load generator: the frames a
//! user's clients receive, checked one by one as they arrive (each reliable message once,
//! in `sequence` order), then against what the sends answered.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What went wrong in a measurement; each count is a failure.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Problems {
    /// REST calls that failed, answered other than 200, or answered something unexpected.
    pub failed_calls: u64,
    /// Messages whose send answered 200 and that never arrived.
    pub missing: u64,
    /// Messages that arrived more than once.
    pub duplicated: u64,
    /// Messages that arrived after one with a higher sequence, or with another sequence
    /// than their send answered, and sends answered sequences out of send order.
    pub out_of_order: u64,
    /// `error` frames, frames that could not be read, and connections that ended early.
    pub bad_frames: u64,
    /// Acknowledged messages delivered again on a later connect.
    pub unacked_left: u64,
}

impl Problems {
    pub fn total(&self) -> u64 {
        self.failed_calls + self.missing + self.duplicated + self.out_of_order + self.bad_frames + self.unacked_left
    }
}

/// Problems' first few explanations: the first of each kind says what went wrong, more
/// copies would not.
#[derive(Debug, Default)]
pub(super) struct Notes(pub(super) Vec<String>);

impl Notes {
    fn note(&mut self, error: String) {
        if self.0.len() < 5 && !self.0.contains(&error) {
            self.0.push(error);
        }
    }

    fn extend(&mut self, other: Notes) {
        other.0.into_iter().for_each(|error| self.note(error));
    }
}

/// The problems one side of a measurement saw, and what they were.
#[derive(Debug, Default)]
pub(super) struct Checks {
    pub(super) problems: Problems,
    notes: Notes,
}

impl Checks {
    pub(super) fn failed_call(&mut self, error: &anyhow::Error) {
        self.problems.failed_calls += 1;
        self.notes.note(format!("{error:#}"));
    }

    pub(super) fn bad_frame(&mut self, error: &anyhow::Error) {
        self.problems.bad_frames += 1;
        self.notes.note(format!("{error:#}"));
    }

    pub(super) fn out_of_order(&mut self, error: &anyhow::Error) {
        self.problems.out_of_order += 1;
        self.notes.note(format!("{error:#}"));
    }

    /// Takes in what the other side of the measurement saw.
    pub(super) fn absorb(&mut self, other: Checks) {
        let (mine, theirs) = (&mut self.problems, other.problems);
        mine.failed_calls += theirs.failed_calls;
        mine.missing += theirs.missing;
        mine.duplicated += theirs.duplicated;
        mine.out_of_order += theirs.out_of_order;
        mine.bad_frames += theirs.bad_frames;
        mine.unacked_left += theirs.unacked_left;
        self.notes.extend(other.notes);
    }

    /// These problems and those of `tally` against the messages `sent` (their id and
    /// answered sequence); their explanations go to `notes`.
    pub(super) fn with_tally<'a>(
        mut self,
        tally: &Tally,
        sent: impl IntoIterator<Item = (&'a str, u64)>,
        notes: &mut Notes,
    ) -> Problems {
        self.absorb(Checks { problems: tally.problems(sent), notes: Notes::default() });
        notes.extend(self.notes);
        self.problems
    }
}

/// A server frame, as far as the bench reads it.
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    message_id: Option<String>,
    delivery: Option<String>,
    sequence: Option<u64>,
    command_id: Option<String>,
    data: Option<Value>,
}

/// Whether a frame is the `connected` frame that opens every connection.
pub(super) fn is_connected(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Incoming>(bytes).is_ok_and(|frame| frame.kind == "connected")
}

/// What a frame was to a client of a user.
#[derive(Debug, PartialEq)]
pub(super) enum Seen {
    /// A reliable `user.message`; `fresh` when its id had not arrived before.
    Message {
        message_id: String,
        fresh: bool,
    },
    Command {
        command_id: String,
        data: Value,
    },
    Pong,
    /// A frame the bench does not look at.
    Other,
}

/// The reliable messages one user's clients received, in arrival order: each
/// `message_id` should arrive once, and each `sequence` be higher than the one before.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Arrived ids, with their sequence and time of arrival.
    arrived: HashMap<String, (u64, Instant)>,
    highest: u64,
    duplicated: u64,
    out_of_order: u64,
    /// The last fresh message, the one whose ack covers them all.
    last: Option<String>,
}

impl Tally {
    /// Takes one frame; an error is a refusal or a frame the bench cannot read.
    pub(super) fn take(&mut self, bytes: &[u8], at: Instant) -> anyhow::Result<Seen> {
        let lossy = || String::from_utf8_lossy(bytes);
        let frame: Incoming = serde_json::from_slice(bytes).with_context(|| format!("parsing a frame: {}", lossy()))?;
        match frame.kind.as_str() {
            "user.message" => {
                ensure!(frame.delivery.as_deref() == Some("reliable"), "not a reliable message: {}", lossy());
                let message_id = frame.message_id.with_context(|| format!("no message_id: {}", lossy()))?;
                let sequence = frame.sequence.with_context(|| format!("no sequence: {}", lossy()))?;
                if self.arrived.contains_key(&message_id) {
                    self.duplicated += 1;
                    return Ok(Seen::Message { message_id, fresh: false });
                }
                if sequence <= self.highest {
                    self.out_of_order += 1;
                }
                self.highest = self.highest.max(sequence);
                self.arrived.insert(message_id.clone(), (sequence, at));
                self.last = Some(message_id.clone());
                Ok(Seen::Message { message_id, fresh: true })
            }
            "user.command" => {
                let command_id = frame.command_id.with_context(|| format!("no command_id: {}", lossy()))?;
                Ok(Seen::Command { command_id, data: frame.data.unwrap_or(Value::Null) })
            }
            "pong" => Ok(Seen::Pong),
            "error" => bail!("error frame: {}", lossy()),
            _ => Ok(Seen::Other),
        }
    }

    /// Fresh messages received.
    pub(super) fn len(&self) -> usize {
        self.arrived.len()
    }

    /// Messages received again after they first arrived.
    pub(super) fn duplicated(&self) -> u64 {
        self.duplicated
    }

    /// The id of the last fresh message.
    pub(super) fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// When a message arrived.
    pub(super) fn arrival(&self, message_id: &str) -> Option<Instant> {
        self.arrived.get(message_id).map(|&(_, at)| at)
    }

    /// When the last message to arrive did.
    pub(super) fn last_arrival(&self) -> Option<Instant> {
        self.arrived.values().map(|&(_, at)| at).max()
    }

    /// The tally's problems against the messages `sent` (their id and answered sequence):
    /// arrivals out of order or with another sequence than answered, repeats, and sent
    /// messages that never arrived.
    fn problems<'a>(&self, sent: impl IntoIterator<Item = (&'a str, u64)>) -> Problems {
        let mut problems =
            Problems { duplicated: self.duplicated, out_of_order: self.out_of_order, ..Problems::default() };
        for (message_id, answered) in sent {
            match self.arrived.get(message_id) {
                None => problems.missing += 1,
                Some(&(sequence, _)) if sequence != answered => problems.out_of_order += 1,
                Some(_) => {}
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(id: &str, sequence: u64) -> String {
        format!(
            r#"{{"type":"user.message","message_id":"{id}","delivery":"reliable","payload":{{"n":1}},"sender_type":"server","sent_at":"2026-01-01T00:00:00Z","sequence":{sequence},"delivery_count":1}}"#
        )
    }

    fn take_all(tally: &mut Tally, frames: &[String]) -> Vec<Seen> {
        frames.iter().map(|frame| tally.take(frame.as_bytes(), Instant::now()).unwrap()).collect()
    }

    #[test]
    fn every_message_once_in_sequence_order_has_no_problem() {
        let mut tally = Tally::default();
        let seen = take_all(&mut tally, &[message("a", 1), message("b", 2)]);
        assert_eq!(seen[1], Seen::Message { message_id: "b".to_owned(), fresh: true });
        assert_eq!(tally.last(), Some("b"));
        assert_eq!(tally.problems([("a", 1), ("b", 2)]).total(), 0);
    }

    #[test]
    fn a_repeat_a_reordering_and_a_missing_message_are_counted() {
        let mut tally = Tally::default();
        let seen = take_all(&mut tally, &[message("b", 2), message("a", 1), message("b", 2)]);
        assert_eq!(seen[2], Seen::Message { message_id: "b".to_owned(), fresh: false });
        let problems = tally.problems([("a", 1), ("b", 2), ("c", 3)]);
        assert_eq!((problems.duplicated, problems.out_of_order, problems.missing), (1, 1, 1));
    }

    #[test]
    fn a_message_with_another_sequence_than_answered_is_out_of_order() {
        let mut tally = Tally::default();
        take_all(&mut tally, &[message("a", 5)]);
        assert_eq!(tally.problems([("a", 1)]).out_of_order, 1);
    }

    #[test]
    fn error_frames_and_realtime_messages_are_refused_and_commands_read() {
        let mut tally = Tally::default();
        let error = tally.take(br#"{"type":"error","code":"NOT_FOUND","message":"no"}"#, Instant::now()).unwrap_err();
        assert!(error.to_string().starts_with("error frame: "), "{error}");
        let realtime = message("a", 1).replace(r#""delivery":"reliable""#, r#""delivery":"realtime""#);
        assert!(tally.take(realtime.as_bytes(), Instant::now()).is_err());
        let command = br#"{"type":"user.command","command_id":"cmd_1","command":"bench","data":{"n":3},"sender_type":"server","expires_at":"2026-01-01T00:00:00Z"}"#;
        assert_eq!(
            tally.take(command, Instant::now()).unwrap(),
            Seen::Command { command_id: "cmd_1".to_owned(), data: json!({ "n": 3 }) }
        );
        assert_eq!(tally.take(br#"{"type":"pong"}"#, Instant::now()).unwrap(), Seen::Pong);
    }

    #[test]
    fn the_checks_of_both_sides_and_the_tally_add_up() {
        let mut tally = Tally::default();
        take_all(&mut tally, &[message("a", 1), message("a", 1)]);
        let (mut reader, mut sender) = (Checks::default(), Checks::default());
        reader.bad_frame(&anyhow::anyhow!("error frame"));
        sender.failed_call(&anyhow::anyhow!("answered 409"));
        sender.out_of_order(&anyhow::anyhow!("sequences out of send order"));
        reader.absorb(sender);
        let mut notes = Notes::default();
        let problems = reader.with_tally(&tally, [("a", 1), ("b", 2)], &mut notes);
        assert_eq!(
            (problems.failed_calls, problems.bad_frames, problems.out_of_order, problems.duplicated, problems.missing),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(problems.total(), 5);
        assert_eq!(notes.0, ["error frame", "answered 409", "sequences out of send order"]);
    }
}
