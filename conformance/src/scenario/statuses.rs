//! Every documented status and error code of the REST operations that the other
//! scenarios do not provoke: for each write, no key (401), a body that is not JSON (400),
//! a body over 2 MiB (413), another media type (415), an unknown field (422
//! `VALIDATION_ERROR`) and a key reused with another body (422 `IDEMPOTENCY_KEY_REUSED`);
//! for each read, no key (401); a channel created again with another type (409
//! `CONFLICT`), an invalid `Idempotency-Key` header (400), and the calls without credit
//! the credit scenario leaves out (402).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::context::Ctx;
use crate::http::Request;
use crate::report::Kind;
use crate::scenario::live::{endpoint, field};
use crate::ws::Socket;

const KIND: Kind = Kind::Statuses;

/// The writes of the contract: `POST` operations with a JSON body.
const WRITES: [&str; 12] = [
    "realtime.token.issue",
    "realtime.token.revoke",
    "realtime.channel.create",
    "realtime.publish",
    "realtime.publish.batch",
    "realtime.auth.sign",
    "realtime.user.disconnect",
    "realtime.user.message.send",
    "realtime.user.command.send",
    "account.topup",
    "realtime.token.issue.alias",
    "realtime.channel.create.alias",
];

/// The reads (and the one `DELETE`) and the path parameters they are called with.
const READS: [&str; 8] = [
    "realtime.channel.get",
    "realtime.channel.delete",
    "realtime.channel.history",
    "realtime.presence.get",
    "realtime.presence.get.alias",
    "realtime.event.types",
    "realtime.user.command.get",
    "account.get",
];

/// Writes whose refusal without credit the credit scenario does not check.
/// (`realtime.user.command.send` is left out: its user must be online, which takes a
/// token, which takes credit.)
const BILLABLE: [&str; 3] =
    ["realtime.token.issue.alias", "realtime.channel.create.alias", "realtime.user.message.send"];

pub(crate) async fn run(ctx: &Ctx) {
    let channel = ctx.name("statuses");
    let started = Instant::now();
    if let Err(err) = ctx.create_channel(&channel, "public").await {
        ctx.record("statuses/setup", KIND, started, Err(format!("creating channel {channel}: {err}")));
    }
    let user = ctx.name("statuses-user");
    // A connected user, so that commands to it are accepted (a command to nobody is 409).
    let socket = crate::scenario::messaging::connect(ctx, &user).await;
    if let Err(err) = &socket {
        ctx.record("statuses/setup of a connected user", KIND, Instant::now(), Err(err.clone()));
    }

    for operation in WRITES {
        let path = ctx.path(operation, &[]);
        let method = method(ctx, operation);
        let unauthenticated = Request::new(&method, &path).json(&json!({}));
        expect(ctx, operation, "without a key", unauthenticated, 401, "UNAUTHENTICATED").await;
        let not_json = ctx.request(operation, &[]).header("Content-Type", "application/json").raw(b"{oops".to_vec());
        expect(ctx, operation, "with a body that is not JSON", not_json, 400, "BAD_REQUEST").await;
        let huge = format!(r#"{{"x":"{}"}}"#, "x".repeat(2 * 1024 * 1024 + 1024)).into_bytes();
        let huge = ctx.request(operation, &[]).header("Content-Type", "application/json").raw(huge);
        expect(ctx, operation, "with a body over 2 MiB", huge, 413, "PAYLOAD_TOO_LARGE").await;
        let text = ctx.request(operation, &[]).header("Content-Type", "text/plain").raw(b"{}".to_vec());
        expect(ctx, operation, "with a text/plain body", text, 415, "UNSUPPORTED_MEDIA_TYPE").await;
        let unknown = ctx.request(operation, &[]).json(&json!({"conformance_unknown_field": true}));
        expect(ctx, operation, "with an unknown field", unknown, 422, "VALIDATION_ERROR").await;
        reused(ctx, operation, &channel, &user, socket.is_ok()).await;
    }

    for operation in READS {
        let path = ctx.path(operation, &[&channel]);
        let request = Request::new(&method(ctx, operation), path);
        expect(ctx, operation, "without a key", request, 401, "UNAUTHENTICATED").await;
    }
    let history = ctx.request("realtime.channel.history", &[&channel]);
    let history = Request { path: format!("{}?limit=0", history.path), ..history };
    expect(ctx, "realtime.channel.history", "with limit 0", history, 422, "VALIDATION_ERROR").await;
    let delete =
        ctx.request("realtime.channel.delete", &[&ctx.name("statuses-never")]).header("Idempotency-Key", "a b");
    expect(ctx, "realtime.channel.delete", "with an Idempotency-Key with a space", delete, 400, "BAD_REQUEST").await;
    delete_reused(ctx).await;

    for operation in ["realtime.channel.create", "realtime.channel.create.alias"] {
        let id = format!("statuses/{operation} of an existing channel with another type is 409 CONFLICT");
        let started = Instant::now();
        let result = conflict(ctx, operation).await;
        ctx.record(&id, KIND, started, result);
    }

    without_credit(ctx, &user).await;

    let id = "statuses/a socket's user.message.send and user.command.send are answered user.message.sent and \
              user.command.done";
    let started = Instant::now();
    let result = client_sends(ctx, &user).await;
    ctx.record(id, KIND, started, result);

    if let Ok(socket) = socket {
        socket.close(ctx.config.live_bound).await;
    }
    ctx.delete_channel(&channel).await;
}

/// The operation's method in the document.
fn method(ctx: &Ctx, operation: &str) -> String {
    ctx.spec.operation(operation).map(|op| op.method.clone()).unwrap_or_else(|| "GET".to_owned())
}

/// Records `statuses/<operation> <what> is <status> <code>`.
async fn expect(ctx: &Ctx, operation: &str, what: &str, request: Request, status: u16, code: &str) {
    let id = format!("statuses/{operation} {what} is {status} {code}");
    let started = Instant::now();
    let result = ctx.expect(operation, &request, status, Some(code)).await.map(drop);
    ctx.record(&id, KIND, started, result);
}

/// Two valid bodies of a write that differ, so that a key sent with the first and then
/// with the second is reused; `None` when the reuse is checked elsewhere.
fn two_bodies(ctx: &Ctx, operation: &str, channel: &str, user: &str) -> Option<(Value, Value)> {
    let name = |suffix: &str| ctx.name(suffix);
    let message = |n: u64| json!({"channel": channel, "event": "conformance.statuses", "data": {"n": n}});
    Some(match operation {
        "realtime.token.issue" => (json!({"client_id": name("reuse-1")}), json!({"client_id": name("reuse-2")})),
        "realtime.channel.create" => (json!({"name": name("reuse-create")}), json!({"name": name("reuse-other")})),
        "realtime.token.issue.alias" => (json!({"user_id": name("reuse-1")}), json!({"user_id": name("reuse-2")})),
        "realtime.channel.create.alias" => (json!({"name": name("reuse-alias")}), json!({"name": name("reuse-other")})),
        "realtime.publish.batch" => (json!({"messages": [message(1)]}), json!({"messages": [message(2)]})),
        "realtime.auth.sign" => (
            json!({"client_id": name("reuse-1"), "channels": [channel]}),
            json!({"client_id": name("reuse-2"), "channels": [channel]}),
        ),
        "realtime.user.disconnect" => (json!({"client_id": name("reuse-1")}), json!({"client_id": name("reuse-2")})),
        "realtime.user.message.send" => {
            (json!({"target_user_id": user, "payload": {"n": 1}}), json!({"target_user_id": user, "payload": {"n": 2}}))
        }
        "realtime.user.command.send" => (
            json!({"target_user_id": user, "type": "CONFORMANCE:REUSE", "data": {"n": 1}, "wait_for_response": false}),
            json!({"target_user_id": user, "type": "CONFORMANCE:REUSE", "data": {"n": 2}, "wait_for_response": false}),
        ),
        "account.topup" => (json!({"amount": 5_000_000}), json!({"amount": 6_000_000})),
        // The first body is a token issued just before (see `reused`).
        "realtime.token.revoke" => (Value::Null, json!({"token_or_jti": name("reuse-never-issued")})),
        _ => return None,
    })
}

/// A key answered once (200) and sent again with another body is 422 IDEMPOTENCY_KEY_REUSED.
async fn reused(ctx: &Ctx, operation: &str, channel: &str, user: &str, user_online: bool) {
    let Some((first, second)) = two_bodies(ctx, operation, channel, user) else { return };
    let id = format!("statuses/{operation} with a key reused with another body is 422 IDEMPOTENCY_KEY_REUSED");
    if operation == "realtime.user.command.send" && !user_online {
        ctx.skip(&id, KIND, "no connected user (see the setup)");
        return;
    }
    let started = Instant::now();
    let result = async {
        let first = match operation {
            "realtime.token.revoke" => {
                let issue = ctx.request("realtime.token.issue", &[]).json(&json!({"client_id": ctx.name("revoked")}));
                let token = ctx.expect("realtime.token.issue", &issue, 200, None).await?.json();
                json!({"token_or_jti": field(&token, "/token")?})
            }
            _ => first,
        };
        let key = ctx.name(&format!("reuse-{operation}"));
        let request = ctx.request(operation, &[]).header("Idempotency-Key", &key);
        ctx.expect(operation, &request.clone().json(&first), 200, None).await?;
        ctx.expect(operation, &request.json(&second), 422, Some("IDEMPOTENCY_KEY_REUSED")).await.map(drop)
    }
    .await;
    ctx.record(&id, KIND, started, result);
    match operation {
        "realtime.channel.create" => ctx.delete_channel(&ctx.name("reuse-create")).await,
        "realtime.channel.create.alias" => ctx.delete_channel(&ctx.name("reuse-alias")).await,
        _ => {}
    }
}

/// Deleting one channel with a key and another with the same key is 422.
async fn delete_reused(ctx: &Ctx) {
    let id = "statuses/realtime.channel.delete with a key reused for another channel is 422 IDEMPOTENCY_KEY_REUSED";
    let started = Instant::now();
    let result = async {
        let (first, second) = (ctx.name("delete-1"), ctx.name("delete-2"));
        ctx.create_channel(&first, "public").await?;
        ctx.create_channel(&second, "public").await?;
        let key = ctx.name("reuse-delete");
        let delete = |channel: &str| ctx.request("realtime.channel.delete", &[channel]).header("Idempotency-Key", &key);
        ctx.expect("realtime.channel.delete", &delete(&first), 200, None).await?;
        let result = ctx.expect("realtime.channel.delete", &delete(&second), 422, Some("IDEMPOTENCY_KEY_REUSED")).await;
        ctx.delete_channel(&second).await;
        result.map(drop)
    }
    .await;
    ctx.record(id, KIND, started, result);
}

/// A channel created public and then created again as presence is 409 CONFLICT.
async fn conflict(ctx: &Ctx, operation: &str) -> Result<(), String> {
    let channel = ctx.name(if operation.ends_with(".alias") { "conflict-alias" } else { "conflict" });
    let create = |kind: &str| ctx.request(operation, &[]).json(&json!({"name": channel, "type": kind}));
    ctx.expect(operation, &create("public"), 200, None).await?;
    let result = ctx.expect(operation, &create("presence"), 409, Some("CONFLICT")).await;
    ctx.delete_channel(&channel).await;
    result.map(drop)
}

/// The billable writes the credit scenario leaves out are 402 without credit. They run
/// before the credit scenario's dev checkout gives the zero-credit account credit.
async fn without_credit(ctx: &Ctx, user: &str) {
    for operation in BILLABLE {
        let id = format!("statuses/{operation} without credit is 402 INSUFFICIENT_CREDIT");
        let Some(zero) = ctx.config.zero_credit_api_key.clone() else {
            ctx.skip(&id, KIND, "no zero-credit key given (--zero-credit-api-key)");
            continue;
        };
        let body = match operation {
            "realtime.token.issue.alias" => json!({"user_id": ctx.name("broke")}),
            "realtime.channel.create.alias" => json!({"name": ctx.name("broke")}),
            _ => json!({"target_user_id": user, "payload": {"n": 1}}),
        };
        let path = ctx.path(operation, &[]);
        let request = Request::new(&method(ctx, operation), path).bearer(&zero).json(&body);
        let started = Instant::now();
        let result = async {
            let response = ctx.expect(operation, &request, 402, Some("INSUFFICIENT_CREDIT")).await?;
            match response.str_field("/topup_url") {
                Some(_) => Ok(()),
                None => Err(format!("{operation}: the 402 problem has no topup_url")),
            }
        }
        .await;
        ctx.record(&id, KIND, started, result);
    }
}

/// A socket with the `message` capability sends a user message and a command (with a
/// one-second wait nobody answers); the answers are `user.message.sent` and
/// `user.command.done`, echoing each `request_id`.
async fn client_sends(ctx: &Ctx, user: &str) -> Result<(), String> {
    let bound = ctx.config.live_bound;
    let sender = ctx.name("statuses-sender");
    let request = ctx.request("realtime.token.issue", &[]).json(&json!({
        "client_id": sender,
        "capabilities": ["message"],
        "ttl_seconds": 600,
    }));
    let token = ctx.expect("realtime.token.issue", &request, 200, None).await?.json();
    let (mut socket, _) = Socket::connect(&endpoint(&token)?, &field(&token, "/token")?, bound).await?;
    let result = async {
        socket
            .send(
                &json!({"type": "user.message.send", "target_user_id": user, "payload": {"n": 1}, "request_id": "m1"}),
            )
            .await?;
        let sent = socket.expect("a user.message.sent", bound, |frame| frame["type"] == "user.message.sent").await?;
        if sent["request_id"] != "m1" {
            return Err(format!("user.message.sent has request_id {}, expected \"m1\"", sent["request_id"]));
        }
        let command = json!({"type": "user.command.send", "target_user_id": user, "command": "CONFORMANCE:SILENT",
                             "data": {}, "timeout": 1, "request_id": "c1"});
        socket.send(&command).await?;
        let done = socket
            .expect("a user.command.done", bound + Duration::from_secs(1), |frame| frame["type"] == "user.command.done")
            .await?;
        if done["request_id"] != "c1" {
            return Err(format!("user.command.done has request_id {}, expected \"c1\"", done["request_id"]));
        }
        Ok(())
    }
    .await;
    socket.close(bound).await;
    result
}
