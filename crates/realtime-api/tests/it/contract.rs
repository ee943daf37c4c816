//! The committed document is the generated one, and the router, the route table and the
//! document name the same operations.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use realtime_api::operations::*;
use realtime_types::limits::*;
use realtime_types::{ErrorCode, EventType};
use serde_json::{Value, json};
use tower::ServiceExt;

fn committed() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/realtime.openapi.json");
    std::fs::read_to_string(path).expect("openapi/realtime.openapi.json is committed")
}

fn document() -> Value {
    serde_json::from_str(&realtime_api::openapi_json()).unwrap()
}

#[test]
fn committed_document_is_the_generated_one() {
    let generated = realtime_api::openapi_json();
    if committed() != generated {
        let diff = similar::TextDiff::from_lines(committed().as_str(), generated.as_str())
            .unified_diff()
            .context_radius(2)
            .header("committed", "generated")
            .to_string();
        panic!("openapi/realtime.openapi.json is stale: run `cargo xtask openapi` to update\n{diff}");
    }
}

#[test]
fn committed_asyncapi_document_is_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/realtime.asyncapi.json");
    let committed = std::fs::read_to_string(path).expect("openapi/realtime.asyncapi.json is committed");
    let generated = realtime_api::asyncapi_json();
    if committed != generated {
        let diff = similar::TextDiff::from_lines(committed.as_str(), generated.as_str())
            .unified_diff()
            .context_radius(2)
            .header("committed", "generated")
            .to_string();
        panic!("openapi/realtime.asyncapi.json is stale: run `cargo xtask openapi` to update\n{diff}");
    }
}

#[test]
fn asyncapi_server_frames_are_the_event_types_of_the_rest_contract() {
    let document = realtime_api::asyncapi();
    let variants = document["components"]["schemas"]["ServerFrame"]["oneOf"].as_array().unwrap();
    let types: Vec<Value> = variants.iter().map(|v| v["properties"]["type"]["const"].clone()).collect();
    assert_eq!(Value::Array(types), serde_json::to_value(EventType::ALL).unwrap());
}

fn document_operations() -> BTreeSet<(String, String, String)> {
    let document = document();
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap().to_owned();
            operations.insert((method.to_uppercase(), path.clone(), id));
        }
    }
    operations
}

#[test]
fn route_table_and_document_name_the_same_operations() {
    let table: BTreeSet<_> =
        OPERATIONS.iter().map(|op| (op.method.to_owned(), op.path.to_owned(), op.id.to_owned())).collect();
    assert_eq!(table, document_operations());
}

#[test]
fn document_has_every_capability_of_the_contract() {
    let ids: BTreeSet<String> = document_operations().into_iter().map(|(_, _, id)| id).collect();
    for capability in [
        "realtime.token.issue",
        "realtime.token.revoke",
        "realtime.channel.create",
        "realtime.channel.get",
        "realtime.channel.list",
        "realtime.channel.delete",
        "realtime.publish",
        "realtime.publish.batch",
        "realtime.presence.get",
        "realtime.auth.sign",
        "realtime.event.types",
        "realtime.user.disconnect",
        "account.topup",
        "account.get",
    ] {
        assert!(ids.contains(capability), "{capability} is missing from the document");
    }
}

#[test]
fn seed_000_paths_are_deprecated_aliases() {
    let document = document();
    for (path, method) in [
        ("/v1/realtime/token", "post"),
        ("/v1/realtime/channels", "post"),
        ("/v1/realtime/channels/{channel}/presence", "get"),
    ] {
        assert_eq!(document["paths"][path][method]["deprecated"], Value::Bool(true), "{method} {path}");
    }
}

/// Every documented (method, path) reaches a handler (which asks for a key), and every
/// other method on a documented path is refused: the router serves exactly the document.
#[tokio::test]
async fn router_serves_exactly_the_documented_operations() {
    let router = crate::double::router();
    let documented = document_operations();
    let paths: BTreeSet<String> = documented.iter().map(|(_, path, _)| path.clone()).collect();
    for path in paths {
        let uri = path.replace("{channel}", "room-42");
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let is_documented = documented.iter().any(|(m, p, _)| *m == method.as_str() && *p == path);
            let request = Request::builder().method(method.clone()).uri(&uri).body(Body::empty()).unwrap();
            let status = router.clone().oneshot(request).await.unwrap().status();
            let expected = if is_documented { StatusCode::UNAUTHORIZED } else { StatusCode::METHOD_NOT_ALLOWED };
            assert_eq!(status, expected, "{method} {path}");
        }
    }
}

#[test]
fn error_codes_in_the_document_are_the_closed_enum() {
    let document = document();
    let listed: Vec<&str> = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(listed, expected);
}

#[test]
fn event_types_in_the_document_are_the_closed_enum() {
    let document = document();
    let listed = &document["components"]["schemas"]["EventType"]["enum"];
    let expected = serde_json::to_value(EventType::ALL).unwrap();
    assert_eq!(listed, &expected);
}

#[test]
fn documented_limits_are_the_enforced_limits() {
    let document = document();
    let schemas = &document["components"]["schemas"];
    let name = &schemas["ChannelCreateRequest"]["properties"]["name"];
    assert_eq!(name["maxLength"], CHANNEL_NAME_MAX_LEN);
    assert_eq!(name["pattern"], CHANNEL_NAME_PATTERN);
    let event = &schemas["PublishRequest"]["properties"]["event"];
    assert_eq!(event["maxLength"], EVENT_NAME_MAX_LEN);
    assert_eq!(event["pattern"], EVENT_NAME_PATTERN);
    assert_eq!(schemas["PublishBatchRequest"]["properties"]["messages"]["maxItems"], BATCH_MAX_MESSAGES);
    assert_eq!(schemas["PublishBatchRequest"]["properties"]["messages"]["minItems"], 1);
    assert_eq!(schemas["TokenIssueRequest"]["properties"]["channels"]["maxItems"], TOKEN_MAX_CHANNELS);
    assert_eq!(schemas["AuthSignRequest"]["properties"]["channels"]["maxItems"], TOKEN_MAX_CHANNELS);
    let client_id = &schemas["UserDisconnectRequest"]["properties"]["client_id"];
    assert_eq!(client_id["maxLength"], CLIENT_ID_MAX_LEN);
    assert_eq!(client_id["pattern"], CLIENT_ID_PATTERN);
    assert_eq!(schemas["TopupRequest"]["properties"]["amount"]["minimum"], TOPUP_MIN_MICROS);
    assert_eq!(schemas["TopupRequest"]["properties"]["amount"]["maximum"], TOPUP_MAX_MICROS);
    let ttl = schemas["TokenIssueRequest"]["properties"]["ttl_seconds"]["description"].as_str().unwrap();
    assert!(ttl.contains(&MAX_TTL_SECONDS.to_string()), "the TTL clamp is documented");
    let data = schemas["PublishRequest"]["properties"]["data"]["description"].as_str().unwrap();
    assert!(data.contains(&DATA_MAX_BYTES.to_string()), "the data limit is documented");
    let query = &document["paths"]["/v1/realtime/channel/list"]["get"]["parameters"];
    let limit = query.as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["maximum"], PAGE_MAX_LIMIT);
    let cursor = query.as_array().unwrap().iter().find(|p| p["name"] == "cursor").unwrap();
    assert_eq!(cursor["schema"]["maxLength"], CURSOR_MAX_LEN);
    assert_eq!(cursor["schema"]["pattern"], CURSOR_PATTERN);
    let channel_name = &schemas["ChannelName"];
    assert_eq!(
        (&channel_name["maxLength"], &channel_name["pattern"]),
        (&json!(CHANNEL_NAME_MAX_LEN), &json!(CHANNEL_NAME_PATTERN))
    );
    for request in ["TokenIssueRequest", "AuthSignRequest"] {
        let items = &schemas[request]["properties"]["channels"]["items"]["$ref"];
        assert_eq!(items, "#/components/schemas/ChannelName", "{request} names channels");
    }
    for request in ["TokenIssueRequest", "AuthSignRequest"] {
        let capabilities = &schemas[request]["properties"]["capabilities"];
        assert_eq!(capabilities["maxItems"], realtime_types::Capability::ALL.len(), "{request}");
    }
    for request in ["UserMessageSendRequest", "UserCommandSendRequest"] {
        let sender = &schemas[request]["properties"]["sender_id"];
        assert_eq!((&sender["maxLength"], &sender["pattern"]), (&json!(CLIENT_ID_MAX_LEN), &json!(CLIENT_ID_PATTERN)));
    }
    let description = document["info"]["description"].as_str().unwrap();
    assert!(description.contains(&format!("at most {JSON_MAX_DEPTH} levels")), "the nesting limit is documented");
}

#[test]
fn every_idempotency_key_is_documented_with_its_length_and_charset() {
    let document = document();
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        let Some(field) = schema["properties"].get("idempotency_key") else { continue };
        assert_eq!(field["maxLength"], IDEMPOTENCY_KEY_MAX_LEN, "{name}");
        assert_eq!(field["pattern"], IDEMPOTENCY_KEY_PATTERN, "{name}");
    }
    for route in OPERATIONS.iter().filter(|route| route.is_write()) {
        let operation = &document["paths"][route.path][route.method.to_ascii_lowercase()];
        let parameters = operation["parameters"].as_array().unwrap();
        let header = parameters.iter().find(|p| p["name"] == "Idempotency-Key").unwrap();
        assert_eq!(header["schema"]["pattern"], IDEMPOTENCY_KEY_HEADER_PATTERN, "{}", route.id);
    }
}

#[test]
fn links_lead_from_created_resources_to_the_operations_on_them() {
    let document = document();
    let ids: BTreeSet<&str> = OPERATIONS.iter().map(|route| route.id).collect();
    let links_of = |route: &OperationRoute| {
        let ok = &document["paths"][route.path][route.method.to_ascii_lowercase()]["responses"]["200"];
        ok["links"].as_object().cloned().unwrap_or_default()
    };
    let targets = |route: &OperationRoute| -> BTreeSet<String> {
        links_of(route).values().map(|link| link["operationId"].as_str().unwrap().to_owned()).collect()
    };
    for route in OPERATIONS {
        for target in targets(route) {
            assert!(ids.contains(target.as_str()), "{} links to {target}, which is no operation", route.id);
        }
    }
    let from_channel = targets(&CHANNEL_CREATE);
    for target in [CHANNEL_GET, CHANNEL_DELETE, CHANNEL_HISTORY, PUBLISH, PRESENCE_GET, TOKEN_ISSUE, AUTH_SIGN] {
        assert!(from_channel.contains(target.id), "channel.create links to {}", target.id);
    }
    assert!(targets(&TOKEN_ISSUE).contains(TOKEN_REVOKE.id), "token.issue links to token.revoke");
}

#[test]
fn every_operation_declares_its_error_statuses_as_problems() {
    let document = document();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["401", "429", "500", "503"] {
                assert!(responses.contains_key(status), "{method} {path} lacks {status}");
            }
            if method == "post" {
                for status in ["400", "409", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} is not problem+json"
                    );
                }
            }
            assert_eq!(operation["security"][0]["bearer"], serde_json::json!([]), "{method} {path}");
        }
    }
}

#[test]
fn every_response_names_the_rate_limit_policy_and_every_429_its_retry_after() {
    let document = document();
    let headers = &document["components"]["headers"];
    assert_eq!(headers["RateLimit-Policy"]["schema"]["type"], "string");
    assert_eq!(headers["Retry-After"]["schema"], json!({"type": "integer", "minimum": 1}));
    assert_eq!(headers["Retry-After"]["required"], true);
    let mut too_many = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let declared = &response["headers"];
                let policy = &declared["RateLimit-Policy"]["$ref"];
                assert_eq!(policy, "#/components/headers/RateLimit-Policy", "{method} {path} {status}");
                let retry_after = declared.get("Retry-After").map(|header| &header["$ref"]);
                match status.as_str() {
                    "429" => {
                        too_many += 1;
                        assert_eq!(retry_after, Some(&json!("#/components/headers/Retry-After")), "{method} {path}");
                    }
                    _ => assert_eq!(retry_after, None, "{method} {path} {status}"),
                }
            }
        }
    }
    assert_eq!(too_many, OPERATIONS.len(), "every operation answers 429");
}
