//! [`Timed`]: a broker that records how long each call of the one it wraps takes, in
//! `realtime_broker_call_duration_seconds{call}`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use realtime_types::PresenceMember;

use super::{Broker, BrokerError, ClusterEvent};
use crate::hub::{ChannelKey, Hub, UserKey};
use crate::metrics::Metrics;

/// The wrapped broker and where its timings go.
pub struct Timed {
    inner: Arc<dyn Broker>,
    metrics: Arc<Metrics>,
}

impl Timed {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Broker>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Timed { inner, metrics })
    }
}

#[async_trait]
impl Broker for Timed {
    async fn publish(&self, event: ClusterEvent) -> Result<u32, BrokerError> {
        let started = Instant::now();
        let result = self.inner.publish(event).await;
        self.metrics.broker_call("publish", started);
        result
    }

    async fn join(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError> {
        let started = Instant::now();
        let result = self.inner.join(key, member).await;
        self.metrics.broker_call("join", started);
        result
    }

    async fn leave(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError> {
        let started = Instant::now();
        let result = self.inner.leave(key, member).await;
        self.metrics.broker_call("leave", started);
        result
    }

    async fn members(&self, key: &ChannelKey) -> Result<Vec<PresenceMember>, BrokerError> {
        let started = Instant::now();
        let result = self.inner.members(key).await;
        self.metrics.broker_call("members", started);
        result
    }

    async fn subscriber_count(&self, key: &ChannelKey) -> Result<u32, BrokerError> {
        let started = Instant::now();
        let result = self.inner.subscriber_count(key).await;
        self.metrics.broker_call("subscriber_count", started);
        result
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        let started = Instant::now();
        let result = self.inner.ping().await;
        self.metrics.broker_call("ping", started);
        result
    }

    async fn open_user_route(&self, user: &UserKey) -> Result<(), BrokerError> {
        let started = Instant::now();
        let result = self.inner.open_user_route(user).await;
        self.metrics.broker_call("open_user_route", started);
        result
    }

    fn hub(&self) -> &Hub {
        self.inner.hub()
    }

    fn has_audience(&self, key: &ChannelKey) -> bool {
        self.inner.has_audience(key)
    }
}
