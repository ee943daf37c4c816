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
}
