//! Pusher webhooks: `channel_occupied`/`channel_vacated`, `member_added`/`member_removed`,
//! `client_event`, `cache_miss` and `subscription_count` (see [`super::counts`]), POSTed to an app's `webhook_url` with `X-Pusher-Key` and
//! `X-Pusher-Signature`, as Pusher sends them.
//!
//! Three tasks per node:
//!
//! - **Decide** ([`sweep_occupancy`]): every 250 ms a node compares the channels it has
//!   subscribers on with the last sweep and joins or leaves the channel's
//!   [`occupancy_key`] as one socket of a single member. The broker counts those sockets
//!   across nodes as it counts a user's devices, so exactly one node sees the first join
//!   (occupied) and one the last leave (vacated), and no node says vacated while another
//!   still has a subscriber (a dead node's part ends with its heartbeat, by the reaper).
//!   Members, client events and cache misses are decided where they already are (the
//!   broker's presence, the Pusher socket) and arrive as [`Lifecycle`] changes.
//! - **Record** ([`record_changes`]): each change of an account with a webhook app is put
//!   in the store's outbox, once per such app, with its body fixed (`time_ms` is the
//!   creation time, kept across retries). A removal waits 3 s, and the matching addition
//!   within that time cancels both, as Pusher debounces a reconnect. A cache miss is
//!   reported at most once per channel every [`CACHE_MISS_EVERY`] on a node: a crowd
//!   subscribing to an empty cache channel is one webhook, not one per socket.
//! - **Deliver** ([`deliver`]): due webhooks are claimed for 30 s (a node that dies while
//!   sending leaves them to another), sent, and removed on a 2xx; otherwise retried with
//!   exponential backoff (1 s doubling, at most 60 s) until Pusher's five-minute window
//!   from creation has passed, which the receiving libraries enforce. An app with batched
//!   webhooks (a setting, as on Pusher) has its webhooks wait [`BATCH_WAIT_MS`], and those
//!   due together go in one request, their events in order; each still retries on its own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;
use realtime_types::PresenceMember;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::signing::webhook_signature;
use crate::broker::occupancy_key;
use crate::hub::ChannelKey;
use crate::hub::lifecycle::Lifecycle;
use crate::service::{Service, new_id};
use crate::store::{AppRow, WebhookRow};

/// How long after its creation a webhook may still be sent (receivers refuse older ones).
pub const WINDOW_MS: i64 = 300_000;
/// How long a removal waits for the addition that cancels it.
pub const DEBOUNCE_MS: i64 = 3_000;
/// The shortest time between two `cache_miss` webhooks of one channel from one node.
pub const CACHE_MISS_EVERY: Duration = Duration::from_secs(10);
/// How often a node compares its occupied channels with the last sweep.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How often the accounts with webhook apps are read again (an app created on this node
/// counts at once; on another, within this time).
const ACCOUNTS_EVERY: Duration = Duration::from_secs(2);
/// How often the outbox is looked at when nothing wakes the sender.
const DELIVER_EVERY: Duration = Duration::from_millis(500);
/// How long a claimed webhook is left to its sender.
const CLAIM_MS: i64 = 30_000;
/// Webhooks claimed (and sent side by side) at a time; also the most events one request
/// of a batching app carries.
const BATCH: u32 = 32;
/// How long the webhooks of a batching app wait for others to go with (at most; the
/// outbox is looked at every [`DELIVER_EVERY`]).
const BATCH_WAIT_MS: i64 = 250;
/// The longest a receiver may take to answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 60_000;

/// Starts the node's webhook tasks; they end when the server stops.
pub fn spawn(service: Arc<Service>) {
    let Some(changes) = service.hub.lifecycle.watch() else {
        return;
    };
    let wake = Arc::new(Notify::new());
    tokio::spawn(until_stopped(service.clone(), sweep_occupancy(service.clone())));
    tokio::spawn(until_stopped(service.clone(), record_changes(service.clone(), changes, wake.clone())));
    tokio::spawn(until_stopped(service.clone(), deliver(service, wake)));
}

async fn until_stopped(service: Arc<Service>, task: impl Future<Output = ()>) {
    tokio::select! {
        () = task => {}
        () = service.shutdown.cancelled() => {}
        () = service.kill.cancelled() => {}
    }
}

/// Reads again which accounts have a webhook app: the hub hands over only their changes.
async fn refresh_accounts(service: &Service) {
    match service.store.webhook_accounts().await {
        Ok(accounts) => service.hub.lifecycle.watch_accounts(accounts.into_iter().collect()),
        Err(error) => tracing::warn!(%error, "the accounts with webhooks could not be read"),
    }
}

/// Channels clients subscribe to (`#server-to-user-…` and the like are not).
fn reported(key: &ChannelKey) -> bool {
    !key.channel.starts_with('#')
}

async fn sweep_occupancy(service: Arc<Service>) {
    // Every node with subscribers is a socket of one member of the channel's occupancy,
    // so the broker's first socket on any node is "occupied" and its last "vacated".
    let node = PresenceMember { client_id: "subscribed".to_owned(), user_id: None, user_info: None };
    let mut occupied: HashSet<ChannelKey> = HashSet::new();
    let mut refreshed = tokio::time::Instant::now() - ACCOUNTS_EVERY;
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if refreshed.elapsed() >= ACCOUNTS_EVERY {
            refresh_accounts(&service).await;
            refreshed = tokio::time::Instant::now();
        }
        if occupied.is_empty() && !service.hub.lifecycle.any_watched() {
            continue;
        }
        let now: HashSet<ChannelKey> = service
            .hub
            .subscriber_counts()
            .into_iter()
            .filter(|(key, count)| *count > 0 && reported(key) && service.hub.lifecycle.is_watched(&key.account_id))
            .map(|(key, _)| key)
            .collect();
        for key in now.difference(&occupied).cloned().collect::<Vec<_>>() {
            match service.broker.join(&occupancy_key(&key), &node).await {
                Ok(first) => {
                    if first {
                        service.hub.lifecycle.notify(Lifecycle::Occupied { key: key.clone() });
                    }
                    occupied.insert(key);
                }
                Err(error) => tracing::warn!(%error, channel = %key.channel, "occupancy not recorded; next sweep"),
            }
        }
        for key in occupied.difference(&now).cloned().collect::<Vec<_>>() {
            // The broker forgets this node's count either way; a failed write is
            // corrected by its heartbeat.
            occupied.remove(&key);
            match service.broker.leave(&occupancy_key(&key), &node).await {
                Ok(true) => service.hub.lifecycle.notify(Lifecycle::Vacated { key }),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, channel = %key.channel, "vacancy not recorded"),
            }
        }
    }
}

/// What a change becomes in the outbox: the event, the key a later addition cancels it
/// by, the key of the removal it cancels, and how long it waits.
struct Outbound {
    event: Value,
    cancel_key: Option<String>,
    cancels: Option<String>,
    delay_ms: i64,
}

fn outbound(change: Lifecycle) -> (ChannelKey, Outbound) {
    let member_key = |key: &ChannelKey, user_id: &str| format!("member\n{}\n{user_id}", key.channel);
    let occupancy_key = |key: &ChannelKey| format!("occupancy\n{}", key.channel);
    match change {
        Lifecycle::Occupied { key } => {
            let event = json!({"name": "channel_occupied", "channel": key.channel});
            let cancels = Some(occupancy_key(&key));
            (key, Outbound { event, cancel_key: None, cancels, delay_ms: 0 })
        }
        Lifecycle::Vacated { key } => {
            let event = json!({"name": "channel_vacated", "channel": key.channel});
            let cancel_key = Some(occupancy_key(&key));
            (key, Outbound { event, cancel_key, cancels: None, delay_ms: DEBOUNCE_MS })
        }
        Lifecycle::MemberAdded { key, user_id } => {
            let cancels = Some(member_key(&key, &user_id));
            let event = json!({"name": "member_added", "channel": key.channel, "user_id": user_id});
            (key, Outbound { event, cancel_key: None, cancels, delay_ms: 0 })
        }
        Lifecycle::MemberRemoved { key, user_id } => {
            let cancel_key = Some(member_key(&key, &user_id));
            let event = json!({"name": "member_removed", "channel": key.channel, "user_id": user_id});
            (key, Outbound { event, cancel_key, cancels: None, delay_ms: DEBOUNCE_MS })
        }
        Lifecycle::ClientEvent { key, event, data, socket_id, user_id } => {
            let mut event = json!({"name": "client_event", "channel": key.channel, "event": event, "data": data, "socket_id": socket_id});
            if let Some(user_id) = user_id {
                event["user_id"] = Value::String(user_id);
            }
            (key, Outbound { event, cancel_key: None, cancels: None, delay_ms: 0 })
        }
        Lifecycle::CacheMiss { key } => {
            let event = json!({"name": "cache_miss", "channel": key.channel});
            (key, Outbound { event, cancel_key: None, cancels: None, delay_ms: 0 })
        }
        Lifecycle::SubscriptionCount { key, count } => {
            let event = json!({"name": "subscription_count", "channel": key.channel, "subscription_count": count});
            (key, Outbound { event, cancel_key: None, cancels: None, delay_ms: 0 })
        }
    }
}

/// Whether a change is reported `now`: not a cache miss of a channel reported within
/// [`CACHE_MISS_EVERY`] (`missed` is when each channel's last one was).
fn due(change: &Lifecycle, now: Instant, missed: &mut HashMap<ChannelKey, Instant>) -> bool {
    let Lifecycle::CacheMiss { key } = change else { return true };
    missed.retain(|_, at| now.duration_since(*at) < CACHE_MISS_EVERY);
    match missed.entry(key.clone()) {
        std::collections::hash_map::Entry::Occupied(_) => false,
        std::collections::hash_map::Entry::Vacant(entry) => {
            entry.insert(now);
            true
        }
    }
}

async fn record_changes(service: Arc<Service>, mut changes: mpsc::Receiver<Lifecycle>, wake: Arc<Notify>) {
    let mut missed = HashMap::new();
    while let Some(change) = changes.recv().await {
        if !due(&change, Instant::now(), &mut missed) {
            continue;
        }
        let (key, outbound) = outbound(change);
        if !reported(&key) {
            continue;
        }
        let apps = match service.store.apps_of(&key.account_id).await {
            Ok(apps) => apps,
            Err(error) => {
                tracing::warn!(%error, channel = %key.channel, "webhook not recorded: the apps could not be read");
                continue;
            }
        };
        for app in apps.iter().filter(|app| app.webhook_url.is_some()) {
            let batching = match service.store.app_settings(app.app_id).await {
                Ok(settings) => settings.batch_webhooks,
                Err(error) => {
                    tracing::warn!(%error, app_id = app.app_id, "the app's settings could not be read; not batching");
                    false
                }
            };
            let now = Utc::now().timestamp_millis();
            let webhook = WebhookRow {
                webhook_id: new_id("wh"),
                app_id: app.app_id,
                body: json!({"time_ms": now, "events": [outbound.event]}).to_string(),
                created_ms: now,
                due_ms: now + outbound.delay_ms.max(if batching { BATCH_WAIT_MS } else { 0 }),
                attempts: 0,
            };
            let recorded = service
                .store
                .enqueue_webhook(&webhook, outbound.cancel_key.as_deref(), outbound.cancels.as_deref())
                .await;
            if let Err(error) = recorded {
                tracing::warn!(%error, app_id = app.app_id, "webhook not recorded");
            }
        }
        wake.notify_one();
    }
}

async fn deliver(service: Arc<Service>, wake: Arc<Notify>) {
    let client = match reqwest::Client::builder().timeout(SEND_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no HTTP client for webhooks; none will be sent");
            return;
        }
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(DELIVER_EVERY) => {}
            () = wake.notified() => {}
        }
        loop {
            let now = Utc::now().timestamp_millis();
            let batch = match service.store.claim_webhooks(now, now + CLAIM_MS, BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "the webhook outbox could not be read");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            // `None`: the app could not be read; its webhooks wait for their claim to end.
            let mut apps: HashMap<u64, Option<Option<(AppRow, bool)>>> = HashMap::new();
            for webhook in &batch {
                if let std::collections::hash_map::Entry::Vacant(entry) = apps.entry(webhook.app_id) {
                    entry.insert(app_and_batching(&service, webhook.app_id).await);
                }
            }
            let mut requests: Vec<(Option<&AppRow>, Vec<&WebhookRow>)> = Vec::new();
            for webhook in &batch {
                let Some(app) = apps[&webhook.app_id].as_ref() else { continue };
                let batching = app.as_ref().is_some_and(|(_, batching)| *batching);
                let app = app.as_ref().map(|(app, _)| app);
                match requests.iter_mut().find(|(to, _)| batching && to.is_some_and(|to| to.app_id == webhook.app_id)) {
                    Some((_, webhooks)) => webhooks.push(webhook),
                    None => requests.push((app, vec![webhook])),
                }
            }
            join_all(requests.iter().map(|(app, webhooks)| send(&service, &client, *app, webhooks))).await;
        }
    }
}

/// The app (`None` when it is gone) and whether it batches its webhooks; `None` when the
/// store could not tell.
async fn app_and_batching(service: &Service, app_id: u64) -> Option<Option<(AppRow, bool)>> {
    let app = service.store.app(app_id).await.ok()?;
    let Some(app) = app else { return Some(None) };
    let settings = service.store.app_settings(app_id).await.ok()?;
    Some(Some((app, settings.batch_webhooks)))
}

/// One request's body: a webhook's own, or, for several of a batching app, their events
/// in order under the oldest one's `time_ms` (the receivers' five-minute window starts at
/// the oldest event).
fn request_body(webhooks: &[&WebhookRow]) -> String {
    if let [webhook] = webhooks {
        return webhook.body.clone();
    }
    let mut events = Vec::new();
    for webhook in webhooks {
        match serde_json::from_str::<Value>(&webhook.body) {
            Ok(mut body) => events.extend(body["events"].as_array_mut().map(std::mem::take).unwrap_or_default()),
            Err(error) => {
                tracing::warn!(%error, webhook_id = %webhook.webhook_id, "a stored webhook is not JSON; left out")
            }
        }
    }
    let time_ms = webhooks.iter().map(|webhook| webhook.created_ms).min().unwrap_or_default();
    json!({"time_ms": time_ms, "events": events}).to_string()
}

/// Sends one request (one webhook, or several of a batching app) and records the outcome
/// of each webhook in it.
async fn send(service: &Service, client: &reqwest::Client, app: Option<&AppRow>, webhooks: &[&WebhookRow]) {
    let Some((app, url)) = app.and_then(|app| Some((app, app.webhook_url.as_deref()?))) else {
        // The app is gone or has no URL any more: nobody to tell.
        for webhook in webhooks {
            finish(service, webhook).await;
        }
        return;
    };
    let body = request_body(webhooks);
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Pusher-Key", &app.key)
        .header("X-Pusher-Signature", webhook_signature(&app.secret, &body))
        .body(body)
        .send()
        .await;
    let failure = match answer {
        Ok(answer) if answer.status().is_success() => {
            service.metrics.webhooks_delivered.inc();
            for webhook in webhooks {
                finish(service, webhook).await;
            }
            return;
        }
        Ok(answer) => format!("HTTP {}", answer.status().as_u16()),
        Err(error) => error.without_url().to_string(),
    };
    service.metrics.webhooks_failed.inc();
    for webhook in webhooks {
        let next = Utc::now().timestamp_millis() + backoff_ms(webhook.attempts);
        if next > webhook.created_ms + WINDOW_MS {
            service.metrics.webhooks_given_up.inc();
            tracing::warn!(app_id = app.app_id, attempts = webhook.attempts + 1, %failure, "webhook given up after Pusher's five-minute window");
            finish(service, webhook).await;
            continue;
        }
        tracing::info!(app_id = app.app_id, attempts = webhook.attempts + 1, %failure, "webhook failed; retrying");
        if let Err(error) = service.store.retry_webhook(&webhook.webhook_id, next).await {
            tracing::warn!(%error, "webhook retry not recorded; it is sent again when its claim expires");
        }
    }
}

async fn finish(service: &Service, webhook: &WebhookRow) {
    if let Err(error) = service.store.finish_webhook(&webhook.webhook_id).await {
        tracing::warn!(%error, "a sent webhook stays in the outbox; it may be sent again");
    }
}

/// The wait after `attempts` failed attempts: 1 s, doubling, at most a minute.
fn backoff_ms(attempts: u32) -> i64 {
    1_000i64.saturating_mul(1 << attempts.min(16)).min(MAX_BACKOFF_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_a_minute() {
        assert_eq!(
            (0..8).map(backoff_ms).collect::<Vec<_>>(),
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(backoff_ms(u32::MAX), 60_000);
    }

    #[test]
    fn a_removal_waits_and_is_cancelled_by_its_addition() {
        let key = ChannelKey::new("acct", "presence-room");
        let (_, removed) = outbound(Lifecycle::MemberRemoved { key: key.clone(), user_id: "u1".into() });
        let (_, added) = outbound(Lifecycle::MemberAdded { key: key.clone(), user_id: "u1".into() });
        assert_eq!(removed.delay_ms, DEBOUNCE_MS);
        assert_eq!(added.cancels, removed.cancel_key);
        let (_, vacated) = outbound(Lifecycle::Vacated { key: key.clone() });
        let (_, occupied) = outbound(Lifecycle::Occupied { key });
        assert_eq!(occupied.cancels, vacated.cancel_key);
        assert_ne!(occupied.cancels, added.cancels);
    }

    #[test]
    fn a_channel_s_cache_misses_are_reported_once_every_ten_seconds() {
        let mut missed = HashMap::new();
        let miss = |channel: &str| Lifecycle::CacheMiss { key: ChannelKey::new("acct", channel) };
        let start = Instant::now();
        assert!(due(&miss("cache-a"), start, &mut missed));
        assert!(!due(&miss("cache-a"), start + Duration::from_secs(9), &mut missed), "the same channel again");
        assert!(due(&miss("cache-b"), start, &mut missed), "another channel");
        assert!(due(&miss("cache-a"), start + CACHE_MISS_EVERY, &mut missed));
        let occupied = Lifecycle::Occupied { key: ChannelKey::new("acct", "cache-a") };
        assert!(due(&occupied, start + CACHE_MISS_EVERY, &mut missed), "only cache misses wait");
    }
}
