//! [`Apps`] on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, text, time};
use crate::secret::Secret;
use crate::store::apps::{app_id_of, stored_app_id};
use crate::store::{AppRow, Apps, StoreResult};

fn app_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<AppRow> {
    Ok(AppRow {
        app_id: app_id_of(row.try_get("app_id")?)?,
        account_id: row.try_get("account_id")?,
        key: row.try_get("app_key")?,
        secret: Secret::new(row.try_get::<String, _>("secret")?),
        created_at: time(row.try_get("created_at")?)?,
    })
}

#[async_trait]
impl Apps for SqliteStore {
    async fn create_app(&self, app: &AppRow) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO pusher_apps (app_id, account_id, app_key, secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(stored_app_id(app.app_id))
        .bind(&app.account_id)
        .bind(&app.key)
        .bind(app.secret.expose())
        .bind(text(app.created_at))
        .execute(&self.writer)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn app(&self, app_id: u64) -> StoreResult<Option<AppRow>> {
        let row =
            sqlx::query("SELECT app_id, account_id, app_key, secret, created_at FROM pusher_apps WHERE app_id = ?1")
                .bind(stored_app_id(app_id))
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(app_row).transpose()
    }

    async fn app_by_key(&self, key: &str) -> StoreResult<Option<AppRow>> {
        let row =
            sqlx::query("SELECT app_id, account_id, app_key, secret, created_at FROM pusher_apps WHERE app_key = ?1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(app_row).transpose()
    }

    async fn apps_of(&self, account_id: &str) -> StoreResult<Vec<AppRow>> {
        let rows =
            sqlx::query("SELECT app_id, account_id, app_key, secret, created_at FROM pusher_apps WHERE account_id = ?1 ORDER BY created_at, app_id")
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(app_row).collect()
    }
}
