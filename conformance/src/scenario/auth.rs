//! Authentication and tenancy: no key, a malformed key and an unknown key all get a 401
//! problem, and one account's key never sees another account's channels (what another
//! account can do to them, publishing included, is checked in `tenancy`).

use std::time::Instant;

use serde_json::json;

use crate::context::Ctx;
use crate::http::Request;
use crate::report::Kind;

const KIND: Kind = Kind::Auth;

/// Operations probed: a read, a free write, a billable write, and the account.
const OPERATIONS: [&str; 4] = ["account.get", "realtime.channel.list", "realtime.publish", "realtime.token.issue"];

pub(crate) async fn run(ctx: &Ctx) {
    let wrong_key = format!("ifr_pk_proj_{}0000000000000000000000", ctx.run_id);
    let credentials: [(&str, Option<String>); 4] = [
        ("no Authorization header", None),
        ("a malformed bearer key", Some("Bearer not a key".to_owned())),
        ("another scheme", Some(format!("Basic {}", "Y29uZm9ybWFuY2U6cGFzc3dvcmQ="))),
        ("an unknown key", Some(format!("Bearer {wrong_key}"))),
    ];
    for operation in OPERATIONS {
        for (what, authorization) in &credentials {
            let id = format!("auth/{operation} with {what} is 401 UNAUTHENTICATED");
            let started = Instant::now();
            let op = ctx.spec.operation(operation);
            let method = op.map(|op| op.method.as_str()).unwrap_or("GET");
            let mut request = Request::new(method, ctx.path(operation, &[]));
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            if method == "POST" {
                request = request.json(&body(ctx, operation));
            }
            let result = ctx.expect(operation, &request, 401, Some("UNAUTHENTICATED")).await.map(drop);
            ctx.record(&id, KIND, started, result);
        }
    }
    tenancy(ctx).await;
}

const TENANCY: [&str; 2] =
    ["auth/another account's channel is 404 NOT_FOUND", "auth/another account's channel is not listed"];

/// The zero-credit account (another tenant) looks at a channel of the funded one. Reads
/// are free, so no credit is needed.
async fn tenancy(ctx: &Ctx) {
    let Some(other) = ctx.config.zero_credit_api_key.clone() else {
        for id in TENANCY {
            ctx.skip(id, KIND, "needs a second account: no zero-credit key given (--zero-credit-api-key)");
        }
        return;
    };
    let started = Instant::now();
    let channel = ctx.name("tenancy");
    if let Err(err) = ctx.create_channel(&channel, "public").await {
        ctx.record("auth/tenancy setup", KIND, started, Err(format!("creating channel {channel}: {err}")));
        for id in TENANCY {
            ctx.skip(id, KIND, "the setup failed");
        }
        return;
    }

    let started = Instant::now();
    let get = Request::new("GET", ctx.path("realtime.channel.get", &[&channel])).bearer(&other);
    let result = ctx.expect("realtime.channel.get", &get, 404, Some("NOT_FOUND")).await.map(drop);
    ctx.record(TENANCY[0], KIND, started, result);

    let started = Instant::now();
    let result = async {
        // Follow the cursor a bounded number of pages: the channel must be on none of them.
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let query =
                cursor.as_deref().map(|c| format!("&cursor={}", crate::context::encode_segment(c))).unwrap_or_default();
            let list = Request::new("GET", format!("{}?limit=100{query}", ctx.path("realtime.channel.list", &[])))
                .bearer(&other);
            let page = ctx.expect("realtime.channel.list", &list, 200, None).await?.json();
            let names: Vec<&str> =
                page["channels"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
            if names.contains(&channel.as_str()) {
                return Err(format!("channel.list of another account lists {channel}"));
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(()),
            }
        }
        Err("channel.list did not end within 50 pages".to_owned())
    }
    .await;
    ctx.record(TENANCY[1], KIND, started, result);

    ctx.delete_channel(&channel).await;
}

/// A body that would be valid, so only the credentials are wrong.
fn body(ctx: &Ctx, operation: &str) -> serde_json::Value {
    match operation {
        "realtime.publish" => json!({"channel": ctx.name("auth"), "event": "conformance.auth", "data": {}}),
        _ => json!({"client_id": ctx.name("auth")}),
    }
}
