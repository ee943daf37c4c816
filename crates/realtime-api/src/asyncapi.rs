//! The AsyncAPI 3.0 document of the WebSocket protocol, generated from the frame enums
//! of `realtime_types::ws` so that it cannot drift from them.

use realtime_types::ws::{ClientFrame, CloseCode, ServerFrame};
use serde_json::{Map, Value, json};

/// The JSON Schema of `T`, with its `$defs` moved into `defs` and references rewritten
/// to point at `#/components/schemas/…`.
fn schema_into<T: schemars::JsonSchema>(defs: &mut Map<String, Value>) -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).expect("schemas serialise");
    if let Some(Value::Object(found)) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
        for (name, mut def) in found {
            rewrite_refs(&mut def);
            defs.insert(name, def);
        }
    }
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
    }
    rewrite_refs(&mut schema);
    schema
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get_mut("$ref")
                && let Some(name) = reference.strip_prefix("#/$defs/")
            {
                *reference = format!("#/components/schemas/{name}");
            }
            object.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn close_codes() -> Value {
    let codes: Vec<u16> = CloseCode::ALL.iter().map(|c| c.code()).collect();
    let described: Vec<String> = CloseCode::ALL.iter().map(|c| format!("- `{}`: {}", c.code(), c.meaning())).collect();
    json!({
        "type": "integer",
        "enum": codes,
        "description": format!(
            "WebSocket close codes of the gateway. 4000-4099: do not reconnect with the same token; 4100-4199: reconnect after a backoff; 4200-4299: reconnect at once.\n\n{}",
            described.join("\n")
        ),
    })
}

/// The whole document.
pub fn asyncapi() -> Value {
    let mut schemas = Map::new();
    let client = schema_into::<ClientFrame>(&mut schemas);
    let server = schema_into::<ServerFrame>(&mut schemas);
    schemas.insert("ClientFrame".into(), client);
    schemas.insert("ServerFrame".into(), server);
    schemas.insert("CloseCode".into(), close_codes());
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "realtime gateway",
            "version": "1.0.0",
            "description": "The WebSocket protocol of the `endpoint` returned by `realtime.token.issue`. Connect with `?token=<token>` (or `Authorization: Bearer <token>`). Every frame is a JSON text frame whose `type` names it. The server sends `connected` first; the client then subscribes to channels its token allows. Before closing the socket the server sends `disconnecting` with the close code that follows (see `CloseCode`). Clients must send a frame (a `ping` will do) at least every `heartbeat_interval_seconds`.",
            "license": {"name": "MIT OR Apache-2.0"}
        },
        "defaultContentType": "application/json",
        "servers": {
            "reference": {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "pathname": "/v1/realtime/ws",
                "description": "The reference server on embedded defaults."
            }
        },
        "channels": {
            "gateway": {
                "address": "/v1/realtime/ws",
                "description": "One connection per client token.",
                "messages": {
                    "clientFrame": {"$ref": "#/components/messages/clientFrame"},
                    "serverFrame": {"$ref": "#/components/messages/serverFrame"}
                },
                "bindings": {
                    "ws": {
                        "query": {
                            "type": "object",
                            "properties": {"token": {"type": "string", "description": "A token from realtime.token.issue."}}
                        }
                    }
                }
            }
        },
        "operations": {
            "receiveClientFrames": {
                "action": "receive",
                "channel": {"$ref": "#/channels/gateway"},
                "summary": "Frames a client sends: subscribe, unsubscribe, publish, ping.",
                "messages": [{"$ref": "#/channels/gateway/messages/clientFrame"}]
            },
            "sendServerFrames": {
                "action": "send",
                "channel": {"$ref": "#/channels/gateway"},
                "summary": "Frames the server sends; their types are exactly realtime.event.types.",
                "messages": [{"$ref": "#/channels/gateway/messages/serverFrame"}]
            }
        },
        "components": {
            "messages": {
                "clientFrame": {"name": "ClientFrame", "payload": {"$ref": "#/components/schemas/ClientFrame"}},
                "serverFrame": {"name": "ServerFrame", "payload": {"$ref": "#/components/schemas/ServerFrame"}}
            },
            "schemas": schemas
        }
    })
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn asyncapi_json() -> String {
    let mut text = serde_json::to_string_pretty(&asyncapi()).expect("the document serialises");
    text.push('\n');
    text
}
