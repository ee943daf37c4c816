//! [`Users`] on PostgreSQL: the user's stream row is locked while a message is appended,
//! so sends to one user from several nodes get consecutive sequences.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{PostgresStore, commit_seal, debit, offset, stored};
use crate::store::users::{sender_of, sender_text};
use crate::store::{AnswerOutcome, CommandRow, Seal, StoreError, StoreResult, UserMessageRow, Users};

fn message_row(row: &sqlx::postgres::PgRow) -> StoreResult<UserMessageRow> {
    Ok(UserMessageRow {
        message_id: row.try_get("message_id")?,
        account_id: row.try_get("account_id")?,
        user_id: row.try_get("user_id")?,
        seq: offset(row.try_get("seq")?)?,
        payload: row.try_get("payload")?,
        sender_type: sender_of(row.try_get("sender_type")?),
        sender_id: row.try_get("sender_id")?,
        sent_at: row.try_get("sent_at")?,
        delivery_count: u32::try_from(row.try_get::<i64, _>("delivery_count")?).unwrap_or(u32::MAX),
    })
}

fn command_row(row: &sqlx::postgres::PgRow) -> StoreResult<CommandRow> {
    Ok(CommandRow {
        command_id: row.try_get("command_id")?,
        account_id: row.try_get("account_id")?,
        user_id: row.try_get("user_id")?,
        command_type: row.try_get("command_type")?,
        data: row.try_get("data")?,
        sender_type: sender_of(row.try_get("sender_type")?),
        sender_id: row.try_get("sender_id")?,
        response: row.try_get("response")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[async_trait]
impl Users for PostgresStore {
    async fn record_user_message(
        &self,
        message: &UserMessageRow,
        price: i64,
        backlog: u64,
        seal: &(dyn Fn(u64) -> Option<Seal> + Send + Sync),
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO user_streams (account_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(&message.account_id)
            .bind(&message.user_id)
            .execute(&mut *tx)
            .await?;
        let stream = sqlx::query(
            "SELECT last_seq, acked_seq FROM user_streams WHERE account_id = $1 AND user_id = $2 FOR UPDATE",
        )
        .bind(&message.account_id)
        .bind(&message.user_id)
        .fetch_one(&mut *tx)
        .await?;
        let last = offset(stream.try_get("last_seq")?)?;
        // The kept messages are the unacknowledged ones (an ack deletes, and so does age).
        let waiting: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM user_messages WHERE account_id = $1 AND user_id = $2")
                .bind(&message.account_id)
                .bind(&message.user_id)
                .fetch_one(&mut *tx)
                .await?;
        if u64::try_from(waiting).unwrap_or(u64::MAX) >= backlog {
            return Err(StoreError::BacklogFull { maximum: backlog });
        }
        debit(&mut tx, &message.account_id, price).await?;
        let seq = last + 1;
        sqlx::query("UPDATE user_streams SET last_seq = $3 WHERE account_id = $1 AND user_id = $2")
            .bind(&message.account_id)
            .bind(&message.user_id)
            .bind(stored(seq))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO user_messages (account_id, user_id, seq, message_id, payload, sender_type, sender_id, sent_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&message.account_id)
        .bind(&message.user_id)
        .bind(stored(seq))
        .bind(&message.message_id)
        .bind(&message.payload)
        .bind(sender_text(message.sender_type))
        .bind(&message.sender_id)
        .bind(message.sent_at)
        .execute(&mut *tx)
        .await?;
        commit_seal(&mut tx, seal(seq).as_ref()).await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn note_delivered(&self, account_id: &str, user_id: &str, seq: u64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE user_messages SET delivery_count = delivery_count + 1 \
             WHERE account_id = $1 AND user_id = $2 AND seq = $3",
        )
        .bind(account_id)
        .bind(user_id)
        .bind(stored(seq))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn redeliver(&self, account_id: &str, user_id: &str, limit: u32) -> StoreResult<Vec<UserMessageRow>> {
        // Most connects find nothing: that is one read, and only a backlog takes the writer.
        let rows = sqlx::query(
            "SELECT m.* FROM user_messages m JOIN user_streams s ON s.account_id = m.account_id AND s.user_id = m.user_id \
             WHERE m.account_id = $1 AND m.user_id = $2 AND m.seq > s.acked_seq ORDER BY m.seq LIMIT $3",
        )
        .bind(account_id)
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut messages = rows.iter().map(message_row).collect::<StoreResult<Vec<_>>>()?;
        if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
            sqlx::query(
                "UPDATE user_messages SET delivery_count = delivery_count + 1 \
                 WHERE account_id = $1 AND user_id = $2 AND seq BETWEEN $3 AND $4",
            )
            .bind(account_id)
            .bind(user_id)
            .bind(stored(first.seq))
            .bind(stored(last.seq))
            .execute(&self.pool)
            .await?;
        }
        for message in &mut messages {
            message.delivery_count = message.delivery_count.saturating_add(1);
        }
        Ok(messages)
    }

    async fn ack(&self, account_id: &str, user_id: &str, message_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM user_messages WHERE account_id = $1 AND user_id = $2 AND message_id = $3",
        )
        .bind(account_id)
        .bind(user_id)
        .bind(message_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(seq) = seq else { return Ok(false) };
        sqlx::query(
            "UPDATE user_streams SET acked_seq = GREATEST(acked_seq, $3) WHERE account_id = $1 AND user_id = $2",
        )
        .bind(account_id)
        .bind(user_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM user_messages WHERE account_id = $1 AND user_id = $2 AND seq <= $3")
            .bind(account_id)
            .bind(user_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_command(&self, command: &CommandRow, price: i64, seal: Option<&Seal>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        debit(&mut tx, &command.account_id, price).await?;
        sqlx::query(
            "INSERT INTO commands (command_id, account_id, user_id, command_type, data, sender_type, sender_id, \
             response, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9)",
        )
        .bind(&command.command_id)
        .bind(&command.account_id)
        .bind(&command.user_id)
        .bind(&command.command_type)
        .bind(&command.data)
        .bind(sender_text(command.sender_type))
        .bind(&command.sender_id)
        .bind(command.created_at)
        .bind(command.expires_at)
        .execute(&mut *tx)
        .await?;
        commit_seal(&mut tx, seal).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn command(&self, account_id: &str, command_id: &str) -> StoreResult<Option<CommandRow>> {
        let row = sqlx::query("SELECT * FROM commands WHERE account_id = $1 AND command_id = $2")
            .bind(account_id)
            .bind(command_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(command_row).transpose()
    }

    async fn answer_command(
        &self,
        account_id: &str,
        user_id: &str,
        command_id: &str,
        response: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<AnswerOutcome> {
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT * FROM commands WHERE account_id = $1 AND command_id = $2 AND user_id = $3 FOR UPDATE")
                .bind(account_id)
                .bind(command_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else { return Ok(AnswerOutcome::NotFound) };
        let command = command_row(&row)?;
        if command.response.is_some() {
            return Ok(AnswerOutcome::AlreadyAnswered);
        }
        if command.expires_at <= now {
            return Ok(AnswerOutcome::Expired);
        }
        sqlx::query("UPDATE commands SET response = $2 WHERE command_id = $1 AND response IS NULL")
            .bind(command_id)
            .bind(response)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(AnswerOutcome::Answered)
    }
}
