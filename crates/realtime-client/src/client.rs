//! [`Client`] and its builder: how one call becomes HTTP requests, retries included.

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use realtime_api::OperationRoute;
use realtime_api::{IdempotencyKey, Reply};
use realtime_types::Problem;
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::retry::{RetryPolicy, is_retryable_status};

/// The characters a path segment keeps as they are (RFC 3986 unreserved); every other
/// byte of a channel name is percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A client of one realtime server, for one API key. Cheap to clone: clones share the
/// connection pool.
///
/// Every operation of the contract is a method ([`Client::publish`],
/// [`Client::channel_create`], ...) and, through [`realtime_api::RealtimeApi`], the same
/// trait the server implements, so no operation can exist without a client method.
///
/// POST and DELETE calls always send an `Idempotency-Key`: the request's
/// `idempotency_key` field, the key given to a `*_with` method, or a fresh ULID. Retries
/// reuse it, so a retried call acts at most once.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Without a trailing slash, so that `base + route.path` is the URL.
    base_url: String,
    api_key: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("api_key", &self.inner.api_key.as_ref().map(|_| "<redacted>"))
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// Settings of a [`Client`]; start with [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    user_agent: String,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl ClientBuilder {
    /// The API key sent as `Authorization: Bearer`; never printed.
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// The longest a single attempt may take, answer included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest connecting may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How failed calls are retried (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<Client, ClientError> {
        let base_url = self.base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|error| ClientError::Config(format!("base URL `{base_url}` is not a URL: {error}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(ClientError::Config(format!("base URL `{base_url}` must be http(s)://host[:port][/prefix]")));
        }
        if let Some(key) = &self.api_key
            && (key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ClientError::Config("the API key must be non-empty visible ASCII".to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(|error| ClientError::Config(format!("HTTP client: {error}")))?;
        Ok(Client { inner: Arc::new(Inner { http, base_url, api_key: self.api_key, retry: self.retry }) })
    }
}

/// Where an operation's path puts its parameters.
pub(crate) enum Target<'a> {
    /// The path has no parameters.
    Plain,
    /// The path has one parameter (`{channel}`, `{command_id}`).
    Channel(&'a str),
    /// Query parameters.
    Query(Vec<(&'static str, String)>),
    /// The path has `{channel}`, and query parameters follow.
    ChannelQuery(&'a str, Vec<(&'static str, String)>),
}

impl Client {
    /// Starts building a client of the server at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            user_agent: concat!("realtime-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// A client with the default settings.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<Client, ClientError> {
        Client::builder(base_url).api_key(api_key).build()
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The same client (connection pool, retry policy) calling with another API key.
    pub fn with_api_key(&self, api_key: impl Into<String>) -> Client {
        let inner = &self.inner;
        Client {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                base_url: inner.base_url.clone(),
                api_key: Some(api_key.into()),
                retry: inner.retry,
            }),
        }
    }

    /// The URL of an operation.
    fn url(&self, route: OperationRoute, target: &Target<'_>) -> Result<reqwest::Url, ClientError> {
        let path = match target {
            Target::Channel(value) | Target::ChannelQuery(value, _) => {
                let segment = utf8_percent_encode(value, PATH_SEGMENT).to_string();
                match (route.path.find('{'), route.path.find('}')) {
                    (Some(open), Some(close)) => {
                        format!("{}{segment}{}", &route.path[..open], &route.path[close + 1..])
                    }
                    _ => route.path.to_owned(),
                }
            }
            Target::Plain | Target::Query(_) => route.path.to_owned(),
        };
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.inner.base_url))
            .map_err(|error| ClientError::Config(format!("{}: bad URL: {error}", route.id)))?;
        if let Target::Query(pairs) | Target::ChannelQuery(_, pairs) = target
            && !pairs.is_empty()
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
        }
        Ok(url)
    }

    /// A call that changes state: sent with an idempotency key (the given one or a fresh
    /// ULID) that every retry reuses.
    pub(crate) async fn write<B: Serialize, T: DeserializeOwned>(
        &self,
        route: OperationRoute,
        target: Target<'_>,
        key: Option<IdempotencyKey>,
        body: Option<&B>,
    ) -> Result<Reply<T>, ClientError> {
        let key = key.map_or_else(|| ulid::Ulid::generate().to_string(), |key| key.as_str().to_owned());
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|error| ClientError::Config(format!("{}: the request does not serialize: {error}", route.id)))?;
        self.send(route, target, Some(&key), body).await
    }

    /// A call that only reads.
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        route: OperationRoute,
        target: Target<'_>,
    ) -> Result<T, ClientError> {
        self.send(route, target, None, None).await.map(|reply| reply.body)
    }

    /// Sends the request, retrying under the policy.
    async fn send<T: DeserializeOwned>(
        &self,
        route: OperationRoute,
        target: Target<'_>,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply<T>, ClientError> {
        let url = self.url(route, &target)?;
        let policy = self.inner.retry;
        let mut retry = 0;
        loop {
            let outcome = self.attempt(route, &url, key, body.clone()).await;
            let Err(error) = outcome else { return outcome };
            if retry >= policy.max_retries {
                return Err(error);
            }
            let (retryable, retry_after) = match &error {
                ClientError::Api { status, problem, retry_after } => {
                    (is_retryable_status(*status, Some(problem.code)), *retry_after)
                }
                ClientError::Decode { status, .. } => (is_retryable_status(*status, None), None),
                ClientError::Transport { .. } => (true, None),
                ClientError::Config(_) => (false, None),
            };
            if !retryable {
                return Err(error);
            }
            let delay = policy.delay(retry, retry_after);
            tracing::debug!(operation = route.id, retry, ?delay, %error, "retrying");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }

    /// One HTTP request and its answer.
    async fn attempt<T: DeserializeOwned>(
        &self,
        route: OperationRoute,
        url: &reqwest::Url,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply<T>, ClientError> {
        let method = reqwest::Method::from_bytes(route.method.as_bytes())
            .map_err(|_| ClientError::Config(format!("{}: bad method {}", route.id, route.method)))?;
        let mut request = self.inner.http.request(method, url.clone()).header("accept", "application/json");
        if let Some(api_key) = &self.inner.api_key {
            request = request.header(AUTHORIZATION, format!("Bearer {api_key}"));
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let transport = |source| ClientError::Transport { operation: route.id, url: url.to_string(), source };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?;
        let decode = |source| ClientError::Decode {
            operation: route.id,
            url: url.to_string(),
            status,
            excerpt: excerpt(&bytes),
            source,
        };
        if (200..300).contains(&status) {
            let body = serde_json::from_slice(&bytes).map_err(decode)?;
            let replayed = headers.get("idempotent-replayed").is_some_and(|value| value.as_bytes() == b"true");
            return Ok(Reply { body, replayed });
        }
        let problem: Problem = serde_json::from_slice(&bytes).map_err(decode)?;
        Err(ClientError::Api { status, problem: Box::new(problem), retry_after: retry_after(&headers) })
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The start of a body, as text, for error messages.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    if bytes.len() > 200 { format!("{text}…") } else { text.into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_percent_encoded_into_the_path() {
        let client = Client::builder("http://127.0.0.1:1/prefix/").build().unwrap();
        let url = client.url(realtime_api::operations::CHANNEL_GET, &Target::Channel("a;b=c@d,e.f_g-h")).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:1/prefix/v1/realtime/channel/get/a%3Bb%3Dc%40d%2Ce.f_g-h");
    }

    #[test]
    fn list_parameters_go_in_the_query_string() {
        let client = Client::builder("http://127.0.0.1:1").build().unwrap();
        let target = Target::Query(vec![("cursor", "a b&c".to_owned()), ("limit", "5".to_owned())]);
        let url = client.url(realtime_api::operations::CHANNEL_LIST, &target).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:1/v1/realtime/channel/list?cursor=a+b%26c&limit=5");
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let builder = Client::builder("http://127.0.0.1:1").api_key("ifr_pk_proj_secretsecret");
        assert!(!format!("{builder:?}").contains("secretsecret"));
        let client = builder.build().unwrap();
        let printed = format!("{client:?}");
        assert!(!printed.contains("secretsecret"));
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused() {
        assert!(matches!(Client::builder("ftp://example").build(), Err(ClientError::Config(_))));
        assert!(matches!(Client::builder("not a url").build(), Err(ClientError::Config(_))));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }
}
