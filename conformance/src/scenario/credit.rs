//! The 402 path: without credit every billable call is refused with no effect; a top-up
//! returns a checkout; once the checkout completes, the same calls (with the same
//! idempotency keys) go through.

use std::time::Instant;

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::http::{Request, Response};
use crate::report::Kind;
use crate::scenario::idempotency::publish_marker;
use crate::scenario::live::subscriber;
use crate::ws::Socket;

const KIND: Kind = Kind::Credit;

const TOKEN: &str = "credit/token.issue without credit is 402 INSUFFICIENT_CREDIT";
const CREATE: &str = "credit/channel.create without credit is 402 and creates nothing";
const PUBLISH: &str = "credit/publish without credit is 402 and is not delivered";
const BATCH: &str = "credit/publish.batch without credit is 402 and is not delivered";
const SIGN: &str = "credit/auth.sign without credit is 402 INSUFFICIENT_CREDIT";
const FREE: &str = "credit/refused calls cost nothing";
const TOPUP: &str = "credit/account.topup returns a pending checkout";
const COMPLETE: &str = "credit/completing the checkout credits the account exactly once";
const RETRY: [&str; 5] = [
    "credit/after the top-up token.issue goes through (same idempotency key)",
    "credit/after the top-up channel.create goes through (same idempotency key)",
    "credit/after the top-up publish goes through (same idempotency key)",
    "credit/after the top-up publish.batch goes through (same idempotency key)",
    "credit/after the top-up auth.sign goes through (same idempotency key)",
];

/// The top-up the harness asks for, in micro-USD ($5, the contract's example).
const TOPUP_AMOUNT: i64 = 5_000_000;

/// The event name of publishes that must never be delivered.
const REFUSED_EVENT: &str = "conformance.refused";

pub(crate) async fn run(ctx: &Ctx) {
    let all: Vec<&str> =
        [TOKEN, CREATE, PUBLISH, BATCH, SIGN, FREE, TOPUP, COMPLETE].into_iter().chain(RETRY).collect();
    let Some(zero) = ctx.config.zero_credit_api_key.clone() else {
        for id in all {
            ctx.skip(id, KIND, "no zero-credit key given (--zero-credit-api-key)");
        }
        return;
    };
    let started = Instant::now();
    match ctx.balance(&zero).await {
        Err(err) => {
            ctx.record("credit/setup", KIND, started, Err(format!("reading the zero-credit account: {err}")));
            for id in all {
                ctx.skip(id, KIND, "the setup failed");
            }
            return;
        }
        Ok(balance) if balance != 0 => {
            // A failure, not a skip: the caller asked for the 402 path, and a key that an
            // earlier run topped up (--dev-checkout credits it) must not turn into a pass.
            let reason = format!(
                "the --zero-credit-api-key account has a balance of {balance} (an earlier run with \
                 --dev-checkout tops it up); give the key of an account with none"
            );
            ctx.record("credit/setup", KIND, started, Err(reason));
            for id in all {
                ctx.skip(id, KIND, "the zero-credit key is funded");
            }
            return;
        }
        Ok(_) => {}
    }

    // A channel of the funded account with a live subscriber: the zero-credit account
    // publishes to the same name, and nothing may reach the subscriber.
    let watched = ctx.name("credit");
    let own = ctx.name("credit-own");
    let mut socket = match ctx.create_channel(&watched, "public").await {
        Ok(()) => subscriber(ctx, &watched, &ctx.name("credit-sub")).await,
        Err(err) => Err(format!("creating channel {watched}: {err}")),
    };
    let keys = Keys::new(ctx);
    let calls = Calls { zero: &zero, own: &own, client: ctx.name("credit-client") };

    let started = Instant::now();
    let result = refused(ctx, &calls.token_issue(ctx, &keys.token), "realtime.token.issue").await;
    ctx.record(TOKEN, KIND, started, result);

    let started = Instant::now();
    let result = async {
        refused(ctx, &calls.channel_create(ctx, &keys.create), "realtime.channel.create").await?;
        let get = Request::new("GET", ctx.path("realtime.channel.get", &[&own])).bearer(&zero);
        ctx.expect("realtime.channel.get", &get, 404, Some("NOT_FOUND"))
            .await
            .map(drop)
            .map_err(|err| format!("the refused channel.create left a channel behind: {err}"))
    }
    .await;
    ctx.record(CREATE, KIND, started, result);

    let started = Instant::now();
    let result = async {
        refused(ctx, &calls.publish(ctx, &keys.publish, &watched), "realtime.publish").await?;
        not_delivered(ctx, &mut socket, &watched).await
    }
    .await;
    ctx.record(PUBLISH, KIND, started, result);

    let started = Instant::now();
    let result = async {
        refused(ctx, &calls.publish_batch(ctx, &keys.batch, &watched), "realtime.publish.batch").await?;
        not_delivered(ctx, &mut socket, &watched).await
    }
    .await;
    ctx.record(BATCH, KIND, started, result);

    let started = Instant::now();
    let result = refused(ctx, &calls.auth_sign(ctx, &keys.sign), "realtime.auth.sign").await;
    ctx.record(SIGN, KIND, started, result);

    let started = Instant::now();
    let result = async {
        match ctx.balance(&zero).await? {
            0 => Ok(()),
            balance => Err(format!("the balance is {balance} after refused calls, expected 0")),
        }
    }
    .await;
    ctx.record(FREE, KIND, started, result);

    let started = Instant::now();
    let checkout = async {
        let request =
            Request::new("POST", ctx.path("account.topup", &[])).bearer(&zero).json(&json!({"amount": TOPUP_AMOUNT}));
        let response = ctx.expect("account.topup", &request, 200, None).await?;
        let body = response.json();
        crate::examples::contains(&body, &json!({"amount": TOPUP_AMOUNT, "status": "pending"}), "")?;
        body["checkout_url"]
            .as_str()
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| "the checkout has no checkout_url".to_owned())
    }
    .await;
    let checkout_url = checkout.as_ref().ok().cloned();
    ctx.record(TOPUP, KIND, started, checkout.map(drop));

    let completed = if !ctx.config.dev_checkout {
        let reason = "completing a checkout needs a payer; pass --dev-checkout when the target serves the reference dev checkout";
        ctx.skip(COMPLETE, KIND, reason);
        false
    } else if let Some(url) = checkout_url {
        let started = Instant::now();
        let result = complete(ctx, &zero, &url).await;
        let ok = result.is_ok();
        ctx.record(COMPLETE, KIND, started, result);
        ok
    } else {
        ctx.skip(COMPLETE, KIND, "the top-up returned no checkout");
        false
    };

    if completed {
        let retries = [
            ("realtime.token.issue", calls.token_issue(ctx, &keys.token)),
            ("realtime.channel.create", calls.channel_create(ctx, &keys.create)),
            ("realtime.publish", calls.publish(ctx, &keys.publish, &own)),
            ("realtime.publish.batch", calls.publish_batch(ctx, &keys.batch, &own)),
            ("realtime.auth.sign", calls.auth_sign(ctx, &keys.sign)),
        ];
        for ((operation, request), id) in retries.iter().zip(RETRY) {
            let started = Instant::now();
            let result = charged(ctx, &zero, operation, request).await;
            ctx.record(id, KIND, started, result);
        }
        let delete = Request::new("DELETE", ctx.path("realtime.channel.delete", &[&own])).bearer(&zero);
        let _ = ctx.target.send(&delete).await;
    } else {
        for id in RETRY {
            ctx.skip(id, KIND, "the checkout was not completed");
        }
    }

    if let Ok(socket) = socket {
        socket.close(ctx.config.live_bound).await;
    }
    ctx.delete_channel(&watched).await;
}

/// The idempotency keys of the refused calls, reused by the retries.
struct Keys {
    token: String,
    create: String,
    publish: String,
    batch: String,
    sign: String,
}

impl Keys {
    fn new(ctx: &Ctx) -> Keys {
        Keys {
            token: ctx.name("k402-token"),
            create: ctx.name("k402-create"),
            publish: ctx.name("k402-publish"),
            batch: ctx.name("k402-batch"),
            sign: ctx.name("k402-sign"),
        }
    }
}

/// The billable calls of the zero-credit account.
struct Calls<'a> {
    zero: &'a str,
    own: &'a str,
    client: String,
}

impl Calls<'_> {
    fn post(&self, ctx: &Ctx, operation: &str, key: &str, body: &Value) -> Request {
        Request::new("POST", ctx.path(operation, &[])).bearer(self.zero).header("Idempotency-Key", key).json(body)
    }

    fn token_issue(&self, ctx: &Ctx, key: &str) -> Request {
        self.post(ctx, "realtime.token.issue", key, &json!({"client_id": self.client}))
    }

    fn channel_create(&self, ctx: &Ctx, key: &str) -> Request {
        self.post(ctx, "realtime.channel.create", key, &json!({"name": self.own, "type": "public"}))
    }

    fn publish(&self, ctx: &Ctx, key: &str, channel: &str) -> Request {
        let body = json!({"channel": channel, "event": REFUSED_EVENT, "data": {"n": 1}});
        self.post(ctx, "realtime.publish", key, &body)
    }

    fn publish_batch(&self, ctx: &Ctx, key: &str, channel: &str) -> Request {
        let message = json!({"channel": channel, "event": REFUSED_EVENT, "data": {"n": 2}});
        self.post(ctx, "realtime.publish.batch", key, &json!({"messages": [message.clone(), message]}))
    }

    fn auth_sign(&self, ctx: &Ctx, key: &str) -> Request {
        let body = json!({"client_id": self.client, "channels": [self.own], "vendor": "realtime"});
        self.post(ctx, "realtime.auth.sign", key, &body)
    }
}

/// The call is refused with a 402 problem that says where to top up.
async fn refused(ctx: &Ctx, request: &Request, operation: &str) -> Result<(), String> {
    let response = ctx.expect(operation, request, 402, Some("INSUFFICIENT_CREDIT")).await.map_err(|mismatch| {
        if mismatch.contains("(NOT_FOUND)") {
            // Say why a 404 is wrong here: otherwise it reads like a harness mistake.
            format!(
                "{mismatch} — the contract gives every billable call the balance does not cover a 402 \
                 (info.description); answering 404 first makes the zero-credit 402 unobservable"
            )
        } else {
            mismatch
        }
    })?;
    topup_link(&response)
}

fn topup_link(response: &Response) -> Result<(), String> {
    match response.json()["topup_url"].as_str() {
        Some(url) if !url.is_empty() => Ok(()),
        _ => Err("the 402 problem has no topup_url (the contract promises a link to top up)".to_owned()),
    }
}

/// No refused publish reached the funded subscriber of the channel, checked with a marker.
async fn not_delivered(ctx: &Ctx, socket: &mut Result<Socket, String>, channel: &str) -> Result<(), String> {
    let socket = socket.as_mut().map_err(|err| format!("no live subscriber to watch the channel: {err}"))?;
    let marker = publish_marker(ctx, channel).await?;
    let deadline = Instant::now() + ctx.config.live_bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame =
            socket.expect(&format!("the marker message {marker}"), left, |frame| frame["type"] == "message").await?;
        if frame["event"] == REFUSED_EVENT {
            return Err(format!("a refused publish was delivered to a live subscriber: {frame}"));
        }
        if frame["message_id"] == json!(marker) {
            return Ok(());
        }
    }
}

/// Completes the dev checkout, twice: the account is credited by the amount, once.
async fn complete(ctx: &Ctx, zero: &str, checkout_url: &str) -> Result<(), String> {
    let url = if checkout_url.starts_with('/') { ctx.target.url(checkout_url) } else { checkout_url.to_owned() };
    let complete = Request::new("POST", format!("{}/complete", url.trim_end_matches('/')));
    let first = ctx.target.send(&complete).await?;
    if !(200..300).contains(&first.status) {
        return Err(format!("POST {url}/complete: status {}: {}", first.status, crate::spec::snippet(&first.body)));
    }
    let after_first = ctx.balance(zero).await?;
    if after_first != TOPUP_AMOUNT {
        return Err(format!("the balance is {after_first} after completing a checkout of {TOPUP_AMOUNT}"));
    }
    let _ = ctx.target.send(&complete).await?;
    let after_second = ctx.balance(zero).await?;
    if after_second != after_first {
        return Err(format!("completing the checkout again changed the balance from {after_first} to {after_second}"));
    }
    Ok(())
}

/// The call goes through (not a replay of the stored 402) and is charged.
async fn charged(ctx: &Ctx, zero: &str, operation: &str, request: &Request) -> Result<(), String> {
    let before = ctx.balance(zero).await?;
    ctx.expect(operation, request, 200, None).await?;
    let after = ctx.balance(zero).await?;
    if after >= before {
        return Err(format!("{operation} went through but the balance went from {before} to {after}"));
    }
    if after < 0 {
        return Err(format!("the balance went negative: {after}"));
    }
    Ok(())
}
