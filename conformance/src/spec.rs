//! The committed OpenAPI document: its operations, and a validator per declared response.
//!
//! The document is the only source of truth the harness has about the target. Every
//! response is checked against the schema the document declares for that operation,
//! status and media type, with `$ref`s into `components` resolved through a
//! `jsonschema` registry that holds the whole document.

use std::collections::{BTreeMap, HashMap};

use jsonschema::{Draft, Registry, Validator};
use serde_json::{Value, json};
use thiserror::Error;

/// The document this crate was released with: `openapi/realtime.openapi.json`.
pub const COMMITTED_SPEC: &str = include_str!("../../openapi/realtime.openapi.json");

/// The id under which the document is registered for `$ref` resolution.
const DOCUMENT_URI: &str = "urn:realtime-conformance:openapi";

/// Why the document cannot be used.
#[derive(Debug, Error)]
pub enum SpecError {
    /// Not JSON.
    #[error("the OpenAPI document is not JSON")]
    Json(#[source] serde_json::Error),
    /// Not an OpenAPI 3.1 document with paths.
    #[error("the OpenAPI document is not usable: {0}")]
    Shape(String),
    /// A schema of the document cannot be compiled.
    #[error("the schema at {pointer} cannot be compiled: {message}")]
    Schema {
        /// Where the schema is.
        pointer: String,
        /// What the validator said.
        message: String,
    },
}

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The `operationId`.
    pub id: String,
    /// The HTTP method, upper case.
    pub method: String,
    /// The path template, e.g. `/v1/realtime/channel/get/{channel}`.
    pub path: String,
    /// Whether the operation is marked `deprecated`.
    pub deprecated: bool,
    /// Declared statuses and, for each, the declared media types (empty: no body).
    pub responses: BTreeMap<u16, Vec<String>>,
    /// The error codes each status's description names (as `` `CODE` ``, one of the
    /// `ErrorCode` schema's values).
    pub codes: BTreeMap<u16, Vec<String>>,
}

/// The document, indexed.
pub struct Spec {
    operations: Vec<Operation>,
    validators: HashMap<(String, u16, String), Validator>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec").field("operations", &self.operations.len()).finish()
    }
}

impl Spec {
    /// Reads and indexes a document, compiling a validator for every declared response body.
    pub fn load(text: &str) -> Result<Spec, SpecError> {
        let document: Value = serde_json::from_str(text).map_err(SpecError::Json)?;
        let version = document.get("openapi").and_then(Value::as_str).unwrap_or_default();
        if !version.starts_with("3.1") {
            return Err(SpecError::Shape(format!("openapi version {version:?}, expected 3.1.x")));
        }
        let paths = document
            .get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| SpecError::Shape("no `paths` object".to_owned()))?;
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(DOCUMENT_URI, Draft::Draft202012.create_resource(document.clone()))
            .and_then(|builder| builder.prepare())
            .map_err(|err| SpecError::Shape(err.to_string()))?;
        let error_codes: Vec<&str> = document
            .pointer("/components/schemas/ErrorCode/enum")
            .and_then(Value::as_array)
            .map(|codes| codes.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut operations = Vec::new();
        let mut validators = HashMap::new();
        for (path, item) in paths {
            let Some(item) = item.as_object() else { continue };
            for (method, operation) in item {
                if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete" | "head" | "options") {
                    continue;
                }
                let id = operation
                    .get("operationId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| SpecError::Shape(format!("{method} {path} has no operationId")))?
                    .to_owned();
                let mut responses = BTreeMap::new();
                let mut codes = BTreeMap::new();
                let declared = operation.get("responses").and_then(Value::as_object).into_iter().flatten();
                for (status, response) in declared {
                    let Ok(code) = status.parse::<u16>() else { continue };
                    let description = response.get("description").and_then(Value::as_str).unwrap_or_default();
                    codes.insert(code, named_codes(description, &error_codes));
                    let content = response.get("content").and_then(Value::as_object);
                    let mut media_types = Vec::new();
                    for (media_type, body) in content.into_iter().flatten() {
                        media_types.push(media_type.clone());
                        if body.get("schema").is_none() {
                            continue;
                        }
                        let pointer = format!(
                            "#/paths/{}/{method}/responses/{status}/content/{}/schema",
                            escape(path),
                            escape(media_type)
                        );
                        let validator = jsonschema::options()
                            .with_draft(Draft::Draft202012)
                            .with_registry(&registry)
                            .build(&json!({ "$ref": format!("{DOCUMENT_URI}{pointer}") }))
                            .map_err(|err| SpecError::Schema { pointer: pointer.clone(), message: err.to_string() })?;
                        validators.insert((id.clone(), code, media_type.clone()), validator);
                    }
                    responses.insert(code, media_types);
                }
                operations.push(Operation {
                    id,
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    deprecated: operation.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
                    responses,
                    codes,
                });
            }
        }
        Ok(Spec { operations, validators })
    }

    /// The committed document.
    pub fn committed() -> Result<Spec, SpecError> {
        Spec::load(COMMITTED_SPEC)
    }

    /// Every operation, in document order.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation with this `operationId`.
    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.id == id)
    }

    /// The operation a request resolves to; literal path segments win over templated ones.
    pub fn resolve(&self, method: &str, path: &str) -> Option<&Operation> {
        let path = path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method.eq_ignore_ascii_case(method))
            .filter_map(|op| {
                let template: Vec<&str> = op.path.split('/').collect();
                if template.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (want, got) in template.iter().zip(&segments) {
                    if want.starts_with('{') && want.ends_with('}') {
                        if got.is_empty() {
                            return None;
                        }
                    } else if want == got {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, op))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, op)| op)
    }

    /// Checks a response against what `operation` declares: the status is declared, the
    /// media type is one declared for it, and the body is valid against its schema.
    /// Problem bodies must also carry the HTTP status and the code that goes with it.
    pub fn check_response(
        &self,
        operation: &Operation,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let Some(media_types) = operation.responses.get(&status) else {
            let declared: Vec<String> = operation.responses.keys().map(u16::to_string).collect();
            return Err(format!(
                "status {status} is not declared for {} (declared: {})",
                operation.id,
                declared.join(", ")
            ));
        };
        if media_types.is_empty() {
            return Ok(());
        }
        let essence = content_type.map(media_type_essence).unwrap_or_default();
        let Some(media_type) = media_types.iter().find(|declared| declared.eq_ignore_ascii_case(&essence)) else {
            return Err(format!(
                "Content-Type {:?}, expected {} for status {status}",
                content_type.unwrap_or("(none)"),
                media_types.join(" or ")
            ));
        };
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| format!("{media_type} body is not JSON ({err}): {}", snippet(body)))?;
        if let Some(validator) = self.validators.get(&(operation.id.clone(), status, media_type.clone())) {
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .take(3)
                .map(|err| {
                    let at = err.instance_path().to_string();
                    if at.is_empty() { err.to_string() } else { format!("{err} at {at}") }
                })
                .collect();
            if !errors.is_empty() {
                return Err(format!(
                    "body does not match the {status} schema of {}: {}",
                    operation.id,
                    errors.join("; ")
                ));
            }
        }
        if media_type == "application/problem+json" {
            check_problem(status, &value)?;
        }
        Ok(())
    }
}

/// The codes of `known` that `description` names as `` `CODE` ``, in order, once each.
fn named_codes(description: &str, known: &[&str]) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for (index, quoted) in description.split('`').enumerate() {
        // Odd pieces are inside backticks.
        if index % 2 == 1 && known.contains(&quoted) && !codes.iter().any(|code| code == quoted) {
            codes.push(quoted.to_owned());
        }
    }
    codes
}

/// The problem body agrees with its HTTP status: `status` is the same number, and `code`
/// is one whose documented status is that number.
fn check_problem(status: u16, problem: &Value) -> Result<(), String> {
    let body_status = problem.get("status").and_then(Value::as_u64);
    if body_status != Some(u64::from(status)) {
        return Err(format!("problem `status` is {body_status:?}, but the HTTP status is {status}"));
    }
    let code = problem.get("code").and_then(Value::as_str).unwrap_or_default();
    match code_status(code) {
        Some(expected) if expected == status => Ok(()),
        Some(expected) => {
            Err(format!("problem code {code} goes with status {expected}, but the HTTP status is {status}"))
        }
        None => Err(format!("problem code {code:?} is not one of the documented codes")),
    }
}

/// The HTTP status that the contract pairs with each error code.
pub fn code_status(code: &str) -> Option<u16> {
    Some(match code {
        "BAD_REQUEST" => 400,
        "VALIDATION_ERROR" | "IDEMPOTENCY_KEY_REUSED" => 422,
        "UNAUTHENTICATED" => 401,
        "FORBIDDEN" => 403,
        "NOT_FOUND" => 404,
        "METHOD_NOT_ALLOWED" => 405,
        "CONFLICT" | "IDEMPOTENCY_KEY_IN_USE" | "USER_OFFLINE" | "BACKLOG_FULL" => 409,
        "PAYLOAD_TOO_LARGE" => 413,
        "UNSUPPORTED_MEDIA_TYPE" => 415,
        "INSUFFICIENT_CREDIT" => 402,
        "RATE_LIMITED" => 429,
        "INTERNAL" => 500,
        "UNAVAILABLE" => 503,
        "COMMAND_TIMEOUT" => 504,
        _ => return None,
    })
}

/// `application/json; charset=utf-8` -> `application/json`.
pub fn media_type_essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// A short, printable prefix of a body for a failure message.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        short.push('…');
    }
    format!("{short:?}")
}

/// A JSON pointer token, made safe for a URI fragment: `~` and `/` escaped per RFC 6901,
/// and the braces of path templates percent-encoded (the URI parser refuses them raw).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1").replace('{', "%7B").replace('}', "%7D")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::committed().expect("the committed document loads")
    }

    #[test]
    fn committed_document_declares_every_documented_operation() {
        let spec = spec();
        for id in [
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
            "account.get",
            "account.topup",
        ] {
            assert!(spec.operation(id).is_some(), "{id} missing");
        }
    }

    #[test]
    fn each_status_lists_the_codes_its_description_names() {
        let spec = spec();
        let publish = spec.operation("realtime.publish").unwrap();
        assert_eq!(publish.codes[&404], ["NOT_FOUND"]);
        assert!(publish.codes[&422].contains(&"IDEMPOTENCY_KEY_REUSED".to_owned()));
        assert!(publish.codes[&200].is_empty());
    }

    #[test]
    fn resolve_prefers_literal_segments() {
        let spec = spec();
        assert_eq!(spec.resolve("GET", "/v1/realtime/channel/get/room-42").unwrap().id, "realtime.channel.get");
        assert_eq!(spec.resolve("GET", "/v1/realtime/channel/list?limit=3").unwrap().id, "realtime.channel.list");
        assert_eq!(spec.resolve("GET", "/v1/realtime/channels/x/presence").unwrap().id, "realtime.presence.get.alias");
        assert!(spec.resolve("PUT", "/v1/realtime/publish").is_none());
    }

    #[test]
    fn a_missing_required_field_is_reported_with_its_name() {
        let spec = spec();
        let op = spec.operation("realtime.publish").unwrap();
        let body =
            br#"{"channel":"a","event":"b","published_at":"2026-01-01T00:00:00Z","delivered":0,"status":"published"}"#;
        let err = spec.check_response(op, 200, Some("application/json"), body).unwrap_err();
        assert!(err.contains("message_id"), "{err}");
    }

    #[test]
    fn an_undeclared_status_is_a_mismatch() {
        let spec = spec();
        let op = spec.operation("realtime.event.types").unwrap();
        let err = spec.check_response(op, 418, Some("application/json"), b"{}").unwrap_err();
        assert!(err.starts_with("status 418 is not declared"), "{err}");
    }

    #[test]
    fn a_plain_text_error_is_not_a_problem() {
        let spec = spec();
        let op = spec.operation("realtime.publish").unwrap();
        let err = spec.check_response(op, 401, Some("text/plain; charset=utf-8"), b"unauthorized").unwrap_err();
        assert!(err.contains("expected application/problem+json"), "{err}");
    }

    #[test]
    fn a_problem_must_agree_with_its_status() {
        let spec = spec();
        let op = spec.operation("realtime.publish").unwrap();
        let problem = br#"{"type":"urn:x","title":"t","status":402,"code":"NOT_FOUND"}"#;
        let err = spec.check_response(op, 402, Some("application/problem+json"), problem).unwrap_err();
        assert!(err.contains("goes with status 404"), "{err}");
        let good = br#"{"type":"urn:x","title":"t","status":402,"code":"INSUFFICIENT_CREDIT"}"#;
        spec.check_response(op, 402, Some("application/problem+json"), good).unwrap();
    }
}
