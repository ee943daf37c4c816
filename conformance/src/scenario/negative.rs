//! Negative data: for each operation, requests that break its schema or a documented
//! limit must get the documented 4xx problem, never a 2xx or a 5xx.

use std::time::Instant;

use serde_json::{Value, json};

use crate::context::{Ctx, expect_status};
use crate::http::Request;
use crate::report::Kind;
use crate::spec::code_status;

const KIND: Kind = Kind::Negative;

/// The request body of a case.
enum Body {
    /// No body (GET, DELETE).
    None,
    /// A JSON body sent as `application/json`.
    Json(Value),
    /// Raw bytes with a content type.
    Raw(&'static str, Vec<u8>),
}

/// What the contract promises for a case.
enum Expect {
    /// This problem code (and its status); the field error, when given, must point at or
    /// under this JSON pointer.
    Code(&'static str, Option<&'static str>),
    /// Some 4xx problem the operation declares.
    Any4xx,
}

struct Case {
    operation: &'static str,
    what: String,
    params: Vec<String>,
    query: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Body,
    expect: Expect,
}

fn case(operation: &'static str, what: &str, body: Value, expect: Expect) -> Case {
    Case {
        operation,
        what: what.to_owned(),
        params: Vec::new(),
        query: "",
        headers: Vec::new(),
        body: Body::Json(body),
        expect,
    }
}

fn get(operation: &'static str, what: &str, params: &[&str], query: &'static str, expect: Expect) -> Case {
    Case {
        operation,
        what: what.to_owned(),
        params: params.iter().map(|p| (*p).to_owned()).collect(),
        query,
        headers: Vec::new(),
        body: Body::None,
        expect,
    }
}

fn invalid(pointer: &'static str) -> Expect {
    Expect::Code("VALIDATION_ERROR", Some(pointer))
}

fn invalid_somewhere() -> Expect {
    Expect::Code("VALIDATION_ERROR", None)
}

fn cases(ctx: &Ctx, channel: &str) -> Vec<Case> {
    let client = ctx.name("neg");
    let long_client = "c".repeat(129);
    let long_channel = "n".repeat(165);
    let missing = ctx.name("never-created");
    let big_data = "x".repeat(11 * 1024);
    let huge_body = format!(r#"{{"channel":"{channel}","event":"e","data":"{}"}}"#, "x".repeat(2 * 1024 * 1024 + 1024));
    let message = |c: &str| json!({"channel": c, "event": "conformance.neg", "data": {}});
    let mut cases = vec![
        case(
            "realtime.token.issue",
            "ttl_seconds of the wrong type",
            json!({"client_id": client, "ttl_seconds": "soon"}),
            invalid("/ttl_seconds"),
        ),
        case(
            "realtime.token.issue",
            "client_id over 128 bytes",
            json!({"client_id": long_client}),
            invalid("/client_id"),
        ),
        case(
            "realtime.token.issue",
            "a capability outside the closed set",
            json!({"client_id": client, "capabilities": ["admin"]}),
            invalid("/capabilities"),
        ),
        case(
            "realtime.token.issue",
            "an unknown field",
            json!({"client_id": client, "bogus": true}),
            invalid_somewhere(),
        ),
        case("realtime.token.revoke", "no token_or_jti", json!({}), invalid_somewhere()),
        case(
            "realtime.token.revoke",
            "token_or_jti of the wrong type",
            json!({"token_or_jti": 7}),
            invalid("/token_or_jti"),
        ),
        case(
            "realtime.token.revoke",
            "token_or_jti over 4096 bytes",
            json!({"token_or_jti": "t".repeat(4097)}),
            invalid("/token_or_jti"),
        ),
        case("realtime.channel.create", "no name", json!({"type": "public"}), invalid_somewhere()),
        case("realtime.channel.create", "name of the wrong type", json!({"name": 42}), invalid("/name")),
        case("realtime.channel.create", "name over 164 bytes", json!({"name": long_channel}), invalid("/name")),
        case("realtime.channel.create", "name outside the charset", json!({"name": "room 42!"}), invalid("/name")),
        case(
            "realtime.channel.create",
            "a type outside the closed set",
            json!({"name": ctx.name("neg-type"), "type": "secret"}),
            invalid("/type"),
        ),
        case("realtime.publish", "no data", json!({"channel": channel, "event": "e"}), invalid_somewhere()),
        case(
            "realtime.publish",
            "event of the wrong type",
            json!({"channel": channel, "event": 5, "data": {}}),
            invalid("/event"),
        ),
        case(
            "realtime.publish",
            "event over 200 bytes",
            json!({"channel": channel, "event": "e".repeat(201), "data": {}}),
            invalid("/event"),
        ),
        case(
            "realtime.publish",
            "an event with a reserved prefix",
            json!({"channel": channel, "event": "pusher:subscribe", "data": {}}),
            invalid("/event"),
        ),
        case(
            "realtime.publish",
            "data over 10240 bytes",
            json!({"channel": channel, "event": "e", "data": big_data}),
            Expect::Code("PAYLOAD_TOO_LARGE", None),
        ),
        case("realtime.publish", "a channel never created", message(&missing), Expect::Code("NOT_FOUND", None)),
        case(
            "realtime.publish.batch",
            "101 messages",
            json!({"messages": vec![message(channel); 101]}),
            invalid("/messages"),
        ),
        case("realtime.publish.batch", "messages of the wrong type", json!({"messages": "x"}), invalid("/messages")),
        case(
            "realtime.publish.batch",
            "a message without event",
            json!({"messages": [{"channel": channel, "data": {}}]}),
            invalid("/messages/0"),
        ),
        case(
            "realtime.publish.batch",
            "a message to a channel never created",
            json!({"messages": [message(channel), message(&missing)]}),
            Expect::Code("NOT_FOUND", None),
        ),
        case("realtime.auth.sign", "no channels", json!({"client_id": client}), invalid_somewhere()),
        case(
            "realtime.auth.sign",
            "channels of the wrong type",
            json!({"client_id": client, "channels": "x"}),
            invalid("/channels"),
        ),
        case(
            "realtime.auth.sign",
            "client_id over 128 bytes",
            json!({"client_id": long_client, "channels": [channel]}),
            invalid("/client_id"),
        ),
        case(
            "realtime.auth.sign",
            "a vendor outside the closed set",
            json!({"client_id": client, "channels": [channel], "vendor": "acme"}),
            invalid("/vendor"),
        ),
        case("realtime.user.disconnect", "no client_id", json!({}), invalid_somewhere()),
        case(
            "realtime.user.disconnect",
            "client_id of the wrong type",
            json!({"client_id": ["a"]}),
            invalid("/client_id"),
        ),
        case(
            "realtime.user.disconnect",
            "client_id over 128 bytes",
            json!({"client_id": long_client}),
            invalid("/client_id"),
        ),
        case("account.topup", "no amount", json!({}), invalid_somewhere()),
        case("account.topup", "amount of the wrong type", json!({"amount": "lots"}), invalid("/amount")),
        case("account.topup", "amount below the minimum", json!({"amount": 1}), invalid("/amount")),
        case("account.topup", "a fractional amount", json!({"amount": 5_000_000.5}), invalid("/amount")),
        case(
            "realtime.token.issue.alias",
            "ttl_seconds of the wrong type",
            json!({"user_id": client, "ttl_seconds": "soon"}),
            invalid("/ttl_seconds"),
        ),
        case("realtime.channel.create.alias", "no name", json!({"type": "presence"}), invalid_somewhere()),
        get("realtime.channel.list", "limit 0", &[], "?limit=0", invalid_somewhere()),
        get("realtime.channel.list", "limit over the page maximum", &[], "?limit=101", invalid_somewhere()),
        get("realtime.channel.list", "limit that is not a number", &[], "?limit=abc", invalid_somewhere()),
        get("realtime.channel.get", "a channel never created", &[&missing], "", Expect::Code("NOT_FOUND", None)),
        get("realtime.channel.get", "a name over 164 bytes", &[&long_channel], "", Expect::Any4xx),
        get("realtime.presence.get", "a channel never created", &[&missing], "", Expect::Code("NOT_FOUND", None)),
        get("realtime.presence.get.alias", "a channel never created", &[&missing], "", Expect::Code("NOT_FOUND", None)),
        get("realtime.channel.delete", "a channel never created", &[&missing], "", Expect::Code("NOT_FOUND", None)),
    ];
    cases.push(Case {
        operation: "realtime.publish",
        what: "a body over 2 MiB".to_owned(),
        params: Vec::new(),
        query: "",
        headers: Vec::new(),
        body: Body::Raw("application/json", huge_body.into_bytes()),
        expect: Expect::Code("PAYLOAD_TOO_LARGE", None),
    });
    cases.push(Case {
        operation: "realtime.publish",
        what: "a body that is not JSON".to_owned(),
        params: Vec::new(),
        query: "",
        headers: Vec::new(),
        body: Body::Raw("application/json", br#"{"channel": "#.to_vec()),
        expect: Expect::Code("BAD_REQUEST", None),
    });
    cases.push(Case {
        operation: "realtime.token.issue",
        what: "a body that is not application/json".to_owned(),
        params: Vec::new(),
        query: "",
        headers: Vec::new(),
        body: Body::Raw("text/plain", format!(r#"{{"client_id": "{client}"}}"#).into_bytes()),
        expect: Expect::Code("UNSUPPORTED_MEDIA_TYPE", None),
    });
    cases.push(Case {
        operation: "realtime.publish",
        what: "an Idempotency-Key over 255 bytes".to_owned(),
        params: Vec::new(),
        query: "",
        headers: vec![("Idempotency-Key", "k".repeat(256))],
        body: Body::Json(message(channel)),
        expect: Expect::Any4xx,
    });
    cases
}

pub(crate) async fn run(ctx: &Ctx) {
    let started = Instant::now();
    let channel = ctx.name("neg");
    if let Err(err) = ctx.create_channel(&channel, "public").await {
        ctx.record("negative/setup", KIND, started, Err(format!("creating channel {channel}: {err}")));
    }
    for case in cases(ctx, &channel) {
        let id = format!("negative/{} with {}", case.operation, case.what);
        let started = Instant::now();
        let result = check(ctx, &case).await;
        ctx.record(&id, KIND, started, result);
    }
    ctx.delete_channel(&channel).await;
}

async fn check(ctx: &Ctx, case: &Case) -> Result<(), String> {
    let params: Vec<&str> = case.params.iter().map(String::as_str).collect();
    let mut request = ctx.request(case.operation, &params);
    request.path.push_str(case.query);
    for (name, value) in &case.headers {
        request = request.header(name, value);
    }
    request = match &case.body {
        Body::None => request,
        Body::Json(body) => request.json(body),
        Body::Raw(content_type, bytes) => request.header("Content-Type", content_type).raw(bytes.clone()),
    };
    let response = send(ctx, &request).await?;
    if response.status < 400 || response.status >= 500 {
        return Err(format!(
            "{}: status {} for a request the contract refuses, expected a 4xx problem: {}",
            case.operation,
            response.status,
            crate::spec::snippet(&response.body)
        ));
    }
    match case.expect {
        Expect::Any4xx => ctx.conforms(case.operation, &response),
        Expect::Code(code, pointer) => {
            let status = code_status(code).unwrap_or(400);
            expect_status(case.operation, &response, status, Some(code))?;
            ctx.conforms(case.operation, &response)?;
            match pointer {
                None => Ok(()),
                Some(pointer) => points_at(&response.json(), pointer),
            }
        }
    }
}

/// Sends a request; a target that resets the connection on an oversized body instead of
/// answering 413 is reported as such.
async fn send(ctx: &Ctx, request: &Request) -> Result<crate::http::Response, String> {
    ctx.target.send(request).await.map_err(|err| format!("no answer: {err}"))
}

/// Some field error of the problem points at `pointer` or under it.
fn points_at(problem: &Value, pointer: &str) -> Result<(), String> {
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["pointer"].as_str()).collect())
        .unwrap_or_default();
    let hit = pointers.iter().any(|p| *p == pointer || p.starts_with(&format!("{pointer}/")));
    if hit {
        Ok(())
    } else {
        Err(format!("the problem's errors[].pointer are {pointers:?}, expected one at {pointer}"))
    }
}
