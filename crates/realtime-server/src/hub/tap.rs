//! [`Taps`]: a live copy of one account's events for whoever watches it (the debug
//! console), taken where each event is decided and never waited on.
//!
//! Each watched account has a bounded broadcast channel. Emitting costs one atomic load
//! while nobody watches any account, and a `try`-style send when someone does: a viewer
//! that falls behind loses the oldest events (its receiver reports how many), and the
//! node never waits for it.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for one account's viewers before the slowest of them starts losing some.
const CAPACITY: usize = 1024;

/// An event of one account, as a viewer sees it.
#[derive(Debug, Clone)]
pub enum TapEvent {
    /// A frame for a channel's subscribers (a message, a presence join or leave), as the
    /// native protocol's JSON text: the same bytes the subscribers get.
    Frame(Utf8Bytes),
    /// Anything else that happened.
    Activity(Activity),
}

/// What happened to an account beyond the frames of its channels.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    /// A socket of this node subscribed to a channel.
    Subscribed {
        /// The channel.
        channel: String,
        /// The socket's client.
        client_id: String,
        /// The socket, unique on its node.
        connection_id: u64,
    },
    /// A socket of this node stopped being subscribed to a channel (it asked, or it was
    /// unsubscribed by `user.disconnect`).
    Unsubscribed {
        /// The channel.
        channel: String,
        /// The socket's client.
        client_id: String,
        /// The socket.
        connection_id: u64,
    },
    /// A socket of this node closed.
    Disconnected {
        /// The socket's client.
        client_id: String,
        /// The socket.
        connection_id: u64,
        /// The close code (1000 when the client closed, 1006 when it vanished).
        code: u16,
        /// Why.
        reason: String,
    },
    /// A channel was deleted.
    ChannelDeleted {
        /// The channel.
        channel: String,
    },
    /// `user.disconnect` reached this node.
    ClientDisconnected {
        /// The client.
        client_id: String,
        /// The only channel it was unsubscribed from, if not every socket was closed.
        channel: Option<String>,
    },
    /// A token was revoked (through this node).
    TokenRevoked {
        /// The token's id.
        jti: String,
        /// Sockets closed in the cluster.
        disconnected: u32,
    },
    /// A request was refused with 402 `INSUFFICIENT_CREDIT`.
    InsufficientCredit {
        /// The operation: a route template with its method, or `socket publish`.
        operation: String,
    },
}

/// Where an account's events go while someone watches it.
#[derive(Default)]
pub struct Taps {
    /// Accounts in `senders`: lets [`Taps::emit`] return at once while nobody watches.
    watched: AtomicUsize,
    senders: RwLock<HashMap<String, broadcast::Sender<TapEvent>>>,
}

impl Taps {
    /// Starts receiving the events of `account_id`.
    pub fn watch(&self, account_id: &str) -> broadcast::Receiver<TapEvent> {
        let mut senders = self.senders.write().expect("taps lock");
        if let Some(sender) = senders.get(account_id) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(CAPACITY);
        senders.insert(account_id.to_owned(), sender);
        self.watched.store(senders.len(), Ordering::Relaxed);
        receiver
    }

    /// Whether anyone views the events of `account_id`.
    pub fn is_watched(&self, account_id: &str) -> bool {
        self.watched.load(Ordering::Relaxed) > 0 && self.senders.read().expect("taps lock").contains_key(account_id)
    }

    /// Hands the event `make` builds to the viewers of `account_id`; builds nothing and
    /// never waits when there are none.
    pub fn emit(&self, account_id: &str, make: impl FnOnce() -> TapEvent) {
        if self.watched.load(Ordering::Relaxed) == 0 {
            return;
        }
        let unwatched = {
            let senders = self.senders.read().expect("taps lock");
            let Some(sender) = senders.get(account_id) else { return };
            sender.send(make()).is_err()
        };
        if unwatched {
            self.forget(account_id);
        }
    }

    /// The accounts someone watches now (a broker that routes channels to the nodes
    /// holding their subscribers routes these accounts' channels here too).
    pub fn watched_accounts(&self) -> Vec<String> {
        if self.watched.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let senders = self.senders.read().expect("taps lock");
        senders.iter().filter(|(_, sender)| sender.receiver_count() > 0).map(|(account, _)| account.clone()).collect()
    }

    /// An activity of `account_id`; see [`Taps::emit`].
    pub fn activity(&self, account_id: &str, make: impl FnOnce() -> Activity) {
        self.emit(account_id, || TapEvent::Activity(make()));
    }

    /// Drops the channel of an account whose viewers have all gone.
    fn forget(&self, account_id: &str) {
        let mut senders = self.senders.write().expect("taps lock");
        // Under the write lock, which `watch` takes too: a viewer that arrived meanwhile
        // keeps the channel.
        if senders.get(account_id).is_some_and(|sender| sender.receiver_count() == 0) {
            senders.remove(account_id);
            self.watched.store(senders.len(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_watched_account_receives_and_a_gone_viewer_is_forgotten() {
        let taps = Taps::default();
        let mut mine = taps.watch("acct_a");
        taps.activity("acct_b", || Activity::ChannelDeleted { channel: "b".into() });
        taps.activity("acct_a", || Activity::ChannelDeleted { channel: "a".into() });
        match mine.try_recv().unwrap() {
            TapEvent::Activity(Activity::ChannelDeleted { channel }) => assert_eq!(channel, "a"),
            other => panic!("{other:?}"),
        }
        assert!(mine.try_recv().is_err(), "nothing of another account");
        drop(mine);
        taps.activity("acct_a", || Activity::ChannelDeleted { channel: "a".into() });
        assert_eq!(taps.watched.load(Ordering::Relaxed), 0);
        taps.activity("acct_a", || unreachable!("nothing is built while nobody watches"));
    }

    #[test]
    fn a_lagging_viewer_is_told_how_many_events_it_missed() {
        let taps = Taps::default();
        let mut slow = taps.watch("acct_a");
        for _ in 0..CAPACITY + 5 {
            taps.activity("acct_a", || Activity::ChannelDeleted { channel: "a".into() });
        }
        assert!(matches!(slow.try_recv(), Err(broadcast::error::TryRecvError::Lagged(5))));
    }
}
