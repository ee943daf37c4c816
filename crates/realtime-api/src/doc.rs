//! The OpenAPI document: the parts no handler carries (info, servers, tags, security).

use realtime_types::limits::IDEMPOTENCY_KEY_HEADER_PATTERN;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, ServerBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "realtime",
        version = "1.0.0",
        description = "The open contract of a realtime pub/sub service: client tokens, channels, publishing, presence, vendor channel authorization and user disconnects under `/v1/realtime`, and credit under `/v1/account`.\n\nEvery call carries `Authorization: Bearer <api key>` (keys look like `ifr_pk_proj_…`). Errors are RFC 9457 `application/problem+json` with a stable `code`. A request body nests at most 32 levels of arrays and objects (the body itself is the first level); a deeper one is refused before it is parsed with a 422 `VALIDATION_ERROR` whose pointer is the body's (`\"\"`). Integer fields accept any whole JSON number (`1000000.0` is `1000000`).\n\nEvery `POST` and `DELETE` accepts an `Idempotency-Key` header (or the `idempotency_key` body field) of 1-255 visible ASCII characters: the same key with the same request replays the first 2xx response with `Idempotent-Replayed: true` and no second effect or charge; with a different request it is a 422 `IDEMPOTENCY_KEY_REUSED`; while the first is still running it is a 409 `IDEMPOTENCY_KEY_IN_USE`. Keys are scoped per account and operation and kept for 24 hours; 402 and 5xx answers are not kept, so a retry after a top-up goes through. An effect and its answer are committed together: if the server dies while a request runs, its retry replays the answer when the effect committed and runs afresh when it did not, at once after a single node restarts and within 10 seconds on a cluster: a running request holds its key with a 10-second lease that it renews every third of that, and until the lease of a request that died runs out, a retry gets 409 `IDEMPOTENCY_KEY_IN_USE` (retry it after a moment). A replay of an answer committed before a crash reports the counts known at that moment (`delivered` and `unsubscribed` are 0); so does a publish retried while its first request is still fanning out, which is a replay rather than a 409: a publish commits its answer with its message, before the fan-out.\n\nBalances are integers in micro-USD. A billable operation whose price the balance does not cover gets a 402 `INSUFFICIENT_CREDIT` and has no effect.\n\nThe WebSocket protocol of the `endpoint` returned by `realtime.token.issue` is described in `realtime.asyncapi.json`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
        contact(name = "realtime maintainers", url = "https://github.com/realtime-contract/realtime")
    ),
    tags(
        (name = "token", description = "Client tokens for the WebSocket gateway."),
        (name = "channel", description = "Channels are explicit resources of an account."),
        (name = "publish", description = "Publishing events to channels."),
        (name = "presence", description = "Who is live on a presence channel."),
        (name = "auth", description = "Vendor-native channel authorization (Pusher, Ably, Liveblocks)."),
        (name = "event", description = "The closed set of events subscribers receive."),
        (name = "user", description = "Acting on a client's live connections."),
        (name = "account", description = "Balance and top-up."),
    ),
    components(schemas(realtime_types::Problem, realtime_types::ErrorCode, realtime_types::FieldError)),
    modifiers(&Security)
)]
struct Base;

struct Security;

impl Modify for Security {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ifr_pk_proj_<random>")
                    .description(Some("An API key of the account."))
                    .build(),
            ),
        );
        document.servers = Some(vec![
            ServerBuilder::new()
                .url("http://127.0.0.1:8080")
                .description(Some("The reference server on embedded defaults"))
                .build(),
        ]);
    }
}

pub(crate) fn base() -> Document {
    Base::openapi()
}

/// The whole document, as the router registers it.
pub fn openapi() -> Document {
    let (_, mut document) = crate::routes::openapi_router().split_for_parts();
    document_idempotency(&mut document);
    document_rate_limit(&mut document);
    document_links(&mut document);
    document_vendor_requirements(&mut document);
    document
}

/// `auth.sign` fields that one vendor requires: JSON Schema conditions (`if`/`then`),
/// which utoipa's builders do not have, so they are written here as raw keywords.
fn document_vendor_requirements(document: &mut Document) {
    use serde_json::json;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;

    let components = document.components.as_mut().expect("the document has components");
    let Some(RefOr::T(Schema::Object(request))) = components.schemas.get_mut("AuthSignRequest") else {
        panic!("AuthSignRequest is an object schema")
    };
    // Each `then` names every property of the request (`{}`: anything), the required one
    // with its type: linters that check examples evaluate a `then` on its own, and would
    // otherwise read the other properties as unevaluated.
    let requires = |field: &str, schema: serde_json::Value| {
        let mut properties: serde_json::Map<String, serde_json::Value> =
            request.properties.keys().map(|name| (name.clone(), json!({}))).collect();
        properties.insert(field.to_owned(), schema);
        json!({ "required": [field], "properties": properties })
    };
    let conditions = json!([
        {
            "if": { "required": ["vendor"], "properties": { "vendor": { "const": "pusher" } } },
            "then": requires("socket_id", json!({ "type": "string" }))
        },
        {
            "if": {
                "required": ["vendor", "channels"],
                "properties": {
                    "vendor": { "const": "pusher" },
                    "channels": { "prefixItems": [{ "pattern": "^presence-" }] }
                }
            },
            "then": requires("channel_data", json!({ "type": "object" }))
        }
    ]);
    request.extensions.get_or_insert_with(Default::default).insert("allOf".to_owned(), conditions);
}

/// Every state-changing operation takes an `Idempotency-Key` and may answer a replay;
/// the handlers do not repeat it, it is added here to each of them.
fn document_idempotency(document: &mut Document) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{RefOr, Required};

    for item in document.paths.paths.values_mut() {
        let writes = [(&mut item.post, "the same key and body replay"), (&mut item.delete, "the same key replays")];
        for (operation, replays) in writes {
            let Some(operation) = operation.as_mut() else { continue };
            let key = ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Makes retries safe: {replays} the first response. 1-255 visible ASCII characters \
                     (`!` to `~`), bare or in double quotes (`\"abc\"` is the key `abc`); any other value \
                     is a 400 `BAD_REQUEST`."
                )))
                .schema(Some(
                    ObjectBuilder::new().schema_type(Type::String).pattern(Some(IDEMPOTENCY_KEY_HEADER_PATTERN)),
                ))
                .build();
            operation.parameters.get_or_insert_with(Vec::new).push(RefOr::T(key));
            let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") else { continue };
            let replayed = HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
                .description(Some("`true` when this is the stored response of an earlier request."))
                .build();
            ok.headers.insert("Idempotent-Replayed".to_owned(), RefOr::T(replayed));
        }
    }
}

/// The request budget an account's calls draw on: every answer may name it in
/// `RateLimit-Policy`, and a 429 says in `Retry-After` when to come back. Both headers are
/// written once under `components/headers` and referenced from each response.
fn document_rate_limit(document: &mut Document) {
    use serde_json::json;
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Ref, RefOr};

    let policy = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "The account's request budget, when the server limits it (draft-ietf-httpapi-ratelimit-headers): \
             `\"account\";q=<requests>;w=<seconds>`, e.g. `\"account\";q=400;w=2`. Past it, every operation \
             answers 429 `RATE_LIMITED`.",
        ))
        .build();
    let mut retry_after = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
        .description(Some("Whole seconds to wait before the account is served again."))
        .build();
    // utoipa's header has no `required`; the keyword is written raw.
    retry_after.extensions.get_or_insert_with(Default::default).insert("required".to_owned(), json!(true));
    let components = document.components.get_or_insert_with(Default::default);
    components.headers.insert("RateLimit-Policy".to_owned(), RefOr::T(policy));
    components.headers.insert("Retry-After".to_owned(), RefOr::T(retry_after));

    for item in document.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.post, &mut item.delete, &mut item.put, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else { continue };
                let mut headers = vec!["RateLimit-Policy"];
                if status == "429" {
                    headers.push("Retry-After");
                }
                for name in headers {
                    let reference = RefOr::Ref(Ref::new(format!("#/components/headers/{name}")));
                    response.headers.insert(name.to_owned(), reference);
                }
            }
        }
    }
}

/// Where an answer leads: which later operations take a value of a 2xx response, as OpenAPI
/// links. A stateful client (or fuzzer) follows them from a created resource to every
/// operation on it: from a channel to reading, publishing, deleting it and to tokens and
/// authorizations for it, and from a token to its revocation.
fn document_links(document: &mut Document) {
    use serde_json::json;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::link::LinkBuilder;

    use crate::operations::*;

    let channel = |target: &OperationRoute| {
        LinkBuilder::new()
            .operation_id(target.id)
            .parameter("channel", "$response.body#/name")
            .description(format!("`{}` on the created channel.", target.id))
            .build()
    };
    let publish = LinkBuilder::new()
        .operation_id(PUBLISH.id)
        .request_body(Some(json!({ "channel": "$response.body#/name" })))
        .description("Publish to the created channel.")
        .build();
    let scoped = |target: &OperationRoute, what: &str| {
        LinkBuilder::new()
            .operation_id(target.id)
            .request_body(Some(json!({ "channels": ["$response.body#/name"] })))
            .description(format!("{what} for the created channel."))
            .build()
    };
    let revoke = LinkBuilder::new()
        .operation_id(TOKEN_REVOKE.id)
        .request_body(Some(json!({ "token_or_jti": "$response.body#/jti" })))
        .description("Revoke the issued token by its `jti`.")
        .build();
    let command = LinkBuilder::new()
        .operation_id(USER_COMMAND_GET.id)
        .parameter("command_id", "$response.body#/command_id")
        .description("Read the sent command and its response.")
        .build();
    let created_channel = [
        ("get", channel(&CHANNEL_GET)),
        ("history", channel(&CHANNEL_HISTORY)),
        ("presence", channel(&PRESENCE_GET)),
        ("presence_alias", channel(&PRESENCE_GET_ALIAS)),
        ("publish", publish),
        ("token", scoped(&TOKEN_ISSUE, "A client token")),
        ("sign", scoped(&AUTH_SIGN, "A vendor authorization")),
        ("delete", channel(&CHANNEL_DELETE)),
    ];
    let links = [
        (CHANNEL_CREATE, created_channel.to_vec()),
        (CHANNEL_CREATE_ALIAS, created_channel.to_vec()),
        (TOKEN_ISSUE, vec![("revoke", revoke.clone())]),
        (TOKEN_ISSUE_ALIAS, vec![("revoke", revoke)]),
        (USER_COMMAND_SEND, vec![("get", command)]),
    ];
    for (source, links) in links {
        let item = document.paths.paths.get_mut(source.path).expect("a link's source is in the route table");
        let operation = item.post.as_mut().expect("a link's source creates something with a POST");
        let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") else {
            panic!("{} documents its 200 answer inline", source.id)
        };
        for (name, link) in links {
            ok.links.insert(name.to_owned(), RefOr::T(link));
        }
    }
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn openapi_json() -> String {
    let mut text = openapi().to_pretty_json().expect("the document serialises");
    text.push('\n');
    text
}
