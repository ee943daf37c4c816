//! Idempotent replay: the same key and request replay the first response with no second
//! effect or charge; the same key with another request is refused; the header and the
//! `idempotency_key` body field are both honoured.

use std::time::Instant;

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::http::Response;
use crate::report::Kind;
use crate::scenario::live::subscriber;
use crate::ws::Socket;

const KIND: Kind = Kind::Idempotency;

/// The event of the publish that is replayed.
const IDEMPOTENT_EVENT: &str = "conformance.idempotent";

const CHECKS: [&str; 10] = [
    "idempotency/publish replay returns the first response",
    "idempotency/publish replay is charged once",
    "idempotency/publish replay is delivered once",
    "idempotency/same key with another body is 422 IDEMPOTENCY_KEY_REUSED",
    "idempotency/idempotency_key body field is honoured",
    "idempotency/header and body field that differ are 400 BAD_REQUEST",
    "idempotency/token.issue replay returns the same token",
    "idempotency/channel.create replay returns the same channel",
    "idempotency/channel.delete replay returns the first response",
    "idempotency/keys are scoped per operation",
];

pub(crate) async fn run(ctx: &Ctx) {
    let started = Instant::now();
    let channel = ctx.name("idem");
    if let Err(err) = ctx.create_channel(&channel, "public").await {
        ctx.record("idempotency/setup", KIND, started, Err(format!("creating channel {channel}: {err}")));
        for id in CHECKS {
            ctx.skip(id, KIND, "the setup failed");
        }
        return;
    }
    let mut socket = subscriber(ctx, &channel, &ctx.name("idem-sub")).await;

    // One publish with a key, then the same request again.
    let key = ctx.name("k-publish");
    let body = json!({"channel": channel, "event": IDEMPOTENT_EVENT, "data": {"n": 1}});
    let started = Instant::now();
    let first = publish_pair(ctx, &key, &body).await;
    let first_id = first.as_ref().ok().and_then(|pair| pair.first.str_field("/message_id"));
    let replay = match &first {
        Err(err) => Err(err.clone()),
        Ok(pair) => same_replay(&pair.first, &pair.second, "/message_id"),
    };
    ctx.record(CHECKS[0], KIND, started, replay);

    let started = Instant::now();
    let charged = match &first {
        Err(err) => Err(format!("the publish pair failed: {err}")),
        Ok(pair) => {
            if pair.after_first >= pair.before {
                Err(format!(
                    "publish is billable, but the balance went from {} to {} after the first call",
                    pair.before, pair.after_first
                ))
            } else if pair.after_replay != pair.after_first {
                Err(format!(
                    "the replay was charged: balance {} after the first call, {} after the replay",
                    pair.after_first, pair.after_replay
                ))
            } else {
                Ok(())
            }
        }
    };
    ctx.record(CHECKS[1], KIND, started, charged);

    let started = Instant::now();
    let delivered_once = match (&mut socket, &first_id) {
        (Err(err), _) => Err(format!("no live subscriber: {err}")),
        (Ok(_), None) => Err("the publish pair failed".to_owned()),
        (Ok(socket), Some(_)) => {
            delivered_count(ctx, socket, &channel, IDEMPOTENT_EVENT).await.and_then(|count| match count {
                1 => Ok(()),
                n => Err(format!("the publish and its replay reached the subscriber {n} times, expected once")),
            })
        }
    };
    ctx.record(CHECKS[2], KIND, started, delivered_once);

    let started = Instant::now();
    let reused = async {
        let before = ctx.balance(ctx.funded_key()).await?;
        let other = json!({"channel": channel, "event": IDEMPOTENT_EVENT, "data": {"n": 2}});
        let request = ctx.request("realtime.publish", &[]).header("Idempotency-Key", &key).json(&other);
        ctx.expect("realtime.publish", &request, 422, Some("IDEMPOTENCY_KEY_REUSED")).await?;
        let after = ctx.balance(ctx.funded_key()).await?;
        if after != before {
            return Err(format!("the refused request was charged: balance {before} -> {after}"));
        }
        Ok(())
    }
    .await;
    ctx.record(CHECKS[3], KIND, started, reused);

    let started = Instant::now();
    let body_field = async {
        let body = json!({"channel": channel, "event": "conformance.body-key", "data": {}, "idempotency_key": ctx.name("k-body")});
        let request = ctx.request("realtime.publish", &[]).json(&body);
        let first = ctx.expect("realtime.publish", &request, 200, None).await?;
        let second = ctx.expect("realtime.publish", &request, 200, None).await?;
        same_replay(&first, &second, "/message_id")
    }
    .await;
    ctx.record(CHECKS[4], KIND, started, body_field);

    let started = Instant::now();
    let differ = async {
        let body = json!({"channel": channel, "event": "conformance.differ", "data": {}, "idempotency_key": ctx.name("k-body-2")});
        let request = ctx.request("realtime.publish", &[]).header("Idempotency-Key", &ctx.name("k-header-2")).json(&body);
        ctx.expect("realtime.publish", &request, 400, Some("BAD_REQUEST")).await.map(drop)
    }
    .await;
    ctx.record(CHECKS[5], KIND, started, differ);

    let started = Instant::now();
    let token = async {
        let body = json!({"client_id": ctx.name("idem-token"), "channels": [channel]});
        let request =
            ctx.request("realtime.token.issue", &[]).header("Idempotency-Key", &ctx.name("k-token")).json(&body);
        let first = ctx.expect("realtime.token.issue", &request, 200, None).await?;
        let second = ctx.expect("realtime.token.issue", &request, 200, None).await?;
        same_replay(&first, &second, "/jti")
    }
    .await;
    ctx.record(CHECKS[6], KIND, started, token);

    let scratch = ctx.name("idem-scratch");
    let started = Instant::now();
    let create = async {
        let request = ctx
            .request("realtime.channel.create", &[])
            .header("Idempotency-Key", &ctx.name("k-create"))
            .json(&json!({"name": scratch, "type": "public"}));
        let first = ctx.expect("realtime.channel.create", &request, 200, None).await?;
        if first.json()["created"] != json!(true) {
            return Err(format!("a new channel was reported with created = {}", first.json()["created"]));
        }
        let second = ctx.expect("realtime.channel.create", &request, 200, None).await?;
        same_replay(&first, &second, "/channel_id")
    }
    .await;
    ctx.record(CHECKS[7], KIND, started, create);

    let started = Instant::now();
    let delete = async {
        let request =
            ctx.request("realtime.channel.delete", &[&scratch]).header("Idempotency-Key", &ctx.name("k-delete"));
        let first = ctx.expect("realtime.channel.delete", &request, 200, None).await?;
        let second = ctx.target.send(&request).await?;
        if second.status != 200 {
            return Err(format!(
                "the replay of a delete got status {} (a second effect), expected the stored 200",
                second.status
            ));
        }
        ctx.conforms("realtime.channel.delete", &second)?;
        same_replay(&first, &second, "/channel")
    }
    .await;
    ctx.record(CHECKS[8], KIND, started, delete);

    let started = Instant::now();
    let scoped = async {
        // The publish key, used on another operation, is a new key there.
        let request = ctx
            .request("realtime.channel.create", &[])
            .header("Idempotency-Key", &key)
            .json(&json!({"name": ctx.name("idem-scope"), "type": "public"}));
        let response = ctx.expect("realtime.channel.create", &request, 200, None).await?;
        if replayed(&response) {
            return Err("a key first used on publish was replayed on channel.create".to_owned());
        }
        Ok(())
    }
    .await;
    ctx.record(CHECKS[9], KIND, started, scoped);

    if let Ok(socket) = socket {
        socket.close(ctx.config.live_bound).await;
    }
    ctx.delete_channel(&ctx.name("idem-scope")).await;
    ctx.delete_channel(&channel).await;
}

struct Pair {
    first: Response,
    second: Response,
    before: i64,
    after_first: i64,
    after_replay: i64,
}

async fn publish_pair(ctx: &Ctx, key: &str, body: &Value) -> Result<Pair, String> {
    let request = ctx.request("realtime.publish", &[]).header("Idempotency-Key", key).json(body);
    let before = ctx.balance(ctx.funded_key()).await?;
    let first = ctx.expect("realtime.publish", &request, 200, None).await?;
    let after_first = ctx.balance(ctx.funded_key()).await?;
    let second = ctx.expect("realtime.publish", &request, 200, None).await?;
    let after_replay = ctx.balance(ctx.funded_key()).await?;
    Ok(Pair { first, second, before, after_first, after_replay })
}

/// Whether a response says it is a replay.
pub(crate) fn replayed(response: &Response) -> bool {
    response.header("idempotent-replayed").is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// The second response is the first one replayed: marked as a replay (the first is not),
/// with the same id at `id_pointer` and the same body.
fn same_replay(first: &Response, second: &Response, id_pointer: &str) -> Result<(), String> {
    if replayed(first) {
        return Err("the first response already says Idempotent-Replayed: true".to_owned());
    }
    if !replayed(second) {
        return Err(format!(
            "the replay has Idempotent-Replayed: {:?}, expected true",
            second.header("idempotent-replayed").unwrap_or("(absent)")
        ));
    }
    let (a, b) = (first.json(), second.json());
    if a.pointer(id_pointer) != b.pointer(id_pointer) {
        return Err(format!(
            "the replay has {id_pointer} {}, the first response had {}",
            b.pointer(id_pointer).unwrap_or(&Value::Null),
            a.pointer(id_pointer).unwrap_or(&Value::Null)
        ));
    }
    if a != b {
        return Err(format!("the replayed body differs from the first: {a} vs {b}"));
    }
    Ok(())
}

/// How many messages of `event` reached `socket` before a marker published after them.
/// Per-channel order makes the marker a barrier: nothing published earlier arrives later.
async fn delivered_count(ctx: &Ctx, socket: &mut Socket, channel: &str, event: &str) -> Result<usize, String> {
    let marker = publish_marker(ctx, channel).await?;
    let mut count = 0;
    let bound = ctx.config.live_bound;
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame =
            socket.expect(&format!("the marker message {marker}"), left, |frame| frame["type"] == "message").await?;
        if frame["message_id"] == json!(marker) {
            return Ok(count);
        }
        if frame["event"] == json!(event) {
            count += 1;
        }
    }
}

/// Publishes a marker event with the funded key and returns its message id.
pub(crate) async fn publish_marker(ctx: &Ctx, channel: &str) -> Result<String, String> {
    let request = ctx
        .request("realtime.publish", &[])
        .json(&json!({"channel": channel, "event": "conformance.marker", "data": null}));
    let response = ctx.expect("realtime.publish", &request, 200, None).await?;
    response.str_field("/message_id").ok_or_else(|| "the marker publish has no message_id".to_owned())
}
