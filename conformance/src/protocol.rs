//! The committed AsyncAPI document of the WebSocket protocol, and a validator of the
//! frames a target's gateway sends.

use jsonschema::{Draft, Registry, Validator};
use serde_json::{Value, json};

/// The document this crate was released with: `openapi/realtime.asyncapi.json`.
pub const COMMITTED_ASYNCAPI: &str = include_str!("../../openapi/realtime.asyncapi.json");

const DOCUMENT_URI: &str = "urn:realtime-conformance:asyncapi";

/// Checks server frames against `components.schemas.ServerFrame`.
pub struct FrameValidator {
    validator: Validator,
}

impl FrameValidator {
    /// The validator of the committed document.
    pub fn committed() -> Result<Self, String> {
        let document: Value = serde_json::from_str(COMMITTED_ASYNCAPI).map_err(|e| e.to_string())?;
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(DOCUMENT_URI, Draft::Draft202012.create_resource(document))
            .and_then(|builder| builder.prepare())
            .map_err(|e| e.to_string())?;
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&registry)
            .build(&json!({ "$ref": format!("{DOCUMENT_URI}#/components/schemas/ServerFrame") }))
            .map_err(|e| e.to_string())?;
        Ok(FrameValidator { validator })
    }

    /// `Err` with the first violation when `frame` is not a server frame of the protocol.
    pub fn check(&self, frame: &Value) -> Result<(), String> {
        match self.validator.iter_errors(frame).next() {
            None => Ok(()),
            Some(error) => Err(format!("{error} (at {})", error.instance_path())),
        }
    }
}

/// The `type` of every server frame the committed document declares, in its order.
pub fn server_frame_types() -> Vec<String> {
    let document: Value = serde_json::from_str(COMMITTED_ASYNCAPI).unwrap_or(Value::Null);
    document
        .pointer("/components/schemas/ServerFrame/oneOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|frame| frame.pointer("/properties/type/const").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// Every close code the committed document declares, with what it means (from the
/// `CloseCode` schema's description, one `` - `4001`: meaning `` line per code).
pub fn close_codes() -> Vec<(u16, String)> {
    let document: Value = serde_json::from_str(COMMITTED_ASYNCAPI).unwrap_or(Value::Null);
    let schema = document.pointer("/components/schemas/CloseCode").cloned().unwrap_or(Value::Null);
    let description = schema["description"].as_str().unwrap_or_default();
    schema["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .filter_map(|code| u16::try_from(code).ok())
        .map(|code| {
            let meaning = description
                .lines()
                .find_map(|line| line.trim().strip_prefix(&format!("- `{code}`: ")))
                .unwrap_or_default();
            (code, meaning.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_frames_pass_and_malformed_frames_fail() {
        let validator = FrameValidator::committed().unwrap();
        let message = json!({"type": "message", "channel": "c", "message_id": "m", "epoch": "ch_1", "offset": 3,
                             "event": "e", "data": {"a": 1}, "published_at": "2026-11-22T12:00:00Z"});
        assert_eq!(validator.check(&message), Ok(()));
        assert!(validator.check(&json!({"type": "message", "channel": "c"})).is_err(), "missing fields");
        assert!(validator.check(&json!({"type": "surprise"})).is_err(), "unknown type");
        assert!(validator.check(&json!({"type": "pong", "extra": 1})).is_err(), "unknown field");
    }

    #[test]
    fn frame_types_and_close_codes_come_from_the_document() {
        let types = server_frame_types();
        assert!(types.contains(&"connected".to_owned()) && types.contains(&"message".to_owned()), "{types:?}");
        let closes = close_codes();
        let revoked = closes.iter().find(|(code, _)| *code == 4003).expect("4003 is documented");
        assert_eq!(revoked.1, "the token was revoked");
    }
}
