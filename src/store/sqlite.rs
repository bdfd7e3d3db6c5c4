//! The SQLite repository: conversations, the turn log and bookings in one embedded file.
//!
//! Writes open with `BEGIN IMMEDIATE` so that the write lock is taken before anything is
//! read: a check ("is this slot free?", "was this message seen?") and the write that depends
//! on it cannot be interleaved with another writer's.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use sara_actors::model::{Booking, BookingId, BookingStatus};
use sara_actors::ports::{CalendarError, CommitOutcome, StoredConversation, TurnCommit};
use sqlx::SqlitePool;

use super::{
    BookingCounts, ConversationLog, Stats, StoreError, TurnView, contact_key, corrupt, describe,
    parse_channel, parse_phone, parse_status, unavailable,
};

/// Instants are stored as fixed-width UTC text (microseconds, `Z`), so that text order is
/// time order and range checks can compare the columns directly.
fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt("a stored time is not RFC 3339"))
}

pub(super) async fn load(
    pool: &SqlitePool,
    key: &str,
) -> Result<Option<StoredConversation>, StoreError> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT state, version FROM conversations WHERE contact_key = ?1")
            .bind(key)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    Ok(row.map(|(state, version)| StoredConversation { state, version }))
}

/// The whole batch in one `BEGIN IMMEDIATE … COMMIT`. Per item at most three prepared
/// statements (contact, conversation compare-and-swap, turn); the duplicate check for the
/// whole batch is one query.
pub(super) async fn commit(
    pool: &SqlitePool,
    batch: &[TurnCommit],
) -> Result<Vec<CommitOutcome>, StoreError> {
    let now = ts(Utc::now());
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(unavailable)?;

    // provider id → stored reply, for ids already committed and those committed by this batch.
    let provider_ids: Vec<&str> = batch
        .iter()
        .filter_map(|item| item.turn.provider_id.as_deref())
        .collect();
    let mut replies: HashMap<String, String> = HashMap::new();
    if !provider_ids.is_empty() {
        let ids = serde_json::to_string(&provider_ids).expect("a list of strings serializes");
        let seen: Vec<(String, String)> = sqlx::query_as(
            "SELECT provider_id, reply FROM turns \
             WHERE provider_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        replies.extend(seen);
    }

    let mut outcomes = Vec::with_capacity(batch.len());
    for item in batch {
        if let Some(reply) = item
            .turn
            .provider_id
            .as_deref()
            .and_then(|id| replies.get(id))
        {
            outcomes.push(CommitOutcome::Duplicate {
                reply: reply.clone(),
            });
            continue;
        }
        let key = contact_key(&item.phone);
        let swapped: Option<(i64, i64)> = if item.expected_version == 0 {
            sqlx::query(
                "INSERT INTO contacts (contact_key, phone, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (contact_key) DO NOTHING",
            )
            .bind(&key)
            .bind(item.phone.as_str())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            sqlx::query_as(
                "INSERT INTO conversations (contact_key, state, version, last_seq, updated_at) \
                 VALUES (?1, ?2, 1, 1, ?3) ON CONFLICT (contact_key) DO NOTHING \
                 RETURNING version, last_seq",
            )
            .bind(&key)
            .bind(&item.state)
            .bind(&now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?
        } else {
            sqlx::query_as(
                "UPDATE conversations \
                 SET state = ?1, version = version + 1, last_seq = last_seq + 1, updated_at = ?2 \
                 WHERE contact_key = ?3 AND version = ?4 \
                 RETURNING version, last_seq",
            )
            .bind(&item.state)
            .bind(&now)
            .bind(&key)
            .bind(item.expected_version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?
        };
        let Some((version, seq)) = swapped else {
            outcomes.push(CommitOutcome::VersionConflict);
            continue;
        };
        let turn = &item.turn;
        sqlx::query(
            "INSERT INTO turns (contact_key, seq, channel, provider_id, text, reply, intent, \
             nlu, understood, at, elapsed_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .bind(&key)
        .bind(seq)
        .bind(turn.channel.as_str())
        .bind(turn.provider_id.as_deref())
        .bind(&turn.text)
        .bind(&turn.reply)
        .bind(&turn.intent)
        .bind(&turn.nlu)
        .bind(&turn.understood)
        .bind(ts(turn.at))
        .bind(i64::from(turn.elapsed_ms))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if let Some(id) = &turn.provider_id {
            replies.insert(id.clone(), turn.reply.clone());
        }
        outcomes.push(CommitOutcome::Committed { version });
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(outcomes)
}

pub(super) async fn processed_reply(
    pool: &SqlitePool,
    provider_id: &str,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT reply FROM turns WHERE provider_id = ?1")
        .bind(provider_id)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)
}

/// The contact key of the conversation that holds `id`: an exact provider id, else the
/// first one that starts with it (a CallSid whose turns carry a per-turn suffix).
pub(super) async fn conversation_of_provider_id(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<String>, StoreError> {
    if id.is_empty() {
        return Ok(None);
    }
    let exact: Option<String> =
        sqlx::query_scalar("SELECT contact_key FROM turns WHERE provider_id = ?1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    if exact.is_some() {
        return Ok(exact);
    }
    // Text compares bytewise here, so [id, id + U+10FFFF) is exactly the ids starting with
    // `id`, and the unique index on provider_id answers it.
    let upper = format!("{id}\u{10FFFF}");
    sqlx::query_scalar(
        "SELECT contact_key FROM turns WHERE provider_id >= ?1 AND provider_id < ?2 LIMIT 1",
    )
    .bind(id)
    .bind(upper)
    .fetch_optional(pool)
    .await
    .map_err(unavailable)
}

type TurnRow = (i64, String, Option<String>, String, String, String, String);

pub(super) async fn conversation_log(
    pool: &SqlitePool,
    key: &str,
) -> Result<Option<ConversationLog>, StoreError> {
    let phone: Option<String> =
        sqlx::query_scalar("SELECT phone FROM contacts WHERE contact_key = ?1")
            .bind(key)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    let Some(phone) = phone else {
        return Ok(None);
    };
    let rows: Vec<TurnRow> = sqlx::query_as(
        "SELECT seq, channel, provider_id, text, reply, intent, at FROM turns \
         WHERE contact_key = ?1 ORDER BY seq",
    )
    .bind(key)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let turns = rows
        .into_iter()
        .map(|(seq, channel, provider_id, text, reply, intent, at)| {
            Ok(TurnView {
                seq,
                channel: parse_channel(&channel)?,
                provider_id,
                text,
                reply,
                intent,
                at: parse_ts(&at)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(ConversationLog {
        conversation: phone,
        turns,
    }))
}

pub(super) async fn stats(pool: &SqlitePool) -> Result<Stats, StoreError> {
    let conversations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversations")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    let turns: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM turns")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM bookings GROUP BY status")
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
    let mut bookings = BookingCounts::default();
    for (status, n) in by_status {
        match parse_status(&status)? {
            BookingStatus::Confirmed => bookings.confirmed = n,
            BookingStatus::Pending => bookings.pending = n,
            BookingStatus::Cancelled => bookings.cancelled = n,
        }
    }
    Ok(Stats {
        conversations,
        turns,
        bookings,
    })
}

type BookingRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
);

const BOOKING_COLUMNS: &str = "id, phone, name, email, service, start, \"end\", status";

fn booking_from_row(row: BookingRow) -> Result<Booking, StoreError> {
    let (id, phone, name, email, service, start, end, status) = row;
    Ok(Booking {
        id: id
            .parse()
            .map_err(|_| corrupt("a stored booking id is not a UUID"))?,
        phone: parse_phone(&phone)?,
        name,
        email,
        service,
        start: parse_ts(&start)?,
        end: parse_ts(&end)?,
        status: parse_status(&status)?,
    })
}

pub(super) async fn all_bookings(pool: &SqlitePool) -> Result<Vec<Booking>, StoreError> {
    let rows: Vec<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings ORDER BY start, id"
    )))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.into_iter().map(booking_from_row).collect()
}

pub(super) async fn upcoming_bookings(
    pool: &SqlitePool,
    from: DateTime<Utc>,
) -> Result<Vec<Booking>, StoreError> {
    let rows: Vec<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings \
         WHERE status <> 'cancelled' AND \"end\" > ?1 ORDER BY start, id"
    )))
    .bind(ts(from))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.into_iter().map(booking_from_row).collect()
}

fn calendar_db_error(e: sqlx::Error) -> CalendarError {
    CalendarError::Unavailable(describe(&e))
}

/// Whether a confirmed booking other than `except` overlaps `[start, end)`.
async fn overlaps_confirmed(
    conn: &mut sqlx::SqliteConnection,
    except: &str,
    start: &str,
    end: &str,
) -> Result<bool, CalendarError> {
    let hit: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM bookings \
         WHERE status = 'confirmed' AND start < ?1 AND \"end\" > ?2 AND id <> ?3 LIMIT 1",
    )
    .bind(end)
    .bind(start)
    .bind(except)
    .fetch_optional(conn)
    .await
    .map_err(calendar_db_error)?;
    Ok(hit.is_some())
}

pub(super) async fn insert_booking(
    pool: &SqlitePool,
    booking: &Booking,
) -> Result<(), CalendarError> {
    let id = booking.id.to_string();
    let (start, end) = (ts(booking.start), ts(booking.end));
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(calendar_db_error)?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM bookings WHERE id = ?1")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(calendar_db_error)?;
    if exists.is_some() {
        // A retried write of the same booking: it is already there.
        return Ok(());
    }
    if booking.status == BookingStatus::Confirmed
        && overlaps_confirmed(&mut tx, &id, &start, &end).await?
    {
        return Err(CalendarError::SlotTaken);
    }
    let now = ts(Utc::now());
    sqlx::query(
        "INSERT INTO bookings (id, contact_key, phone, name, email, service, start, \"end\", \
         status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
    )
    .bind(&id)
    .bind(contact_key(&booking.phone))
    .bind(booking.phone.as_str())
    .bind(booking.name.as_deref())
    .bind(booking.email.as_deref())
    .bind(&booking.service)
    .bind(&start)
    .bind(&end)
    .bind(booking.status.as_str())
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(calendar_db_error)?;
    tx.commit().await.map_err(calendar_db_error)
}

pub(super) async fn move_booking(
    pool: &SqlitePool,
    id: BookingId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), CalendarError> {
    let id = id.to_string();
    let (start, end) = (ts(start), ts(end));
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(calendar_db_error)?;
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM bookings WHERE id = ?1")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(calendar_db_error)?;
    let status = match status.as_deref().map(BookingStatus::parse) {
        None | Some(Some(BookingStatus::Cancelled)) => return Err(CalendarError::NotFound),
        Some(None) => {
            return Err(CalendarError::Unavailable(
                "unknown booking status".to_string(),
            ));
        }
        Some(Some(status)) => status,
    };
    if status == BookingStatus::Confirmed && overlaps_confirmed(&mut tx, &id, &start, &end).await? {
        return Err(CalendarError::SlotTaken);
    }
    sqlx::query("UPDATE bookings SET start = ?1, \"end\" = ?2, updated_at = ?3 WHERE id = ?4")
        .bind(&start)
        .bind(&end)
        .bind(ts(Utc::now()))
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(calendar_db_error)?;
    tx.commit().await.map_err(calendar_db_error)
}

pub(super) async fn cancel_booking(pool: &SqlitePool, id: BookingId) -> Result<(), CalendarError> {
    let done =
        sqlx::query("UPDATE bookings SET status = 'cancelled', updated_at = ?1 WHERE id = ?2")
            .bind(ts(Utc::now()))
            .bind(id.to_string())
            .execute(pool)
            .await
            .map_err(calendar_db_error)?;
    if done.rows_affected() == 0 {
        return Err(CalendarError::NotFound);
    }
    Ok(())
}
