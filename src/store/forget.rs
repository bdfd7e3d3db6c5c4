//! Erasing a caller on request (`sara forget +15551234567`) and the audit of it.
//!
//! Forgetting a contact deletes everything that is about them — the conversation and its
//! state, every turn, their messages in the outbox (sent or not), the contact row — and
//! keeps their bookings as anonymous time blocks, so the calendar still knows the time is
//! taken: the name and email go, the phone becomes [`FORGOTTEN_PHONE`] and the row's
//! contact key a fresh random one, so nothing links it to the person any more. One
//! transaction does it all and writes an audit row with the counts (the contact key, a
//! keyed hash, is kept there: with the key one can show that a number was forgotten, and
//! without it the row names nobody).

use chrono::{DateTime, Utc};
use sara_actors::model::Phone;
use sara_actors::ports::BoxFuture;
use serde::Serialize;
use sqlx::FromRow;

use super::StoreError;
use super::crypto::{Field, Sealer};
use super::sql::Dialect;
use super::unavailable;

/// What a forgotten caller's bookings show as their phone.
pub const FORGOTTEN_PHONE: &str = "+10000000000";

/// What forgetting a caller removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Forgotten {
    pub turns: u64,
    pub outbox: u64,
    /// Bookings kept as anonymous time blocks.
    pub bookings: u64,
    /// Whether there was a conversation at all.
    pub conversation: bool,
    /// The provider message ids of the deleted turns: the cache's remembered replies to
    /// them go too.
    #[serde(skip)]
    pub provider_ids: Vec<String>,
}

/// One row of the privacy audit, newest first in `GET /logs/audit`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub action: String,
    pub contact_key: Option<String>,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// Erasure and its audit.
pub trait PrivacyRepository: Send + Sync {
    /// Forgets the caller `phone` (see the module) and records it at `at`.
    fn forget<'a>(
        &'a self,
        phone: &'a Phone,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Forgotten, StoreError>>;

    /// The newest `limit` audit rows.
    fn audit(&self, limit: i64) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>>;
}

#[derive(FromRow)]
pub(super) struct AuditRow<T> {
    action: String,
    contact_key: Option<String>,
    detail: String,
    at: T,
}

pub(super) async fn forget<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    phone: &Phone,
    at: DateTime<Utc>,
) -> Result<Forgotten, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> FromRow<'r, DB::Row>,
{
    let key = sealer.contact_key(phone);
    let anonymous = format!("forgotten:{}", uuid::Uuid::new_v4());
    let placeholder = sealer.seal_str(Field::BookingPhone, FORGOTTEN_PHONE);
    let mut tx = pool.begin().await.map_err(unavailable)?;
    let provider_ids: Vec<(String,)> = sqlx::query_as::<DB, (String,)>(
        "SELECT provider_id FROM turns WHERE contact_key = $1 AND provider_id IS NOT NULL",
    )
    .bind(key.clone())
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    let mut delete = async |sql: &'static str| -> Result<u64, StoreError> {
        let done = sqlx::query::<DB>(sql)
            .bind(key.clone())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        Ok(DB::rows_affected(&done))
    };
    let outbox = delete("DELETE FROM outbox WHERE contact_key = $1").await?;
    let turns = delete("DELETE FROM turns WHERE contact_key = $1").await?;
    let conversation = delete("DELETE FROM conversations WHERE contact_key = $1").await? > 0;
    delete("DELETE FROM contacts WHERE contact_key = $1").await?;
    let done = sqlx::query::<DB>(
        "UPDATE bookings SET contact_key = $2, phone = $3, name = NULL, email = NULL, \
         updated_at = $4 WHERE contact_key = $1",
    )
    .bind(key.clone())
    .bind(anonymous)
    .bind(placeholder)
    .bind(DB::time(at))
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    let forgotten = Forgotten {
        turns,
        outbox,
        bookings: DB::rows_affected(&done),
        conversation,
        provider_ids: provider_ids.into_iter().map(|(id,)| id).collect(),
    };
    let detail = format!(
        "{} turns and {} messages deleted, {} bookings kept as anonymous time blocks",
        forgotten.turns, forgotten.outbox, forgotten.bookings
    );
    sqlx::query::<DB>(
        "INSERT INTO privacy_audit (action, contact_key, detail, at) VALUES ('forget', $1, $2, $3)",
    )
    .bind(key)
    .bind(detail)
    .bind(DB::time(at))
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(forgotten)
}

pub(super) async fn audit<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    AuditRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let rows = sqlx::query_as::<DB, AuditRow<DB::Time>>(
        "SELECT action, contact_key, detail, at FROM privacy_audit ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| {
            Ok(AuditEntry {
                action: row.action,
                contact_key: row.contact_key,
                detail: row.detail,
                at: DB::read_time(row.at)?,
            })
        })
        .collect()
}
