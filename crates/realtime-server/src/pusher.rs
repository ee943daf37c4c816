//! The Pusher-compatible face of the server: Pusher Channels' HTTP API
//! (`/apps/{app_id}/…`, [`http`]) and its WebSocket protocol 7 (`/app/{key}`,
//! [`socket`]), so that pusher-js and the Pusher server libraries work unchanged.
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
pub mod http;
pub mod signing;
pub mod socket;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use chrono::Utc;
use realtime_api::ApiError;
use realtime_types::ChannelType;
use realtime_types::pusher::ChannelKind;

use crate::service::{Service, new_id};
use crate::store::{AppRow, ChannelRow};

/// Both halves of the face.
pub fn router(service: Arc<Service>) -> Router {
    http::router(service.clone()).merge(socket::router(service))
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
