//! [`Lifecycles`]: the changes in a channel's life that webhooks report, handed from
//! where they are decided (the broker decides a member's first and last socket on any
//! node; the Pusher face relays client events) to whoever watches them, without either
//! side knowing the other.

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};

use tokio::sync::mpsc;

use super::ChannelKey;

/// Changes waiting for the watcher before new ones are dropped (and logged).
const BUFFER: usize = 64 * 1024;

/// A change in a channel's life, decided once for the whole cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    /// The channel got its first subscriber on any node.
    Occupied {
        /// The channel.
        key: ChannelKey,
    },
    /// The channel lost its last subscriber on every node.
    Vacated {
        /// The channel.
        key: ChannelKey,
    },
    /// A user's first socket joined the presence channel.
    MemberAdded {
        /// The channel.
        key: ChannelKey,
        /// The member (its client id, which the Pusher face calls `user_id`).
        user_id: String,
    },
    /// A user's last socket left the presence channel.
    MemberRemoved {
        /// The channel.
        key: ChannelKey,
        /// The member.
        user_id: String,
    },
    /// A Pusher client event was relayed.
    ClientEvent {
        /// The channel.
        key: ChannelKey,
        /// The event name (`client-…`).
        event: String,
        /// Its data, as the client sent it.
        data: String,
        /// The sender's socket id.
        socket_id: String,
        /// The sender, on presence channels.
        user_id: Option<String>,
    },
    /// A Pusher socket subscribed to a cache channel that had no last event to give.
    CacheMiss {
        /// The channel.
        key: ChannelKey,
    },
    /// The number of sockets subscribed to a channel changed (Pusher's subscription
    /// counting, when the server enables it).
    SubscriptionCount {
        /// The channel.
        key: ChannelKey,
        /// Sockets subscribed on every node.
        count: u32,
    },
}

impl Lifecycle {
    /// The channel it happened to.
    pub fn key(&self) -> &ChannelKey {
        match self {
            Lifecycle::Occupied { key }
            | Lifecycle::Vacated { key }
            | Lifecycle::MemberAdded { key, .. }
            | Lifecycle::MemberRemoved { key, .. }
            | Lifecycle::ClientEvent { key, .. }
            | Lifecycle::CacheMiss { key }
            | Lifecycle::SubscriptionCount { key, .. } => key,
        }
    }
}

/// Where changes go: nowhere until someone watches, and only for the accounts watched.
#[derive(Default)]
pub struct Lifecycles {
    watcher: OnceLock<mpsc::Sender<Lifecycle>>,
    accounts: RwLock<HashSet<String>>,
}

impl Lifecycles {
    /// Watches exactly these accounts from now on.
    pub fn watch_accounts(&self, accounts: HashSet<String>) {
        *self.accounts.write().expect("accounts lock") = accounts;
    }

    /// Watches one more account (until the next [`Lifecycles::watch_accounts`]).
    pub fn add_account(&self, account_id: &str) {
        self.accounts.write().expect("accounts lock").insert(account_id.to_owned());
    }

    /// Whether any account is watched (else a sweep over the channels is wasted).
    pub fn any_watched(&self) -> bool {
        self.watcher.get().is_some() && !self.accounts.read().expect("accounts lock").is_empty()
    }

    /// Whether changes of the account are handed over.
    pub fn is_watched(&self, account_id: &str) -> bool {
        self.watcher.get().is_some() && self.accounts.read().expect("accounts lock").contains(account_id)
    }

    /// Starts handing changes to the returned receiver; `None` when someone already does.
    pub fn watch(&self) -> Option<mpsc::Receiver<Lifecycle>> {
        let (sender, receiver) = mpsc::channel(BUFFER);
        self.watcher.set(sender).ok().map(|()| receiver)
    }

    /// Hands `change` to the watcher, if its account is watched; never waits.
    pub fn notify(&self, change: Lifecycle) {
        let Some(watcher) = self.watcher.get() else { return };
        if !self.is_watched(&change.key().account_id) {
            return;
        }
        if let Err(error) = watcher.try_send(change) {
            tracing::warn!(%error, "a channel lifecycle change was dropped (its watcher is behind)");
        }
    }
}
