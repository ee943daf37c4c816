//! Sending requests to the target and keeping everything the checks look at.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::journal::{self, Answer, Exchange};

/// A request to the target, described as data so checks can print it.
#[derive(Clone)]
pub struct Request {
    /// The HTTP method.
    pub method: String,
    /// Path and query, joined to the base URL (or an absolute URL, used as is).
    pub path: String,
    /// Header lines, sent as given.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Option<Vec<u8>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Authorization header carries an API key: never print it.
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| match name.eq_ignore_ascii_case("authorization") {
                true => (name.as_str(), "<redacted>"),
                false => (name.as_str(), value.as_str()),
            })
            .collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &headers)
            .field("body", &self.body.as_ref().map(|body| String::from_utf8_lossy(body).into_owned()))
            .finish()
    }
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: &str, path: impl Into<String>) -> Request {
        Request { method: method.to_owned(), path: path.into(), headers: Vec::new(), body: None }
    }

    /// Adds `Authorization: Bearer <key>`.
    pub fn bearer(self, key: &str) -> Request {
        self.header("Authorization", &format!("Bearer {key}"))
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(self, body: &Value) -> Request {
        self.header("Content-Type", "application/json").raw(body.to_string().into_bytes())
    }

    /// Sets a raw body without touching the headers.
    pub fn raw(mut self, body: Vec<u8>) -> Request {
        self.body = Some(body);
        self
    }
}

/// A response of the target.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Response {
    /// The `Content-Type` header, if present and readable.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// A header's value, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A string field of the JSON body.
    pub fn str_field(&self, pointer: &str) -> Option<String> {
        self.json().pointer(pointer).and_then(Value::as_str).map(str::to_owned)
    }

    /// The problem `code` of an error body, if it has one.
    pub fn problem_code(&self) -> Option<String> {
        self.str_field("/code")
    }
}

/// The HTTP side of the target.
#[derive(Debug, Clone)]
pub struct Target {
    client: reqwest::Client,
    base_url: String,
}

impl Target {
    /// A client for `base_url` whose requests give up after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Target, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Target { client, base_url: base_url.trim_end_matches('/').to_owned() })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The absolute URL of a path (absolute URLs are kept).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{}", self.base_url, path)
        }
    }

    /// Sends a request; a transport failure is described for the report.
    pub async fn send(&self, request: &Request) -> Result<Response, String> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("invalid method {:?}", request.method))?;
        let url = self.url(&request.path);
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(value).map_err(|_| format!("invalid header value for {name}"))?;
            headers.append(name, value);
        }
        let mut builder = self.client.request(method, &url).headers(headers);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let result = async {
            let response =
                builder.send().await.map_err(|err| format!("{} {url}: {}", request.method, describe(&err)))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|err| format!("{} {url}: reading the body: {}", request.method, describe(&err)))?
                .to_vec();
            Ok(Response { status, headers, body })
        }
        .await;
        let answer = result.as_ref().map(Response::answer).map_err(Clone::clone);
        journal::exchange(Exchange { request: Request { path: url, ..request.clone() }, response: answer });
        result
    }
}

impl Response {
    /// The response as the journal keeps it.
    fn answer(&self) -> Answer {
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        Answer { status: self.status, headers, body: self.body.clone() }
    }
}

/// An error and its sources on one line.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn the_api_key_never_shows_in_debug() {
        let request = Request::new("GET", "/v1/account").bearer("ifr_pk_secret_value");
        for text in [format!("{request:?}"), format!("{request:#?}")] {
            assert!(!text.contains("ifr_pk_secret_value") && text.contains("<redacted>"), "{text}");
        }
    }
}
