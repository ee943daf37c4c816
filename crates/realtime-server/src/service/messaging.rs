//! User-addressed messages and commands (seed 002), on the [`Service`].
//!
//! A user is every live connection whose token carries its `user_id`, on any node: a
//! frame for it travels as one [`ClusterEvent::User`] and each node hands it to its own
//! connections. Reliable messages are appended to the user's stream in the store before
//! they are pushed; commands are stored, pushed, and answered by the first
//! `command.response`, which reaches the waiting node as [`ClusterEvent::CommandAnswered`].

use std::time::Duration;

use chrono::Utc;
use realtime_api::idempotency::Seal;
use realtime_api::{ApiError, Caller};
use realtime_types::limits::{COMMAND_MAX_TIMEOUT_SECONDS, COMMAND_MAX_WAIT_SECONDS, USER_BACKLOG_MAX};
use realtime_types::ws::ServerFrame;
use realtime_types::*;

use super::{Service, new_id};
use crate::broker::ClusterEvent;
use crate::hub::{UserKey, encode};
use crate::store::{AnswerOutcome, CommandRow, UserMessageRow};

/// A command pushed to its user, and the wait for its response. Dropping it stops the
/// wait on this node (however the caller went away).
#[derive(Debug)]
pub struct SentCommand {
    /// The command, pending.
    pub command: UserCommand,
    /// Receives the first response, as JSON text.
    response: tokio::sync::oneshot::Receiver<String>,
    /// How long a caller waits for it.
    pub wait: Duration,
    /// No connection took it (the user left just before it went out).
    pub nobody_got_it: bool,
    waiting: Waiting,
}

/// This node's wait for a command's response, forgotten when dropped.
struct Waiting {
    hub: std::sync::Arc<crate::hub::Hub>,
    command_id: String,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting").field("command_id", &self.command_id).finish()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.hub.forget_command(&self.command_id);
    }
}

/// The view of a stored command at `now`.
fn command_view(row: CommandRow, now: chrono::DateTime<Utc>) -> UserCommand {
    let response = row.response.as_deref().map(|text| serde_json::from_str(text).unwrap_or(serde_json::Value::Null));
    let status = match (&response, row.expires_at <= now) {
        (Some(_), _) => CommandStatus::Answered,
        (None, true) => CommandStatus::Expired,
        (None, false) => CommandStatus::Pending,
    };
    UserCommand {
        command_id: row.command_id,
        target_user_id: row.user_id,
        command_type: row.command_type,
        status,
        response,
        expires_at: row.expires_at,
    }
}

impl Service {
    /// `realtime.user.message.send`.
    pub async fn send_user_message(
        &self,
        caller: &Caller,
        request: UserMessageSendRequest,
    ) -> Result<UserMessageSent, ApiError> {
        let delivery = request.delivery.unwrap_or_default();
        let row = UserMessageRow {
            message_id: new_id("um"),
            account_id: caller.account_id.clone(),
            user_id: request.target_user_id.clone(),
            seq: 0,
            payload: request.payload.to_string(),
            sender_type: request.sender_type.unwrap_or_default(),
            sender_id: request.sender_id.clone(),
            sent_at: Utc::now(),
            delivery_count: 1,
        };
        let price = self.config.prices.user_message;
        let answer = |sequence: Option<u64>| UserMessageSent {
            message_id: row.message_id.clone(),
            target_user_id: row.user_id.clone(),
            delivery,
            delivered: 0,
            sequence,
        };
        self.require_broker().await?;
        let sequence = match delivery {
            Delivery::Realtime => {
                let seal = Seal::current(&answer(None));
                self.store
                    .charge(&caller.account_id, price, seal.as_ref())
                    .await
                    .map_err(|e| self.charge_error("sending a user message", e))?;
                None
            }
            Delivery::Reliable => {
                let seal = |seq: u64| Seal::current(&answer(Some(seq)));
                let seq = self
                    .store
                    .record_user_message(&row, price, USER_BACKLOG_MAX, &seal)
                    .await
                    .map_err(|e| self.charge_error("sending a user message", e))?;
                Some(seq)
            }
        };
        self.charged(price);
        let frame = encode(&ServerFrame::UserMessage {
            message_id: row.message_id.clone(),
            delivery,
            payload: request.payload,
            sender_type: row.sender_type,
            sender_id: row.sender_id.clone(),
            sent_at: row.sent_at,
            sequence,
            delivery_count: sequence.map(|_| 1),
        });
        let user = UserKey::new(&row.account_id, &row.user_id);
        let event = ClusterEvent::User { user, frame: Some(frame), command_id: None };
        let delivered = self.announce(event).await;
        if let Some(seq) = sequence.filter(|_| delivered > 0)
            && let Err(error) = self.store.note_delivered(&row.account_id, &row.user_id, seq).await
        {
            tracing::warn!(%error, "a reliable message's delivery was not counted");
        }
        Ok(UserMessageSent { delivered, ..answer(sequence) })
    }

    /// `realtime.user.command.send`: sends, then waits for the response within the
    /// bounded wait.
    pub(super) async fn send_user_command(
        &self,
        caller: &Caller,
        request: UserCommandSendRequest,
    ) -> Result<UserCommand, ApiError> {
        let wait_for_response = request.wait_for_response != Some(false);
        let sent = self.dispatch_user_command(caller, request).await?;
        if !wait_for_response || sent.nobody_got_it {
            return Ok(sent.command);
        }
        let command_id = sent.command.command_id.clone();
        let wait = sent.wait;
        match self.await_response(sent).await {
            Some(command) => Ok(command),
            None => Err(ApiError::new(
                ErrorCode::CommandTimeout,
                format!(
                    "no client answered command {command_id} within {} s; read it later with realtime.user.command.get",
                    wait.as_secs()
                ),
            )),
        }
    }

    /// Stores, charges and pushes a command to the user's live connections, and starts
    /// waiting for its response on this node; refused at once, with nothing charged,
    /// when the user has no live connection.
    pub async fn dispatch_user_command(
        &self,
        caller: &Caller,
        request: UserCommandSendRequest,
    ) -> Result<SentCommand, ApiError> {
        self.require_broker().await?;
        // Nothing is charged or stored for a user no connection stands for.
        let probe = ClusterEvent::User {
            user: UserKey::new(&caller.account_id, &request.target_user_id),
            frame: None,
            command_id: None,
        };
        if self.broker.publish(probe).await.map_err(|e| self.broker_error(e))? == 0 {
            return Err(user_offline(&request.target_user_id));
        }
        let now = Utc::now();
        let timeout = request.timeout.unwrap_or(COMMAND_MAX_TIMEOUT_SECONDS).clamp(1, COMMAND_MAX_TIMEOUT_SECONDS);
        let row = CommandRow {
            command_id: new_id("cmd"),
            account_id: caller.account_id.clone(),
            user_id: request.target_user_id.clone(),
            command_type: request.command_type.clone(),
            data: request.data.to_string(),
            sender_type: request.sender_type.unwrap_or_default(),
            sender_id: request.sender_id.clone(),
            response: None,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(i64::from(timeout)),
        };
        let pending = command_view(row.clone(), now);
        let seal = Seal::current(&pending);
        self.store
            .create_command(&row, self.config.prices.user_command, seal.as_ref())
            .await
            .map_err(|e| self.charge_error("sending a command", e))?;
        self.charged(self.config.prices.user_command);
        // Waiting starts before the command goes out, so no response can be missed.
        let response = self.hub.await_command(&row.command_id);
        let waiting = Waiting { hub: self.hub.clone(), command_id: row.command_id.clone() };
        let frame = encode(&ServerFrame::UserCommand {
            command_id: row.command_id.clone(),
            command: row.command_type.clone(),
            data: request.data,
            sender_type: row.sender_type,
            sender_id: row.sender_id.clone(),
            expires_at: row.expires_at,
        });
        let event = ClusterEvent::User {
            user: UserKey::new(&row.account_id, &row.user_id),
            frame: Some(frame),
            command_id: Some(row.command_id.clone()),
        };
        // The user left between the check and the push: the command is stored and
        // charged, so it is answered as what it is, pending (it expires unanswered).
        let nobody_got_it = self.announce(event).await == 0;
        let wait = Duration::from_secs(u64::from(timeout.min(COMMAND_MAX_WAIT_SECONDS)));
        Ok(SentCommand { command: pending, response, wait, waiting, nobody_got_it })
    }

    /// Waits for a sent command's response; `None` when the wait ends first.
    pub async fn await_response(&self, sent: SentCommand) -> Option<UserCommand> {
        let SentCommand { command, response, wait, waiting, .. } = sent;
        let answered = tokio::time::timeout(wait, response).await;
        drop(waiting);
        match answered {
            Ok(Ok(response)) => {
                let response = serde_json::from_str(&response).unwrap_or(serde_json::Value::Null);
                Some(UserCommand { status: CommandStatus::Answered, response: Some(response), ..command })
            }
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// `realtime.user.command.get`.
    pub(super) async fn user_command(&self, caller: &Caller, command_id: &str) -> Result<UserCommand, ApiError> {
        let row = self.store.command(&caller.account_id, command_id).await.map_err(|e| self.store_error(e))?;
        let row =
            row.ok_or_else(|| ApiError::not_found(format!("no command {command_id:?} was sent by this account")))?;
        Ok(command_view(row, Utc::now()))
    }

    /// A client of `user_id` answers a command: the first answer is stored and handed to
    /// the node that waits for it. `Err` is the refusal to send back to the client.
    pub async fn answer_user_command(
        &self,
        account_id: &str,
        user_id: &str,
        command_id: &str,
        response: &serde_json::Value,
    ) -> Result<(), (ErrorCode, String)> {
        let text = response.to_string();
        let outcome =
            self.store.answer_command(account_id, user_id, command_id, &text, Utc::now()).await.map_err(|error| {
                tracing::warn!(%error, "command response not stored");
                (ErrorCode::Unavailable, "the store is unavailable; retry".to_owned())
            })?;
        match outcome {
            AnswerOutcome::Answered => {
                let event = ClusterEvent::CommandAnswered { command_id: command_id.to_owned(), response: text };
                self.announce(event).await;
                Ok(())
            }
            AnswerOutcome::AlreadyAnswered => Err((ErrorCode::Conflict, "the command was answered already".to_owned())),
            AnswerOutcome::Expired => Err((ErrorCode::Conflict, "the command expired".to_owned())),
            AnswerOutcome::NotFound => Err((ErrorCode::NotFound, "no such command for this user".to_owned())),
        }
    }
}

fn user_offline(user_id: &str) -> ApiError {
    ApiError::new(ErrorCode::UserOffline, format!("user {user_id:?} has no live connection; nothing was sent"))
}
