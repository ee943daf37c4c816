//! How events travel between nodes (the envelope) and the names of the broker's Redis
//! keys and pub/sub channels under one prefix.

use axum::extract::ws::Utf8Bytes;
use realtime_types::Position;
use serde::{Deserialize, Serialize};

use super::ClusterEvent;
use crate::hub::{ChannelKey, Frames, UserKey};

/// An event as it travels between nodes: this header as one JSON line, then, for
/// frames, the frame's JSON text as the publisher serialised it (a frame's Pusher
/// encoding, when it has one, travels in the header).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Envelope {
    /// The publishing node.
    pub(super) from: String,
    /// Set when the publisher waits for each node's count on `P:reply:<from>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) reply: Option<u64>,
    event: WireEvent,
}

/// A [`ClusterEvent`] without its frame text.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    Frame {
        account_id: String,
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<Position>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pusher: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
    },
    ChannelDeleted {
        account_id: String,
        channel: String,
    },
    TokenRevoked {
        jti: String,
    },
    User {
        account_id: String,
        user_id: String,
        counting_only: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command_id: Option<String>,
    },
    CommandAnswered {
        command_id: String,
    },
    ClientDisconnected {
        account_id: String,
        client_id: String,
        channel: Option<String>,
    },
}

fn to_wire(event: &ClusterEvent) -> (WireEvent, Option<&str>) {
    match event {
        ClusterEvent::Frame { key, frame, position } => (
            WireEvent::Frame {
                account_id: key.account_id.clone(),
                channel: key.channel.clone(),
                position: position.clone(),
                pusher: frame.pusher.as_ref().map(|text| text.as_str().to_owned()),
                except: frame.except.as_deref().map(str::to_owned),
            },
            Some(frame.native.as_str()),
        ),
        ClusterEvent::ChannelDeleted { key } => {
            (WireEvent::ChannelDeleted { account_id: key.account_id.clone(), channel: key.channel.clone() }, None)
        }
        ClusterEvent::TokenRevoked { jti } => (WireEvent::TokenRevoked { jti: jti.clone() }, None),
        ClusterEvent::User { user, frame, command_id } => (
            WireEvent::User {
                account_id: user.account_id.clone(),
                user_id: user.user_id.clone(),
                counting_only: frame.is_none(),
                command_id: command_id.clone(),
            },
            frame.as_ref().map(Utf8Bytes::as_str),
        ),
        ClusterEvent::CommandAnswered { command_id, response } => {
            (WireEvent::CommandAnswered { command_id: command_id.clone() }, Some(response.as_str()))
        }
        ClusterEvent::ClientDisconnected { account_id, client_id, channel } => (
            WireEvent::ClientDisconnected {
                account_id: account_id.clone(),
                client_id: client_id.clone(),
                channel: channel.clone(),
            },
            None,
        ),
    }
}

pub(super) fn encode_envelope(from: &str, reply: Option<u64>, event: &ClusterEvent) -> String {
    let (wire, frame) = to_wire(event);
    let header =
        serde_json::to_string(&Envelope { from: from.to_owned(), reply, event: wire }).expect("envelopes serialise");
    format!("{header}\n{}", frame.unwrap_or(""))
}

/// When `payload` was published by `node` (an echo of its own), the id it waits for
/// counts under, if any: read from the envelope's first fields without decoding it.
pub(super) fn own_echo(payload: &str, node: &str) -> Option<Option<u64>> {
    let rest = payload.strip_prefix("{\"from\":\"")?.strip_prefix(node)?.strip_prefix('"')?;
    let reply = rest.strip_prefix(",\"reply\":").and_then(|rest| {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        rest[..digits].parse().ok()
    });
    Some(reply)
}

pub(super) fn decode_envelope(payload: &str) -> Option<(Envelope, ClusterEvent)> {
    let (header, frame) = payload.split_once('\n')?;
    let envelope: Envelope = serde_json::from_str(header).ok()?;
    let event = match &envelope.event {
        WireEvent::Frame { account_id, channel, position, pusher, except } => ClusterEvent::Frame {
            key: ChannelKey::new(account_id, channel),
            frame: Frames {
                native: Utf8Bytes::from(frame.to_owned()),
                pusher: pusher.clone().map(Utf8Bytes::from),
                except: except.as_deref().map(Into::into),
            },
            position: position.clone(),
        },
        WireEvent::ChannelDeleted { account_id, channel } => {
            ClusterEvent::ChannelDeleted { key: ChannelKey::new(account_id, channel) }
        }
        WireEvent::TokenRevoked { jti } => ClusterEvent::TokenRevoked { jti: jti.clone() },
        WireEvent::User { account_id, user_id, counting_only, command_id } => ClusterEvent::User {
            user: UserKey::new(account_id, user_id),
            frame: (!counting_only).then(|| Utf8Bytes::from(frame.to_owned())),
            command_id: command_id.clone(),
        },
        WireEvent::CommandAnswered { command_id } => {
            ClusterEvent::CommandAnswered { command_id: command_id.clone(), response: frame.to_owned() }
        }
        WireEvent::ClientDisconnected { account_id, client_id, channel } => ClusterEvent::ClientDisconnected {
            account_id: account_id.clone(),
            client_id: client_id.clone(),
            channel: channel.clone(),
        },
    };
    Some((envelope, event))
}

/// Key and channel names under one prefix.
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    /// The cluster-wide channel: commands every node must see.
    pub(super) fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }
    /// The pub/sub channel of events for one node only (a command's answer, for the node
    /// waiting for it).
    pub(super) fn inbox(&self, node: &str) -> String {
        format!("{}:to:{node}", self.prefix)
    }
    /// The pub/sub channel of one user's frames, which only nodes holding a connection of
    /// the user listen to.
    pub(super) fn user_route(&self, user: &UserKey) -> String {
        format!("{}:us:{}:{}", self.prefix, user.account_id, user.user_id)
    }
    /// The pub/sub channel of one channel's frames, which only nodes holding a
    /// subscriber of it listen to.
    pub(super) fn route(&self, key: &ChannelKey) -> String {
        format!("{}:ch:{}:{}", self.prefix, key.account_id, key.channel)
    }
    pub(super) fn replies(&self, node: &str) -> String {
        format!("{}:reply:{node}", self.prefix)
    }
    /// Prefix of heartbeat keys; the node id follows.
    pub(super) fn alive(&self) -> String {
        format!("{}:node:", self.prefix)
    }
    pub(super) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub(super) fn owned(&self, node: &str) -> String {
        format!("{}:owned:{node}", self.prefix)
    }
    pub(super) fn presence(&self, key: &ChannelKey) -> String {
        format!("{}:presence:{}:{}", self.prefix, key.account_id, key.channel)
    }
    pub(super) fn subs(&self, key: &ChannelKey) -> String {
        format!("{}:subs:{}:{}", self.prefix, key.account_id, key.channel)
    }
    /// The channel of a presence hash (account ids hold no `:`).
    pub(super) fn channel_of_presence(&self, hash: &str) -> Option<ChannelKey> {
        let rest = hash.strip_prefix(&self.prefix)?.strip_prefix(":presence:")?;
        let (account_id, channel) = rest.split_once(':')?;
        Some(ChannelKey::new(account_id, channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_names_its_node_first_so_an_echo_is_skipped_unread() {
        let event = ClusterEvent::TokenRevoked { jti: "t1".into() };
        let payload = encode_envelope("01NODE", None, &event);
        assert_eq!(own_echo(&payload, "01NODE"), Some(None));
        assert_eq!(own_echo(&payload, "01NOD"), None, "a node whose id is a prefix of another's");
        assert_eq!(own_echo(&payload, "01OTHER"), None);
        let (envelope, decoded) = decode_envelope(&payload).expect("it decodes");
        assert_eq!((envelope.from.as_str(), decoded), ("01NODE", event.clone()));

        let counted = encode_envelope("01NODE", Some(42), &event);
        assert_eq!(own_echo(&counted, "01NODE"), Some(Some(42)), "the id its publisher waits under");
        assert_eq!(decode_envelope(&counted).expect("it decodes").0.reply, Some(42));
    }
}
