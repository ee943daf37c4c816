//! Webhooks: a socket joins a presence channel, sends a client event and leaves, and the
//! receiver must get `channel_occupied`, `member_added`, `client_event`, `member_removed`
//! and `channel_vacated`, each with the app's key and a valid `X-Pusher-Signature` (hex
//! HMAC-SHA256 of the exact body with the app's secret).

use std::time::Instant;

use serde_json::{Value, json};

use super::protocol::{connect, subscribe};
use super::receiver::Delivery;
use super::{Run, Webhooks, signing};
use crate::report::Kind;

const KIND: Kind = Kind::PusherWebhook;

const OCCUPIED: &str = "pusher-webhook/channel_occupied arrives signed with the app's secret";
const MEMBER_ADDED: &str = "pusher-webhook/member_added arrives signed with the app's secret";
const CLIENT_EVENT: &str = "pusher-webhook/client_event arrives signed, with the event, data and socket_id";
const MEMBER_REMOVED: &str = "pusher-webhook/member_removed arrives signed after the member leaves";
const VACATED: &str = "pusher-webhook/channel_vacated arrives signed after the last subscriber leaves";

const ALL: [&str; 5] = [OCCUPIED, MEMBER_ADDED, CLIENT_EVENT, MEMBER_REMOVED, VACATED];

pub(super) async fn run(run: &Run) {
    let Some(webhooks) = &run.config.webhooks else {
        for id in ALL {
            run.skip(id, KIND, "no webhook receiver (give --webhook-listen, see the README)");
        }
        return;
    };
    let app = &webhooks.app;
    let bound = run.config.live_bound;
    let channel = format!("presence-{}", run.name("hook"));
    let user_id = run.name("hook-user");

    let started = Instant::now();
    let joined = async {
        let (mut socket, data) = connect(run, &app.key).await?;
        let socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
        let channel_data = json!({"user_id": user_id, "user_info": {"name": user_id}}).to_string();
        let auth = signing::channel_auth(app, &socket_id, &channel, Some(&channel_data));
        subscribe(&mut socket, &channel, Some(auth), Some(&channel_data), bound).await.map_err(String::from)?;
        Ok::<_, String>((socket, socket_id))
    }
    .await;
    let (mut socket, socket_id) = match joined {
        Ok(joined) => joined,
        Err(err) => {
            run.record(OCCUPIED, KIND, started, Err(format!("joining {channel} with the webhook app: {err}")));
            for id in &ALL[1..] {
                run.skip(id, KIND, "the setup failed (see the channel_occupied check)");
            }
            return;
        }
    };

    let result = expect(run, webhooks, "channel_occupied", |event| {
        event["name"] == "channel_occupied" && event["channel"] == json!(channel)
    })
    .await;
    let nothing_came = result.is_err() && webhooks.receiver.received().is_empty();
    run.record(OCCUPIED, KIND, started, result);
    if nothing_came {
        // Waiting for each of the others would only repeat that failure, slowly.
        for id in &ALL[1..] {
            run.skip(id, KIND, "no webhook arrived at all: is the app's webhook URL the receiver's?");
        }
        socket.close(bound).await;
        return;
    }

    let started = Instant::now();
    let result = expect(run, webhooks, "member_added", |event| {
        event["name"] == "member_added" && event["channel"] == json!(channel) && event["user_id"] == json!(user_id)
    })
    .await;
    run.record(MEMBER_ADDED, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let data = json!({"text": "to the webhook"});
        socket.send(&json!({"event": "client-conformance", "channel": channel, "data": data})).await?;
        expect(run, webhooks, "client_event", |event| {
            let sent = match &event["data"] {
                Value::String(text) => serde_json::from_str::<Value>(text).ok(),
                other => Some(other.clone()),
            };
            event["name"] == "client_event"
                && event["channel"] == json!(channel)
                && event["event"] == "client-conformance"
                && event["socket_id"] == json!(socket_id)
                && sent.as_ref() == Some(&data)
        })
        .await
    }
    .await;
    run.record(CLIENT_EVENT, KIND, started, result);

    let started = Instant::now();
    socket.close(bound).await;
    let result = expect(run, webhooks, "member_removed", |event| {
        event["name"] == "member_removed" && event["channel"] == json!(channel) && event["user_id"] == json!(user_id)
    })
    .await;
    run.record(MEMBER_REMOVED, KIND, started, result);

    let started = Instant::now();
    let result = expect(run, webhooks, "channel_vacated", |event| {
        event["name"] == "channel_vacated" && event["channel"] == json!(channel)
    })
    .await;
    run.record(VACATED, KIND, started, result);
}

/// Waits (up to the webhook bound) for a delivery holding an event `wanted` accepts, and
/// checks its signature.
pub(super) async fn expect(
    run: &Run,
    webhooks: &Webhooks,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + run.config.webhook_bound;
    let delivery =
        webhooks.receiver.wait_for(deadline, |delivery| events(delivery).iter().any(&wanted)).await.ok_or_else(
            || {
                let seen: Vec<String> = webhooks
                    .receiver
                    .received()
                    .iter()
                    .flat_map(events)
                    .map(|event| format!("{} {}", event["name"], event["channel"]))
                    .collect();
                format!("no matching {what} within {:?} (received: [{}])", run.config.webhook_bound, seen.join(", "))
            },
        )?;
    signed(&delivery, &webhooks.app.key, &webhooks.app.secret)
}

/// The events of a webhook body, `{"time_ms": …, "events": [ … ]}`.
fn events(delivery: &Delivery) -> Vec<Value> {
    serde_json::from_slice::<Value>(&delivery.body)
        .ok()
        .and_then(|body| body["events"].as_array().cloned())
        .unwrap_or_default()
}

/// The delivery carries the app's key, a valid signature and a `time_ms`.
fn signed(delivery: &Delivery, key: &str, secret: &str) -> Result<(), String> {
    if delivery.header("x-pusher-key") != Some(key) {
        return Err(format!("X-Pusher-Key is {:?}, expected the app key {key:?}", delivery.header("x-pusher-key")));
    }
    let expected = signing::hmac_hex(secret, &delivery.body);
    match delivery.header("x-pusher-signature") {
        Some(signature) if signature.eq_ignore_ascii_case(&expected) => {}
        other => {
            return Err(format!(
                "X-Pusher-Signature is {other:?}, expected the hex HMAC-SHA256 of the body with the app secret"
            ));
        }
    }
    let body: Value = serde_json::from_slice(&delivery.body).unwrap_or_default();
    if body["time_ms"].as_u64().unwrap_or(0) == 0 {
        return Err(format!("the body has time_ms {}, expected milliseconds since 1970", body["time_ms"]));
    }
    Ok(())
}
