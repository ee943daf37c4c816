//! `subscribe`, with or without `since`: presence, the replay of missed messages from
//! the store with backpressure, and the hand-over of what the channel delivered meanwhile.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;

use realtime_types::limits::RECOVERY_MAX_MESSAGES;
use realtime_types::ws::{ServerFrame, UnsubscribeReason};
use realtime_types::{Capability, ChannelType, Direction, ErrorCode, Position, RecoveryFailure};

use crate::broker::{join, leave};
use crate::hub::{ChannelKey, Connection, Frames, encode};
use crate::service::{Service, frame_error};
use crate::store::{ChannelRow, MessageRow};
use crate::tokens::Claims;

/// Subscribes the connection; `None` when the hub queued the `subscribed` reply itself
/// (ahead of the channel's frames), else the refusal to send.
pub(super) async fn subscribe(
    service: &Arc<Service>,
    connection: &Arc<Connection>,
    claims: &Claims,
    channel: String,
    since: Option<Position>,
) -> Option<ServerFrame> {
    if !claims.can(Capability::Subscribe) {
        return Some(frame_error(ErrorCode::Forbidden, "the token lacks the subscribe capability", Some(channel)));
    }
    // Any token may subscribe to a public channel; a private or presence one must be in
    // the token's list. To a token that may not see it, a channel that does not exist
    // looks like one it may not subscribe to.
    let listed = claims.allows_channel(&channel);
    let not_allowed =
        |channel| frame_error(ErrorCode::Forbidden, "the token does not allow this channel", Some(channel));
    // Read before the channel is: whether the read can be trusted once subscribed.
    let turnover = service.hub.channel_turnover();
    let row = match service.store.channel(&claims.acc, &channel).await {
        Ok(Some(row)) if listed || row.channel_type == ChannelType::Public => row,
        Ok(Some(_)) => return Some(not_allowed(channel)),
        Ok(None) if !listed => return Some(not_allowed(channel)),
        Ok(None) => return Some(frame_error(ErrorCode::NotFound, "the channel does not exist", Some(channel))),
        Err(error) => {
            tracing::warn!(%error, "subscribe: store unavailable");
            return Some(frame_error(ErrorCode::Unavailable, "the store is unavailable; retry", Some(channel)));
        }
    };
    let key = ChannelKey::new(&claims.acc, &channel);
    let joins_presence = row.channel_type == ChannelType::Presence && claims.can(Capability::Presence);
    if joins_presence && let Err(error) = join(service.broker.as_ref(), connection, &channel).await {
        tracing::warn!(%error, "subscribe: presence unavailable");
        return Some(frame_error(ErrorCode::Unavailable, "presence is unavailable; retry", Some(channel)));
    }
    let members = match row.channel_type {
        ChannelType::Presence => service.broker.members(&key).await.unwrap_or_default(),
        ChannelType::Public | ChannelType::Private => Vec::new(),
    };
    let subscribed = |position: &Position, recovered: Option<bool>, recovery_failure: Option<RecoveryFailure>| {
        encode(&ServerFrame::Subscribed {
            channel: channel.clone(),
            members: members.clone(),
            position: position.clone(),
            recovered,
            recovery_failure,
        })
    };
    let latest = row.position();
    let start = match &since {
        None => service.hub.subscribe(connection, &channel, &latest, |position| subscribed(position, None, None)),
        Some(_) => service.hub.subscribe_recovering(connection, &channel, &latest),
    };
    let Some(start) = start else {
        // Already subscribed: nothing changes.
        return Some(ServerFrame::Subscribed {
            channel,
            members,
            position: latest,
            recovered: None,
            recovery_failure: None,
        });
    };
    // A deletion applied between the lookup above and the subscription would have missed
    // this socket, and if the channel is new on this node, its messages committed
    // meanwhile reached nobody here: so look again, now that the subscription is visible
    // to deletions. Unless this node opened and deleted no channel in between (see
    // `Hub::channel_turnover`): then the lookup above still holds. A recovery always looks
    // again, as its replay runs to the channel's newest message. (Looking again every
    // time doubled the store reads of a storm of subscribes, and on a loaded node the
    // second reads outlasted the storm, holding up the connects queued behind them.)
    let unchanged = since.is_none() && service.hub.channel_turnover() == turnover;
    let now = if unchanged {
        row
    } else {
        match service.store.channel(&claims.acc, &channel).await {
            Ok(Some(now)) if now.channel_id == row.channel_id => now,
            Err(error) => {
                tracing::warn!(%error, "subscribe: store unavailable");
                service.hub.unsubscribe(connection, &channel);
                leave(service.broker.as_ref(), connection, &channel).await;
                return Some(frame_error(ErrorCode::Unavailable, "the store is unavailable; retry", Some(channel)));
            }
            Ok(_) => {
                // Unless the deletion's own event reached the hub first and told the client.
                let told = !service.hub.unsubscribe(connection, &channel);
                leave(service.broker.as_ref(), connection, &channel).await;
                return (!told)
                    .then_some(ServerFrame::Unsubscribed { channel, reason: UnsubscribeReason::ChannelDeleted });
            }
        }
    };
    // Without `since` the hub has queued the reply already.
    if now.last_offset > start.offset {
        catch_up(service, &now, start.offset).await;
    }
    let since = since?;
    // The replay goes out with backpressure (it may be long), while what the channel
    // delivers meanwhile is held; the hub then joins the two without a gap or a repeat.
    let (reply, missed, caught_up) = match missed_since(service, &now, &since).await {
        Err(Missed::Unavailable) => {
            service.hub.unsubscribe(connection, &channel);
            leave(service.broker.as_ref(), connection, &channel).await;
            return Some(frame_error(ErrorCode::Unavailable, "the store is unavailable; retry", Some(channel)));
        }
        Ok(missed) => {
            let missed: Vec<(u64, Utf8Bytes)> =
                missed.into_iter().map(|message| (message.offset, message_frame(&now, message))).collect();
            (subscribed(&since, Some(true), None), missed, since.offset)
        }
        Err(Missed::Refused(reason)) => (subscribed(&start, Some(false), Some(reason)), Vec::new(), start.offset),
    };
    if !connection.send_waiting(reply).await {
        return None;
    }
    let delivered_here = service.hub.position(&key).map_or(0, |position| position.offset);
    let mut caught_up = caught_up;
    let mut rest = Vec::new();
    for (offset, frame) in missed {
        if offset <= delivered_here {
            if !connection.send_waiting(frame).await {
                return None;
            }
            caught_up = offset;
        } else {
            rest.push((offset, frame));
        }
    }
    // What the channel delivered meanwhile goes out with backpressure too, in rounds,
    // until little is left for the hub to hand over at once.
    for _ in 0..HAND_OVER_ROUNDS {
        let Some(held) = service.hub.take_held(connection, &channel) else {
            return Some(frame_error(ErrorCode::NotFound, "the channel does not exist", Some(channel)));
        };
        let last_round = held.len() < HAND_OVER_AT_ONCE;
        for (offset, frames) in held {
            if offset.is_some_and(|offset| offset <= caught_up) {
                continue;
            }
            if let Some(frame) = connection.encoding(&frames)
                && !connection.send_waiting(frame).await
            {
                return None;
            }
            caught_up = offset.unwrap_or(caught_up);
        }
        if last_round {
            break;
        }
    }
    if !service.hub.finish_recovery(connection, &channel, rest, caught_up) {
        return Some(frame_error(ErrorCode::NotFound, "the channel does not exist", Some(channel)));
    }
    None
}

/// Held frames fewer than this are handed over at once, under the channel's lock.
const HAND_OVER_AT_ONCE: usize = 64;
/// Most rounds of held frames sent with backpressure before the hand-over.
const HAND_OVER_ROUNDS: usize = 16;

/// The messages of `channel` after `since`, or why they cannot all be replayed.
/// Why missed messages are not replayed.
enum Missed {
    /// They cannot be: the client is told why.
    Refused(RecoveryFailure),
    /// The store did not answer: the subscribe is refused, to be tried again.
    Unavailable,
}

async fn missed_since(service: &Service, channel: &ChannelRow, since: &Position) -> Result<Vec<MessageRow>, Missed> {
    if since.epoch != channel.channel_id {
        return Err(Missed::Refused(RecoveryFailure::EpochChanged));
    }
    if since.offset > channel.last_offset {
        return Err(Missed::Refused(RecoveryFailure::Unknown));
    }
    let missing = channel.last_offset - since.offset;
    if missing > RECOVERY_MAX_MESSAGES {
        return Err(Missed::Refused(RecoveryFailure::TooMany));
    }
    if missing == 0 {
        return Ok(Vec::new());
    }
    let limit = u32::try_from(missing).unwrap_or(u32::MAX);
    let missed = service
        .store
        .history(&channel.account_id, &channel.name, Some(since.offset), limit, Direction::Forward)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "recovery: store unavailable");
            Missed::Unavailable
        })?;
    // Retention drops the oldest messages first: anything missing is at the start.
    if missed.first().is_none_or(|first| first.offset != since.offset + 1) || missed.len() as u64 != missing {
        return Err(Missed::Refused(RecoveryFailure::TooOld));
    }
    Ok(missed)
}

/// The `message` frame of a stored message.
fn message_frame(channel: &ChannelRow, message: MessageRow) -> Utf8Bytes {
    encode(&message.frame(channel))
}

/// Hands this node's subscribers of `channel` the messages stored after `after`: those
/// committed between the read of the channel's position and this node holding the
/// channel were fanned out to nobody here. The hub drops any that also arrive live.
async fn catch_up(service: &Service, channel: &ChannelRow, after: u64) {
    let missing = channel.last_offset.saturating_sub(after).min(RECOVERY_MAX_MESSAGES);
    let limit = u32::try_from(missing).unwrap_or(u32::MAX);
    let stored =
        service.store.history(&channel.account_id, &channel.name, Some(after), limit, Direction::Forward).await;
    let key = ChannelKey::new(&channel.account_id, &channel.name);
    match stored {
        Ok(messages) => {
            for message in messages {
                let position = Position { epoch: channel.channel_id.clone(), offset: message.offset };
                let frames = Frames::of(&message.frame(channel), None, None);
                service.hub.deliver(&key, &frames, Some(&position));
            }
        }
        Err(error) => tracing::warn!(%error, "subscribe: the messages of the last moment were not caught up"),
    }
}
