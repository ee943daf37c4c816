//! The watchlist: a socket signed in (`pusher:signin`) with a `watchlist` in its user
//! data hears, as `pusher_internal:watchlist_events`, which of those users are online
//! (a socket signed in as them is connected to the app, on any node) and, from then on,
//! each one coming online or going offline.
//!
//! "Online" is a presence of the broker: every signed-in socket joins the app's presence
//! channel [`online_channel`] as its user, so the broker decides a user's first and last
//! socket across the cluster, a dead node's users expire with it, and the channel's
//! `member_added`/`member_removed` frames reach every node. A watching socket subscribes
//! to that channel in the hub (its client never sees it: `#` is in no name a client may
//! use, and webhooks and counts skip `#` channels), and its writer turns the channel's
//! member frames into watchlist events for the users it watches, dropping the others
//! ([`Watchlist::translate`]). Each watcher is handed every change of its app's users;
//! a frame is parsed only when it is a member frame of that channel.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use realtime_types::pusher::{ServerEvent, WATCHLIST_MAX_IDS, WatchlistChange};
use realtime_types::{Position, PresenceMember};
use serde_json::Value;

use crate::broker::{join_as, leave};
use crate::hub::{ChannelKey, Connection};
use crate::service::Service;

/// The start of the name of each app's presence channel of signed-in users.
pub const ONLINE_PREFIX: &str = "#pusher-online-";

/// The presence channel of the app's signed-in users.
pub fn online_channel(app_id: u64) -> String {
    format!("{ONLINE_PREFIX}{app_id}")
}

/// How every member frame starts, of any channel (the cheap test done on every frame).
const MEMBER_FRAME: &str = "{\"event\":\"pusher_internal:member_";

/// What a session watches: set by its reader at sign-in, read by its writer.
#[derive(Debug, Default)]
pub struct Watchlist {
    watched: Mutex<Option<Watched>>,
}

#[derive(Debug)]
struct Watched {
    ids: HashSet<String>,
    /// How the online channel's `member_added` and `member_removed` frames start.
    added: String,
    removed: String,
}

impl Watchlist {
    /// What the client gets for `frame`: the frame itself, unless it is a member frame of
    /// the online channel, which becomes a watchlist event for a watched user, or nothing.
    pub fn translate(&self, frame: Utf8Bytes) -> Option<Utf8Bytes> {
        if !frame.as_str().starts_with(MEMBER_FRAME) {
            return Some(frame);
        }
        let guard = self.watched.lock().expect("watchlist lock");
        let Some(watched) = guard.as_ref() else { return Some(frame) };
        let change = if frame.as_str().starts_with(&watched.added) {
            WatchlistChange::Online
        } else if frame.as_str().starts_with(&watched.removed) {
            WatchlistChange::Offline
        } else {
            return Some(frame);
        };
        let user_id = member_of(frame.as_str())?;
        if !watched.ids.contains(&user_id) {
            return None;
        }
        let event = ServerEvent::WatchlistEvents { events: vec![(change, vec![user_id])] };
        Some(Utf8Bytes::from(event.to_json()))
    }

    fn watch(&self, app_id: u64, ids: HashSet<String>) {
        let channel = online_channel(app_id);
        let start = |event: ServerEvent| {
            let json = event.to_json();
            // Everything up to the channel name's closing quote.
            let end = json.find(&format!("\"channel\":\"{channel}\"")).map(|at| at + channel.len() + 12);
            json[..end.unwrap_or(json.len())].to_owned()
        };
        let added =
            start(ServerEvent::MemberAdded { channel: channel.clone(), user_id: String::new(), user_info: None });
        let removed = start(ServerEvent::MemberRemoved { channel: channel.clone(), user_id: String::new() });
        *self.watched.lock().expect("watchlist lock") = Some(Watched { ids, added, removed });
    }
}

/// The user id of a member frame.
fn member_of(frame: &str) -> Option<String> {
    let frame: Value = serde_json::from_str(frame).ok()?;
    let data: Value = serde_json::from_str(frame.get("data")?.as_str()?).ok()?;
    Some(data.get("user_id")?.as_str()?.to_owned())
}

/// The watchlist of signed `user_data`: its user ids, at most [`WATCHLIST_MAX_IDS`], and
/// whether there were more. `Err` when `watchlist` is there but not an array of strings.
pub fn parse(user_data: &Value) -> Result<(Vec<String>, bool), &'static str> {
    let Some(list) = user_data.get("watchlist") else { return Ok((Vec::new(), false)) };
    let ids: Option<Vec<String>> =
        list.as_array().and_then(|ids| ids.iter().map(|id| id.as_str().map(str::to_owned)).collect());
    let Some(mut ids) = ids else { return Err("user_data's watchlist must be an array of user ids") };
    let more = ids.len() > WATCHLIST_MAX_IDS;
    ids.truncate(WATCHLIST_MAX_IDS);
    Ok((ids, more))
}

/// Counts a signed-in socket as its user's, online in its app (leaving the user it was
/// signed in as before, if another). A presence outage is logged: the sign-in stands.
pub async fn go_online(service: &Service, connection: &Connection, app_id: u64, user_id: &str) {
    let channel = online_channel(app_id);
    leave(service.broker.as_ref(), connection, &channel).await;
    let member = PresenceMember { client_id: user_id.to_owned(), user_id: Some(user_id.to_owned()), user_info: None };
    if let Err(error) = join_as(service.broker.as_ref(), connection, &channel, member).await {
        tracing::warn!(%error, "pusher signin: the user's online status was not recorded");
    }
}

/// Starts watching `ids` for a signed-in socket: the client hears which are online and
/// which offline now, then every change.
pub async fn start(
    service: &Service,
    connection: &Arc<Connection>,
    watchlist: &Watchlist,
    app_id: u64,
    ids: Vec<String>,
) {
    let key = ChannelKey::new(&connection.account_id, online_channel(app_id));
    let online_now = || async {
        match service.broker.members(&key).await {
            Ok(members) => Some(members.into_iter().map(|member| member.client_id).collect::<HashSet<_>>()),
            Err(error) => {
                tracing::warn!(%error, "pusher watchlist: presence unavailable");
                None
            }
        }
    };
    let before = online_now().await.unwrap_or_default();
    let status = |online: &HashSet<String>| {
        let (on, off): (Vec<String>, Vec<String>) = ids.iter().cloned().partition(|id| online.contains(id));
        [(WatchlistChange::Online, on), (WatchlistChange::Offline, off)]
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .collect::<Vec<_>>()
    };
    let first = Utf8Bytes::from(ServerEvent::WatchlistEvents { events: status(&before) }.to_json());
    watchlist.watch(app_id, ids.iter().cloned().collect());
    // The channel has no stream: its frames carry no position.
    let start = Position { epoch: String::new(), offset: 0 };
    if service.hub.subscribe(connection, &key.channel, &start, |_| first.clone()).is_none() {
        // Watching already (signed in again): the new list's status now.
        connection.send(first);
    }
    // A user who came or went between the look-up and the subscription is told now.
    let Some(after) = online_now().await else { return };
    let changed: Vec<_> = ids.iter().filter(|id| before.contains(*id) != after.contains(*id)).cloned().collect();
    if !changed.is_empty() {
        let (on, off): (Vec<String>, Vec<String>) = changed.into_iter().partition(|id| after.contains(id));
        let events = [(WatchlistChange::Online, on), (WatchlistChange::Offline, off)];
        let events = events.into_iter().filter(|(_, ids)| !ids.is_empty()).collect();
        connection.send(Utf8Bytes::from(ServerEvent::WatchlistEvents { events }.to_json()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member_frame(channel: &str, user_id: &str, added: bool) -> Utf8Bytes {
        let event = match added {
            true => ServerEvent::MemberAdded { channel: channel.into(), user_id: user_id.into(), user_info: None },
            false => ServerEvent::MemberRemoved { channel: channel.into(), user_id: user_id.into() },
        };
        Utf8Bytes::from(event.to_json())
    }

    #[test]
    fn member_frames_of_the_online_channel_become_watchlist_events_for_watched_users_only() {
        let watchlist = Watchlist::default();
        watchlist.watch(7, HashSet::from(["u1".to_owned()]));
        let online = watchlist.translate(member_frame("#pusher-online-7", "u1", true)).unwrap();
        let online: Value = serde_json::from_str(online.as_str()).unwrap();
        assert_eq!(online["event"], "pusher_internal:watchlist_events");
        let data: Value = serde_json::from_str(online["data"].as_str().unwrap()).unwrap();
        assert_eq!(data, serde_json::json!({"events": [{"name": "online", "user_ids": ["u1"]}]}));
        let offline = watchlist.translate(member_frame("#pusher-online-7", "u1", false)).unwrap();
        assert!(offline.as_str().contains("offline"), "{}", offline.as_str());

        assert!(watchlist.translate(member_frame("#pusher-online-7", "u2", true)).is_none(), "not watched");
        // Another app's online channel (a prefix of this one's name is not this one), and a
        // real presence channel, pass as they are.
        let other = member_frame("#pusher-online-77", "u1", true);
        assert_eq!(watchlist.translate(other.clone()), Some(other));
        let presence = member_frame("presence-room", "u1", true);
        assert_eq!(watchlist.translate(presence.clone()), Some(presence));
    }

    #[test]
    fn a_watchlist_keeps_its_first_hundred_ids_and_must_hold_strings() {
        let ids: Vec<String> = (0..150).map(|n| format!("u{n}")).collect();
        let (kept, more) = parse(&serde_json::json!({"id": "me", "watchlist": ids})).unwrap();
        assert_eq!((kept.len(), more, kept[99].as_str()), (100, true, "u99"));
        assert_eq!(parse(&serde_json::json!({"id": "me"})).unwrap(), (Vec::new(), false));
        assert!(parse(&serde_json::json!({"id": "me", "watchlist": [1]})).is_err());
        assert!(parse(&serde_json::json!({"id": "me", "watchlist": "u1"})).is_err());
    }
}
