//! The SQLite repository: conversations, the turn log and bookings in one embedded file.
//!
//! Writes open with `BEGIN IMMEDIATE` so that the write lock is taken before anything is
//! read: a check ("is this slot free?", "was this message seen?") and the write that depends
//! on it cannot be interleaved with another writer's.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingId, BookingStatus};
use sara_actors::ports::{CalendarError, CommitOutcome, StoredConversation, TurnCommit};
use sqlx::SqlitePool;

use super::crypto::{Field, Sealer};
use super::{
    BookingCounts, ConversationLog, Stats, StoreError, corrupt, describe, open_conversation,
    open_reply, open_turn, parse_phone, parse_status, seal_reply_extra, unavailable,
};

/// This process's turn at SQLite's single write lock. Every write transaction of the
/// process takes it before `BEGIN IMMEDIATE`, so the group commit and the booking writer
/// queue for each other here and are woken the moment the other is done. Without it the
/// loser of a race for the lock got `SQLITE_BUSY` and slept in SQLite's busy handler (1, 2,
/// 5, 10 … ms), which stalled every turn queued behind it. Other processes on the same file
/// (`sara migrate`, a second `sara chat`) still meet the busy timeout.
pub(super) type WriteGate = tokio::sync::Mutex<()>;

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

/// The sealed key check value: the stored one, or `candidate` when this is the first start.
pub(super) async fn key_check(pool: &SqlitePool, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
    sqlx::query("INSERT INTO store_key_check (id, sealed, created_at) VALUES (1, ?1, ?2) ON CONFLICT (id) DO NOTHING")
        .bind(candidate)
        .bind(ts(Utc::now()))
        .execute(pool)
        .await
        .map_err(unavailable)?;
    sqlx::query_scalar("SELECT sealed FROM store_key_check WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(unavailable)
}

pub(super) async fn load(
    pool: &SqlitePool,
    sealer: &Sealer,
    key: &str,
) -> Result<Option<StoredConversation>, StoreError> {
    let row: Option<(Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT state, version, owner_epoch FROM conversations WHERE contact_key = ?1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?;
    row.map(|(state, version, owner_epoch)| open_conversation(sealer, &state, version, owner_epoch))
        .transpose()
}

/// The whole batch in one `BEGIN IMMEDIATE … COMMIT`, in at most five statements whatever
/// its size.
///
/// `BEGIN IMMEDIATE` takes SQLite's single write lock before anything is read, so the
/// versions read at the start stay true until the commit: the compare-and-swap of each item
/// is decided here, in batch order, exactly as one `UPDATE … WHERE version = ?` per item
/// would decide it. Then the new contacts, the conversations' final states and all the
/// committed turns are written with one statement each; the lists travel as one JSON
/// parameter (`json_each`), so the round trips to SQLite's worker do not grow with the batch.
/// Sealed values travel beside each list as one concatenated blob ([`Blobs`]).
///
/// Values are sealed before `BEGIN IMMEDIATE`, so the write lock is not held while AES runs;
/// a turn that then turns out to be a duplicate or a conflict only wasted its sealing.
pub(super) async fn commit(
    pool: &SqlitePool,
    gate: &WriteGate,
    sealer: &Sealer,
    batch: &[TurnCommit],
) -> Result<Vec<CommitOutcome>, StoreError> {
    let keys: Vec<String> = batch
        .iter()
        .map(|item| sealer.contact_key(&item.phone))
        .collect();
    let sealed: Vec<SealedTurn> = batch
        .iter()
        .map(|item| SealedTurn {
            // Only a first turn may create the contact.
            phone: (item.expected_version == 0)
                .then(|| sealer.seal_str(Field::ContactPhone, item.phone.as_str())),
            state: sealer.seal_str(Field::ConversationState, &item.state),
            text: sealer.seal_str(Field::TurnText, &item.turn.text),
            reply: sealer.seal_str(Field::TurnReply, &item.turn.reply.text),
            reply_extra: seal_reply_extra(sealer, &item.turn.reply),
            understood: sealer.seal_str(Field::TurnUnderstood, &item.turn.understood),
        })
        .collect();
    let now = ts(Utc::now());
    let _turn = gate.lock().await;
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(unavailable)?;

    // provider id → stored reply, for ids already committed and those committed by this batch.
    let provider_ids: Vec<&str> = batch
        .iter()
        .filter_map(|item| item.turn.provider_id.as_deref())
        .collect();
    let mut replies: HashMap<String, Reply> = HashMap::new();
    if !provider_ids.is_empty() {
        let seen: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT provider_id, reply, reply_extra FROM turns \
             WHERE provider_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(&provider_ids))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        for (id, reply, extra) in seen {
            replies.insert(id, open_reply(sealer, &reply, extra.as_deref())?);
        }
    }

    let stored: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT contact_key, version, last_seq, owner_epoch FROM conversations \
         WHERE contact_key IN (SELECT value FROM json_each(?1))",
    )
    .bind(json_list(&keys))
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    let mut heads: HashMap<&str, Head> = stored
        .iter()
        .map(|(key, version, last_seq, owner_epoch)| {
            let head = Head {
                version: *version,
                last_seq: *last_seq,
                owner_epoch: *owner_epoch,
                state: None,
                created: false,
            };
            (key.as_str(), head)
        })
        .collect();

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut turns: Vec<serde_json::Value> = Vec::with_capacity(batch.len());
    let mut turn_blobs = Blobs::default();
    for ((item, key), sealed) in batch.iter().zip(&keys).zip(&sealed) {
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
        // The fencing check: a newer lease owner has committed (token 0 = unfenced commit).
        if item.owner_epoch > 0
            && heads
                .get(key.as_str())
                .is_some_and(|h| h.owner_epoch > item.owner_epoch)
        {
            outcomes.push(CommitOutcome::Fenced);
            continue;
        }
        let head = match heads.get_mut(key.as_str()) {
            Some(head) if head.version == item.expected_version => head,
            None if item.expected_version == 0 => heads.entry(key.as_str()).or_insert(Head {
                version: 0,
                last_seq: 0,
                owner_epoch: 0,
                state: None,
                created: true,
            }),
            _ => {
                outcomes.push(CommitOutcome::VersionConflict);
                continue;
            }
        };
        head.version += 1;
        head.last_seq += 1;
        head.owner_epoch = head.owner_epoch.max(item.owner_epoch);
        head.state = Some(&sealed.state);
        let turn = &item.turn;
        let [text_at, text_len] = turn_blobs.push(&sealed.text);
        let [reply_at, reply_len] = turn_blobs.push(&sealed.reply);
        let [understood_at, understood_len] = turn_blobs.push(&sealed.understood);
        let [extra_at, extra_len] = match &sealed.reply_extra {
            Some(extra) => turn_blobs.push(extra).map(Some),
            None => [None, None],
        };
        turns.push(serde_json::json!([
            key,
            head.last_seq,
            turn.channel.as_str(),
            turn.provider_id,
            text_at,
            text_len,
            reply_at,
            reply_len,
            turn.intent,
            turn.nlu,
            understood_at,
            understood_len,
            ts(turn.at),
            turn.elapsed_ms,
            extra_at,
            extra_len,
        ]));
        if let Some(id) = &turn.provider_id {
            replies.insert(id.clone(), turn.reply.clone());
        }
        outcomes.push(CommitOutcome::Committed {
            version: head.version,
        });
    }

    if turns.is_empty() {
        // Nothing to write: every item was a duplicate or a conflict.
        tx.rollback().await.map_err(unavailable)?;
        return Ok(outcomes);
    }
    // Each new contact once, even when several of its turns are in the batch.
    let mut new_contacts: Vec<serde_json::Value> = Vec::new();
    let mut contact_blobs = Blobs::default();
    for (key, sealed) in keys.iter().zip(&sealed) {
        if let Some(head) = heads.get_mut(key.as_str())
            && head.created
            && let Some(phone) = &sealed.phone
        {
            head.created = false;
            let [at, len] = contact_blobs.push(phone);
            new_contacts.push(serde_json::json!([key, at, len]));
        }
    }
    if !new_contacts.is_empty() {
        sqlx::query(
            "INSERT INTO contacts (contact_key, phone, created_at) \
             SELECT value ->> 0, substr(?3, value ->> 1, value ->> 2), ?2 \
             FROM json_each(?1) WHERE true \
             ON CONFLICT (contact_key) DO NOTHING",
        )
        .bind(json_list(&new_contacts))
        .bind(&now)
        .bind(contact_blobs.0)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    let mut state_blobs = Blobs::default();
    let changed: Vec<serde_json::Value> = heads
        .iter()
        .filter_map(|(key, head)| {
            let [at, len] = state_blobs.push(head.state?);
            Some(serde_json::json!([
                key,
                at,
                len,
                head.version,
                head.last_seq,
                head.owner_epoch
            ]))
        })
        .collect();
    sqlx::query(
        "INSERT INTO conversations (contact_key, state, version, last_seq, updated_at, \
         owner_epoch) \
         SELECT value ->> 0, substr(?3, value ->> 1, value ->> 2), value ->> 3, value ->> 4, \
         ?2, value ->> 5 FROM json_each(?1) WHERE true \
         ON CONFLICT (contact_key) DO UPDATE SET state = excluded.state, \
         version = excluded.version, last_seq = excluded.last_seq, \
         updated_at = excluded.updated_at, owner_epoch = excluded.owner_epoch",
    )
    .bind(json_list(&changed))
    .bind(&now)
    .bind(state_blobs.0)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    sqlx::query(
        "INSERT INTO turns (contact_key, seq, channel, provider_id, text, reply, intent, \
         nlu, understood, at, elapsed_ms, reply_extra) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, \
         substr(?2, value ->> 4, value ->> 5), substr(?2, value ->> 6, value ->> 7), \
         value ->> 8, value ->> 9, substr(?2, value ->> 10, value ->> 11), value ->> 12, \
         value ->> 13, substr(?2, value ->> 14, value ->> 15) FROM json_each(?1)",
    )
    .bind(json_list(&turns))
    .bind(turn_blobs.0)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(outcomes)
}

/// A conversation's newest version as the batch goes: read from the table, then advanced by
/// each item of the batch that commits.
struct Head<'a> {
    version: i64,
    last_seq: i64,
    /// The largest fencing token committed so far.
    owner_epoch: i64,
    /// The sealed state to write, when an item of this batch committed.
    state: Option<&'a [u8]>,
    /// The conversation did not exist before this batch (its contact is still to write).
    created: bool,
}

/// One item's personal data, sealed.
struct SealedTurn {
    /// For a first turn, which may create the contact.
    phone: Option<Vec<u8>>,
    state: Vec<u8>,
    text: Vec<u8>,
    reply: Vec<u8>,
    /// The reply's parts beside its text, when it has any.
    reply_extra: Option<Vec<u8>>,
    understood: Vec<u8>,
}

/// The sealed values of one statement, concatenated into one blob parameter. The JSON list
/// names each by (1-based offset, length) and `substr` cuts it back out: on a blob, `substr`
/// counts bytes and returns a blob. No hex or base64 round trip, and the list stays small.
#[derive(Default)]
struct Blobs(Vec<u8>);

impl Blobs {
    fn push(&mut self, value: &[u8]) -> [usize; 2] {
        let at = self.0.len() + 1;
        self.0.extend_from_slice(value);
        [at, value.len()]
    }
}

fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("strings and numbers serialize")
}

pub(super) async fn processed_reply(
    pool: &SqlitePool,
    sealer: &Sealer,
    provider_id: &str,
) -> Result<Option<Reply>, StoreError> {
    let reply: Option<(Vec<u8>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT reply, reply_extra FROM turns WHERE provider_id = ?1")
            .bind(provider_id)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    reply
        .map(|(text, extra)| open_reply(sealer, &text, extra.as_deref()))
        .transpose()
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

type TurnRow = (
    i64,
    String,
    Option<String>,
    Vec<u8>,
    Vec<u8>,
    String,
    String,
    String,
);

pub(super) async fn conversation_log(
    pool: &SqlitePool,
    sealer: &Sealer,
    key: &str,
) -> Result<Option<ConversationLog>, StoreError> {
    let phone: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT phone FROM contacts WHERE contact_key = ?1")
            .bind(key)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    let Some(phone) = phone else {
        return Ok(None);
    };
    let rows: Vec<TurnRow> = sqlx::query_as(
        "SELECT seq, channel, provider_id, text, reply, intent, nlu, at FROM turns \
         WHERE contact_key = ?1 ORDER BY seq",
    )
    .bind(key)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let turns = rows
        .into_iter()
        .map(
            |(seq, channel, provider_id, text, reply, intent, nlu, at)| {
                let sealed = (seq, channel, provider_id, text, reply, intent, nlu);
                open_turn(sealer, sealed, parse_ts(&at)?)
            },
        )
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(ConversationLog {
        conversation: sealer.open_str(Field::ContactPhone, &phone)?,
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
    Vec<u8>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    String,
    String,
    String,
    String,
);

const BOOKING_COLUMNS: &str = "id, phone, name, email, service, start, \"end\", status";

fn booking_from_row(sealer: &Sealer, row: BookingRow) -> Result<Booking, StoreError> {
    let (id, phone, name, email, service, start, end, status) = row;
    Ok(Booking {
        id: id
            .parse()
            .map_err(|_| corrupt("a stored booking id is not a UUID"))?,
        phone: parse_phone(&sealer.open_str(Field::BookingPhone, &phone)?)?,
        name: sealer.open_opt(Field::BookingName, name.as_deref())?,
        email: sealer.open_opt(Field::BookingEmail, email.as_deref())?,
        service,
        start: parse_ts(&start)?,
        end: parse_ts(&end)?,
        status: parse_status(&status)?,
    })
}

pub(super) async fn all_bookings(
    pool: &SqlitePool,
    sealer: &Sealer,
) -> Result<Vec<Booking>, StoreError> {
    let rows: Vec<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings ORDER BY start, id"
    )))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| booking_from_row(sealer, row))
        .collect()
}

pub(super) async fn upcoming_bookings(
    pool: &SqlitePool,
    sealer: &Sealer,
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
    rows.into_iter()
        .map(|row| booking_from_row(sealer, row))
        .collect()
}

fn calendar_db_error(e: sqlx::Error) -> CalendarError {
    CalendarError::Unavailable(describe(&e))
}

/// Whether a confirmed booking other than `except` overlaps `[start, end)`.
async fn overlaps_confirmed(
    conn: &mut sqlx::SqliteConnection,
    except: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<bool, CalendarError> {
    // A booking that overlaps [start, end) starts before `end` and no earlier than `start`
    // minus the longest confirmed booking, so the search is a range of the partial index on
    // confirmed starts instead of every earlier booking. The longest length comes from an
    // index too; julianday() is a double (~40 µs resolution at today's dates), so the bound
    // gets a second of slack: a wider window only costs a row or two, never a missed overlap.
    let longest_days: Option<f64> = sqlx::query_scalar(
        "SELECT max(julianday(\"end\") - julianday(start)) FROM bookings \
         WHERE status = 'confirmed'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(calendar_db_error)?;
    let Some(longest_days) = longest_days else {
        return Ok(false);
    };
    // The CHECK (start < "end") keeps the length positive; a corrupt row cannot shrink the
    // window below the booking being checked's own second of slack.
    let longest_ms = (longest_days.max(0.0) * 86_400_000.0).ceil() as i64 + 1_000;
    let lower = start - chrono::Duration::milliseconds(longest_ms);
    let hit: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM bookings \
         WHERE status = 'confirmed' AND start < ?1 AND start > ?4 AND \"end\" > ?2 AND id <> ?3 \
         LIMIT 1",
    )
    .bind(ts(end))
    .bind(ts(start))
    .bind(except)
    .bind(ts(lower))
    .fetch_optional(conn)
    .await
    .map_err(calendar_db_error)?;
    Ok(hit.is_some())
}

/// Writes bookings in one `BEGIN IMMEDIATE … COMMIT`, each decided in order exactly as a
/// write of its own would be (idempotent by id, `SlotTaken` on an overlap with a confirmed
/// booking, the earlier ones of the batch included): the calendar's writer hands over the
/// bookings that queued up together, so a busy hour is not one commit per booking.
///
/// A database error fails the whole batch (the transaction rolls back, nothing is written).
pub(super) async fn insert_bookings(
    pool: &SqlitePool,
    gate: &WriteGate,
    sealer: &Sealer,
    bookings: &[Booking],
) -> Result<Vec<Result<(), CalendarError>>, CalendarError> {
    // Sealed before the write lock is taken, so AES does not run under it.
    let sealed: Vec<SealedBooking> = bookings
        .iter()
        .map(|b| SealedBooking {
            id: b.id.to_string(),
            contact_key: sealer.contact_key(&b.phone),
            phone: sealer.seal_str(Field::BookingPhone, b.phone.as_str()),
            name: (b.name.as_deref()).map(|n| sealer.seal_str(Field::BookingName, n)),
            email: (b.email.as_deref()).map(|e| sealer.seal_str(Field::BookingEmail, e)),
        })
        .collect();
    let _turn = gate.lock().await;
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(calendar_db_error)?;
    let now = ts(Utc::now());
    let mut results = Vec::with_capacity(bookings.len());
    for (booking, sealed) in bookings.iter().zip(&sealed) {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM bookings WHERE id = ?1")
            .bind(&sealed.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(calendar_db_error)?;
        if exists.is_some() {
            // A retried write of the same booking: it is already there.
            results.push(Ok(()));
            continue;
        }
        if booking.status == BookingStatus::Confirmed
            && overlaps_confirmed(&mut tx, &sealed.id, booking.start, booking.end).await?
        {
            results.push(Err(CalendarError::SlotTaken));
            continue;
        }
        sqlx::query(
            "INSERT INTO bookings (id, contact_key, phone, name, email, service, start, \"end\", \
             status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        )
        .bind(&sealed.id)
        .bind(&sealed.contact_key)
        .bind(&sealed.phone)
        .bind(&sealed.name)
        .bind(&sealed.email)
        .bind(&booking.service)
        .bind(ts(booking.start))
        .bind(ts(booking.end))
        .bind(booking.status.as_str())
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(calendar_db_error)?;
        results.push(Ok(()));
    }
    if results.iter().any(Result::is_ok) {
        tx.commit().await.map_err(calendar_db_error)?;
    } else {
        tx.rollback().await.map_err(calendar_db_error)?;
    }
    Ok(results)
}

/// One booking's personal data, sealed, and the keys its row is found by.
struct SealedBooking {
    id: String,
    contact_key: String,
    phone: Vec<u8>,
    name: Option<Vec<u8>>,
    email: Option<Vec<u8>>,
}

pub(super) async fn move_booking(
    pool: &SqlitePool,
    gate: &WriteGate,
    id: BookingId,
    new_start: DateTime<Utc>,
    new_end: DateTime<Utc>,
) -> Result<(), CalendarError> {
    let id = id.to_string();
    let (start, end) = (ts(new_start), ts(new_end));
    let _turn = gate.lock().await;
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
    if status == BookingStatus::Confirmed
        && overlaps_confirmed(&mut tx, &id, new_start, new_end).await?
    {
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

pub(super) async fn cancel_booking(
    pool: &SqlitePool,
    gate: &WriteGate,
    id: BookingId,
) -> Result<(), CalendarError> {
    let _turn = gate.lock().await;
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
