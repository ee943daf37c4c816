//! The debug console, `GET /console`: one self-contained page (a small script, nothing
//! fetched from elsewhere) where someone with an API key sees the account's channels with
//! their live counts, a live stream of its events, and a form to publish a test event.
//!
//! The page holds the key in its memory only and calls the public API with it; its one
//! route of its own is `GET /console/events`, a server-sent event stream of the account's
//! [`Taps`](crate::hub::tap::Taps), authenticated by the same `Authorization: Bearer`
//! header (the page reads the stream with `fetch`, which can send a header where
//! `EventSource` cannot, so the key never goes into a URL). On when `console` is set (the
//! dev defaults); absent, and so 404, otherwise.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Html;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::{Stream, StreamExt};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use realtime_api::{ApiError, ApiKey, RealtimeApi};
use tokio::sync::broadcast::error::RecvError;

use crate::hub::tap::TapEvent;
use crate::service::Service;

/// The console's routes; none unless `console` is on.
pub fn router(service: Arc<Service>) -> Router {
    if !service.config.console {
        return Router::new();
    }
    let page: Arc<str> = Arc::from(page().into_string());
    Router::new()
        .route("/console", get(move || async move { Html(page.to_string()) }))
        .route("/console/events", get(events))
        .with_state(service)
}

/// `GET /console/events`: the account's events as they happen. The first event, `ready`,
/// says the stream is live; then `frame` (a channel's frame, as subscribers get it),
/// `activity` (anything else) and `skipped` (how many events this viewer fell behind
/// by and lost). It ends when the node shuts down.
async fn events(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthenticated("send the API key as `Authorization: Bearer <key>`"))?;
    let caller = service.authenticate(&ApiKey::new(key)).await?;
    let receiver = service.hub.taps.watch(&caller.account_id);
    // A broker that routes channels only to the nodes holding their subscribers routes
    // a watched account's channels here too: wake it now, not at its next tick, so the
    // events that follow the `ready` event are not missed.
    service.hub.channel_opened.notify_one();
    let ready =
        Event::default().event("ready").data(serde_json::json!({ "account_id": caller.account_id }).to_string());
    let metrics = service.metrics.clone();
    let live = futures_util::stream::unfold(receiver, move |mut receiver| {
        let metrics = metrics.clone();
        async move {
            let event = match receiver.recv().await {
                Ok(TapEvent::Frame(frame)) => Event::default().event("frame").data(frame.as_str()),
                Ok(TapEvent::Activity(activity)) => Event::default()
                    .event("activity")
                    .data(serde_json::to_string(&activity).expect("activities serialise")),
                Err(RecvError::Lagged(skipped)) => {
                    metrics.frames_dropped("console_behind", skipped);
                    Event::default().event("skipped").data(skipped.to_string())
                }
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), receiver))
        }
    });
    // A stream left open would hold up a graceful shutdown, which waits for every response.
    let (shutdown, kill) = (service.shutdown.clone(), service.kill.clone());
    let ended = async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = kill.cancelled() => {}
        }
    };
    let stream = futures_util::stream::once(async move { Ok(ready) }).chain(live).take_until(ended);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:1.5rem auto;padding:0 1rem;color:#1d2330}\
code,pre,textarea{font:13px/1.45 ui-monospace,monospace}table{border-collapse:collapse;width:100%}\
td,th{border:1px solid #dde;padding:.2rem .5rem;text-align:left}#status{font-weight:600}\
#status[data-state=live]{color:#17743a}#status[data-state=error]{color:#a33}\
#events{list-style:none;padding:0;max-height:32rem;overflow-y:auto;border:1px solid #dde}\
#events li{padding:.15rem .5rem;border-bottom:1px solid #eef;font-size:14px}#events time{color:#667;margin-right:.5rem}\
#events b{display:inline-block;min-width:8rem}#events li[data-kind=\"402\"],#events li[data-kind=skipped]{background:#fdecec}\
.note{color:#556;font-size:.9em}form label{display:block;margin:.25rem 0}textarea{width:100%;height:4rem}";

/// The page. It holds no secret: the key is typed in (or, for tests and links a person
/// makes for themselves, read from the URL's fragment, which browsers never send).
fn page() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "realtime console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "realtime console" }
                p #status data-state="signed-out" { "Signed out" }
                form #login {
                    label { "API key " input #key type="password" autocomplete="off" required; }
                    button type="submit" { "Log in" }
                    p .note {
                        "The key stays in this page's memory: it is sent only in "
                        code { "Authorization" } " headers, never in a URL, and forgotten when the page closes."
                    }
                }
                section #console hidden {
                    p { span #account {} " " button #logout type="button" { "Log out" } }
                    h2 { "Channels" }
                    table #channels {
                        thead { tr { th { "Name" } th { "Type" } th { "Subscribers" } th { "Members" } th { "Last publish" } } }
                        tbody {}
                    }
                    h2 { "Publish a test event" }
                    form #publish {
                        label { "Channel " input #channel list="channel-names" required; }
                        datalist #channel-names {}
                        label { "Event " input #event value="test" required; }
                        label { "Data (JSON) " textarea #data { "{\"hello\": \"world\"}" } }
                        button type="submit" { "Publish" }
                        " " output #published {}
                    }
                    h2 { "Events" }
                    p .note {
                        "Publishes, presence joins and leaves and channel deletions of every node; "
                        "subscribes, disconnects, revocations and 402 refusals seen by this node. Newest first."
                    }
                    ol #events {}
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// The page's script: log in, list the channels every two seconds, read the event stream
/// with `fetch` (which can send the key in a header, unlike `EventSource`), publish. Every
/// value from the server is shown as text, never as markup.
const SCRIPT: &str = r#"
"use strict";
const $ = (id) => document.getElementById(id);
const MAX_ROWS = 500;
let key = null, aborter = null, timer = null;

function status(text, state) { const s = $("status"); s.textContent = text; s.dataset.state = state; }

async function api(method, path, body) {
  const headers = { authorization: "Bearer " + key };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) {}
  return { ok: response.ok, status: response.status, json };
}

function problem(answer) { return (answer.json && (answer.json.detail || answer.json.title)) || ("HTTP " + answer.status); }

function row(kind, channel, text) {
  const li = document.createElement("li");
  li.dataset.kind = kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  const name = document.createElement("b");
  name.textContent = kind;
  const where = document.createElement("code");
  where.textContent = channel || "";
  const what = document.createElement("span");
  what.textContent = " " + text;
  li.append(time, name, where, what);
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
}

function onFrame(frame) {
  switch (frame.type) {
    case "message": row("publish", frame.channel, frame.event + " #" + frame.offset + " " + JSON.stringify(frame.data)); break;
    case "presence.join": row("presence.join", frame.channel, frame.member.client_id); refresh(); break;
    case "presence.leave": row("presence.leave", frame.channel, frame.member.client_id); refresh(); break;
    default: row(frame.type, frame.channel, "");
  }
}

function onActivity(a) {
  switch (a.kind) {
    case "subscribed": case "unsubscribed":
      row(a.kind, a.channel, a.client_id + " (socket " + a.connection_id + ")"); refresh(); break;
    case "disconnected":
      row("disconnected", "", a.client_id + " (socket " + a.connection_id + "): " + a.code + " " + a.reason); refresh(); break;
    case "channel_deleted": row("channel deleted", a.channel, ""); refresh(); break;
    case "client_disconnected": row("user.disconnect", a.channel || "", a.client_id); break;
    case "token_revoked": row("token revoked", "", a.jti + ": " + a.disconnected + " socket(s) closed"); break;
    case "insufficient_credit": row("402", "", a.operation + " refused: insufficient credit"); break;
    default: row(a.kind, "", JSON.stringify(a));
  }
}

function dispatch(name, data) {
  if (name === "ready") { status("Live", "live"); refresh(); }
  else if (name === "frame") onFrame(JSON.parse(data));
  else if (name === "activity") onActivity(JSON.parse(data));
  else if (name === "skipped") row("skipped", "", data + " events: this page fell behind");
}

async function stream(signal) {
  const response = await fetch("/console/events", { headers: { authorization: "Bearer " + key }, signal });
  if (!response.ok) throw new Error(problem({ status: response.status, json: await response.json().catch(() => null) }));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) dispatch(name, data.join("\n"));
    }
  }
}

async function follow() {
  while (key) {
    aborter = new AbortController();
    status("Connecting", "connecting");
    try { await stream(aborter.signal); } catch (error) { if (!key) return; status(String(error.message || error), "error"); }
    if (!key) return;
    row("stream", "", "the event stream ended; reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// Up to ten pages of a hundred: a console is for looking, not for a huge account.
async function channels() {
  const all = [];
  let cursor = null;
  for (let page = 0; page < 10; page++) {
    const query = "?limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    const answer = await api("GET", "/v1/realtime/channel/list" + query);
    if (!answer.ok) return null;
    all.push(...answer.json.channels);
    cursor = answer.json.next_cursor;
    if (!cursor) break;
  }
  return all;
}

// Events ask for a refresh as often as they come; at most one runs, and one more after it.
let refreshing = false, refreshAgain = false;
function refresh() {
  if (refreshing) { refreshAgain = true; return; }
  refreshing = true;
  showChannels().finally(() => {
    refreshing = false;
    if (refreshAgain) { refreshAgain = false; refresh(); }
  });
}

async function showChannels() {
  if (!key) return;
  const list = await channels();
  if (!list) return;
  const body = $("channels").tBodies[0];
  body.replaceChildren();
  $("channel-names").replaceChildren();
  for (const c of list) {
    const tr = document.createElement("tr");
    for (const cell of [c.name, c.type, c.subscriber_count, c.member_count ?? "", c.last_published_at ?? ""]) {
      const td = document.createElement("td");
      td.textContent = String(cell);
      tr.append(td);
    }
    body.append(tr);
    const option = document.createElement("option");
    option.value = c.name;
    $("channel-names").append(option);
  }
}

async function login(candidate) {
  key = candidate;
  status("Checking the key", "connecting");
  const account = await api("GET", "/v1/account");
  if (!account.ok) { key = null; status(problem(account), "error"); return; }
  $("account").textContent = account.json.account_id + ", balance $" + (account.json.balance / 1e6).toFixed(2);
  $("login").hidden = true;
  $("console").hidden = false;
  timer = setInterval(refresh, 2000);
  follow();
}

function logout() {
  key = null;
  clearInterval(timer);
  if (aborter) aborter.abort();
  $("console").hidden = true;
  $("login").hidden = false;
  $("events").replaceChildren();
  status("Signed out", "signed-out");
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const typed = $("key").value.trim();
  $("key").value = "";
  login(typed);
});
$("logout").addEventListener("click", logout);
$("publish").addEventListener("submit", async (event) => {
  event.preventDefault();
  let data;
  try { data = JSON.parse($("data").value); } catch (error) { $("published").textContent = "data is not JSON: " + error.message; return; }
  const answer = await api("POST", "/v1/realtime/publish", { channel: $("channel").value, event: $("event").value, data });
  $("published").textContent = answer.ok
    ? "published #" + answer.json.offset + " to " + answer.json.delivered + " socket(s)"
    : problem(answer);
});

// A key in the fragment (`/console#key=…`) logs in at once; browsers never send a
// fragment to the server, and it is removed from the address bar and history here.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) {
  history.replaceState(null, "", location.pathname + location.search);
  login(fragment.get("key"));
}
"#;
