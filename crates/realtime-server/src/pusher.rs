//! The Pusher-compatible face of the server: Pusher Channels' HTTP API
//! (`/apps/{app_id}/…`, [`http`]) and its protocol 7, over a WebSocket (`/app/{key}`,
//! [`socket`]) or over pusher-js's HTTP fallback transports, `xhr_streaming` and
//! `xhr_polling` (`/pusher/app/{key}/…`, [`fallback`]), so that pusher-js and the Pusher
//! server libraries work unchanged.
//!
//! It is a second face of the same server, not a second server. A Pusher app belongs to
//! an account ([`apps`]); its channels are the account's channels, created on first use
//! and typed by their `private-` or `presence-` prefix, as Pusher does. A trigger is a
//! publish through [`Service::publish_messages`], so it is metered, recorded and ordered
//! like a native publish, and one publish reaches the subscribers of both protocols,
//! each in its own encoding. Presence is the broker's, shared by both faces: a Pusher
//! member is the member whose client id is its `user_id`.
//!
//! Signatures are checked in [`signing`], over exactly the bytes received.

pub mod apps;
pub mod counts;
pub mod fallback;
pub mod http;
pub mod signing;
pub mod socket;
pub mod users;
pub mod watchlist;
pub mod webhooks;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::Utf8Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;
use realtime_api::ApiError;
use realtime_types::pusher::{CACHE_TTL_SECONDS, ChannelKind, CloseCode, PROTOCOL_MIN_VERSION, PROTOCOL_VERSION};
use realtime_types::{ChannelType, Direction};

use crate::service::{Service, new_id};
use crate::store::{AppRow, ChannelRow, MessageRow};

/// The whole face: the HTTP API and protocol 7 over each of its transports.
pub fn router(service: Arc<Service>) -> Router {
    http::router(service.clone()).merge(socket::router(service.clone())).merge(fallback::router(service))
}

/// A frame from the client, as a transport read it.
#[derive(Debug)]
pub enum Incoming {
    /// A protocol 7 message.
    Text(Utf8Bytes),
    /// Proof of life without a message (a WebSocket ping, an HTTP heartbeat).
    Heartbeat,
    /// The client closed the connection itself: it is answered and sent nothing else.
    Closed,
    /// A frame that cannot be a protocol 7 message; the session closes with 4009.
    Unreadable(&'static str),
}

/// The client went away, or its transport failed.
#[derive(Debug)]
pub struct Gone;

/// Where a protocol 7 session ([`socket::run`]) reads the client's frames.
pub trait Inlet: Send {
    /// The next frame; `None` when the client is gone.
    fn next(&mut self) -> impl Future<Output = Option<Incoming>> + Send;
}

/// Where a protocol 7 session writes its frames. A WebSocket writes them as they come;
/// the HTTP transports hold them until the client's next request reads them.
pub trait Outlet: Send {
    /// Adds a frame to the next write.
    fn feed(&mut self, frame: Utf8Bytes) -> impl Future<Output = Result<(), Gone>> + Send;
    /// Writes what was fed.
    fn flush(&mut self) -> impl Future<Output = Result<(), Gone>> + Send;
    /// What the transport must do while there is nothing to write (the HTTP transports'
    /// heartbeats, expiry, and answering a poll that waited long enough); resolves when
    /// the client is gone. Cancel-safe: the session calls it again after each write.
    fn idle(&mut self) -> impl Future<Output = Gone> + Send;
    /// The last frames: `pusher:error` and the close `code`, or, when `None`, the answer
    /// to the client's own close.
    fn close(&mut self, code: Option<(CloseCode, &str)>) -> impl Future<Output = ()> + Send;
}

/// The protocol version a client asked for, or why it cannot be served.
fn check_version(protocol: Option<&String>) -> Result<(), (CloseCode, &'static str)> {
    let Some(protocol) = protocol else {
        return Err((CloseCode::NoProtocolVersion, "no protocol version given: connect with ?protocol=7"));
    };
    let Ok(version) = protocol.parse::<u32>() else {
        return Err((CloseCode::InvalidVersion, "the protocol version is not a number"));
    };
    if !(PROTOCOL_MIN_VERSION..=PROTOCOL_VERSION).contains(&version) {
        return Err((CloseCode::UnsupportedProtocolVersion, "unsupported protocol version: this server speaks 7"));
    }
    Ok(())
}

/// Whether a session may start.
#[derive(Debug)]
pub enum Admission {
    /// It may, as a session of this app.
    Admitted(AppRow),
    /// Not from this page's origin: refused with this HTTP answer, before any session.
    Forbidden(Response),
    /// It is closed at once with this code, as protocol 7 says (an unknown key, a wrong
    /// protocol version).
    Refused(CloseCode, &'static str),
}

/// Whether a session may start: the page's origin, the protocol version and the app key,
/// checked alike for every transport.
pub async fn admit(service: &Service, key: &str, params: &HashMap<String, String>, headers: &HeaderMap) -> Admission {
    // The same origin rule as the native gateway.
    if let Some(origin) = headers.get(axum::http::header::ORIGIN)
        && !origin.to_str().is_ok_and(|origin| service.config.gateway.allowed_origins.allows(origin))
    {
        let refusal = realtime_api::ApiError::forbidden("this page's origin may not open sockets on this server");
        return Admission::Forbidden(axum::response::IntoResponse::into_response(refusal));
    }
    if let Err((code, reason)) = check_version(params.get("protocol")) {
        return Admission::Refused(code, reason);
    }
    match service.store.app_by_key(key).await {
        Ok(Some(app)) => Admission::Admitted(app),
        Ok(None) => Admission::Refused(CloseCode::AppDoesNotExist, "no app has this key"),
        Err(error) => {
            tracing::warn!(%error, "pusher connect: store unavailable");
            Admission::Refused(CloseCode::OverCapacity, "the server cannot look up the app now; retry later")
        }
    }
}

/// The type a channel created by the Pusher face gets, from its name.
pub fn channel_type(name: &str) -> ChannelType {
    match ChannelKind::of(name) {
        ChannelKind::Public => ChannelType::Public,
        ChannelKind::Private | ChannelKind::Encrypted => ChannelType::Private,
        ChannelKind::Presence => ChannelType::Presence,
    }
}

/// The app's channels named `names`, created (free, typed by their prefix) when they do
/// not exist yet, in the order of `names`.
pub async fn ensure_channels(service: &Service, app: &AppRow, names: &[&str]) -> Result<Vec<ChannelRow>, ApiError> {
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let existing = service.store.channel(&app.account_id, name).await.map_err(|e| service.store_error(e))?;
        let row = match existing {
            Some(row) => row,
            None => {
                let row = ChannelRow {
                    channel_id: new_id("ch"),
                    account_id: app.account_id.clone(),
                    name: (*name).to_owned(),
                    channel_type: channel_type(name),
                    created_at: Utc::now(),
                    last_published_at: None,
                    last_offset: 0,
                };
                // Pusher creates channels implicitly and for free; a racing creator's
                // row is returned as it is.
                service.store.create_channel(&row, 0, None).await.map_err(|e| service.store_error(e))?.0
            }
        };
        rows.push(row);
    }
    Ok(rows)
}

/// A cache channel's last event, while it is younger than the cache's lifetime: the newest
/// message of its stream (the store keeps it). `None` when there is none, or the store
/// cannot be read (logged: a subscriber then gets a cache miss).
pub async fn last_cached(service: &Service, account_id: &str, channel: &str) -> Option<MessageRow> {
    let last = match service.store.history(account_id, channel, None, 1, Direction::Backward).await {
        Ok(mut last) => last.pop(),
        Err(error) => {
            tracing::warn!(%error, "pusher cache channel: the last event could not be read");
            None
        }
    };
    let lifetime = chrono::Duration::seconds(CACHE_TTL_SECONDS);
    last.filter(|message| Utc::now() - message.published_at <= lifetime)
}
