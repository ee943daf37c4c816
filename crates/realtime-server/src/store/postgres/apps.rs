//! [`Apps`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresStore;
use crate::secret::Secret;
use crate::store::apps::{app_id_of, stored_app_id};
use crate::store::{AppRow, AppSettings, AppSettingsChange, Apps, StoreResult, WebhookRow};

fn app_row(row: &PgRow) -> StoreResult<AppRow> {
    Ok(AppRow {
        app_id: app_id_of(row.try_get("app_id")?)?,
        account_id: row.try_get("account_id")?,
        key: row.try_get("app_key")?,
        secret: Secret::new(row.try_get::<String, _>("secret")?),
        created_at: row.try_get("created_at")?,
        webhook_url: row.try_get("webhook_url")?,
    })
}

fn settings_row(row: &sqlx::postgres::PgRow) -> StoreResult<AppSettings> {
    Ok(AppSettings {
        subscription_count: row.try_get("subscription_count")?,
        batch_webhooks: row.try_get("batch_webhooks")?,
    })
}

fn webhook_row(row: &PgRow) -> StoreResult<WebhookRow> {
    Ok(WebhookRow {
        webhook_id: row.try_get("webhook_id")?,
        app_id: app_id_of(row.try_get("app_id")?)?,
        body: row.try_get("body")?,
        created_ms: row.try_get("created_ms")?,
        due_ms: row.try_get("due_ms")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
    })
}

#[async_trait]
impl Apps for PostgresStore {
    async fn create_app(&self, app: &AppRow) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO pusher_apps (app_id, account_id, app_key, secret, created_at, webhook_url) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT DO NOTHING",
        )
        .bind(stored_app_id(app.app_id))
        .bind(&app.account_id)
        .bind(&app.key)
        .bind(app.secret.expose())
        .bind(app.created_at)
        .bind(app.webhook_url.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn app(&self, app_id: u64) -> StoreResult<Option<AppRow>> {
        let row = sqlx::query(
            "SELECT app_id, account_id, app_key, secret, created_at, webhook_url FROM pusher_apps WHERE app_id = $1",
        )
        .bind(stored_app_id(app_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(app_row).transpose()
    }

    async fn app_by_key(&self, key: &str) -> StoreResult<Option<AppRow>> {
        let row = sqlx::query(
            "SELECT app_id, account_id, app_key, secret, created_at, webhook_url FROM pusher_apps WHERE app_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(app_row).transpose()
    }

    async fn apps_of(&self, account_id: &str) -> StoreResult<Vec<AppRow>> {
        let rows =
            sqlx::query("SELECT app_id, account_id, app_key, secret, created_at, webhook_url FROM pusher_apps WHERE account_id = $1 ORDER BY created_at, app_id")
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(app_row).collect()
    }

    async fn webhook_accounts(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT account_id FROM pusher_apps WHERE webhook_url IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get("account_id")?)).collect()
    }

    async fn rotate_app_secret(&self, app_id: u64, secret: &Secret) -> StoreResult<Option<AppRow>> {
        let row = sqlx::query(
            "UPDATE pusher_apps SET secret = $1 WHERE app_id = $2 \
             RETURNING app_id, account_id, app_key, secret, created_at, webhook_url",
        )
        .bind(secret.expose())
        .bind(stored_app_id(app_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(app_row).transpose()
    }

    async fn delete_app(&self, app_id: u64) -> StoreResult<Option<AppRow>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM pusher_webhooks WHERE app_id = $1")
            .bind(stored_app_id(app_id))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM pusher_app_settings WHERE app_id = $1")
            .bind(stored_app_id(app_id))
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "DELETE FROM pusher_apps WHERE app_id = $1 \
             RETURNING app_id, account_id, app_key, secret, created_at, webhook_url",
        )
        .bind(stored_app_id(app_id))
        .fetch_optional(&mut *tx)
        .await?;
        let deleted = row.as_ref().map(app_row).transpose()?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn change_app_settings(&self, app_id: u64, change: AppSettingsChange) -> StoreResult<Option<AppSettings>> {
        let row = sqlx::query(
            "INSERT INTO pusher_app_settings (app_id, subscription_count, batch_webhooks) \
             SELECT app_id, COALESCE($2::BOOLEAN, FALSE), COALESCE($3::BOOLEAN, FALSE) FROM pusher_apps WHERE app_id = $1 \
             ON CONFLICT (app_id) DO UPDATE SET \
             subscription_count = COALESCE($2::BOOLEAN, pusher_app_settings.subscription_count), \
             batch_webhooks = COALESCE($3::BOOLEAN, pusher_app_settings.batch_webhooks) \
             RETURNING subscription_count, batch_webhooks",
        )
        .bind(stored_app_id(app_id))
        .bind(change.subscription_count)
        .bind(change.batch_webhooks)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(settings_row).transpose()
    }

    async fn app_settings(&self, app_id: u64) -> StoreResult<AppSettings> {
        let row = sqlx::query("SELECT subscription_count, batch_webhooks FROM pusher_app_settings WHERE app_id = $1")
            .bind(stored_app_id(app_id))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(settings_row).transpose()?.unwrap_or_default())
    }

    async fn counting_apps(&self) -> StoreResult<Vec<(u64, String)>> {
        let rows = sqlx::query(
            "SELECT a.app_id, a.account_id FROM pusher_apps a JOIN pusher_app_settings s ON s.app_id = a.app_id \
             WHERE s.subscription_count = TRUE ORDER BY a.app_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((app_id_of(row.try_get("app_id")?)?, row.try_get("account_id")?))).collect()
    }

    async fn enqueue_webhook(
        &self,
        webhook: &WebhookRow,
        cancel_key: Option<&str>,
        cancels: Option<&str>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        if let Some(cancels) = cancels {
            let cancelled = sqlx::query(
                "DELETE FROM pusher_webhooks WHERE webhook_id IN (SELECT webhook_id FROM pusher_webhooks \
                 WHERE app_id = $1 AND cancel_key = $2 AND attempts = 0 AND claimed_until_ms IS NULL LIMIT 1)",
            )
            .bind(stored_app_id(webhook.app_id))
            .bind(cancels)
            .execute(&mut *tx)
            .await?;
            if cancelled.rows_affected() > 0 {
                tx.commit().await?;
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO pusher_webhooks (webhook_id, app_id, body, cancel_key, created_ms, due_ms, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(&webhook.webhook_id)
        .bind(stored_app_id(webhook.app_id))
        .bind(&webhook.body)
        .bind(cancel_key)
        .bind(webhook.created_ms)
        .bind(webhook.due_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_webhooks(&self, now_ms: i64, claimed_until_ms: i64, limit: u32) -> StoreResult<Vec<WebhookRow>> {
        let rows = sqlx::query(
            "UPDATE pusher_webhooks SET claimed_until_ms = $1 WHERE webhook_id IN (SELECT webhook_id \
             FROM pusher_webhooks WHERE due_ms <= $2 AND (claimed_until_ms IS NULL OR claimed_until_ms < $2) \
             ORDER BY due_ms LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING webhook_id, app_id, body, created_ms, due_ms, attempts",
        )
        .bind(claimed_until_ms)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut webhooks = rows.iter().map(webhook_row).collect::<StoreResult<Vec<_>>>()?;
        webhooks.sort_by_key(|webhook| webhook.due_ms);
        Ok(webhooks)
    }

    async fn finish_webhook(&self, webhook_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM pusher_webhooks WHERE webhook_id = $1").bind(webhook_id).execute(&self.pool).await?;
        Ok(())
    }

    async fn retry_webhook(&self, webhook_id: &str, due_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE pusher_webhooks SET attempts = attempts + 1, due_ms = $1, claimed_until_ms = NULL \
             WHERE webhook_id = $2",
        )
        .bind(due_ms)
        .bind(webhook_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
