//! Subscribing a protocol 7 session: signatures checked over exactly what was received,
//! presence joined as the member `channel_data` names, a cache channel's last event or
//! `pusher:cache_miss`, and the socket's own `#server-to-user-` channel.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use realtime_types::PresenceMember;
use realtime_types::pusher::{
    ChannelData, ChannelKind, PRESENCE_MAX_MEMBERS, PresenceData, ServerEvent, check_channel_name, data_text,
    server_to_user,
};
use serde_json::Value;

use super::Session;
use crate::broker::join_as;
use crate::hub::lifecycle::Lifecycle;
use crate::hub::{ChannelKey, Connection, Protocol};
use crate::pusher::signing::verify_channel_auth;
use crate::pusher::{ensure_channels, last_cached, users};
use crate::service::Service;
use crate::store::ChannelRow;

/// Subscribes the socket; `None` when the hub queued `subscription_succeeded` itself
/// (ahead of the channel's events), else the refusal.
pub(super) async fn subscribe(
    service: &Arc<Service>,
    connection: &Arc<Connection>,
    session: &mut Session,
    channel: String,
    auth: Option<String>,
    channel_data: Option<String>,
) -> Option<ServerEvent> {
    let refuse =
        |status: u16, error: String| ServerEvent::SubscriptionError { channel: channel.clone(), error, status };
    if let Some(user_id) = server_to_user(&channel) {
        return subscribe_user(service, connection, &channel, user_id).await;
    }
    if let Err(why) = check_channel_name(&channel) {
        return Some(refuse(400, format!("invalid channel name: {why}")));
    }
    let kind = ChannelKind::of(&channel);
    let signed_data = match kind {
        ChannelKind::Presence => match &channel_data {
            Some(data) => Some(data.as_str()),
            None => return Some(refuse(400, "presence channels need channel_data".into())),
        },
        ChannelKind::Public | ChannelKind::Private | ChannelKind::Encrypted => None,
    };
    if kind.needs_auth() {
        if let Err((status, why)) = refresh_app(service, session).await {
            return Some(refuse(status, why));
        }
        let app = &session.app;
        let valid = auth.as_deref().is_some_and(|auth| {
            verify_channel_auth(&app.key, &app.secret, &session.socket_id, &channel, signed_data, auth)
        });
        if !valid {
            return Some(refuse(401, format!("invalid signature for {} on {channel}", session.socket_id)));
        }
    }
    if connection.is_subscribed(&channel) {
        // Subscribed already (and counted in presence as the member it first named):
        // nothing changes, and the client hears so again.
        let key = ChannelKey::new(&session.app.account_id, &channel);
        let presence = match kind {
            ChannelKind::Presence => match service.broker.members(&key).await {
                Ok(members) => Some(presence_data(members)),
                Err(_) => return Some(refuse(503, "presence is unavailable; retry".into())),
            },
            ChannelKind::Public | ChannelKind::Private | ChannelKind::Encrypted => None,
        };
        return Some(ServerEvent::SubscriptionSucceeded { channel, presence });
    }
    let member = match signed_data.map(ChannelData::parse).transpose() {
        Ok(member) => member,
        Err(why) => return Some(refuse(400, why)),
    };
    let row = match ensure_channels(service, &session.app, &[channel.as_str()]).await {
        Ok(mut rows) => rows.remove(0),
        Err(error) => {
            tracing::warn!(?error, "pusher subscribe: the channel could not be created");
            return Some(refuse(503, "the server cannot subscribe now; retry".into()));
        }
    };
    let key = ChannelKey::new(&session.app.account_id, &channel);
    let presence = match member {
        Some(member) => match join(service, connection, &key, member).await {
            Ok(presence) => {
                session.presence_user.insert(channel.clone(), presence.1);
                Some(presence.0)
            }
            Err(refusal) => return Some(refuse(refusal.0, refusal.1)),
        },
        None => None,
    };
    let succeeded = ServerEvent::SubscriptionSucceeded { channel: channel.clone(), presence };
    if ChannelKind::is_cache(&channel) {
        return subscribe_cache(service, connection, &row, succeeded).await;
    }
    let reply = Utf8Bytes::from(succeeded.to_json());
    // The hub queues the reply ahead of the channel's events. (The socket is not
    // subscribed yet: its frames are handled one at a time.)
    service.hub.subscribe(connection, &channel, &row.position(), |_| reply);
    None
}

/// Reads the session's app again before a signature is checked: its secret may have
/// been rotated since the socket was admitted (a signature made with the old one is then
/// refused at once, whichever node rotated it), or the app deleted.
pub(super) async fn refresh_app(service: &Service, session: &mut Session) -> Result<(), (u16, String)> {
    match service.store.app(session.app.app_id).await {
        Ok(Some(app)) => {
            session.app = app;
            Ok(())
        }
        Ok(None) => Err((404, "the app was deleted".into())),
        Err(error) => {
            tracing::warn!(%error, "pusher: the app could not be read");
            Err((503, "the server cannot check signatures now; retry".into()))
        }
    }
}

/// Subscribes to the socket's own user channel, `#server-to-user-{id}`, which carries
/// what is sent to the user it signed in as; any other user's is refused.
async fn subscribe_user(
    service: &Service,
    connection: &Arc<Connection>,
    channel: &str,
    user_id: &str,
) -> Option<ServerEvent> {
    let signed_in = match &connection.protocol {
        Protocol::Pusher(socket) => socket.user.lock().expect("user lock").clone(),
        Protocol::Native => None,
    };
    if !users::may_subscribe(signed_in.as_deref(), user_id) {
        return Some(ServerEvent::SubscriptionError {
            channel: channel.to_owned(),
            error: format!("only a socket signed in as {user_id:?} may subscribe to {channel}"),
            status: 403,
        });
    }
    let succeeded = ServerEvent::SubscriptionSucceeded { channel: channel.to_owned(), presence: None };
    if connection.is_subscribed(channel) {
        return Some(succeeded);
    }
    // Nothing sent to the channel is stored for a late catch-up, so the node must hear the
    // channel before the client is told it is subscribed: reading its (empty) member list
    // opens the broker's route to this node first, as for a presence channel.
    let key = ChannelKey::new(&connection.account_id, channel);
    if let Err(error) = service.broker.members(&key).await {
        tracing::warn!(%error, "pusher subscribe: the user channel cannot be heard");
        return Some(ServerEvent::SubscriptionError {
            channel: channel.to_owned(),
            error: "the server cannot subscribe now; retry".into(),
            status: 503,
        });
    }
    let reply = Utf8Bytes::from(succeeded.to_json());
    // The channel has no stream: its events carry no position.
    let start = realtime_types::Position { epoch: String::new(), offset: 0 };
    service.hub.subscribe(connection, channel, &start, |_| reply);
    None
}

/// Subscribes to a cache channel: after `subscription_succeeded` comes the channel's last
/// event (the newest stored message, if younger than the cache's lifetime) or
/// `pusher:cache_miss`. The hub holds what the channel delivers meanwhile and hands over
/// only what follows that event, so nothing arrives twice or out of order.
async fn subscribe_cache(
    service: &Service,
    connection: &Arc<Connection>,
    row: &ChannelRow,
    succeeded: ServerEvent,
) -> Option<ServerEvent> {
    let start = service.hub.subscribe_recovering(connection, &row.name, &row.position())?;
    let last = last_cached(service, &row.account_id, &row.name).await;
    let caught_up = last.as_ref().map_or(start.offset, |message| message.offset.max(start.offset));
    let cached = match last {
        Some(message) => ServerEvent::Event {
            channel: row.name.clone(),
            event: message.event,
            data: data_text(&serde_json::from_str(&message.data).unwrap_or(Value::Null)),
            user_id: None,
        },
        None => {
            let key = ChannelKey::new(&row.account_id, &row.name);
            service.hub.lifecycle.notify(Lifecycle::CacheMiss { key });
            ServerEvent::CacheMiss { channel: row.name.clone() }
        }
    };
    for event in [succeeded, cached] {
        if !connection.send_waiting(Utf8Bytes::from(event.to_json())).await {
            return None;
        }
    }
    service.hub.finish_recovery(connection, &row.name, Vec::new(), caught_up);
    None
}

/// The member list of `subscription_succeeded`.
fn presence_data(members: Vec<PresenceMember>) -> PresenceData {
    let mut presence = PresenceData::default();
    for member in members {
        presence.hash.insert(member.client_id.clone(), member.user_info.unwrap_or(Value::Null));
        presence.ids.push(member.client_id);
    }
    presence.count = presence.ids.len();
    presence
}

/// Joins the presence of a channel as the member `channel_data` names (refused when the
/// channel is full); returns the members, this one included, and its user id.
async fn join(
    service: &Service,
    connection: &Connection,
    key: &ChannelKey,
    data: ChannelData,
) -> Result<(PresenceData, String), (u16, String)> {
    let unavailable = |error: crate::broker::BrokerError| {
        tracing::warn!(%error, "pusher subscribe: presence unavailable");
        (503, "presence is unavailable; retry".to_owned())
    };
    let members = service.broker.members(key).await.map_err(unavailable)?;
    let already = members.iter().any(|member| member.client_id == data.user_id);
    if !already && members.len() >= PRESENCE_MAX_MEMBERS {
        return Err((403, format!("the channel has its maximum of {PRESENCE_MAX_MEMBERS} members")));
    }
    let user_id = data.user_id.clone();
    let member =
        PresenceMember { client_id: data.user_id.clone(), user_id: Some(data.user_id), user_info: data.user_info };
    join_as(service.broker.as_ref(), connection, &key.channel, member).await.map_err(unavailable)?;
    let members = service.broker.members(key).await.map_err(unavailable)?;
    Ok((presence_data(members), user_id))
}
