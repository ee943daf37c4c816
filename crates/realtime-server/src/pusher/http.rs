//! Pusher's HTTP API, `/apps/{app_id}/…`: triggers (one event to up to 100 channels,
//! batches of 10), channel lists and info (with a cache channel's last event), presence
//! users, terminating a user's connections, and events sent to a user ([`users`]). Every
//! request is signed with the app's secret ([`signing`]); refusals carry Pusher's
//! statuses and a JSON body `{"error": "…"}`.
//!
//! [`signing`]: super::signing
//! [`users`]: super::users

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use realtime_api::ApiError;
use realtime_types::ErrorCode;
use realtime_types::pusher::{
    BATCH_MAX_EVENTS, BatchRequest, BatchResponse, CACHE_TTL_SECONDS, CachedEvent, ChannelAttributes, ChannelKind,
    ChannelsResponse, DATA_MAX_BYTES, ErrorBody, SERVER_TO_USER_PREFIX, TRIGGER_MAX_CHANNELS, TriggerRequest,
    TriggerResponse, User, UserEventRequest, UsersResponse, check_channel_name, check_event_name, check_socket_id,
    check_user_id, data_text, server_to_user,
};
use serde::Serialize;

use super::signing::{SignedRequest, verify_request};
use super::{ensure_channels, last_cached, users};
use crate::broker::ClusterEvent;
use crate::hub::ChannelKey;
use crate::service::{Outgoing, Service};
use crate::store::AppRow;

/// The HTTP API's routes.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/apps/{app_id}/events", post(trigger))
        .route("/apps/{app_id}/batch_events", post(batch))
        .route("/apps/{app_id}/channels", get(channels))
        .route("/apps/{app_id}/channels/{channel}", get(channel))
        .route("/apps/{app_id}/channels/{channel}/users", get(users))
        .route("/apps/{app_id}/users/{user_id}/terminate_connections", post(terminate))
        .route("/apps/{app_id}/users/{user_id}/events", post(send_to_user))
        .with_state(service)
}

/// A refusal, with Pusher's status for it.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    body: ErrorBody,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal { status, body: ErrorBody { error: message.into(), topup_url: None } }
    }

    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for Refusal {
    /// Pusher has no 402 or 422: a balance that does not cover the price is its "over
    /// quota" 403, with the top-up address; a validation failure is a 400.
    fn from(error: ApiError) -> Refusal {
        let problem = error.problem();
        let status = match problem.status {
            402 => StatusCode::FORBIDDEN,
            422 => StatusCode::BAD_REQUEST,
            status => StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        let message = problem.detail.clone().unwrap_or_else(|| problem.title.clone());
        Refusal { status, body: ErrorBody { error: message, topup_url: problem.topup_url.clone() } }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// What a handler answers.
type Answer<T> = Result<Json<T>, Refusal>;

/// The app a signed request is for, once its signature, key, timestamp and body digest
/// hold, and the account's request budget allows it.
async fn authenticate(
    service: &Service,
    app_id: &str,
    method: &Method,
    uri: &Uri,
    query: &[(String, String)],
    body: &[u8],
) -> Result<AppRow, Refusal> {
    let unknown = || Refusal::new(StatusCode::NOT_FOUND, format!("unknown app {app_id:?}"));
    let id: u64 = app_id.parse().map_err(|_| unknown())?;
    let app = service.store.app(id).await.map_err(|e| service.store_error(e))?.ok_or_else(unknown)?;
    let request = SignedRequest { method: method.as_str(), path: uri.path(), query, body };
    verify_request(&app.key, &app.secret, &request, chrono::Utc::now().timestamp())
        .map_err(|refused| Refusal::new(StatusCode::UNAUTHORIZED, refused.to_string()))?;
    service.check_rate(&app.account_id)?;
    Ok(app)
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|error| Refusal::bad_request(format!("the body is not valid: {error}")))
}

/// The value of a query parameter.
fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// The attributes an `info` parameter asks for.
#[derive(Debug, Default, Clone, Copy)]
struct Info {
    user_count: bool,
    subscription_count: bool,
    /// Channel info of a cache channel only.
    cache: bool,
}

impl Info {
    fn parse(info: Option<&str>) -> Result<Info, Refusal> {
        let mut parsed = Info::default();
        for attribute in info.unwrap_or("").split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match attribute {
                "user_count" => parsed.user_count = true,
                "subscription_count" => parsed.subscription_count = true,
                "cache" => parsed.cache = true,
                other => return Err(Refusal::bad_request(format!("unknown info attribute {other:?}"))),
            }
        }
        Ok(parsed)
    }

    fn any(self) -> bool {
        self.user_count || self.subscription_count
    }

    /// The attributes of a trigger, a batch or the channel list: not `cache`, which only
    /// channel info reports.
    fn parse_counts(info: Option<&str>) -> Result<Info, Refusal> {
        let parsed = Info::parse(info)?;
        if parsed.cache {
            return Err(Refusal::bad_request("the cache attribute is only reported by channel info"));
        }
        Ok(parsed)
    }
}

/// The attributes of a channel that `info` asks for; `user_count` only on presence
/// channels.
async fn attributes(service: &Service, app: &AppRow, channel: &str, info: Info) -> Result<ChannelAttributes, Refusal> {
    let key = ChannelKey::new(&app.account_id, channel);
    let mut attributes = ChannelAttributes::default();
    if info.user_count && ChannelKind::of(channel) == ChannelKind::Presence {
        let members = service.broker.members(&key).await.map_err(|e| service.broker_error(e))?;
        attributes.user_count = Some(members.len() as u32);
    }
    if info.subscription_count {
        attributes.subscription_count =
            Some(service.broker.subscriber_count(&key).await.map_err(|e| service.broker_error(e))?);
    }
    Ok(attributes)
}

/// Checks one event of a trigger or a batch.
fn check_event(name: &str, data: &str, channel: &str, socket_id: Option<&str>) -> Result<(), Refusal> {
    match server_to_user(channel) {
        Some(user_id) => check_user_id(user_id).map_err(Refusal::bad_request)?,
        None => check_channel_name(channel)
            .map_err(|why| Refusal::bad_request(format!("invalid channel name {channel:?}: {why}")))?,
    }
    check_event_name(name).map_err(Refusal::bad_request)?;
    if data.len() > DATA_MAX_BYTES {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the data is {} bytes; at most {DATA_MAX_BYTES} are allowed", data.len()),
        ));
    }
    if let Some(socket_id) = socket_id {
        check_socket_id(socket_id).map_err(Refusal::bad_request)?;
    }
    Ok(())
}

/// Publishes through the one publish path, creating the channels first; a channel
/// deleted in between is created again once. Events to `#server-to-user-` channels are
/// sent to their users instead (after the channels' events, which may still be refused).
async fn publish(service: &Service, app: &AppRow, messages: Vec<Outgoing>) -> Result<(), Refusal> {
    let (to_users, messages): (Vec<Outgoing>, Vec<Outgoing>) =
        messages.into_iter().partition(|message| message.channel.starts_with(SERVER_TO_USER_PREFIX));
    if !messages.is_empty() {
        publish_to_channels(service, app, messages).await?;
    }
    users::send(service, app, to_users).await?;
    Ok(())
}

async fn publish_to_channels(service: &Service, app: &AppRow, messages: Vec<Outgoing>) -> Result<(), Refusal> {
    let mut names: Vec<&str> = messages.iter().map(|message| message.channel.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    ensure_channels(service, app, &names).await?;
    match service.publish_messages(&app.account_id, messages.clone()).await {
        Ok(_) => Ok(()),
        Err(error) if error.code() == ErrorCode::NotFound => {
            ensure_channels(service, app, &names).await?;
            service.publish_messages(&app.account_id, messages).await?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

async fn trigger(
    State(service): State<Arc<Service>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer<TriggerResponse> {
    let app = authenticate(&service, &app_id, &method, &uri, &query, &body).await?;
    let request: TriggerRequest = parse_body(&body)?;
    let channels = match (request.channels, request.channel) {
        (Some(channels), None) => channels,
        (None, Some(channel)) => vec![channel],
        (Some(_), Some(_)) => return Err(Refusal::bad_request("give channels or channel, not both")),
        (None, None) => return Err(Refusal::bad_request("missing channels")),
    };
    if channels.is_empty() || channels.len() > TRIGGER_MAX_CHANNELS {
        return Err(Refusal::bad_request(format!("trigger to 1-{TRIGGER_MAX_CHANNELS} channels")));
    }
    // An encrypted event is encrypted with one channel's key: sent to several channels,
    // all but one subscriber set could not read it.
    if channels.len() > 1 && channels.iter().any(|channel| ChannelKind::of(channel) == ChannelKind::Encrypted) {
        return Err(Refusal::bad_request(
            "cannot trigger to several channels when one is encrypted (private-encrypted-)",
        ));
    }
    let data = data_text(&request.data);
    for channel in &channels {
        check_event(&request.name, &data, channel, request.socket_id.as_deref())?;
    }
    let info = Info::parse_counts(request.info.as_deref())?;
    let messages = channels
        .iter()
        .map(|channel| Outgoing {
            channel: channel.clone(),
            event: request.name.clone(),
            data: serde_json::Value::String(data.clone()),
            except: request.socket_id.clone(),
            user_id: None,
        })
        .collect();
    publish(&service, &app, messages).await?;
    if !info.any() {
        return Ok(Json(TriggerResponse::default()));
    }
    let mut attributes_of = BTreeMap::new();
    for channel in channels {
        let attributes = attributes(&service, &app, &channel, info).await?;
        attributes_of.insert(channel, attributes);
    }
    Ok(Json(TriggerResponse { channels: Some(attributes_of) }))
}

async fn batch(
    State(service): State<Arc<Service>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer<BatchResponse> {
    let app = authenticate(&service, &app_id, &method, &uri, &query, &body).await?;
    let request: BatchRequest = parse_body(&body)?;
    if request.batch.is_empty() || request.batch.len() > BATCH_MAX_EVENTS {
        return Err(Refusal::bad_request(format!("a batch holds 1-{BATCH_MAX_EVENTS} events")));
    }
    let mut messages = Vec::with_capacity(request.batch.len());
    let mut infos = Vec::with_capacity(request.batch.len());
    for event in &request.batch {
        let data = data_text(&event.data);
        check_event(&event.name, &data, &event.channel, event.socket_id.as_deref())?;
        infos.push(Info::parse_counts(event.info.as_deref())?);
        messages.push(Outgoing {
            channel: event.channel.clone(),
            event: event.name.clone(),
            data: serde_json::Value::String(data),
            except: event.socket_id.clone(),
            user_id: None,
        });
    }
    publish(&service, &app, messages).await?;
    if !infos.iter().any(|info| info.any()) {
        return Ok(Json(BatchResponse::default()));
    }
    let mut batch = Vec::with_capacity(infos.len());
    for (event, info) in request.batch.iter().zip(infos) {
        batch.push(attributes(&service, &app, &event.channel, info).await?);
    }
    Ok(Json(BatchResponse { batch: Some(batch) }))
}

/// Channels read per page while listing the occupied ones.
const LIST_PAGE: u32 = 100;

async fn channels(
    State(service): State<Arc<Service>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer<ChannelsResponse> {
    let app = authenticate(&service, &app_id, &method, &uri, &query, &body).await?;
    let prefix = param(&query, "filter_by_prefix").unwrap_or("");
    let info = Info::parse_counts(param(&query, "info"))?;
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(Refusal::bad_request("info=user_count needs filter_by_prefix=presence-"));
    }
    // Every channel of the account is a store row; the occupied ones are those with
    // subscribers on some node. Names are read in order, from the prefix on.
    let mut channels = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = service
            .store
            .list_channels(&app.account_id, after.as_deref(), LIST_PAGE)
            .await
            .map_err(|e| service.store_error(e))?;
        let full = page.len() == LIST_PAGE as usize;
        let Some(last) = page.last().map(|row| row.name.clone()) else { break };
        for row in page {
            if !row.name.starts_with(prefix) {
                continue;
            }
            let key = ChannelKey::new(&app.account_id, &row.name);
            let occupied = service.broker.subscriber_count(&key).await.map_err(|e| service.broker_error(e))? > 0;
            if occupied {
                let attributes = attributes(&service, &app, &row.name, info).await?;
                channels.insert(row.name, attributes);
            }
        }
        if !full || (last.as_str() > prefix && !last.starts_with(prefix)) {
            break;
        }
        after = Some(last);
    }
    Ok(Json(ChannelsResponse { channels }))
}

async fn channel(
    State(service): State<Arc<Service>>,
    Path((app_id, channel)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer<ChannelAttributes> {
    let app = authenticate(&service, &app_id, &method, &uri, &query, &body).await?;
    check_channel_name(&channel).map_err(|why| Refusal::bad_request(format!("invalid channel name: {why}")))?;
    let info = Info::parse(param(&query, "info"))?;
    if info.user_count && ChannelKind::of(&channel) != ChannelKind::Presence {
        return Err(Refusal::bad_request("user_count is only for presence- channels"));
    }
    if info.cache && !ChannelKind::is_cache(&channel) {
        return Err(Refusal::bad_request("cache is only for cache channels (cache-, private-cache-, …)"));
    }
    let key = ChannelKey::new(&app.account_id, &channel);
    let subscribers = service.broker.subscriber_count(&key).await.map_err(|e| service.broker_error(e))?;
    let mut attributes = attributes(&service, &app, &channel, info).await?;
    attributes.occupied = Some(subscribers > 0);
    if info.cache
        && let Some(last) = last_cached(&service, &app.account_id, &channel).await
    {
        let age = (chrono::Utc::now() - last.published_at).num_seconds().max(0);
        let data = serde_json::from_str(&last.data).unwrap_or(serde_json::Value::Null);
        attributes.cache =
            Some(CachedEvent { data: data_text(&data), ttl: u64::try_from(CACHE_TTL_SECONDS - age).unwrap_or(0) });
    }
    Ok(Json(attributes))
}

async fn users(
    State(service): State<Arc<Service>>,
    Path((app_id, channel)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer<UsersResponse> {
    let app = authenticate(&service, &app_id, &method, &uri, &query, &body).await?;
    if ChannelKind::of(&channel) != ChannelKind::Presence || check_channel_name(&channel).is_err() {
        return Err(Refusal::bad_request("users are only listed for presence- channels"));
    }
    let key = ChannelKey::new(&app.account_id, &channel);
    let members = service.broker.members(&key).await.map_err(|e| service.broker_error(e))?;
    Ok(Json(UsersResponse { users: members.into_iter().map(|member| User { id: member.client_id }).collect() }))
}

/// `POST /apps/{app_id}/users/{user_id}/events`: one event to the sockets signed in as
/// the user, as a trigger to `#server-to-user-{user_id}` is.
async fn send_to_user(
    State(service): State<Arc<Service>>,
    Path((app_id, user_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer<Empty> {
    let app = authenticate(&service, &app_id, &method, &uri, &query, &body).await?;
    let request: UserEventRequest = parse_body(&body)?;
    let channel = format!("{SERVER_TO_USER_PREFIX}{user_id}");
    let data = data_text(&request.data);
    check_event(&request.name, &data, &channel, None)?;
    let event =
        Outgoing { channel, event: request.name, data: serde_json::Value::String(data), except: None, user_id: None };
    users::send(&service, &app, vec![event]).await?;
    Ok(Json(Empty {}))
}

/// The empty object most calls answer with.
#[derive(Serialize)]
struct Empty {}

async fn terminate(
    State(service): State<Arc<Service>>,
    Path((app_id, user_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer<Empty> {
    let app = authenticate(&service, &app_id, &method, &uri, &query, &body).await?;
    if user_id.is_empty() || user_id.len() > realtime_types::pusher::USER_ID_MAX_LEN {
        return Err(Refusal::bad_request("invalid user id"));
    }
    // The user's sockets on every node close: Pusher sockets signed in as the user, and
    // this server's own sockets of the client with that id.
    let event =
        ClusterEvent::ClientDisconnected { account_id: app.account_id.clone(), client_id: user_id, channel: None };
    service.broker.publish(event).await.map_err(|e| service.broker_error(e))?;
    Ok(Json(Empty {}))
}
