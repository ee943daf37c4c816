//! [`Timed`]: a store that records how long each call of the one it wraps takes, in
//! `realtime_store_call_duration_seconds{call}` (the method's name: a bounded label).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use realtime_api::ApiError;
use realtime_api::idempotency::{Record, Scope};
use realtime_types::{Direction, Position};

use super::Accounts;
use super::{
    AccountRow, AnswerOutcome, AppRow, AppSettings, AppSettingsChange, Apps, ChannelRow, Channels, CheckoutRow,
    CommandRow, Completion, Cutoffs, IdempotencyStore, MessageRow, Retention, Seal, SealOf, Store, StoreResult,
    TokenRow, Tokens, UserMessageRow, Users, WebhookRow,
};
use crate::metrics::Metrics;

/// The wrapped store and where its timings go.
pub struct Timed {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Timed {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Timed { inner, metrics })
    }
}

/// Awaits `$call` on the inner store and records its duration under `$name`.
macro_rules! timed {
    ($self:ident, $name:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.metrics.store_call($name, started);
        result
    }};
}

#[async_trait]
impl Accounts for Timed {
    async fn create_account(&self, account_id: &str, key_hash: &[u8; 32], balance: i64) -> StoreResult<()> {
        timed!(self, "create_account", self.inner.create_account(account_id, key_hash, balance))
    }

    async fn account_by_key_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<AccountRow>> {
        timed!(self, "account_by_key_hash", self.inner.account_by_key_hash(key_hash))
    }

    async fn account(&self, account_id: &str) -> StoreResult<Option<AccountRow>> {
        timed!(self, "account", self.inner.account(account_id))
    }

    async fn is_empty(&self) -> StoreResult<bool> {
        timed!(self, "is_empty", self.inner.is_empty())
    }

    async fn charge(&self, account_id: &str, price: i64, seal: Option<&Seal>) -> StoreResult<()> {
        timed!(self, "charge", self.inner.charge(account_id, price, seal))
    }

    async fn create_checkout(&self, checkout: &CheckoutRow, seal: Option<&Seal>) -> StoreResult<()> {
        timed!(self, "create_checkout", self.inner.create_checkout(checkout, seal))
    }

    async fn checkout(&self, checkout_id: &str) -> StoreResult<Option<CheckoutRow>> {
        timed!(self, "checkout", self.inner.checkout(checkout_id))
    }

    async fn complete_checkout(
        &self,
        checkout_id: &str,
        now: DateTime<Utc>,
        max_balance: i64,
    ) -> StoreResult<Completion> {
        timed!(self, "complete_checkout", self.inner.complete_checkout(checkout_id, now, max_balance))
    }
}

#[async_trait]
impl Channels for Timed {
    async fn create_channel(
        &self,
        channel: &ChannelRow,
        price: i64,
        seal: Option<&Seal>,
    ) -> StoreResult<(ChannelRow, bool)> {
        timed!(self, "create_channel", self.inner.create_channel(channel, price, seal))
    }

    async fn channel(&self, account_id: &str, name: &str) -> StoreResult<Option<ChannelRow>> {
        timed!(self, "channel", self.inner.channel(account_id, name))
    }

    async fn list_channels(&self, account_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<ChannelRow>> {
        timed!(self, "list_channels", self.inner.list_channels(account_id, after, limit))
    }

    async fn delete_channel(&self, account_id: &str, name: &str, seal: Option<&Seal>) -> StoreResult<bool> {
        timed!(self, "delete_channel", self.inner.delete_channel(account_id, name, seal))
    }

    async fn record_messages(
        &self,
        account_id: &str,
        messages: &[MessageRow],
        price: i64,
        retention: Retention,
        seal: SealOf,
    ) -> StoreResult<Vec<Position>> {
        timed!(self, "record_messages", self.inner.record_messages(account_id, messages, price, retention, seal))
    }

    async fn history(
        &self,
        account_id: &str,
        channel: &str,
        since: Option<u64>,
        limit: u32,
        direction: Direction,
    ) -> StoreResult<Vec<MessageRow>> {
        timed!(self, "history", self.inner.history(account_id, channel, since, limit, direction))
    }
}

#[async_trait]
impl Tokens for Timed {
    async fn record_token(&self, token: &TokenRow, price: i64, seal: Option<&Seal>) -> StoreResult<()> {
        timed!(self, "record_token", self.inner.record_token(token, price, seal))
    }

    async fn token(&self, account_id: &str, jti: &str) -> StoreResult<Option<TokenRow>> {
        timed!(self, "token", self.inner.token(account_id, jti))
    }

    async fn revoke_token(&self, account_id: &str, jti: &str) -> StoreResult<()> {
        timed!(self, "revoke_token", self.inner.revoke_token(account_id, jti))
    }

    async fn is_revoked(&self, jti: &str) -> StoreResult<bool> {
        timed!(self, "is_revoked", self.inner.is_revoked(jti))
    }
}

#[async_trait]
impl Users for Timed {
    async fn record_user_message(
        &self,
        message: &UserMessageRow,
        price: i64,
        backlog: u64,
        seal: &(dyn Fn(u64) -> Option<Seal> + Send + Sync),
    ) -> StoreResult<u64> {
        timed!(self, "record_user_message", self.inner.record_user_message(message, price, backlog, seal))
    }

    async fn note_delivered(&self, account_id: &str, user_id: &str, seq: u64) -> StoreResult<()> {
        timed!(self, "note_delivered", self.inner.note_delivered(account_id, user_id, seq))
    }

    async fn redeliver(&self, account_id: &str, user_id: &str, limit: u32) -> StoreResult<Vec<UserMessageRow>> {
        timed!(self, "redeliver", self.inner.redeliver(account_id, user_id, limit))
    }

    async fn ack(&self, account_id: &str, user_id: &str, message_id: &str) -> StoreResult<bool> {
        timed!(self, "ack", self.inner.ack(account_id, user_id, message_id))
    }

    async fn create_command(&self, command: &CommandRow, price: i64, seal: Option<&Seal>) -> StoreResult<()> {
        timed!(self, "create_command", self.inner.create_command(command, price, seal))
    }

    async fn command(&self, account_id: &str, command_id: &str) -> StoreResult<Option<CommandRow>> {
        timed!(self, "command", self.inner.command(account_id, command_id))
    }

    async fn answer_command(
        &self,
        account_id: &str,
        user_id: &str,
        command_id: &str,
        response: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<AnswerOutcome> {
        timed!(self, "answer_command", self.inner.answer_command(account_id, user_id, command_id, response, now))
    }
}

#[async_trait]
impl Apps for Timed {
    async fn create_app(&self, app: &AppRow) -> StoreResult<bool> {
        timed!(self, "create_app", self.inner.create_app(app))
    }

    async fn app(&self, app_id: u64) -> StoreResult<Option<AppRow>> {
        timed!(self, "app", self.inner.app(app_id))
    }

    async fn app_by_key(&self, key: &str) -> StoreResult<Option<AppRow>> {
        timed!(self, "app_by_key", self.inner.app_by_key(key))
    }

    async fn apps_of(&self, account_id: &str) -> StoreResult<Vec<AppRow>> {
        timed!(self, "apps_of", self.inner.apps_of(account_id))
    }

    async fn webhook_accounts(&self) -> StoreResult<Vec<String>> {
        timed!(self, "webhook_accounts", self.inner.webhook_accounts())
    }

    async fn rotate_app_secret(&self, app_id: u64, secret: &crate::secret::Secret) -> StoreResult<Option<AppRow>> {
        timed!(self, "rotate_app_secret", self.inner.rotate_app_secret(app_id, secret))
    }

    async fn delete_app(&self, app_id: u64) -> StoreResult<Option<AppRow>> {
        timed!(self, "delete_app", self.inner.delete_app(app_id))
    }

    async fn change_app_settings(&self, app_id: u64, change: AppSettingsChange) -> StoreResult<Option<AppSettings>> {
        timed!(self, "change_app_settings", self.inner.change_app_settings(app_id, change))
    }

    async fn app_settings(&self, app_id: u64) -> StoreResult<AppSettings> {
        timed!(self, "app_settings", self.inner.app_settings(app_id))
    }

    async fn counting_apps(&self) -> StoreResult<Vec<(u64, String)>> {
        timed!(self, "counting_apps", self.inner.counting_apps())
    }

    async fn enqueue_webhook(
        &self,
        webhook: &WebhookRow,
        cancel_key: Option<&str>,
        cancels: Option<&str>,
    ) -> StoreResult<bool> {
        timed!(self, "enqueue_webhook", self.inner.enqueue_webhook(webhook, cancel_key, cancels))
    }

    async fn claim_webhooks(&self, now_ms: i64, claimed_until_ms: i64, limit: u32) -> StoreResult<Vec<WebhookRow>> {
        timed!(self, "claim_webhooks", self.inner.claim_webhooks(now_ms, claimed_until_ms, limit))
    }

    async fn finish_webhook(&self, webhook_id: &str) -> StoreResult<()> {
        timed!(self, "finish_webhook", self.inner.finish_webhook(webhook_id))
    }

    async fn retry_webhook(&self, webhook_id: &str, due_ms: i64) -> StoreResult<()> {
        timed!(self, "retry_webhook", self.inner.retry_webhook(webhook_id, due_ms))
    }
}

#[async_trait]
impl IdempotencyStore for Timed {
    async fn insert(
        &self,
        scope: &Scope,
        record: &Record,
        retained_since: DateTime<Utc>,
    ) -> Result<Option<Record>, ApiError> {
        timed!(self, "idempotency_insert", self.inner.insert(scope, record, retained_since))
    }

    async fn replace(&self, scope: &Scope, expected: &str, record: &Record) -> Result<bool, ApiError> {
        timed!(self, "idempotency_replace", self.inner.replace(scope, expected, record))
    }

    async fn finish(&self, scope: &Scope, lease: &str, answer: &str) -> Result<(), ApiError> {
        timed!(self, "idempotency_finish", self.inner.finish(scope, lease, answer))
    }

    async fn release(&self, scope: &Scope, lease: &str) -> Result<(), ApiError> {
        timed!(self, "idempotency_release", self.inner.release(scope, lease))
    }
}

#[async_trait]
impl Store for Timed {
    async fn ping(&self) -> StoreResult<()> {
        timed!(self, "ping", self.inner.ping())
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        timed!(self, "setting", self.inner.setting(name))
    }

    async fn init_setting(&self, name: &str, value: &str) -> StoreResult<String> {
        timed!(self, "init_setting", self.inner.init_setting(name, value))
    }

    async fn purge(&self, cutoffs: &Cutoffs) -> StoreResult<u64> {
        timed!(self, "purge", self.inner.purge(cutoffs))
    }

    async fn release_all_leases(&self) -> StoreResult<u64> {
        timed!(self, "release_all_leases", self.inner.release_all_leases())
    }
}
