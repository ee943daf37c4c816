//! The Pusher-compatible face: the wire formats of Pusher Channels' HTTP API and of its
//! WebSocket protocol 7, as the official libraries (pusher-js, the `pusher` server
//! packages) send and expect them. Pusher's documentation is the contract here, so these
//! types are not in this server's OpenAPI document.
//!
//! Two quirks of the protocol shape everything below. Server events carry their `data`
//! as a JSON-encoded *string* (an object encoded twice), except `pusher:error` and the
//! ping and pong, whose data is an object. And clients send `pusher:subscribe` data as
//! an object, whose `channel_data` is a string that a presence signature covers byte for
//! byte, so it is kept exactly as received.

use serde_json::Value;

mod http;
mod protocol;

pub use self::http::*;
pub use self::protocol::*;

/// Largest event `data`, in bytes (413 beyond).
pub const DATA_MAX_BYTES: usize = 10 * 1024;
/// Most channels one trigger names.
pub const TRIGGER_MAX_CHANNELS: usize = 100;
/// Most events in one batch trigger.
pub const BATCH_MAX_EVENTS: usize = 10;
/// Longest event name, in bytes (what the official server libraries enforce).
pub const EVENT_NAME_MAX_LEN: usize = 200;
/// Longest presence `user_id`.
pub const USER_ID_MAX_LEN: usize = 128;
/// Largest presence `user_info`, as JSON, in bytes.
pub const USER_INFO_MAX_BYTES: usize = 1024;
/// Most members of one presence channel.
pub const PRESENCE_MAX_MEMBERS: usize = 100;
/// How far `auth_timestamp` may be from the server's clock, in seconds.
pub const TIMESTAMP_SKEW_SECONDS: i64 = 600;
/// Event name prefixes a server may not trigger: the protocol's own events.
pub const RESERVED_EVENT_PREFIXES: [&str; 2] = ["pusher:", "pusher_internal:"];
/// The prefix of the events clients send each other.
pub const CLIENT_EVENT_PREFIX: &str = "client-";
/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 7;
/// How long a cache channel's last event is given to new subscribers, in seconds.
pub const CACHE_TTL_SECONDS: i64 = 30 * 60;
/// The oldest protocol version it accepts (pusher-js has sent 7 since 2017).
pub const PROTOCOL_MIN_VERSION: u32 = 5;
/// The prefix of a user's channel: `#server-to-user-{user_id}` carries the events sent to
/// the sockets signed in as that user (`sendToUser`).
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";
/// Most user ids a watchlist holds (`pusher:signin`'s `user_data.watchlist`); past them
/// the rest are dropped and the client gets `pusher:error` 4302.
pub const WATCHLIST_MAX_IDS: usize = 100;

/// The user a `#server-to-user-{user_id}` channel is for, if `channel` is one.
pub fn server_to_user(channel: &str) -> Option<&str> {
    channel.strip_prefix(SERVER_TO_USER_PREFIX)
}

/// Checks the user id of a send to user: the characters of a channel name, as the server
/// libraries check, and at most as long as a channel name.
pub fn check_user_id(user_id: &str) -> Result<(), String> {
    crate::validate::check_channel_name(user_id).map_err(|why| format!("invalid user id {user_id:?}: {why}"))
}

/// What a channel's name makes it on the Pusher face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Anyone with the app key may subscribe.
    Public,
    /// `private-`: subscribing needs a signature.
    Private,
    /// `private-encrypted-`: private, and the server relays ciphertext it cannot read.
    Encrypted,
    /// `presence-`: private, and subscribers form a member set.
    Presence,
}

impl ChannelKind {
    /// The kind of the channel `name`.
    pub fn of(name: &str) -> ChannelKind {
        if name.starts_with("private-encrypted-") {
            ChannelKind::Encrypted
        } else if name.starts_with("private-") {
            ChannelKind::Private
        } else if name.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// Whether `name` is a cache channel (`cache-`, `private-cache-`,
    /// `private-encrypted-cache-`, `presence-cache-`), whose last event a new subscriber
    /// gets.
    pub fn is_cache(name: &str) -> bool {
        ["cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
    }

    /// Whether subscribing needs a signature.
    pub fn needs_auth(self) -> bool {
        match self {
            ChannelKind::Public => false,
            ChannelKind::Private | ChannelKind::Encrypted | ChannelKind::Presence => true,
        }
    }
}

/// Checks a channel name: this server's channel names, which are Pusher's (1-164 bytes of
/// `A-Z a-z 0-9 _ - = @ , . ;`); `#` names such as `#server-to-user-` are not channels
/// one may trigger to or subscribe to.
pub fn check_channel_name(name: &str) -> Result<(), String> {
    crate::validate::check_channel_name(name)
}

/// Checks the name of a triggered event.
pub fn check_event_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the event name must not be empty".into());
    }
    if name.len() > EVENT_NAME_MAX_LEN {
        return Err(format!("the event name must be at most {EVENT_NAME_MAX_LEN} bytes"));
    }
    if RESERVED_EVENT_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
        return Err("event names starting with pusher: or pusher_internal: are reserved".into());
    }
    Ok(())
}

/// Checks a socket id: two runs of digits joined by a dot, e.g. `1234.5678`.
pub fn check_socket_id(socket_id: &str) -> Result<(), String> {
    let valid = socket_id.split_once('.').is_some_and(|(left, right)| {
        !left.is_empty()
            && !right.is_empty()
            && left.bytes().all(|b| b.is_ascii_digit())
            && right.bytes().all(|b| b.is_ascii_digit())
    });
    match valid {
        true => Ok(()),
        false => Err(format!("invalid socket id {socket_id:?}: expected digits.digits")),
    }
}

/// The `data` of a triggered event: Pusher sends a string. Other JSON is taken as its
/// JSON text, as lenient servers do.
pub fn data_text(data: &Value) -> String {
    match data {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_events_encode_their_data_twice_except_errors() {
        let established = ServerEvent::ConnectionEstablished { socket_id: "1.2".into(), activity_timeout: 120 };
        assert_eq!(
            established.to_json(),
            r#"{"event":"pusher:connection_established","data":"{\"activity_timeout\":120,\"socket_id\":\"1.2\"}"}"#
        );
        let error = ServerEvent::Error { code: Some(4009), message: "no".into() };
        assert_eq!(error.to_json(), r#"{"event":"pusher:error","data":{"code":4009,"message":"no"}}"#);
        let event = ServerEvent::Event {
            channel: "presence-a".into(),
            event: "client-x".into(),
            data: "{\"a\":1}".into(),
            user_id: Some("u1".into()),
        };
        assert_eq!(event.to_json(), r#"{"event":"client-x","channel":"presence-a","data":"{\"a\":1}","user_id":"u1"}"#);
    }

    #[test]
    fn subscribe_keeps_channel_data_exactly_as_sent() {
        let text = r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"k:s","channel_data":"{\"user_id\": \"u1\"}"}}"#;
        assert_eq!(
            ClientEvent::parse(text).unwrap(),
            ClientEvent::Subscribe {
                channel: "presence-a".into(),
                auth: Some("k:s".into()),
                channel_data: Some("{\"user_id\": \"u1\"}".into()),
            }
        );
    }

    #[test]
    fn channel_data_takes_numeric_user_ids_as_text() {
        let data = ChannelData::parse(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#).unwrap();
        assert_eq!(data.user_id, "10");
        assert!(ChannelData::parse(r#"{"user_info":{}}"#).is_err());
    }

    #[test]
    fn socket_ids_are_two_runs_of_digits() {
        assert!(check_socket_id("1234.5678").is_ok());
        for bad in ["1234", ".5", "1.", "a.b", "1.2.3", ""] {
            assert!(check_socket_id(bad).is_err(), "{bad}");
        }
    }
}
