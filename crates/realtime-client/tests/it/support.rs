//! Shared helpers: a server in a temporary directory, a client of it, and bounded waits.

use std::future::Future;
use std::time::Duration;

use realtime_client::{Client, Subscriber, SubscriberEvent};
use realtime_server::testing::TestServer;
use realtime_types::ws::ServerFrame;
use realtime_types::{ChannelCreateRequest, ChannelType, PublishRequest};

/// A reference server and the temporary directory holding its data (removed on drop).
pub(crate) struct Harness {
    pub(crate) server: TestServer,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let server = TestServer::start(dir.path()).await.expect("the reference server starts");
        Harness { server, _dir: dir }
    }

    /// A client of the funded dev account.
    pub(crate) fn client(&self) -> Client {
        Client::new(self.server.base_url(), self.server.api_key()).expect("client")
    }
}

/// Waits at most five seconds for `future`.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Creates a channel of this type.
pub(crate) async fn create_channel(client: &Client, name: &str, channel_type: ChannelType) {
    client
        .channel_create(ChannelCreateRequest {
            name: name.to_owned(),
            channel_type: Some(channel_type),
            idempotency_key: None,
        })
        .await
        .expect("channel.create");
}

/// A publish request with JSON data.
pub(crate) fn publish_request(channel: &str, event: &str, data: serde_json::Value) -> PublishRequest {
    PublishRequest { channel: channel.to_owned(), event: event.to_owned(), data, idempotency_key: None }
}

/// The next event that `matches`, skipping others; panics after five seconds or when
/// the subscriber stops.
pub(crate) async fn next_matching(
    subscriber: &mut Subscriber,
    what: &str,
    matches: impl Fn(&SubscriberEvent) -> bool,
) -> SubscriberEvent {
    within(what, async {
        loop {
            match subscriber.next_event().await {
                Some(event) if matches(&event) => return event,
                Some(SubscriberEvent::Stopped { reason }) => panic!("stopped ({reason}) while waiting for {what}"),
                Some(_) => continue,
                None => panic!("the stream ended while waiting for {what}"),
            }
        }
    })
    .await
}

/// Waits for `subscribed` on `channel`.
pub(crate) async fn subscribed(subscriber: &mut Subscriber, channel: &str) {
    next_matching(
        subscriber,
        "subscribed",
        |event| matches!(event, SubscriberEvent::Frame(ServerFrame::Subscribed { channel: c, .. }) if c == channel),
    )
    .await;
}
