//! Authentication: no key, a malformed key and an unknown key all get a 401 problem.

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
}

/// A body that would be valid, so only the credentials are wrong.
fn body(ctx: &Ctx, operation: &str) -> serde_json::Value {
    match operation {
        "realtime.publish" => json!({"channel": ctx.name("auth"), "event": "conformance.auth", "data": {}}),
        _ => json!({"client_id": ctx.name("auth")}),
    }
}
