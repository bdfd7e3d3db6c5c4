//! The SQLite backend: conversations, the turn log and bookings in one embedded file.
//!
//! Writes open with `BEGIN IMMEDIATE` so that the write lock is taken before anything is
//! read: a check ("is this slot free?", "was this message seen?") and the write that depends
//! on it cannot be interleaved with another writer's. What SQLite does like PostgreSQL is in
//! [`super::sql`] and [`super::admin`]; here are the group commit, the booking writes with
//! their overlap check, and the connect options.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingId, BookingStatus};
use sara_actors::ports::{BoxFuture, CalendarError, CalendarWrite, CommitOutcome, TurnCommit};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};

use super::crypto::{self, EncryptionKey, Sealer};
use super::sql::{
    self, Dialect, ReplyRow, SealedBooking, SealedTurn, SqliteStore, WriteGate, open_replies,
};
use super::{StoreError, corrupt, describe, unavailable};

/// How long a SQLite connection waits for the write lock before giving up. Writers are
/// serialised by SQLite; a group commit of a few hundred turns takes milliseconds.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite's page cache per connection, as its `cache_size` pragma takes it (negative: KiB).
const SQLITE_CACHE_KIB: i64 = -8192;

/// The WAL size (in 4 KiB pages, ~40 MiB) at which a commit checkpoints by itself.
const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// How often the background checkpoint copies the WAL back into the database file while
/// it is being written, and how long it waits when nothing was written since the last one.
const SQLITE_CHECKPOINT_BUSY: Duration = Duration::from_millis(50);
const SQLITE_CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

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

impl Dialect for Sqlite {
    type Time = String;
    type Id = String;
    const BACKEND: &'static str = "sqlite";
    // Text compares bytewise here, so the range is exactly the ids starting with `$1`, and
    // the unique index on provider_id answers it.
    const PROVIDER_PREFIX: &'static str = "SELECT contact_key FROM turns \
         WHERE provider_id >= $1 AND provider_id < $2 LIMIT 1";

    const CLAIM_OUTBOX: &'static str = super::outbox::claim_sql!("");

    const CLAIM_JOBS: &'static str = super::jobs::claim_jobs_sql!("");

    fn time(at: DateTime<Utc>) -> String {
        ts(at)
    }

    fn read_time(stored: String) -> Result<DateTime<Utc>, StoreError> {
        parse_ts(&stored)
    }

    fn id(id: BookingId) -> String {
        id.to_string()
    }

    fn read_id(stored: String) -> Result<BookingId, StoreError> {
        stored
            .parse()
            .map_err(|_| corrupt("a stored booking id is not a UUID"))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    const SINGLE_WRITER: bool = true;

    fn migrator() -> &'static Migrator {
        static MIGRATOR: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| {
            super::sql::rollback_safe(sqlx::migrate!("./migrations/sqlite"))
        });
        &MIGRATOR
    }

    fn commit<'a>(
        store: &'a SqliteStore,
        batch: &'a [TurnCommit],
    ) -> BoxFuture<'a, Result<Vec<CommitOutcome>, StoreError>> {
        Box::pin(commit(&store.pool, &store.writes, &store.sealer, batch))
    }

    fn write_bookings<'a>(
        store: &'a SqliteStore,
        writes: &'a [CalendarWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<(), CalendarError>>, CalendarError>> {
        Box::pin(write_bookings(
            &store.pool,
            &store.writes,
            &store.sealer,
            writes,
        ))
    }

    fn sqlite_pool(pool: &SqlitePool) -> Option<&SqlitePool> {
        Some(pool)
    }
}

/// Opens the pool for `storage.database_url` (WAL, a larger page cache, one connection for
/// `:memory:`), with the key given, else the one in the key file beside the database (made
/// on first start), else a random one for a database in memory.
pub(super) async fn connect(
    storage: &crate::config::StorageConfig,
    given: Option<EncryptionKey>,
) -> Result<(SqlitePool, EncryptionKey), StoreError> {
    let url = storage.database_url.expose();
    let acquire_timeout = Duration::from_millis(storage.acquire_timeout_ms.max(1));
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {}", describe(&e))))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
        // A larger page cache than SQLite's 2 MiB: a turn reads conversation and
        // index pages all over the file.
        .pragma("cache_size", SQLITE_CACHE_KIB.to_string())
        // Statement journals (a multi-row insert inside the group commit keeps one)
        // in memory rather than in a temporary file.
        .pragma("temp_store", "memory")
        // Checkpoints run beside the commits (see `checkpoint_in_background`); this
        // only catches up if they fall far behind.
        .pragma(
            "wal_autocheckpoint",
            SQLITE_AUTOCHECKPOINT_PAGES.to_string(),
        );
    // Every connection to `:memory:` is its own database: keep exactly one.
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory {
        super::file_mode::private_sqlite_files(options.get_filename()).map_err(|e| {
            StoreError::Unavailable(format!("database file permissions: {}", e.kind()))
        })?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(if in_memory { 1 } else { 8 })
        .min_connections(if in_memory { 1 } else { 0 })
        .idle_timeout(if in_memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(if in_memory {
            None
        } else {
            Some(Duration::from_secs(3600))
        })
        .acquire_timeout(acquire_timeout.max(SQLITE_BUSY_TIMEOUT))
        .connect_with(options.clone())
        .await
        .map_err(unavailable)?;
    let key = match given {
        Some(key) => key,
        None if in_memory => EncryptionKey::generate(),
        // After connecting: the database file (hence its directory) exists now.
        None => crypto::load_or_create_key_file(&crypto::key_file_for(options.get_filename()))?,
    };
    if !in_memory {
        tokio::spawn(checkpoint_in_background(pool.clone()));
    }
    Ok((pool, key))
}

/// Copies committed WAL frames into the database file, on a pool connection beside the
/// commits. SQLite's automatic checkpoint runs inside the commit that crosses the threshold
/// and holds that commit, and every turn waiting behind it, through the copy and two fsyncs;
/// a `PASSIVE` checkpoint here takes no write lock, so commits go on meanwhile.
///
/// It runs every 50 ms while the WAL grows: the first commit after a complete checkpoint
/// starts the WAL over and syncs it (`synchronous = NORMAL` syncs the WAL header when the file
/// is reused), and that fsync flushes everything written to the WAL since the last sync. At
/// 1,000 turns/s a checkpoint a second left ~20 MB to flush there, a 50–150 ms stall of the
/// group commit once a second (the open loop's p99); a short period keeps each flush small.
/// A large WAL instead (rare checkpoints) slows every read, which searches the WAL index.
/// When nothing was written since the last checkpoint it waits a second. Ends when the pool
/// is closed.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut last_frames = -1;
    loop {
        if pool.is_closed() {
            return;
        }
        // (busy, frames in the WAL, frames copied back)
        let result: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await;
        let pause = match result {
            Ok((_, frames, _)) => {
                let grew = frames != last_frames && frames > 0;
                last_frames = frames;
                if grew {
                    SQLITE_CHECKPOINT_BUSY
                } else {
                    SQLITE_CHECKPOINT_IDLE
                }
            }
            Err(error) => {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %describe(&error), "background checkpoint failed");
                SQLITE_CHECKPOINT_IDLE
            }
        };
        tokio::time::sleep(pause).await;
    }
}

fn calendar_db_error(e: sqlx::Error) -> CalendarError {
    CalendarError::Unavailable(describe(&e))
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
async fn commit(
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
        .map(|item| SealedTurn::new(sealer, item))
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
        let seen: Vec<ReplyRow> = sqlx::query_as(
            "SELECT provider_id, reply, reply_extra FROM turns \
             WHERE provider_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(&provider_ids))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        replies = open_replies(sealer, seen)?;
    }

    let stored: Vec<HeadRow> = sqlx::query_as(
        "SELECT contact_key, version, last_seq, owner_epoch FROM conversations \
         WHERE contact_key IN (SELECT value FROM json_each(?1))",
    )
    .bind(json_list(&keys))
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    let mut heads: HashMap<&str, Head> = stored
        .iter()
        .map(|row| {
            let head = Head {
                version: row.version,
                last_seq: row.last_seq,
                owner_epoch: row.owner_epoch,
                state: None,
                created: false,
            };
            (row.contact_key.as_str(), head)
        })
        .collect();

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut turns: Vec<serde_json::Value> = Vec::with_capacity(batch.len());
    let mut turn_blobs = Blobs::default();
    // The committed turns' outbox rows and jobs; their sealed values in one blob.
    let (mut outbox, mut jobs): (Vec<serde_json::Value>, Vec<serde_json::Value>) =
        Default::default();
    let mut effect_blobs = Blobs::default();
    // The key ranges of the pending jobs the committed turns make void (`jobs::key_range`).
    let mut voids: Vec<serde_json::Value> = Vec::new();
    // (booking id, contact key) of the attendance the committed turns confirmed.
    let mut attended: Vec<(String, &str)> = Vec::new();
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
        for ((contact, recipient, payload), message) in sealed.outbox.iter().zip(&item.outbox) {
            let [recipient_at, recipient_len] = effect_blobs.push(recipient);
            let [payload_at, payload_len] = effect_blobs.push(payload);
            outbox.push(serde_json::json!([
                contact,
                recipient_at,
                recipient_len,
                message.channel.as_str(),
                message.kind.as_str(),
                payload_at,
                payload_len,
                message.idempotency_key,
                ts(message.not_before),
            ]));
        }
        voids.extend(item.void_jobs.iter().map(|prefix| {
            let (low, high) = super::jobs::key_range(prefix);
            serde_json::json!([low, high])
        }));
        attended.extend(
            item.attendance
                .iter()
                .map(|id| (id.to_string(), key.as_str())),
        );
        for (payload, job) in sealed.jobs.iter().zip(&item.jobs) {
            let [payload_at, payload_len] = effect_blobs.push(payload);
            jobs.push(serde_json::json!([
                job.kind,
                ts(job.due_at),
                payload_at,
                payload_len,
                job.unique_key,
            ]));
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
    // In the turns' transaction: a turn and its messages commit or vanish together. A row is
    // created at its `not_before`, the engine clock's time when the turn composed it (the
    // retry policy's give-up time counts from there, on the same clock).
    if !outbox.is_empty() {
        sqlx::query(
            "INSERT INTO outbox (contact_key, recipient, channel, kind, payload, \
             idempotency_key, next_attempt_at, created_at) \
             SELECT value ->> 0, substr(?2, value ->> 1, value ->> 2), value ->> 3, \
             value ->> 4, substr(?2, value ->> 5, value ->> 6), value ->> 7, value ->> 8, \
             value ->> 8 FROM json_each(?1) WHERE true ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(json_list(&outbox))
        .bind(&effect_blobs.0)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    // Before the new jobs: a moved booking's new reminders share the old ones' prefix.
    if !voids.is_empty() {
        sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT j.id FROM json_each(?1) AS v \
             JOIN jobs AS j ON j.unique_key >= v.value ->> 0 AND j.unique_key < v.value ->> 1 \
             WHERE j.status = 'pending')",
        )
        .bind(serde_json::Value::Array(voids).to_string())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    if !jobs.is_empty() {
        sqlx::query(
            "INSERT INTO jobs (kind, due_at, payload, unique_key, created_at) \
             SELECT value ->> 0, value ->> 1, substr(?2, value ->> 2, value ->> 3), \
             value ->> 4, ?3 FROM json_each(?1) WHERE true \
             ON CONFLICT (unique_key) DO NOTHING",
        )
        .bind(json_list(&jobs))
        .bind(&effect_blobs.0)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    // Only the customer's own confirmed booking: a turn cannot mark another's.
    for (id, key) in &attended {
        sqlx::query(
            "UPDATE bookings SET attendance = 'confirmed', updated_at = ?1 \
             WHERE id = ?2 AND contact_key = ?3 AND status = 'confirmed'",
        )
        .bind(&now)
        .bind(id)
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(outcomes)
}

/// A conversation's head as stored: what its compare-and-swap is decided against.
#[derive(sqlx::FromRow)]
struct HeadRow {
    contact_key: String,
    version: i64,
    last_seq: i64,
    owner_epoch: i64,
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

/// Whether a confirmed booking other than `except` overlaps `[start, end)`.
async fn overlaps_confirmed(
    conn: &mut sqlx::SqliteConnection,
    except: &str,
    staff: &str,
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
         AND staff = ?5 LIMIT 1",
    )
    .bind(ts(end))
    .bind(ts(start))
    .bind(except)
    .bind(ts(lower))
    .bind(staff)
    .fetch_optional(conn)
    .await
    .map_err(calendar_db_error)?;
    Ok(hit.is_some())
}

/// Makes writes in one `BEGIN IMMEDIATE … COMMIT`, each decided in order exactly as a write
/// of its own would be (a booking idempotent by id and `SlotTaken` on an overlap with a
/// confirmed booking, the earlier writes of the batch included; a move keeps the old time
/// when the new one is taken; a cancel of an unknown id is `NotFound`): the calendar's
/// writer hands over the writes that queued up together, so a busy hour is not one commit,
/// and one wait for the write lock, per write.
///
/// A database error fails the whole batch (the transaction rolls back, nothing is written).
async fn write_bookings(
    pool: &SqlitePool,
    gate: &WriteGate,
    sealer: &Sealer,
    writes: &[CalendarWrite],
) -> Result<Vec<Result<(), CalendarError>>, CalendarError> {
    // Sealed before the write lock is taken, so AES does not run under it.
    let sealed: Vec<Option<SealedBooking>> = writes
        .iter()
        .map(|write| match write {
            CalendarWrite::Book(b) => Some(SealedBooking::new(sealer, b)),
            CalendarWrite::Move { .. } | CalendarWrite::Cancel(_) => None,
        })
        .collect();
    let _turn = gate.lock().await;
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(calendar_db_error)?;
    let mut results = Vec::with_capacity(writes.len());
    for (write, sealed) in writes.iter().zip(&sealed) {
        let result = match (write, sealed) {
            (CalendarWrite::Book(booking), Some(sealed)) => book(&mut tx, booking, sealed).await?,
            (CalendarWrite::Move { id, start, end }, _) => {
                move_booking(&mut tx, *id, *start, *end).await?
            }
            (CalendarWrite::Cancel(id), _) => {
                match sql::cancel_booking::<Sqlite>(&mut tx, *id).await {
                    Ok(0) => Err(CalendarError::NotFound),
                    Ok(_) => Ok(()),
                    Err(e) => return Err(calendar_db_error(e)),
                }
            }
            (CalendarWrite::Book(_), None) => {
                Err(CalendarError::Unavailable("booking not sealed".into()))
            }
        };
        results.push(result);
    }
    if results.iter().any(Result::is_ok) {
        tx.commit().await.map_err(calendar_db_error)?;
    } else {
        tx.rollback().await.map_err(calendar_db_error)?;
    }
    Ok(results)
}

/// One booking of [`write_bookings`]: the outer `Err` fails the batch, the inner is this
/// booking's verdict.
async fn book(
    tx: &mut sqlx::SqliteConnection,
    booking: &Booking,
    sealed: &SealedBooking,
) -> Result<Result<(), CalendarError>, CalendarError> {
    let id = booking.id.to_string();
    // A cancelled row of the same id (a released hold) is booked again below.
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM bookings WHERE id = ?1 AND status <> 'cancelled'")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(calendar_db_error)?;
    if exists.is_some() {
        // A retried write of the same booking: it is already there.
        return Ok(Ok(()));
    }
    if booking.status == BookingStatus::Confirmed
        && overlaps_confirmed(
            tx,
            &id,
            booking.staff.as_deref().unwrap_or(""),
            booking.start,
            booking.end,
        )
        .await?
    {
        return Ok(Err(CalendarError::SlotTaken));
    }
    sql::insert_booking::<Sqlite>(tx, booking, sealed)
        .await
        .map_err(calendar_db_error)?;
    Ok(Ok(()))
}

/// One move of [`write_bookings`]: the outer `Err` fails the batch, the inner is this
/// move's verdict.
async fn move_booking(
    tx: &mut sqlx::SqliteConnection,
    id: BookingId,
    new_start: DateTime<Utc>,
    new_end: DateTime<Utc>,
) -> Result<Result<(), CalendarError>, CalendarError> {
    let key = id.to_string();
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT status, staff FROM bookings WHERE id = ?1")
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(calendar_db_error)?;
    let (status, staff) = row.unzip();
    let staff = staff.unwrap_or_default();
    let status = match status.as_deref().map(BookingStatus::parse) {
        None | Some(Some(BookingStatus::Cancelled)) => return Ok(Err(CalendarError::NotFound)),
        Some(None) => {
            return Ok(Err(CalendarError::Unavailable(
                "unknown booking status".to_string(),
            )));
        }
        Some(Some(status)) => status,
    };
    if status == BookingStatus::Confirmed
        && overlaps_confirmed(tx, &key, &staff, new_start, new_end).await?
    {
        return Ok(Err(CalendarError::SlotTaken));
    }
    sql::move_booking::<Sqlite>(tx, id, new_start, new_end)
        .await
        .map_err(calendar_db_error)?;
    Ok(Ok(()))
}
