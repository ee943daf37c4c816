//! Events sent to a user (`sendToUser`): a trigger to `#server-to-user-{user_id}`, as the
//! server libraries send it, or `POST /apps/{app_id}/users/{user_id}/events`. Every socket
//! signed in as the user (`pusher:signin`) subscribes to that channel, and only those
//! may ([`may_subscribe`]); pusher-js does so right after its sign-in.
//!
//! The channel is not one of the account's channels: it has no store row and no history,
//! and an event sent to it is not recorded, as Pusher keeps none (fire and forget). It is
//! charged like a trigger, then handed to every node through the broker as a frame of the
//! channel, so it reaches the user's sockets wherever they are connected.

use realtime_api::ApiError;
use realtime_types::pusher::SERVER_TO_USER_PREFIX;
use realtime_types::ws::ServerFrame;

use crate::broker::ClusterEvent;
use crate::hub::{ChannelKey, Frames};
use crate::service::{Outgoing, Service, new_id, price_of};
use crate::store::AppRow;

/// Whether a socket signed in as `signed_in` may subscribe to the user channel of
/// `user_id`: only to its own.
pub fn may_subscribe(signed_in: Option<&str>, user_id: &str) -> bool {
    signed_in == Some(user_id)
}

/// Sends events to users' channels (each [`Outgoing::channel`] is a
/// `#server-to-user-…` channel): charged like as many trigger events, then delivered to
/// the sockets signed in as each user, on every node. Nothing is recorded.
pub async fn send(service: &Service, app: &AppRow, events: Vec<Outgoing>) -> Result<(), ApiError> {
    if events.is_empty() {
        return Ok(());
    }
    debug_assert!(events.iter().all(|event| event.channel.starts_with(SERVER_TO_USER_PREFIX)));
    let price = price_of(service.config.prices.publish, events.len())?;
    service.require_broker().await?;
    service
        .store
        .charge(&app.account_id, price, None)
        .await
        .map_err(|error| service.charge_error("sending to a user", error))?;
    service.charged(price);
    let now = chrono::Utc::now();
    for event in events {
        // Only Pusher sockets subscribe to a `#` channel; the native encoding is what the
        // console's viewers see of it.
        let frame = ServerFrame::Message {
            channel: event.channel.clone(),
            message_id: new_id("msg"),
            epoch: String::new(),
            offset: 0,
            event: event.event,
            data: event.data,
            published_at: now,
        };
        let frames = Frames::of(&frame, None, event.except.as_deref());
        let key = ChannelKey::new(&app.account_id, &event.channel);
        let delivered = service.announce(ClusterEvent::Frame { key, frame: frames, position: None }).await;
        service.metrics.frames_delivered.inc_by(u64::from(delivered));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_signed_in_user_may_subscribe_to_its_channel() {
        assert!(may_subscribe(Some("u1"), "u1"));
        assert!(!may_subscribe(Some("u2"), "u1"));
        assert!(!may_subscribe(None, "u1"));
    }
}
