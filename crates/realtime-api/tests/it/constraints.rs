//! The constraints the document states are the ones the router enforces: what a schema
//! fuzzer may send as valid is accepted, and what it may send as invalid is refused with
//! the documented problem.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use realtime_types::limits::{CURSOR_PATTERN, IDEMPOTENCY_KEY_HEADER_PATTERN, JSON_MAX_DEPTH};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::double::{KEY, router};

async fn send(request: Request<Body>) -> (StatusCode, Value) {
    let response = router().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path).header("authorization", format!("Bearer {KEY}")).header("content-type", "application/json")
}

fn publish_nested(depth: usize) -> Request<Body> {
    // The body is the first level and `data` the second; each array adds one.
    let data = format!("{}1{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
    let body = format!(r#"{{"channel": "c", "event": "e", "data": {data}}}"#);
    post("/v1/realtime/publish").body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn a_body_nested_at_the_limit_passes_and_one_level_deeper_is_a_422() {
    let (status, _) = send(publish_nested(JSON_MAX_DEPTH)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = send(publish_nested(JSON_MAX_DEPTH + 1)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "VALIDATION_ERROR");
    assert_eq!(problem["errors"][0]["pointer"], "");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains(&JSON_MAX_DEPTH.to_string()), "{detail}");
}

#[tokio::test]
async fn a_body_far_deeper_than_serde_json_allows_is_still_the_documented_422() {
    // serde_json stops at 128 levels with a syntax error; the contract's limit comes first.
    let (status, problem) = send(publish_nested(1000)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn brackets_inside_strings_are_not_nesting() {
    let text = format!("{}\\\"{}", "[{".repeat(40), "}]".repeat(40));
    let body = json!({"channel": "c", "event": "e", "data": text}).to_string();
    let (status, _) = send(post("/v1/realtime/publish").body(Body::from(body)).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

fn publish_with_key(key: &[u8]) -> Request<Body> {
    let value = axum::http::HeaderValue::from_bytes(key).unwrap();
    post("/v1/realtime/publish")
        .header("idempotency-key", value)
        .body(Body::from(r#"{"channel": "c", "event": "e", "data": 1}"#))
        .unwrap()
}

/// Whether `value` matches the documented schema of the `Idempotency-Key` header.
fn header_schema_admits(value: &str) -> bool {
    let document = serde_json::to_value(realtime_api::openapi()).unwrap();
    let parameters = document["paths"]["/v1/realtime/publish"]["post"]["parameters"].as_array().unwrap();
    let parameter = parameters
        .iter()
        .find(|parameter| parameter["name"] == "Idempotency-Key")
        .expect("the publish operation documents the Idempotency-Key header");
    let schema = parameter["schema"].clone();
    assert_eq!(schema["pattern"], IDEMPOTENCY_KEY_HEADER_PATTERN);
    jsonschema::validator_for(&schema).unwrap().is_valid(&json!(value))
}

#[tokio::test]
async fn the_idempotency_key_header_schema_admits_exactly_the_keys_the_router_accepts() {
    let long = "k".repeat(255);
    let quoted_long = format!("\"{long}\"");
    let too_long = "k".repeat(256);
    let quoted_too_long = format!("\"{too_long}\"");
    let samples = [
        ("k", true),
        ("\"k\"", true),
        ("\"", true),
        ("a\"b", true),
        ("!~{}[]", true),
        (long.as_str(), true),
        (quoted_long.as_str(), true),
        ("\"\"", false),
        ("a b", false),
        ("tab\there", false),
        (too_long.as_str(), false),
        (quoted_too_long.as_str(), false),
    ];
    for (key, accepted) in samples {
        assert_eq!(header_schema_admits(key), accepted, "the schema on {key:?}");
        let (status, problem) = send(publish_with_key(key.as_bytes())).await;
        if accepted {
            assert_eq!(status, StatusCode::OK, "the router on {key:?}: {problem}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "the router on {key:?}");
            assert_eq!(problem["code"], "BAD_REQUEST");
        }
    }
}

#[tokio::test]
async fn an_idempotency_key_header_that_is_not_ascii_is_a_400() {
    let (status, problem) = send(publish_with_key("clé".as_bytes())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "BAD_REQUEST");
}

#[tokio::test]
async fn an_idempotency_key_field_outside_visible_ascii_is_a_422_pointing_at_it() {
    let body = json!({"channel": "c", "event": "e", "data": 1, "idempotency_key": "a b"}).to_string();
    let (status, problem) = send(post("/v1/realtime/publish").body(Body::from(body)).unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/idempotency_key");
}

#[tokio::test]
async fn a_cursor_of_the_documented_form_passes_and_any_other_is_a_422() {
    let pattern = fancy_pattern(CURSOR_PATTERN);
    for (cursor, valid) in [("", true), ("cm9vbS00Mg", true), ("AB", true), ("ABC", true), ("ABCD", true)] {
        assert_eq!(pattern(cursor), valid, "{cursor:?}");
        assert_eq!(list(cursor).await, StatusCode::OK, "{cursor:?}");
    }
    for cursor in ["A", "ABCDE", "ab+c", "ab/c", "abc=", "%C3%A9t%C3%A9"] {
        let decoded = percent_decoded(cursor);
        assert!(!pattern(&decoded), "{cursor:?}");
        assert_eq!(list(cursor).await, StatusCode::UNPROCESSABLE_ENTITY, "{cursor:?}");
    }
}

async fn list(cursor: &str) -> StatusCode {
    let request = Request::get(format!("/v1/realtime/channel/list?cursor={cursor}"))
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::empty())
        .unwrap();
    send(request).await.0
}

/// A matcher for a documented pattern, through the JSON Schema validator (which speaks the
/// ECMA-262 dialect the document's patterns are written in).
fn fancy_pattern(pattern: &str) -> impl Fn(&str) -> bool {
    let validator = jsonschema::validator_for(&json!({"type": "string", "pattern": pattern})).unwrap();
    move |value| validator.is_valid(&json!(value))
}

fn percent_decoded(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' && tail.len() >= 2 {
            let hex = std::str::from_utf8(&tail[..2]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn whole_numbers_with_a_zero_fraction_are_integers_and_fractions_are_422() {
    // The double refuses every token with a 500: reaching it means the body was accepted.
    let issue = |ttl: &str| {
        let body = format!(r#"{{"ttl_seconds": {ttl}}}"#);
        post("/v1/realtime/token/issue").body(Body::from(body)).unwrap()
    };
    for ttl in ["60", "60.0", "6e1", "4294967295"] {
        let (status, problem) = send(issue(ttl)).await;
        assert_ne!(status, StatusCode::UNPROCESSABLE_ENTITY, "{ttl}: {problem}");
    }
    for ttl in ["60.5", "-1", "4294967296", "\"60\""] {
        let (status, problem) = send(issue(ttl)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{ttl}");
        assert_eq!(problem["errors"][0]["pointer"], "/ttl_seconds");
    }
}

#[tokio::test]
async fn a_command_type_is_measured_in_characters_as_the_document_counts_them() {
    // The double refuses every command with a 500: reaching it means the body was accepted.
    let send_command = |command_type: String| {
        let body = json!({"target_user_id": "u1", "type": command_type, "data": 1}).to_string();
        post("/v1/realtime/user/command/send").body(Body::from(body)).unwrap()
    };
    let (status, problem) = send(send_command("é".repeat(200))).await;
    assert_ne!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, problem) = send(send_command("é".repeat(201))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/type");
}
