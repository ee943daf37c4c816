//! User-addressed frames a client sends or answers: `user.message.send`,
//! `user.command.send`, `ack`, `command.response`, and the redelivery of a user's
//! reliable backlog on connect.

use std::sync::Arc;

use realtime_api::{ApiError, Caller};
use realtime_types::limits::{DATA_MAX_BYTES, USER_REDELIVERY_MAX};
use realtime_types::ws::ServerFrame;
use realtime_types::{
    Capability, Delivery, ErrorCode, SenderType, UserCommandSendRequest, UserMessageSendRequest, Validate,
};

use crate::hub::{Connection, encode};
use crate::service::{Service, frame_error};
use crate::tokens::Claims;

/// Checks that a client may send to users: the `message` capability, the account's
/// request budget, and the documented limits of the request.
fn may_send(service: &Service, claims: &Claims, request: &impl Validate) -> Result<(), ApiError> {
    if !claims.can(Capability::Message) {
        return Err(ApiError::forbidden("the token lacks the message capability"));
    }
    service.check_rate(&claims.acc)?;
    request.validate().map_err(ApiError::from)
}

/// A refusal echoing `request_id`.
fn refused(error: &ApiError, request_id: Option<String>) -> ServerFrame {
    ServerFrame::Error {
        code: error.code(),
        message: error.problem().detail.clone().unwrap_or_default(),
        channel: None,
        request_id,
    }
}

/// A user message sent by the client: from it (`sender_type` client, `sender_id` its
/// client id), metered like the REST call.
pub(super) async fn send_user_message(
    service: &Service,
    claims: &Claims,
    target_user_id: String,
    delivery: Option<Delivery>,
    payload: serde_json::Value,
    request_id: Option<String>,
) -> ServerFrame {
    let request = UserMessageSendRequest {
        target_user_id,
        delivery,
        payload,
        sender_type: Some(SenderType::Client),
        sender_id: Some(claims.sub.clone()),
        idempotency_key: None,
    };
    if let Err(error) = may_send(service, claims, &request) {
        return refused(&error, request_id);
    }
    let caller = Caller { account_id: claims.acc.clone() };
    match service.send_user_message(&caller, request).await {
        Ok(sent) => ServerFrame::UserMessageSent {
            request_id,
            message_id: sent.message_id,
            delivered: sent.delivered,
            sequence: sent.sequence,
        },
        Err(error) => refused(&error, request_id),
    }
}

/// A command sent by the client. Its answer comes later, from a task of its own, so the
/// socket's other frames go on meanwhile; `None` when it was sent.
pub(super) async fn send_user_command(
    service: &Arc<Service>,
    connection: &Arc<Connection>,
    claims: &Claims,
    request: UserCommandSendRequest,
    request_id: Option<String>,
) -> Option<ServerFrame> {
    if let Err(error) = may_send(service, claims, &request) {
        return Some(refused(&error, request_id));
    }
    let caller = Caller { account_id: claims.acc.clone() };
    let sent = match service.dispatch_user_command(&caller, request).await {
        Ok(sent) => sent,
        Err(error) => return Some(refused(&error, request_id)),
    };
    let (service, connection) = (service.clone(), connection.clone());
    tokio::spawn(async move {
        let command_id = sent.command.command_id.clone();
        let pending = sent.command.clone();
        let done = match sent.nobody_got_it {
            true => pending,
            false => service.await_response(sent).await.unwrap_or(pending),
        };
        connection.send(encode(&ServerFrame::UserCommandDone {
            request_id,
            command_id,
            status: done.status,
            response: done.response,
        }));
    });
    None
}

/// The refusal of a user frame on a connection whose token has no user.
fn no_user() -> ServerFrame {
    frame_error(ErrorCode::Forbidden, "the token has no user_id", None)
}

/// Acknowledges a reliable user message (and every earlier one); `None` when done.
pub(super) async fn ack(service: &Service, claims: &Claims, message_id: &str) -> Option<ServerFrame> {
    let Some(user) = claims.uid.as_deref() else { return Some(no_user()) };
    match service.store.ack(&claims.acc, user, message_id).await {
        Ok(true) => None,
        Ok(false) => Some(frame_error(ErrorCode::NotFound, "no unacknowledged message has this id", None)),
        Err(error) => {
            tracing::warn!(%error, "ack: store unavailable");
            Some(frame_error(ErrorCode::Unavailable, "the store is unavailable; ack again", None))
        }
    }
}

/// Answers a user command; `None` when this response is its answer.
pub(super) async fn respond(
    service: &Service,
    claims: &Claims,
    command_id: &str,
    data: &serde_json::Value,
) -> Option<ServerFrame> {
    let Some(user) = claims.uid.as_deref() else { return Some(no_user()) };
    if serde_json::to_vec(data).map_or(usize::MAX, |bytes| bytes.len()) > DATA_MAX_BYTES {
        return Some(frame_error(ErrorCode::PayloadTooLarge, format!("data is over {DATA_MAX_BYTES} bytes"), None));
    }
    let answered = service.answer_user_command(&claims.acc, user, command_id, data).await;
    answered.err().map(|(code, message)| frame_error(code, message, None))
}

/// Delivers the user's unacknowledged reliable messages again, oldest first, before any
/// other frame of the client is read.
pub(super) async fn redeliver(service: &Service, connection: &Connection, claims: &Claims) {
    let Some(user) = claims.uid.as_deref() else { return };
    match service.store.redeliver(&claims.acc, user, USER_REDELIVERY_MAX).await {
        Ok(messages) => {
            for message in &messages {
                if !connection.send_waiting(encode(&message.frame())).await {
                    return;
                }
            }
        }
        Err(error) => tracing::warn!(%error, "reliable messages not redelivered on connect"),
    }
}
