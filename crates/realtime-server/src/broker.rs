//! The broker: how events and live state cross nodes.
//!
//! One node uses [`memory::MemoryBroker`], which loops every event straight back into
//! this node's [`Hub`]. Several nodes share a Redis broker. Either way the gateway and the
//! REST side only see the [`Broker`] trait, and every event is applied to a node's hub by
//! the one function [`apply`].

pub mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use realtime_types::PresenceMember;
use realtime_types::ws::{CloseCode, UnsubscribeReason};

use crate::gateway::hub::{ChannelKey, Hub};

/// Something every node must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    /// A serialised frame for every subscriber of a channel (messages, presence events).
    Frame {
        /// The channel.
        key: ChannelKey,
        /// The JSON text of the frame, serialised once by the publisher.
        frame: Utf8Bytes,
    },
    /// A channel was deleted: unsubscribe everyone, telling them why.
    ChannelDeleted {
        /// The channel.
        key: ChannelKey,
    },
    /// A token was revoked: close its sockets with 4003.
    TokenRevoked {
        /// The token id.
        jti: String,
    },
    /// `user.disconnect`: close the client's sockets with 4004, or only unsubscribe them
    /// from `channel`.
    ClientDisconnected {
        /// The account.
        account_id: String,
        /// The client.
        client_id: String,
        /// Only this channel, when set.
        channel: Option<String>,
    },
}

/// A broker failure; requests that need the broker answer 503 `UNAVAILABLE`.
#[derive(Debug, thiserror::Error)]
#[error("broker unavailable: {0}")]
pub struct BrokerError(pub String);

/// How events and presence cross nodes.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Hands `event` to every node, this one included, and returns how many local and
    /// remote sockets it acted on (for remote nodes: as known when it was sent).
    /// Ordering: the events one node publishes for one channel reach every node in that
    /// order. Delivery is at-most-once: a node that is down misses them.
    async fn publish(&self, event: ClusterEvent) -> Result<u32, BrokerError>;
    /// Counts one more socket of `member` on the channel; true when it is the member's
    /// first socket on any node (a join).
    async fn join(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError>;
    /// Counts one socket of `member` less; true when it was the member's last (a leave).
    async fn leave(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError>;
    /// The members present on the channel on every live node, ordered by client id.
    async fn members(&self, key: &ChannelKey) -> Result<Vec<PresenceMember>, BrokerError>;
    /// Sockets subscribed to the channel on every live node.
    async fn subscriber_count(&self, key: &ChannelKey) -> Result<u32, BrokerError>;
    /// Whether the broker's engine answers.
    async fn ping(&self) -> Result<(), BrokerError>;
}

/// Applies an event to this node's hub; returns how many local sockets it acted on.
/// Presence leaves caused by the event are published through `broker`.
pub async fn apply(hub: &Hub, broker: &Arc<dyn Broker>, event: ClusterEvent) -> u32 {
    match event {
        ClusterEvent::Frame { key, frame } => hub.deliver(&key, &frame),
        ClusterEvent::ChannelDeleted { key } => {
            let dropped = hub.drop_channel(&key);
            for connection in &dropped {
                crate::gateway::presence::leave(broker, connection, &key.channel).await;
            }
            dropped.len() as u32
        }
        ClusterEvent::TokenRevoked { jti } => hub.close_token(&jti, CloseCode::TokenRevoked, "the token was revoked"),
        ClusterEvent::ClientDisconnected { account_id, client_id, channel: None } => {
            hub.close_client(&account_id, &client_id, CloseCode::DisconnectedByServer, "disconnected by the server")
        }
        ClusterEvent::ClientDisconnected { account_id, client_id, channel: Some(channel) } => {
            let key = ChannelKey::new(account_id, channel);
            let acted = hub.unsubscribe_client(&key, &client_id, UnsubscribeReason::DisconnectedByServer);
            for connection in &acted {
                crate::gateway::presence::leave(broker, connection, &key.channel).await;
            }
            acted.len() as u32
        }
    }
}
