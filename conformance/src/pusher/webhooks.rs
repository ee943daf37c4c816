//! Webhooks: a socket makes a presence channel occupied, and the receiver must get
//! `channel_occupied` and `member_added`, each with the app's key and a valid
//! `X-Pusher-Signature` (hex HMAC-SHA256 of the exact body with the app's secret).

use std::time::Instant;

use serde_json::{Value, json};

use super::protocol::{connect, subscribe};
use super::receiver::Delivery;
use super::{Run, signing};
use crate::report::Kind;

const KIND: Kind = Kind::PusherWebhook;

const OCCUPIED: &str = "pusher-webhook/channel_occupied arrives signed with the app's secret";
const MEMBER_ADDED: &str = "pusher-webhook/member_added arrives signed with the app's secret";

pub(super) async fn run(run: &Run) {
    let Some(webhooks) = &run.config.webhooks else {
        for id in [OCCUPIED, MEMBER_ADDED] {
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
        Ok::<_, String>(socket)
    }
    .await;
    let socket = match joined {
        Ok(socket) => socket,
        Err(err) => {
            run.record(OCCUPIED, KIND, started, Err(format!("joining {channel} with the webhook app: {err}")));
            run.skip(MEMBER_ADDED, KIND, "the setup failed (see the channel_occupied check)");
            return;
        }
    };
    let deadline = tokio::time::Instant::now() + run.config.webhook_bound;

    let result = async {
        let wanted = |event: &Value| event["name"] == "channel_occupied" && event["channel"] == json!(channel);
        let delivery = webhooks
            .receiver
            .wait_for(deadline, |delivery| events(delivery).iter().any(wanted))
            .await
            .ok_or_else(|| format!("no channel_occupied for {channel} within {:?}", run.config.webhook_bound))?;
        signed(&delivery, &app.key, &app.secret)
    }
    .await;
    run.record(OCCUPIED, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let wanted = |event: &Value| {
            event["name"] == "member_added" && event["channel"] == json!(channel) && event["user_id"] == json!(user_id)
        };
        let delivery =
            webhooks.receiver.wait_for(deadline, |delivery| events(delivery).iter().any(wanted)).await.ok_or_else(
                || format!("no member_added for {user_id} on {channel} within {:?}", run.config.webhook_bound),
            )?;
        signed(&delivery, &app.key, &app.secret)
    }
    .await;
    run.record(MEMBER_ADDED, KIND, started, result);
    socket.close(bound).await;
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
