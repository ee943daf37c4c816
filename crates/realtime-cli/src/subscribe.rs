//! `realtime subscribe`: live events as JSON lines on stdout, status on stderr.

use std::io::Write;

use futures_util::StreamExt;
use realtime_client::subscriber::Disconnect;
use realtime_client::{Client, Subscriber, SubscriberEvent};
use realtime_types::ws::ServerFrame;
use realtime_types::{Capability, ErrorCode, TokenIssueRequest};

/// What `subscribe` was asked for.
pub(crate) struct SubscribeArgs {
    pub(crate) channels: Vec<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) presence: bool,
    pub(crate) count: Option<u64>,
    pub(crate) ack: bool,
    pub(crate) answer: Option<String>,
}

pub(crate) async fn run(client: Client, args: SubscribeArgs) -> anyhow::Result<()> {
    let mut capabilities = vec![Capability::Subscribe];
    if args.presence {
        capabilities.push(Capability::Presence);
    }
    let request = TokenIssueRequest {
        user_id: args.user_id,
        client_id: args.client_id,
        channels: Some(args.channels.clone()),
        capabilities: Some(capabilities),
        ttl_seconds: None,
        idempotency_key: None,
    };
    let mut builder = Subscriber::builder().issue_tokens_with(client, request);
    for channel in &args.channels {
        builder = builder.channel(channel.clone());
    }
    let mut subscriber = builder.connect().await?;
    let mut messages: u64 = 0;
    let mut stdout = std::io::stdout();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut closing = false;
    loop {
        let event = tokio::select! {
            event = subscriber.next() => event,
            _ = &mut ctrl_c, if !closing => {
                closing = true;
                subscriber.close().await;
                continue;
            }
        };
        let Some(event) = event else { return Ok(()) };
        match event {
            SubscriberEvent::Frame(frame) => {
                let is_message = matches!(frame, ServerFrame::Message { .. });
                if let ServerFrame::Error { code, message, channel, .. } = &frame {
                    eprintln!(
                        "server: {code}: {message}{}",
                        channel.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
                    );
                    // A channel asked for that the server refuses for good ends the command
                    // instead of waiting forever.
                    if matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden)
                        && channel.as_ref().is_some_and(|channel| args.channels.contains(channel))
                    {
                        subscriber.close().await;
                        anyhow::bail!("cannot subscribe to {}: {message}", channel.as_deref().unwrap_or_default());
                    }
                }
                if let ServerFrame::UserMessage { message_id, sequence: Some(_), .. } = &frame
                    && args.ack
                {
                    subscriber.ack(message_id.clone()).await.ok();
                }
                if let (ServerFrame::UserCommand { command_id, .. }, Some(program)) = (&frame, &args.answer) {
                    match answer(program, &frame).await {
                        Ok(response) => {
                            subscriber.respond(command_id.clone(), response).await.ok();
                        }
                        Err(error) => eprintln!("command {command_id} not answered: {error:#}"),
                    }
                }
                if let ServerFrame::Subscribed { channel, position, recovered: Some(false), recovery_failure, .. } =
                    &frame
                {
                    let reason = recovery_failure.map(|r| format!("{r:?}")).unwrap_or_default();
                    eprintln!(
                        "{channel}: messages were missed while reconnecting and cannot be replayed ({reason}); \
                         going on from offset {} (read `realtime history {channel}` for what is kept)",
                        position.offset
                    );
                }
                writeln!(stdout, "{}", serde_json::to_string(&frame)?)?;
                stdout.flush()?;
                if is_message {
                    messages += 1;
                    if args.count.is_some_and(|count| messages >= count) && !closing {
                        closing = true;
                        subscriber.close().await;
                    }
                }
            }
            SubscriberEvent::Reconnecting { reason, attempt, retry_in } => {
                eprintln!("connection lost ({reason}); reconnecting in {retry_in:?} (attempt {attempt})");
            }
            SubscriberEvent::Stopped { reason: Disconnect::ClosedByClient } => return Ok(()),
            SubscriberEvent::Stopped { reason } => anyhow::bail!("the subscription stopped: {reason}"),
        }
    }
}

/// Runs `program` through `sh -c` with `frame` as JSON on its stdin; its stdout, as JSON
/// (or as a JSON string when it is not JSON), is the response.
async fn answer(program: &str, frame: &ServerFrame) -> anyhow::Result<serde_json::Value> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(serde_json::to_string(frame)?.as_bytes()).await?;
    drop(stdin);
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output()).await??;
    anyhow::ensure!(output.status.success(), "the program exited with {}", output.status);
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}
