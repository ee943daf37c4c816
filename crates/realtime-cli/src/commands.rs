//! The commands that are one or a few REST calls: build the request, call, print.

use std::io::{BufRead, Read};

use anyhow::Context;
use realtime_client::{Client, IdempotencyKey};
use realtime_types::*;

use crate::cli::{AccountCommand, AuthCommand, ChannelCommand, TokenCommand, UserSubcommand, WriteArgs};
use crate::output::{Output, UsageError};
use crate::settings::Settings;

/// Channels fetched by `channel list --all` at most (pages of 100).
const MAX_LIST_PAGES: usize = 1000;

fn key(write: &WriteArgs) -> anyhow::Result<Option<IdempotencyKey>> {
    write
        .idempotency_key
        .as_deref()
        .map(|key| {
            IdempotencyKey::parse(key)
                .map_err(|detail| anyhow::Error::from(UsageError(format!("--idempotency-key {detail}"))))
        })
        .transpose()
}

/// Prints a note on stderr when the answer is a replay of an earlier call.
fn note_replayed(replayed: bool) {
    if replayed {
        eprintln!("(replayed: this idempotency key was used before; nothing was done again)");
    }
}

pub(crate) async fn account(settings: &Settings, out: Output, command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Create { balance, .. } => crate::admin::create_account(settings, out, balance).await,
        AccountCommand::PusherApp {
            account_id,
            app_id,
            key,
            secret,
            webhook_url,
            subscription_count,
            batch_webhooks,
            ..
        } => {
            let app = crate::admin::NewPusherApp {
                account_id,
                app_id,
                key,
                secret,
                webhook_url,
                subscription_count,
                batch_webhooks,
            };
            crate::admin::create_pusher_app(settings, out, app).await
        }
        AccountCommand::PusherApps { account_id, .. } => {
            crate::admin::list_pusher_apps(settings, out, &account_id).await
        }
        AccountCommand::PusherAppRotate { app_id, .. } => crate::admin::rotate_pusher_app(settings, out, app_id).await,
        AccountCommand::PusherAppSet { app_id, subscription_count, batch_webhooks, .. } => {
            let change = crate::admin::PusherAppChange { subscription_count, batch_webhooks };
            crate::admin::update_pusher_app(settings, out, app_id, change).await
        }
        AccountCommand::PusherAppDelete { app_id, .. } => crate::admin::delete_pusher_app(settings, out, app_id).await,
        AccountCommand::Show => out.object(&settings.client()?.account_get().await?),
        AccountCommand::Topup { amount, write } => {
            let client = settings.client()?;
            let reply = client.account_topup_with(key(&write)?, TopupRequest { amount, idempotency_key: None }).await?;
            note_replayed(reply.replayed);
            out.object(&reply.body)?;
            if !out.json {
                eprintln!("open the checkout_url to pay; the balance grows once the checkout completes");
            }
            Ok(())
        }
    }
}

pub(crate) async fn token(client: &Client, out: Output, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue { client_id, user_id, channels, capabilities, ttl, write } => {
            let request = TokenIssueRequest {
                user_id,
                client_id,
                channels: (!channels.is_empty()).then_some(channels),
                capabilities: (!capabilities.is_empty())
                    .then(|| capabilities.into_iter().map(Capability::from).collect()),
                ttl_seconds: ttl,
                idempotency_key: None,
            };
            let reply = client.token_issue_with(key(&write)?, request).await?;
            note_replayed(reply.replayed);
            out.object(&reply.body)
        }
        TokenCommand::Revoke { token_or_jti, write } => {
            let request = TokenRevokeRequest { token_or_jti, idempotency_key: None };
            let reply = client.token_revoke_with(key(&write)?, request).await?;
            note_replayed(reply.replayed);
            out.object(&reply.body)
        }
    }
}

pub(crate) async fn channel(client: &Client, out: Output, command: ChannelCommand) -> anyhow::Result<()> {
    match command {
        ChannelCommand::Create { name, channel_type, write } => {
            let request = ChannelCreateRequest { name, channel_type: Some(channel_type.into()), idempotency_key: None };
            let reply = client.channel_create_with(key(&write)?, request).await?;
            note_replayed(reply.replayed);
            out.object(&reply.body)
        }
        ChannelCommand::Get { name } => out.object(&client.channel_get(&name).await?),
        ChannelCommand::List { limit, cursor, all } => {
            const COLUMNS: &[&str] = &["name", "type", "subscriber_count", "member_count", "created_at"];
            if all {
                let channels = client.channel_list_all(MAX_LIST_PAGES).await?;
                return out.table(&channels, &channels, COLUMNS);
            }
            let page = client.channel_list(ChannelListQuery { cursor, limit }).await?;
            out.table(&page, &page.channels, COLUMNS)?;
            if let (Some(next), false) = (&page.next_cursor, out.json) {
                eprintln!("more: realtime channel list --cursor {next}");
            }
            Ok(())
        }
        ChannelCommand::Delete { name, write } => {
            let reply = client.channel_delete_with(key(&write)?, &name).await?;
            note_replayed(reply.replayed);
            out.object(&reply.body)
        }
    }
}

/// The `data` of `publish`: the argument, or stdin for `-` or no argument.
fn read_data(data: Option<String>, as_string: bool) -> anyhow::Result<serde_json::Value> {
    let text = match data.as_deref() {
        None | Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading the data from stdin")?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
        Some(text) => text.to_owned(),
    };
    if as_string {
        return Ok(serde_json::Value::String(text));
    }
    serde_json::from_str(&text).map_err(|error| {
        anyhow::Error::from(UsageError(format!(
            "the data `{text}` is not JSON ({error}); quote it as JSON or pass --string to send it as text"
        )))
    })
}

pub(crate) async fn publish(
    client: &Client,
    out: Output,
    channel: String,
    event: String,
    data: Option<String>,
    as_string: bool,
    write: WriteArgs,
) -> anyhow::Result<()> {
    let data = read_data(data, as_string)?;
    let request = PublishRequest { channel, event, data, idempotency_key: None };
    let reply = client.publish_with(key(&write)?, request).await?;
    note_replayed(reply.replayed);
    out.object(&reply.body)
}

/// Reads `{"channel","event","data"}` lines; blank lines are skipped.
fn read_batch(input: impl BufRead) -> anyhow::Result<Vec<BatchMessage>> {
    let mut messages = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let message: BatchMessage = serde_json::from_str(&line).map_err(|error| {
            UsageError(format!("line {}: expected {{\"channel\",\"event\",\"data\"}} ({error})", index + 1))
        })?;
        messages.push(message);
    }
    Ok(messages)
}

pub(crate) async fn batch(client: &Client, out: Output, write: WriteArgs) -> anyhow::Result<()> {
    let messages = read_batch(std::io::stdin().lock())?;
    anyhow::ensure!(!messages.is_empty(), "no messages on stdin; send one JSON object per line");
    let chunks: Vec<_> = messages.chunks(realtime_types::limits::BATCH_MAX_MESSAGES).collect();
    let base_key = key(&write)?;
    let mut published = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        // One key per chunk, derived from the given key, so that rerunning the same
        // input with the same key replays every chunk.
        let chunk_key = match (&base_key, chunks.len()) {
            (Some(key), 1) => Some(key.clone()),
            (Some(key), _) => {
                Some(IdempotencyKey::parse(&format!("{}-{index}", key.as_str())).map_err(anyhow::Error::msg)?)
            }
            (None, _) => None,
        };
        let request = PublishBatchRequest { messages: chunk.to_vec(), idempotency_key: None };
        let reply = client.publish_batch_with(chunk_key, request).await.with_context(|| {
            format!(
                "batch {} of {} (messages {}..) failed; earlier batches were published",
                index + 1,
                chunks.len(),
                index * 100
            )
        })?;
        note_replayed(reply.replayed);
        published.extend(reply.body.messages);
    }
    let body = BatchPublished { published: u32::try_from(published.len()).unwrap_or(u32::MAX), messages: published };
    out.table(&body, &body.messages, &["message_id", "channel", "event", "delivered"])
}

pub(crate) async fn history(
    client: &Client,
    out: Output,
    channel: String,
    since: Option<u64>,
    limit: Option<u32>,
    backward: bool,
) -> anyhow::Result<()> {
    let direction = Some(if backward { Direction::Backward } else { Direction::Forward });
    let history = client.channel_history(&channel, HistoryQuery { since, limit, direction }).await?;
    out.table(&history, &history.messages, &["offset", "message_id", "event", "data", "published_at"])
}

pub(crate) async fn user(client: &Client, out: Output, command: UserSubcommand) -> anyhow::Result<()> {
    match command {
        UserSubcommand::Send { user_id, payload, reliable, sender_id, write } => {
            let request = UserMessageSendRequest {
                target_user_id: user_id,
                delivery: Some(if reliable { Delivery::Reliable } else { Delivery::Realtime }),
                payload: read_data(payload, false)?,
                sender_type: None,
                sender_id,
                idempotency_key: None,
            };
            let reply = client.user_message_send_with(key(&write)?, request).await?;
            note_replayed(reply.replayed);
            out.object(&reply.body)
        }
        UserSubcommand::Command { user_id, command_type, data, command_timeout, no_wait, sender_id, write } => {
            let request = UserCommandSendRequest {
                target_user_id: user_id,
                command_type,
                data: read_data(data, false)?,
                sender_type: None,
                sender_id,
                wait_for_response: Some(!no_wait),
                timeout: command_timeout,
                idempotency_key: None,
            };
            let reply = client.user_command_send_with(key(&write)?, request).await?;
            note_replayed(reply.replayed);
            out.object(&reply.body)
        }
    }
}

pub(crate) async fn presence(client: &Client, out: Output, channel: String) -> anyhow::Result<()> {
    let presence = client.presence_get(&channel).await?;
    out.table(&presence, &presence.members, &["client_id", "user_id"])
}

pub(crate) async fn disconnect(
    client: &Client,
    out: Output,
    client_id: String,
    channel: Option<String>,
    write: WriteArgs,
) -> anyhow::Result<()> {
    let request = UserDisconnectRequest { client_id, channel, idempotency_key: None };
    let reply = client.user_disconnect_with(key(&write)?, request).await?;
    note_replayed(reply.replayed);
    out.object(&reply.body)
}

pub(crate) async fn auth(client: &Client, out: Output, command: AuthCommand) -> anyhow::Result<()> {
    let AuthCommand::Sign { client_id, channels, capabilities, vendor, ttl, socket_id, channel_data, write } = command;
    let channel_data = channel_data
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|error| UsageError(format!("--channel-data must be a JSON object ({error})")))
        })
        .transpose()?;
    let request = AuthSignRequest {
        client_id,
        channels,
        capabilities: (!capabilities.is_empty()).then(|| capabilities.into_iter().map(Capability::from).collect()),
        vendor: vendor.map(Vendor::from),
        ttl_seconds: ttl,
        socket_id,
        channel_data,
        idempotency_key: None,
    };
    let reply = client.auth_sign_with(key(&write)?, request).await?;
    note_replayed(reply.replayed);
    out.object(&reply.body)
}

pub(crate) async fn events(client: &Client, out: Output) -> anyhow::Result<()> {
    let types = client.event_types().await?;
    let rows: Vec<_> = types.types.iter().map(|kind| serde_json::json!({ "type": kind })).collect();
    out.table(&types, &rows, &["type"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_input_is_one_message_per_line_and_blank_lines_are_skipped() {
        let input = "{\"channel\":\"a\",\"event\":\"e\",\"data\":1}\n\n{\"channel\":\"b\",\"event\":\"f\",\"data\":{\"x\":2}}\n";
        let messages = read_batch(input.as_bytes()).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].channel, "b");
        assert_eq!(messages[1].data, serde_json::json!({"x": 2}));
    }

    #[test]
    fn a_bad_batch_line_is_reported_with_its_number() {
        let error = read_batch("{\"channel\":\"a\",\"event\":\"e\",\"data\":1}\nnot json\n".as_bytes()).unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn data_that_is_not_json_needs_the_string_flag() {
        assert_eq!(read_data(Some("{\"a\":1}".into()), false).unwrap(), serde_json::json!({"a": 1}));
        assert!(read_data(Some("plain words".into()), false).is_err());
        assert_eq!(read_data(Some("plain words".into()), true).unwrap(), serde_json::json!("plain words"));
    }
}
