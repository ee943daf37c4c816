//! [`Users`]: each user's stream of reliable messages with its ack cursor, and commands
//! waiting for their first response.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_types::SenderType;

use super::{Seal, StoreResult};

/// A reliable message to a user, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMessageRow {
    /// `um_<ulid>`.
    pub message_id: String,
    /// The account.
    pub account_id: String,
    /// The user.
    pub user_id: String,
    /// Its place in the user's stream: assigned by the store when recorded (ignored on
    /// the way in).
    pub seq: u64,
    /// The payload, as JSON text.
    pub payload: String,
    /// Who sent it.
    pub sender_type: SenderType,
    /// Who sent it, when given.
    pub sender_id: Option<String>,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// How many times it was delivered.
    pub delivery_count: u32,
}

/// A command, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    /// `cmd_<ulid>`.
    pub command_id: String,
    /// The account.
    pub account_id: String,
    /// The user.
    pub user_id: String,
    /// The command's type.
    pub command_type: String,
    /// Its data, as JSON text.
    pub data: String,
    /// Who sent it.
    pub sender_type: SenderType,
    /// Who sent it, when given.
    pub sender_id: Option<String>,
    /// The first response, as JSON text.
    pub response: Option<String>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it can no longer be answered.
    pub expires_at: DateTime<Utc>,
}

/// What answering a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerOutcome {
    /// This response is the command's answer.
    Answered,
    /// Another response came first.
    AlreadyAnswered,
    /// It expired before the response.
    Expired,
    /// No such command for this user.
    NotFound,
}

/// Users' reliable messages and commands.
#[async_trait]
pub trait Users: Send + Sync {
    /// Appends a reliable message to its user's stream and debits `price`, in one
    /// transaction with the seal `seal` makes of its sequence; refuses with
    /// `BacklogFull` when the user already has `backlog` unacknowledged messages.
    async fn record_user_message(
        &self,
        message: &UserMessageRow,
        price: i64,
        backlog: u64,
        seal: &(dyn Fn(u64) -> Option<Seal> + Send + Sync),
    ) -> StoreResult<u64>;
    /// Counts one more delivery of a message.
    async fn note_delivered(&self, account_id: &str, user_id: &str, seq: u64) -> StoreResult<()>;
    /// The user's unacknowledged messages in sequence order (at most `limit`), each
    /// counted as delivered once more.
    async fn redeliver(&self, account_id: &str, user_id: &str, limit: u32) -> StoreResult<Vec<UserMessageRow>>;
    /// Acknowledges a message and every earlier one of its user; false when the user
    /// has no such message (or it was acknowledged already).
    async fn ack(&self, account_id: &str, user_id: &str, message_id: &str) -> StoreResult<bool>;
    /// Records a command and debits `price`, in one transaction with `seal`.
    async fn create_command(&self, command: &CommandRow, price: i64, seal: Option<&Seal>) -> StoreResult<()>;
    /// A command of the account.
    async fn command(&self, account_id: &str, command_id: &str) -> StoreResult<Option<CommandRow>>;
    /// Stores `response` as the answer of the user's command unless it has one or has
    /// expired at `now`.
    async fn answer_command(
        &self,
        account_id: &str,
        user_id: &str,
        command_id: &str,
        response: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<AnswerOutcome>;
}

/// The stored spelling of a sender type.
pub(super) fn sender_text(sender: SenderType) -> &'static str {
    match sender {
        SenderType::Server => "server",
        SenderType::Client => "client",
    }
}

/// A sender type read back.
pub(super) fn sender_of(text: &str) -> SenderType {
    match text {
        "client" => SenderType::Client,
        _ => SenderType::Server,
    }
}
