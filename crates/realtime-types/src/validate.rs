//! The documented limits, applied to request bodies.
//!
//! The router calls [`Validate::validate`] before any implementation sees a request, so
//! every implementation of the API enforces the same rules, and a backend never repeats
//! them.

use crate::limits::*;
use crate::problem::FieldError;
use crate::{
    AuthSignRequest, ChannelCreateRequest, ChannelListQuery, PublishBatchRequest, PublishRequest, TokenIssueRequest,
    TokenRevokeRequest, TopupRequest, UserDisconnectRequest,
};

/// Why a request was refused before it reached the implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// One or more values break the schema: 422 `VALIDATION_ERROR`.
    Invalid(Vec<FieldError>),
    /// A payload is larger than allowed: 413 `PAYLOAD_TOO_LARGE`.
    TooLarge(FieldError),
}

/// A request that can check itself against the documented limits.
pub trait Validate {
    /// `Ok` when every limit holds.
    fn validate(&self) -> Result<(), Rejection>;
}

/// Collects field errors and turns them into a [`Rejection`].
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
    too_large: Option<FieldError>,
}

impl Checker {
    fn error(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.errors.push(FieldError::new(pointer, detail));
    }

    fn finish(self) -> Result<(), Rejection> {
        if let Some(error) = self.too_large {
            return Err(Rejection::TooLarge(error));
        }
        if self.errors.is_empty() { Ok(()) } else { Err(Rejection::Invalid(self.errors)) }
    }

    fn channel_name(&mut self, pointer: &str, name: &str) {
        if let Err(detail) = check_channel_name(name) {
            self.error(pointer, detail);
        }
    }

    fn event_name(&mut self, pointer: &str, name: &str) {
        if let Err(detail) = check_event_name(name) {
            self.error(pointer, detail);
        }
    }

    fn client_id(&mut self, pointer: &str, id: &str) {
        if let Err(detail) = check_client_id(id) {
            self.error(pointer, detail);
        }
    }

    fn idempotency_key(&mut self, key: Option<&str>) {
        if let Some(Err(detail)) = key.map(check_idempotency_key) {
            self.error("/idempotency_key", detail);
        }
    }

    fn data(&mut self, pointer: &str, data: &serde_json::Value) {
        let size = serde_json::to_vec(data).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
        if size > DATA_MAX_BYTES && self.too_large.is_none() {
            self.too_large = Some(FieldError::new(
                pointer,
                format!("is {size} bytes as JSON; at most {DATA_MAX_BYTES} are allowed"),
            ));
        }
    }

    fn ttl(&mut self, pointer: &str, ttl: Option<u32>) {
        if ttl == Some(0) {
            self.error(pointer, "must be at least 1");
        }
    }

    fn capabilities(&mut self, pointer: &str, capabilities: Option<&[crate::Capability]>) {
        if capabilities.is_some_and(|c| c.len() > crate::Capability::ALL.len()) {
            // Repeats are allowed (the grant keeps each once); the list is as long as the set.
            self.error(pointer, format!("must list at most {} capabilities", crate::Capability::ALL.len()));
        }
    }
}

/// Checks a channel name against the length and charset limits.
pub fn check_channel_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > CHANNEL_NAME_MAX_LEN {
        return Err(format!("must be at most {CHANNEL_NAME_MAX_LEN} bytes"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c);
    if !name.chars().all(allowed) {
        return Err("may only contain A-Z a-z 0-9 _ - = @ , . ;".into());
    }
    Ok(())
}

/// Checks an event name against the length, charset and reserved-prefix limits.
pub fn check_event_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > EVENT_NAME_MAX_LEN {
        return Err(format!("must be at most {EVENT_NAME_MAX_LEN} bytes"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
    if !name.chars().all(allowed) {
        return Err("may only contain A-Z a-z 0-9 _ - . :".into());
    }
    if let Some(prefix) = RESERVED_EVENT_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(format!("must not start with the reserved prefix {prefix:?}"));
    }
    Ok(())
}

/// Checks a client id or user id.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > CLIENT_ID_MAX_LEN {
        return Err(format!("must be at most {CLIENT_ID_MAX_LEN} bytes"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:@|".contains(c);
    if !id.chars().all(allowed) {
        return Err("may only contain A-Z a-z 0-9 _ - . : @ |".into());
    }
    Ok(())
}

/// Checks an idempotency key: 1-255 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN {
        return Err(format!("must be 1-{IDEMPOTENCY_KEY_MAX_LEN} characters"));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err("may only contain visible ASCII characters".into());
    }
    Ok(())
}

/// Checks the form of a `channel.list` cursor (unpadded base64url, at most 512
/// characters); see [`CURSOR_PATTERN`].
pub fn check_cursor(cursor: &str) -> Result<(), String> {
    let base64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if cursor.len() > CURSOR_MAX_LEN || !cursor.chars().all(base64url) || cursor.len() % 4 == 1 {
        return Err("is not a cursor returned by channel.list".into());
    }
    Ok(())
}

impl Validate for TokenIssueRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        if let Some(id) = &self.user_id {
            check.client_id("/user_id", id);
        }
        if let Some(id) = &self.client_id {
            check.client_id("/client_id", id);
        }
        if let Some(channels) = &self.channels {
            if channels.len() > TOKEN_MAX_CHANNELS {
                check.error("/channels", format!("must name at most {TOKEN_MAX_CHANNELS} channels"));
            }
            for (index, channel) in channels.iter().enumerate() {
                check.channel_name(&format!("/channels/{index}"), channel);
            }
        }
        check.capabilities("/capabilities", self.capabilities.as_deref());
        check.ttl("/ttl_seconds", self.ttl_seconds);
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for TokenRevokeRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        // Characters, as the document's maxLength counts them (a token is ASCII anyway).
        if self.token_or_jti.is_empty() || self.token_or_jti.chars().count() > TOKEN_MAX_LEN {
            check.error("/token_or_jti", format!("must be 1-{TOKEN_MAX_LEN} characters"));
        }
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for ChannelCreateRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        check.channel_name("/name", &self.name);
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for ChannelListQuery {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        if self.limit.is_some_and(|limit| limit == 0 || limit > PAGE_MAX_LIMIT) {
            check.error("/limit", format!("must be 1-{PAGE_MAX_LIMIT}"));
        }
        if let Some(Err(detail)) = self.cursor.as_deref().map(check_cursor) {
            check.error("/cursor", detail);
        }
        check.finish()
    }
}

impl Validate for crate::HistoryQuery {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        if self.limit.is_some_and(|limit| limit == 0 || limit > HISTORY_MAX_LIMIT) {
            check.error("/limit", format!("must be 1-{HISTORY_MAX_LIMIT}"));
        }
        // Offsets are stored as signed 64-bit integers, as the document's int64 says.
        if self.since.is_some_and(|since| since > i64::MAX as u64) {
            check.error("/since", format!("must be 0-{}", i64::MAX));
        }
        check.finish()
    }
}

impl Validate for PublishRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        check.channel_name("/channel", &self.channel);
        check.event_name("/event", &self.event);
        check.data("/data", &self.data);
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for PublishBatchRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        if self.messages.is_empty() {
            check.error("/messages", "must contain at least one message");
        }
        if self.messages.len() > BATCH_MAX_MESSAGES {
            check.error("/messages", format!("must contain at most {BATCH_MAX_MESSAGES} messages"));
        }
        for (index, message) in self.messages.iter().enumerate() {
            check.channel_name(&format!("/messages/{index}/channel"), &message.channel);
            check.event_name(&format!("/messages/{index}/event"), &message.event);
            check.data(&format!("/messages/{index}/data"), &message.data);
        }
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for AuthSignRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        check.client_id("/client_id", &self.client_id);
        if self.channels.is_empty() {
            check.error("/channels", "must name at least one channel");
        }
        if self.channels.len() > TOKEN_MAX_CHANNELS {
            check.error("/channels", format!("must name at most {TOKEN_MAX_CHANNELS} channels"));
        }
        for (index, channel) in self.channels.iter().enumerate() {
            check.channel_name(&format!("/channels/{index}"), channel);
        }
        check.capabilities("/capabilities", self.capabilities.as_deref());
        check.ttl("/ttl_seconds", self.ttl_seconds);
        if let Some(socket_id) = &self.socket_id {
            let valid = socket_id.len() <= 64
                && socket_id.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty() && !b.is_empty() && (a.to_owned() + b).chars().all(|c| c.is_ascii_digit())
                });
            if !valid {
                check.error("/socket_id", "must look like 1234.5678");
            }
        }
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for UserDisconnectRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        check.client_id("/client_id", &self.client_id);
        if let Some(channel) = &self.channel {
            check.channel_name("/channel", channel);
        }
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for crate::UserMessageSendRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        check.client_id("/target_user_id", &self.target_user_id);
        check.data("/payload", &self.payload);
        if let Some(sender) = &self.sender_id {
            check.client_id("/sender_id", sender);
        }
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for crate::UserCommandSendRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        check.client_id("/target_user_id", &self.target_user_id);
        // Characters, as the document's maxLength counts them: the type has no charset.
        if self.command_type.is_empty() || self.command_type.chars().count() > EVENT_NAME_MAX_LEN {
            check.error("/type", format!("must be 1-{EVENT_NAME_MAX_LEN} characters"));
        }
        check.data("/data", &self.data);
        if let Some(sender) = &self.sender_id {
            check.client_id("/sender_id", sender);
        }
        if self.timeout.is_some_and(|timeout| timeout == 0 || timeout > COMMAND_MAX_TIMEOUT_SECONDS) {
            check.error("/timeout", format!("must be 1-{COMMAND_MAX_TIMEOUT_SECONDS} seconds"));
        }
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

impl Validate for TopupRequest {
    fn validate(&self) -> Result<(), Rejection> {
        let mut check = Checker::default();
        if !(TOPUP_MIN_MICROS..=TOPUP_MAX_MICROS).contains(&self.amount) {
            check.error("/amount", format!("must be {TOPUP_MIN_MICROS}-{TOPUP_MAX_MICROS} micro-USD"));
        }
        check.idempotency_key(self.idempotency_key.as_deref());
        check.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_name_accepts_the_limit_and_refuses_one_more_byte() {
        assert!(check_channel_name(&"a".repeat(CHANNEL_NAME_MAX_LEN)).is_ok());
        assert!(check_channel_name(&"a".repeat(CHANNEL_NAME_MAX_LEN + 1)).is_err());
        assert!(check_channel_name("room 42").is_err());
        assert!(check_channel_name("private-room-42;x=1@a,b.c").is_ok());
    }

    #[test]
    fn event_names_with_reserved_prefixes_are_refused() {
        assert!(check_event_name("pusher:subscribe").is_err());
        assert!(check_event_name("realtime:x").is_err());
        assert!(check_event_name("order.created").is_ok());
        assert!(check_event_name(&"e".repeat(EVENT_NAME_MAX_LEN + 1)).is_err());
    }

    #[test]
    fn data_one_byte_past_the_limit_is_too_large() {
        // A JSON string of n characters takes n + 2 bytes.
        let at_limit = serde_json::Value::String("x".repeat(DATA_MAX_BYTES - 2));
        let past_limit = serde_json::Value::String("x".repeat(DATA_MAX_BYTES - 1));
        let publish = |data| PublishRequest { channel: "c".into(), event: "e".into(), data, idempotency_key: None };
        assert_eq!(publish(at_limit).validate(), Ok(()));
        assert!(matches!(publish(past_limit).validate(), Err(Rejection::TooLarge(_))));
    }

    #[test]
    fn batch_points_at_the_offending_message() {
        let message = |channel: &str| crate::BatchMessage {
            channel: channel.into(),
            event: "e".into(),
            data: serde_json::json!(1),
        };
        let batch = PublishBatchRequest { messages: vec![message("ok"), message("not ok")], idempotency_key: None };
        let Err(Rejection::Invalid(errors)) = batch.validate() else { panic!("the batch should be invalid") };
        assert_eq!(errors[0].pointer, "/messages/1/channel");
    }
}
