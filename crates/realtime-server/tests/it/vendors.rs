//! `realtime.auth.sign` checked against the vendors' own libraries (the Python `pusher`
//! and `ably` packages, installed by `.ci/run`), not against a copy of our code.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::Env;

/// Runs `script` with `input` on stdin and parses what it prints.
pub(crate) fn python(script: &str, input: &Value) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the vendor cross-checks (see .ci/run)");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the vendor library failed (install it with `python3 -m pip install pusher ably`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

const PUSHER: &str = r#"
import json, sys, pusher
i = json.load(sys.stdin)
client = pusher.Pusher(app_id=i["app_id"], key=i["key"], secret=i["secret"])
print(json.dumps(client.authenticate(channel=i["channel"], socket_id=i["socket_id"])))
"#;

/// Ably's own `TokenRequest.sign_request`, over exactly the fields we returned. (Its
/// `create_token_request` re-serialises the capability with spaces, which is a different
/// but equally valid string to sign; ably-js signs the compact form, as we do.)
const ABLY: &str = r#"
import json, sys
from ably.types.tokenrequest import TokenRequest
i = json.load(sys.stdin)
request = TokenRequest(key_name=i["keyName"], client_id=i["clientId"], nonce=i["nonce"], ttl=i["ttl"],
                       capability=i["capability"], timestamp=i["timestamp"])
request.sign_request(i["key"].split(":", 1)[1].encode("utf8"))
print(json.dumps({"mac": request.mac}))
"#;

#[tokio::test]
async fn pusher_channel_authorization_matches_the_pusher_library() {
    let env = Env::start().await;
    let signed = env
        .post(
            "/v1/realtime/auth/sign",
            json!({"client_id": "u1", "channels": ["private-room"], "vendor": "pusher", "socket_id": "1234.5678"}),
        )
        .await
        .ok();
    let expected = python(
        PUSHER,
        &json!({"app_id": "1", "key": "dev-pusher-key", "secret": "dev-pusher-secret",
                "channel": "private-room", "socket_id": "1234.5678"}),
    );
    assert_eq!(signed["token"], expected["auth"]);
}

#[tokio::test]
async fn ably_token_request_mac_matches_the_ably_library() {
    let env = Env::start().await;
    let signed = env
        .post(
            "/v1/realtime/auth/sign",
            json!({"client_id": "u1", "channels": ["room-b", "room-a"], "vendor": "ably",
                   "capabilities": ["subscribe", "publish"], "ttl_seconds": 600}),
        )
        .await
        .ok();
    let request = &signed["token_request"];
    let mut input = request.clone();
    input["key"] = json!("dev-app.dev-key:dev-ably-secret");
    let expected = python(ABLY, &input);
    assert_eq!(request["mac"], expected["mac"]);
    assert_eq!(request["ttl"], 600_000);
}
