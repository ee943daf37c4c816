//! The frames stored rows are delivered as: a channel's message when a subscriber
//! recovers or a route catches up, a user's reliable message when it is redelivered.

use realtime_types::Delivery;
use realtime_types::ws::ServerFrame;

use super::{ChannelRow, MessageRow, UserMessageRow};

impl MessageRow {
    /// The message of `channel` as the frame it was published as.
    pub fn frame(self, channel: &ChannelRow) -> ServerFrame {
        ServerFrame::Message {
            channel: self.channel,
            message_id: self.message_id,
            epoch: channel.channel_id.clone(),
            offset: self.offset,
            event: self.event,
            data: serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null),
            published_at: self.published_at,
        }
    }
}

impl UserMessageRow {
    /// The reliable message as the frame it is delivered as.
    pub fn frame(&self) -> ServerFrame {
        ServerFrame::UserMessage {
            message_id: self.message_id.clone(),
            delivery: Delivery::Reliable,
            payload: serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null),
            sender_type: self.sender_type,
            sender_id: self.sender_id.clone(),
            sent_at: self.sent_at,
            sequence: Some(self.seq),
            delivery_count: Some(self.delivery_count),
        }
    }
}
