//! Joining and leaving a presence channel, and telling its subscribers.

use std::sync::Arc;

use realtime_types::ws::ServerFrame;

use super::hub::{ChannelKey, Connection, encode};
use crate::broker::{Broker, BrokerError, ClusterEvent};

/// Counts `connection` in `channel`'s presence; the member's first socket (on any node)
/// announces `presence.join` to the channel's subscribers.
pub async fn join(broker: &Arc<dyn Broker>, connection: &Connection, channel: &str) -> Result<(), BrokerError> {
    if !connection.mark_present(channel) {
        return Ok(());
    }
    let key = ChannelKey::new(&connection.account_id, channel);
    let member = connection.member();
    let first = match broker.join(&key, &member).await {
        Ok(first) => first,
        Err(error) => {
            // Not counted: a later subscribe must try again.
            connection.take_present(channel);
            return Err(error);
        }
    };
    if first {
        let frame = encode(&ServerFrame::PresenceJoin { channel: channel.to_owned(), member });
        broker.publish(ClusterEvent::Frame { key, frame }).await?;
    }
    Ok(())
}

/// Stops counting `connection` in `channel`'s presence; the member's last socket
/// announces `presence.leave`. Failures are logged: a leave must never fail a close.
pub async fn leave(broker: &Arc<dyn Broker>, connection: &Connection, channel: &str) {
    if !connection.take_present(channel) {
        return;
    }
    let key = ChannelKey::new(&connection.account_id, channel);
    let member = connection.member();
    let result = async {
        if broker.leave(&key, &member).await? {
            let frame = encode(&ServerFrame::PresenceLeave { channel: channel.to_owned(), member });
            broker.publish(ClusterEvent::Frame { key, frame }).await?;
        }
        Ok::<_, BrokerError>(())
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, channel, "presence leave not recorded");
    }
}

/// Every way `connection` counts in presence ends (the socket closed).
pub async fn leave_all(broker: &Arc<dyn Broker>, connection: &Arc<Connection>) {
    for channel in connection.present_channels() {
        leave(broker, connection, &channel).await;
    }
}
