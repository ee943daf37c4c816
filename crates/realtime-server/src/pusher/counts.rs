//! Pusher's subscription counting, on for an app that enables it in its settings (the
//! admin API's `subscription_count`), or for every app when the server setting
//! `pusher.subscription_count` is set: the Pusher subscribers of every channel but
//! presence ones (which count members instead) hear `pusher_internal:subscription_count`
//! when the number of sockets subscribed on every node changes, and webhook apps get the
//! `subscription_count` webhook. An app's channels are its account's, shared by the
//! account's apps: an account's channels are counted when one of its apps counts, and
//! their counts reach every Pusher subscriber of them.
//!
//! Every [`TICK`], a node reads the cluster's count (the broker's) of each channel it has
//! subscribers on, or had at the last tick, and tells its own subscribers when that count
//! is not the one it told them last. The webhook is decided by the node whose own
//! subscribers changed, so a change is reported by the node where it happened. As Pusher
//! does, a channel of more than [`BUSY`] subscribers is told at most every
//! [`BUSY_EVERY`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use realtime_types::pusher::{ChannelKind, ServerEvent};
use tokio::time::Instant;

use crate::hub::ChannelKey;
use crate::hub::lifecycle::Lifecycle;
use crate::service::Service;

/// How often a node looks at its channels' counts.
pub const TICK: Duration = Duration::from_millis(500);
/// How often a node reads again which apps count (a change takes effect within it).
pub const SETTINGS_EVERY: Duration = Duration::from_secs(1);
/// Subscribers beyond which a channel's count is told at most every [`BUSY_EVERY`].
pub const BUSY: u32 = 100;
/// The shortest time between two counts of a busy channel.
pub const BUSY_EVERY: Duration = Duration::from_secs(5);

/// What a node last did for one channel.
#[derive(Debug, Clone, Copy)]
struct Told {
    /// Its own subscribers at the last tick.
    local: u32,
    /// The cluster count it last told them, and when.
    count: u32,
    at: Instant,
}

/// Whether a channel's subscribers are counted: not presence channels, nor user channels.
pub fn counted(channel: &str) -> bool {
    ChannelKind::of(channel) != ChannelKind::Presence && !channel.starts_with('#')
}

/// Starts the node's counting; it ends when the server stops.
pub fn spawn(service: Arc<Service>) {
    tokio::spawn(async move {
        tokio::select! {
            () = count(service.clone()) => {}
            () = service.shutdown.cancelled() => {}
            () = service.kill.cancelled() => {}
        }
    });
}

async fn count(service: Arc<Service>) {
    let mut told: HashMap<ChannelKey, Told> = HashMap::new();
    let everyone = service.config.pusher.subscription_count;
    let mut accounts = HashSet::new();
    let mut read_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !everyone && read_at.is_none_or(|at| at.elapsed() >= SETTINGS_EVERY) {
            match service.store.counting_apps().await {
                Ok(apps) => accounts = apps.into_iter().map(|(_, account_id)| account_id).collect(),
                Err(error) => tracing::warn!(%error, "the apps that count subscriptions could not be read"),
            }
            read_at = Some(Instant::now());
        }
        if !everyone && accounts.is_empty() && told.is_empty() {
            continue;
        }
        let counting = |key: &ChannelKey| counted(&key.channel) && (everyone || accounts.contains(&key.account_id));
        // An account whose apps stopped counting is forgotten, not reported as emptied.
        told.retain(|key, _| counting(key));
        let mut local: HashMap<ChannelKey, u32> =
            service.hub.subscriber_counts().into_iter().filter(|(key, _)| counting(key)).collect();
        // A channel this node's last subscriber left still has its change reported.
        for key in told.keys() {
            local.entry(key.clone()).or_insert(0);
        }
        for (key, now_local) in local {
            let before = told.get(&key).copied();
            if now_local == 0 && before.is_none_or(|told| told.local == 0) {
                told.remove(&key);
                continue;
            }
            let count = match service.broker.subscriber_count(&key).await {
                Ok(count) => count,
                Err(error) => {
                    tracing::warn!(%error, channel = %key.channel, "subscription count not read; next tick");
                    continue;
                }
            };
            let now = Instant::now();
            let busy_wait = before.is_some_and(|told| count > BUSY && now.duration_since(told.at) < BUSY_EVERY);
            let changed = before.is_none_or(|told| told.count != count);
            if !changed || busy_wait {
                if let Some(told) = told.get_mut(&key) {
                    told.local = now_local;
                }
                continue;
            }
            if before.is_none_or(|told| told.local != now_local) {
                service.hub.lifecycle.notify(Lifecycle::SubscriptionCount { key: key.clone(), count });
            }
            if now_local > 0 {
                let event = ServerEvent::SubscriptionCount { channel: key.channel.clone(), count };
                service.hub.deliver_to_pusher(&key, &Utf8Bytes::from(event.to_json()));
                told.insert(key, Told { local: now_local, count, at: now });
            } else {
                told.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_and_user_channels_are_not_counted() {
        assert!(counted("room"));
        assert!(counted("private-room"));
        assert!(counted("cache-room"));
        assert!(!counted("presence-room"));
        assert!(!counted("#server-to-user-u1"));
    }
}
