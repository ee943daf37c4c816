//! Pusher's HTTP API: signed triggers (one channel, several, a batch) and the requests a
//! server must refuse (a wrong signature, a stale timestamp, a wrong `body_md5`, an
//! unknown app, data over 10 KB).

use std::time::Instant;

use serde_json::{Value, json};

use super::{App, Forgery, Run, expect_status};
use crate::report::Kind;

const KIND: Kind = Kind::PusherHttp;

const TRIGGER_ONE: &str = "pusher-http/a signed trigger to one channel is 200 {}";
const TRIGGER_SEVERAL: &str = "pusher-http/a signed trigger to several channels is 200 {}";
const BATCH: &str = "pusher-http/a signed batch trigger is 200";
const BAD_SIGNATURE: &str = "pusher-http/a wrong auth_signature is 401";
const STALE: &str = "pusher-http/an auth_timestamp an hour old is 401";
const BODY_MD5: &str = "pusher-http/a body_md5 of another body is 401";
const UNKNOWN_APP: &str = "pusher-http/an unknown app id is 404 or 401";
const TOO_LARGE: &str = "pusher-http/data over 10 KB is 413";

/// Data a little over Pusher's 10 KB limit.
const OVERSIZED_DATA: usize = 11 * 1024;

pub(super) async fn run(run: &Run) {
    let app = &run.config.app;
    let one = run.name("http-one");
    let event = |channel: &str| json!({"name": "conformance-event", "channel": channel, "data": "{\"n\":1}"});

    let started = Instant::now();
    let result = async {
        let response = run.api("POST", "/events", &[], Some(&event(&one))).await?;
        let body = expect_status("POST /events", &response, 200)?;
        empty_object("POST /events", &body)
    }
    .await;
    run.record(TRIGGER_ONE, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let channels: Vec<String> = (1..=3).map(|n| run.name(&format!("http-several-{n}"))).collect();
        let body = json!({"name": "conformance-event", "channels": channels, "data": "{\"n\":2}"});
        let response = run.api("POST", "/events", &[], Some(&body)).await?;
        let body = expect_status("POST /events to 3 channels", &response, 200)?;
        empty_object("POST /events to 3 channels", &body)
    }
    .await;
    run.record(TRIGGER_SEVERAL, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let batch: Vec<Value> = (1..=3)
            .map(|n| json!({"channel": run.name(&format!("http-batch-{n}")), "name": "conformance-event", "data": format!("{{\"n\":{n}}}")}))
            .collect();
        let response = run.api("POST", "/batch_events", &[], Some(&json!({ "batch": batch }))).await?;
        let body = expect_status("POST /batch_events", &response, 200)?;
        // Without `info` Pusher answers `{}`; a `batch` array of empty objects says the same.
        match body.get("batch") {
            None => empty_object("POST /batch_events", &body),
            Some(Value::Array(items)) if items.len() == 3 => Ok(()),
            Some(other) => Err(format!("POST /batch_events: `batch` is {other}, expected 3 entries or none")),
        }
    }
    .await;
    run.record(BATCH, KIND, started, result);

    for (id, forgery) in
        [(BAD_SIGNATURE, Forgery::Signature), (STALE, Forgery::StaleTimestamp), (BODY_MD5, Forgery::BodyMd5)]
    {
        let started = Instant::now();
        let result = async {
            let request = run.signed(app, "POST", "/events", &[], Some(&event(&one)), forgery);
            let response = run.target.send(&request).await?;
            expect_status("POST /events", &response, 401).map(drop)
        }
        .await;
        run.record(id, KIND, started, result);
    }

    let started = Instant::now();
    let result = async {
        let unknown = App { app_id: unknown_app_id(&app.app_id), ..app.clone() };
        let request = run.signed(&unknown, "POST", "/events", &[], Some(&event(&one)), Forgery::None);
        let response = run.target.send(&request).await?;
        match response.status {
            404 | 401 => Ok(()),
            status => Err(format!(
                "POST /apps/{}/events: status {status}, expected 404 or 401: {}",
                unknown.app_id,
                crate::spec::snippet(&response.body)
            )),
        }
    }
    .await;
    run.record(UNKNOWN_APP, KIND, started, result);

    let started = Instant::now();
    let result = async {
        let body = json!({"name": "conformance-event", "channel": one, "data": "x".repeat(OVERSIZED_DATA)});
        let response = run.api("POST", "/events", &[], Some(&body)).await?;
        expect_status(&format!("POST /events with {OVERSIZED_DATA} bytes of data"), &response, 413).map(drop)
    }
    .await;
    run.record(TOO_LARGE, KIND, started, result);
}

/// The body is `{}`.
fn empty_object(what: &str, body: &Value) -> Result<(), String> {
    match body {
        Value::Object(fields) if fields.is_empty() => Ok(()),
        other => Err(format!("{what}: the body is {other}, expected {{}}")),
    }
}

/// A numeric app id that is not `app_id` (nor, with overwhelming likelihood, any other).
fn unknown_app_id(app_id: &str) -> String {
    let candidate = "918273645";
    if app_id == candidate { "918273646".to_owned() } else { candidate.to_owned() }
}
