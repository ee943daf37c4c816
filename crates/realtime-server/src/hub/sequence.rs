//! [`Sequence`]: a channel's messages in offset order on this node.
//!
//! The store gives each message the next offset of its channel, but messages reach a node
//! by different paths (this node's publishes, other nodes' through the broker), so two
//! racing publishes can arrive in either order. The sequence hands a message out only
//! after every earlier one: a message that arrives ahead of a gap waits for it, for at
//! most a short while ([`Sequence::skip_gap_older_than`]); one that arrives late (already
//! passed) is dropped. A subscriber that sees an offset step larger than one knows it
//! missed messages and can read them from history.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use realtime_types::Position;

use super::Frames;

/// What to do with a message that just arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// Hand it out now, then whatever [`Sequence::next_ready`] gives.
    Now,
    /// It is ahead of a gap and waits.
    Held,
    /// It was passed already (a duplicate, or a message later than the gap wait).
    Stale,
}

/// Where a channel's stream stands on this node.
#[derive(Debug, Default)]
pub(super) struct Sequence {
    /// The channel's epoch, once known.
    epoch: Option<String>,
    /// The offset of the last message handed out.
    last: u64,
    /// Messages that arrived ahead of a gap, by offset.
    ahead: BTreeMap<u64, Frames>,
    /// Since when the oldest gap has been waited for.
    gap_since: Option<Instant>,
}

impl Sequence {
    /// Starts the sequence at the channel's `latest` stored position if it has none (or
    /// another epoch); returns the position through which messages were handed out.
    pub(super) fn start(&mut self, latest: &Position) -> Position {
        if self.epoch.as_deref() != Some(latest.epoch.as_str()) {
            self.epoch = Some(latest.epoch.clone());
            self.last = latest.offset;
            self.ahead.clear();
            self.gap_since = None;
        }
        self.position()
    }

    /// The position through which messages were handed out.
    pub(super) fn position(&self) -> Position {
        Position { epoch: self.epoch.clone().unwrap_or_default(), offset: self.last }
    }

    /// Decides what to do with the message at `position`; keeps `frame` when it waits.
    pub(super) fn admit(&mut self, position: &Position, frame: &Frames) -> Admit {
        if self.epoch.as_deref().is_some_and(|current| position.epoch.as_str() < current) {
            // An earlier life of the channel (epochs are `ch_<ULID>`, which sort by
            // creation): a message of a deleted channel that arrived late.
            return Admit::Stale;
        }
        if self.epoch.as_deref() != Some(position.epoch.as_str()) {
            // A new life of the channel: nothing before it can still come.
            self.epoch = Some(position.epoch.clone());
            self.last = position.offset;
            self.ahead.clear();
            self.gap_since = None;
            return Admit::Now;
        }
        if position.offset <= self.last {
            return Admit::Stale;
        }
        if position.offset == self.last + 1 {
            self.last = position.offset;
            return Admit::Now;
        }
        self.ahead.insert(position.offset, frame.clone());
        self.gap_since.get_or_insert_with(Instant::now);
        Admit::Held
    }

    /// The next held message, if the gap before it has closed.
    pub(super) fn next_ready(&mut self) -> Option<(u64, Frames)> {
        let entry = self.ahead.first_entry()?;
        if *entry.key() != self.last + 1 {
            return None;
        }
        let (offset, frame) = entry.remove_entry();
        self.last = offset;
        // A gap closed: the next one (if any) is waited for from now, not from the first.
        self.gap_since = (!self.ahead.is_empty()).then(Instant::now);
        Some((offset, frame))
    }

    /// Gives up on a gap waited for longer than `wait` (the message was lost on its way,
    /// its publisher died): the held messages can then go out. Returns how many messages
    /// were given up (0 when none was).
    pub(super) fn skip_gap_older_than(&mut self, wait: Duration) -> u64 {
        let overdue = self.gap_since.is_some_and(|since| since.elapsed() >= wait);
        let Some(first) = self.ahead.keys().next().copied().filter(|_| overdue) else { return 0 };
        let skipped = first - 1 - self.last;
        self.last = first - 1;
        self.gap_since = Some(Instant::now());
        skipped
    }

    /// Whether messages wait for a gap.
    pub(super) fn has_gap(&self) -> bool {
        !self.ahead.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Position {
        Position { epoch: "e1".into(), offset }
    }

    fn frame(offset: u64) -> Frames {
        Frames::native(axum::extract::ws::Utf8Bytes::from(offset.to_string()))
    }

    #[test]
    fn messages_go_out_in_offset_order_whatever_order_they_arrive_in() {
        let mut sequence = Sequence::default();
        sequence.start(&at(10));
        assert_eq!(sequence.admit(&at(12), &frame(12)), Admit::Held);
        assert_eq!(sequence.admit(&at(13), &frame(13)), Admit::Held);
        assert_eq!(sequence.next_ready(), None, "11 is missing");
        assert_eq!(sequence.admit(&at(11), &frame(11)), Admit::Now);
        assert_eq!(sequence.next_ready().map(|(o, _)| o), Some(12));
        assert_eq!(sequence.next_ready().map(|(o, _)| o), Some(13));
        assert_eq!(sequence.next_ready(), None);
        assert_eq!(sequence.admit(&at(12), &frame(12)), Admit::Stale, "a duplicate");
        assert!(!sequence.has_gap());
    }

    #[test]
    fn a_gap_is_given_up_after_the_wait() {
        let mut sequence = Sequence::default();
        sequence.start(&at(0));
        assert_eq!(sequence.admit(&at(3), &frame(3)), Admit::Held);
        assert_eq!(sequence.skip_gap_older_than(Duration::from_secs(60)), 0);
        assert_eq!(sequence.skip_gap_older_than(Duration::ZERO), 2, "offsets 1 and 2 were lost on their way");
        assert_eq!(sequence.next_ready().map(|(o, _)| o), Some(3));
        assert_eq!(sequence.admit(&at(1), &frame(1)), Admit::Stale, "too late");
    }

    #[test]
    fn a_late_message_of_an_earlier_life_is_stale() {
        let mut sequence = Sequence::default();
        sequence.start(&Position { epoch: "ch_02".into(), offset: 3 });
        let deleted = Position { epoch: "ch_01".into(), offset: 7 };
        assert_eq!(sequence.admit(&deleted, &frame(7)), Admit::Stale);
        assert_eq!(sequence.position().epoch, "ch_02");
    }

    #[test]
    fn a_new_epoch_starts_over() {
        let mut sequence = Sequence::default();
        sequence.start(&at(5));
        let next_life = Position { epoch: "e2".into(), offset: 1 };
        assert_eq!(sequence.admit(&next_life, &frame(1)), Admit::Now);
        assert_eq!(sequence.position(), next_life);
    }
}
