//! The documented examples as data: the curl text of the seeds and what each call must get.
//!
//! The files live in `conformance/examples/` and are compiled in, so the binary certifies
//! a target without the source tree. `manifest.json` there says, for each file, one
//! expectation per curl command in it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::curl::{self, CurlCommand};
use crate::http::Request;

/// The manifest, compiled in.
const MANIFEST: &str = include_str!("../examples/manifest.json");

/// Every example file, compiled in, by its path under `conformance/examples/`.
pub const FILES: &[(&str, &str)] = &[
    ("001/01-token-issue.sh", include_str!("../examples/001/01-token-issue.sh")),
    ("001/02-channel-create.sh", include_str!("../examples/001/02-channel-create.sh")),
    ("001/03-publish.sh", include_str!("../examples/001/03-publish.sh")),
    ("001/04-presence-get.sh", include_str!("../examples/001/04-presence-get.sh")),
    ("001/05-auth-sign.sh", include_str!("../examples/001/05-auth-sign.sh")),
    ("001/06-channel-get.sh", include_str!("../examples/001/06-channel-get.sh")),
    ("001/07-channel-delete.sh", include_str!("../examples/001/07-channel-delete.sh")),
    ("001/08-channel-list.sh", include_str!("../examples/001/08-channel-list.sh")),
    ("001/09-event-types.sh", include_str!("../examples/001/09-event-types.sh")),
    ("001/10-publish-batch.sh", include_str!("../examples/001/10-publish-batch.sh")),
    ("001/11-token-revoke.sh", include_str!("../examples/001/11-token-revoke.sh")),
    ("001/12-user-disconnect.sh", include_str!("../examples/001/12-user-disconnect.sh")),
    ("001/13-walkthrough.sh", include_str!("../examples/001/13-walkthrough.sh")),
    ("001/14-topup.sh", include_str!("../examples/001/14-topup.sh")),
    ("000/01-token-issue-alias.sh", include_str!("../examples/000/01-token-issue-alias.sh")),
    ("000/02-channel-create-alias.sh", include_str!("../examples/000/02-channel-create-alias.sh")),
    ("000/03-publish.sh", include_str!("../examples/000/03-publish.sh")),
    ("000/04-presence-get-alias.sh", include_str!("../examples/000/04-presence-get-alias.sh")),
    ("000/05-channel-delete.sh", include_str!("../examples/000/05-channel-delete.sh")),
];

/// The placeholder the seeds write for "a value you already have".
pub const PLACEHOLDER: &str = "...";

/// How the examples write the API key: `$REALTIME_API_KEY`, the variable the CLI and the
/// README use (the seeds called it `$INFRAI_API_KEY`).
const API_KEY_VARIABLES: [&str; 2] = ["$REALTIME_API_KEY", "${REALTIME_API_KEY}"];

/// A path segment the seeds write for "your channel".
const CHANNEL_SEGMENT: &str = "CHANNEL";

/// Why the example data is unusable (a bug in `conformance/examples/`, not in the target).
#[derive(Debug, Error)]
pub enum ExamplesError {
    /// The manifest is not valid.
    #[error("conformance/examples/manifest.json is not valid")]
    Manifest(#[source] serde_json::Error),
    /// The manifest names a file that is not compiled in.
    #[error("the manifest names {0}, which is not in examples::FILES")]
    MissingFile(String),
    /// A file's curl commands and the manifest's steps differ in number.
    #[error("{file} has {commands} curl commands but the manifest lists {steps} steps")]
    StepCount {
        /// The file.
        file: String,
        /// Curl commands found.
        commands: usize,
        /// Steps listed.
        steps: usize,
    },
    /// A curl command cannot be parsed.
    #[error("{file}: {source}")]
    Curl {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: curl::CurlError,
    },
}

#[derive(Deserialize)]
struct Manifest {
    examples: Vec<ManifestExample>,
}

#[derive(Deserialize)]
struct ManifestExample {
    name: String,
    file: String,
    steps: Vec<Step>,
}

/// What one documented call must get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The operation the call must resolve to in the document.
    pub operation: String,
    /// The status the contract promises.
    pub status: u16,
    /// For error statuses, the problem code the contract promises.
    #[serde(default)]
    pub code: Option<String>,
    /// State variables to take from the response: variable -> JSON pointer.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    /// Placeholders to fill in the body: JSON pointer -> state variable.
    #[serde(default)]
    pub bind: BTreeMap<String, String>,
    /// A JSON value the response body must contain.
    #[serde(default)]
    pub subset: Option<Value>,
}

/// A documented example: its curl text and one step per curl command.
#[derive(Debug, Clone)]
pub struct Example {
    /// A short name for reports.
    pub name: String,
    /// The file under `conformance/examples/`.
    pub file: String,
    /// The curl commands, parsed, in order.
    pub commands: Vec<CurlCommand>,
    /// The expectations, one per command.
    pub steps: Vec<Step>,
}

impl Example {
    /// The examples of the seeds, in the order they are replayed.
    pub fn documented() -> Result<Vec<Example>, ExamplesError> {
        let manifest: Manifest = serde_json::from_str(MANIFEST).map_err(ExamplesError::Manifest)?;
        manifest
            .examples
            .into_iter()
            .map(|example| {
                let text = FILES
                    .iter()
                    .find(|(path, _)| *path == example.file)
                    .map(|(_, text)| *text)
                    .ok_or_else(|| ExamplesError::MissingFile(example.file.clone()))?;
                let commands = curl::split_commands(text)
                    .iter()
                    .map(|command| curl::parse(command))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| ExamplesError::Curl { file: example.file.clone(), source })?;
                if commands.len() != example.steps.len() {
                    return Err(ExamplesError::StepCount {
                        file: example.file,
                        commands: commands.len(),
                        steps: example.steps.len(),
                    });
                }
                Ok(Example { name: example.name, file: example.file, commands, steps: example.steps })
            })
            .collect()
    }
}

/// Turns a documented command into a request to the target: the documented host is
/// dropped (the target's base URL is used), `$REALTIME_API_KEY` becomes `api_key`, a
/// `CHANNEL` path segment becomes the state's `channel`, and each bound `"..."` in the body
/// becomes its state variable. A placeholder left unbound is an error.
pub fn bind(
    command: &CurlCommand,
    step: &Step,
    state: &BTreeMap<String, String>,
    api_key: &str,
) -> Result<Request, String> {
    let path_and_query = curl::path_and_query(&command.url);
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut segments = Vec::new();
    for segment in path.split('/') {
        if segment == CHANNEL_SEGMENT {
            let channel = state.get("channel").ok_or("the URL names CHANNEL, but no channel was created before")?;
            segments.push(crate::context::encode_segment(channel));
        } else {
            segments.push(segment.to_owned());
        }
    }
    let mut target_path = segments.join("/");
    if let Some(query) = query {
        target_path.push('?');
        target_path.push_str(query);
    }
    let mut request = Request::new(&command.method, target_path);
    for (name, value) in &command.headers {
        let mut value = value.clone();
        for variable in API_KEY_VARIABLES {
            value = value.replace(variable, api_key);
        }
        request = request.header(name, &value);
    }
    if let Some(body) = &command.body {
        request = request.raw(bind_body(body, &step.bind, state)?.into_bytes());
    }
    Ok(request)
}

/// The body with its bound placeholders filled; the documented text itself when nothing
/// is bound.
fn bind_body(body: &str, bind: &BTreeMap<String, String>, state: &BTreeMap<String, String>) -> Result<String, String> {
    let Ok(mut json) = serde_json::from_str::<Value>(body) else {
        return Ok(body.to_owned());
    };
    for (pointer, variable) in bind {
        let value = state
            .get(variable)
            .ok_or_else(|| format!("placeholder {pointer} needs `{variable}`, which no earlier step captured"))?;
        match json.pointer_mut(pointer) {
            Some(slot) if slot.as_str() == Some(PLACEHOLDER) => *slot = Value::String(value.clone()),
            Some(slot) => return Err(format!("the manifest binds {pointer}, but the body has {slot} there")),
            None => return Err(format!("the manifest binds {pointer}, which the body does not have")),
        }
    }
    if let Some(pointer) = find_placeholder(&json, "") {
        return Err(format!("the body still has a \"...\" placeholder at {pointer}; bind it in the manifest"));
    }
    if bind.is_empty() { Ok(body.to_owned()) } else { Ok(json.to_string()) }
}

fn find_placeholder(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(text) if text == PLACEHOLDER => Some(at.to_owned()),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(index, item)| find_placeholder(item, &format!("{at}/{index}")))
        }
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            find_placeholder(item, &format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")))
        }),
        _ => None,
    }
}

/// Whether `actual` contains `expected`: objects by key (recursively), arrays element by
/// element with equal length, everything else by equality. The error names the first
/// difference.
pub fn contains(actual: &Value, expected: &Value, at: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, want) in expected {
                let here = format!("{at}/{key}");
                let got = actual.get(key).ok_or_else(|| format!("response has no {here} (expected {want})"))?;
                contains(got, want, &here)?;
            }
            Ok(())
        }
        (Value::Array(actual), Value::Array(expected)) if actual.len() == expected.len() => {
            for (index, (got, want)) in actual.iter().zip(expected).enumerate() {
                contains(got, want, &format!("{at}/{index}"))?;
            }
            Ok(())
        }
        _ if actual == expected => Ok(()),
        _ => Err(format!("response has {actual} at {}, expected {expected}", if at.is_empty() { "/" } else { at })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_example_file_is_compiled_in_and_listed_once() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut on_disk = Vec::new();
        for seed in std::fs::read_dir(&dir).unwrap() {
            let seed = seed.unwrap().path();
            if seed.is_dir() {
                for file in std::fs::read_dir(&seed).unwrap() {
                    let file = file.unwrap().path();
                    let name = file.strip_prefix(&dir).unwrap().to_string_lossy().replace('\\', "/");
                    on_disk.push(name);
                }
            }
        }
        on_disk.sort();
        let mut compiled: Vec<String> = FILES.iter().map(|(path, _)| (*path).to_owned()).collect();
        compiled.sort();
        assert_eq!(on_disk, compiled);
        let examples = Example::documented().unwrap();
        let mut listed: Vec<String> = examples.iter().map(|example| example.file.clone()).collect();
        listed.sort();
        assert_eq!(listed, compiled);
    }

    #[test]
    fn every_example_calls_the_key_realtime_api_key_as_the_cli_and_the_readme_do() {
        for (path, text) in FILES {
            assert!(!text.contains("INFRAI_API_KEY"), "{path} uses the seeds' name for the key");
            if text.contains("Authorization") {
                assert!(text.contains("Bearer $REALTIME_API_KEY"), "{path}");
            }
        }
    }

    #[test]
    fn the_documented_examples_cover_every_capability_and_the_walkthrough() {
        let examples = Example::documented().unwrap();
        let steps: usize = examples.iter().map(|example| example.steps.len()).sum();
        assert_eq!(examples.len(), 19);
        assert_eq!(steps, 26);
        let walkthrough = examples.iter().find(|example| example.file == "001/13-walkthrough.sh").unwrap();
        assert_eq!(walkthrough.commands.len(), 8);
        assert_eq!(walkthrough.commands[0].url, "https://api.infrai.cc/v1/realtime/token/issue");
    }

    #[test]
    fn binding_fills_key_channel_and_placeholders() {
        let command = curl::parse(
            "curl -X POST https://api.infrai.cc/v1/realtime/channel/get/CHANNEL -H \"Authorization: Bearer $REALTIME_API_KEY\" -d '{\"client_id\": \"...\", \"channels\": []}'",
        )
        .unwrap();
        let step: Step = serde_json::from_value(json!({
            "operation": "x", "status": 200, "bind": {"/client_id": "client_id"}
        }))
        .unwrap();
        let state =
            BTreeMap::from([("channel".to_owned(), "room-42".to_owned()), ("client_id".to_owned(), "u1".to_owned())]);
        let request = bind(&command, &step, &state, "ifr_pk_proj_abc").unwrap();
        assert_eq!(request.path, "/v1/realtime/channel/get/room-42");
        assert_eq!(request.headers[0].1, "Bearer ifr_pk_proj_abc");
        let body: Value = serde_json::from_slice(request.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({"client_id": "u1", "channels": []}));
    }

    #[test]
    fn an_unbound_placeholder_is_refused() {
        let command = curl::parse("curl -d '{\"token_or_jti\": \"...\"}' https://x/v1/realtime/token/revoke").unwrap();
        let step: Step = serde_json::from_value(json!({"operation": "x", "status": 200})).unwrap();
        let err = bind(&command, &step, &BTreeMap::new(), "k").unwrap_err();
        assert!(err.contains("/token_or_jti"), "{err}");
    }

    #[test]
    fn contains_names_the_first_difference() {
        let actual = json!({"a": {"b": [1, 2]}, "c": "x"});
        contains(&actual, &json!({"a": {"b": [1, 2]}}), "").unwrap();
        assert_eq!(contains(&actual, &json!({"c": "y"}), "").unwrap_err(), "response has \"x\" at /c, expected \"y\"");
        assert!(contains(&actual, &json!({"d": 1}), "").unwrap_err().contains("no /d"));
    }
}
