//! Scheduled jobs (reminders, retries): written with the turn that schedules them (see
//! `TurnCommit::jobs`), claimed when due by a scheduler on each instance.
//!
//! [`JobRepository::claim_jobs`] takes due jobs for a lease (PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so instances never claim the same job; SQLite has one writer);
//! a claim counts an attempt, and a claim whose lease ran out (a killed instance) is due
//! again and taken over. The claim holder then settles the job: [`JobRepository::finish_job`]
//! (done, never again), [`JobRepository::retry_job`] (due again later) or
//! [`JobRepository::kill_job`] (given up); each applies only while it still holds the claim.

use chrono::{DateTime, Utc};
use sara_actors::model::BookingId;
use sara_actors::model::{Channel, Phone};
use sara_actors::ports::{
    BookingWrite, BoxFuture, JobCompletion, JobRecord, LastInbound, OutboxMessage,
};
use sqlx::FromRow;

use super::StoreError;
use super::crypto::{Field, Sealer};
use super::sql::Dialect;

/// A job claimed for running.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub due_at: DateTime<Utc>,
    pub payload: String,
    pub unique_key: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// The jobs table as the schedulers use it.
pub trait JobRepository: Send + Sync {
    /// Claims for `owner` until `lease_until` up to `limit` jobs due at `now` (pending, not
    /// under a live claim), the earliest due first.
    fn claim_jobs<'a>(
        &'a self,
        owner: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StoreError>>;

    /// The job ran: done, never claimed again. `false` when `owner` no longer holds it.
    fn finish_job<'a>(&'a self, id: i64, owner: &'a str)
    -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Run it again at `due_at`; the claim is released.
    fn retry_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        due_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Given up: `dead`, never claimed again.
    fn kill_job<'a>(&'a self, id: i64, owner: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The job ran and sends `outbox`: the rows are written (once per idempotency key) and
    /// the job finished in ONE transaction, so a reminder is sent once however many
    /// instances run it. `false`, and nothing written, when `owner` no longer holds it.
    fn complete_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        outbox: &'a [OutboxMessage],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// See [`sara_actors::ports::JobQueue::complete_job_with`].
    fn complete_job_with<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        completion: &'a JobCompletion,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Writes the jobs whose unique key is not written yet; existing ones are left alone.
    fn schedule_jobs<'a>(
        &'a self,
        jobs: &'a [JobRecord],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A held booking whose calendar write failed for now: `pending`, and `retry` (its
    /// retry job) written, pending again if an earlier hold of the same id left it behind;
    /// both in one transaction. `false` when no such booking is held (nothing written).
    fn defer_booking<'a>(
        &'a self,
        id: BookingId,
        retry: &'a JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The calendar's stored sync token (where its next read of changes continues).
    fn sync_token<'a>(
        &'a self,
        calendar: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// When the earliest pending job is due (claimed or not); `None` when none is pending.
    fn next_job_due(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>>;

    /// The channel and time of the customer's newest turn (staff turns aside).
    fn last_inbound<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<Option<LastInbound>, StoreError>>;

    /// Schedules `job` at `now` unless a job with its unique key exists (done or not).
    fn schedule_job<'a>(
        &'a self,
        job: &'a JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A retention run (see `sara_actors::retention`), in ONE transaction: the job `id`
    /// finished, the text of turns before `cutoff` redacted, sent outbox rows from before
    /// it deleted, the run in the privacy audit, `next` scheduled. `None`, and nothing
    /// written, when `owner` no longer holds the job; else the number of turns redacted.
    fn complete_retention<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        cutoff: DateTime<Utc>,
        next: &'a JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;
}

/// The claim's text, with the row lock clause PostgreSQL adds (`FOR UPDATE SKIP LOCKED`).
macro_rules! claim_jobs_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET claim_owner = $1, claim_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT j.id FROM jobs AS j WHERE j.status = 'pending' \
             AND j.due_at <= $3 AND (j.claim_until IS NULL OR j.claim_until <= $3) \
             ORDER BY j.due_at, j.id LIMIT $4",
            $lock,
            ") RETURNING id, kind, due_at, payload, unique_key, attempts"
        )
    };
}
pub(super) use claim_jobs_sql;

const FINISH: &str = "UPDATE jobs SET status = 'done', claim_owner = NULL, claim_until = NULL \
     WHERE id = $1 AND claim_owner = $2 AND status = 'pending'";
const KILL: &str = "UPDATE jobs SET status = 'dead', claim_owner = NULL, claim_until = NULL \
     WHERE id = $1 AND claim_owner = $2 AND status = 'pending'";
const RETRY: &str = "UPDATE jobs SET due_at = $3, claim_owner = NULL, claim_until = NULL \
     WHERE id = $1 AND claim_owner = $2 AND status = 'pending'";

/// A claimed job, its payload still sealed.
#[derive(FromRow)]
pub(super) struct JobRow<T> {
    id: i64,
    kind: String,
    due_at: T,
    payload: Vec<u8>,
    unique_key: String,
    attempts: i64,
}

pub(super) async fn claim<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    (owner, now, lease_until, limit): (&str, DateTime<Utc>, DateTime<Utc>, i64),
) -> Result<Vec<ClaimedJob>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    JobRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let rows = sqlx::query_as::<DB, JobRow<DB::Time>>(DB::CLAIM_JOBS)
        .bind(owner)
        .bind(DB::time(lease_until))
        .bind(DB::time(now))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(super::unavailable)?;
    let mut jobs = rows
        .into_iter()
        .map(|row| {
            Ok(ClaimedJob {
                id: row.id,
                kind: row.kind,
                due_at: DB::read_time(row.due_at)?,
                payload: sealer.open_str(Field::JobPayload, &row.payload)?,
                unique_key: row.unique_key,
                attempts: row.attempts,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    jobs.sort_by_key(|job| (job.due_at, job.id));
    Ok(jobs)
}

/// How the claim holder settles a job, in one statement.
pub(super) enum SettleJob {
    Finish,
    Retry(DateTime<Utc>),
    Kill,
}

pub(super) async fn settle<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    id: i64,
    owner: &str,
    how: SettleJob,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let sql = match how {
        SettleJob::Finish => FINISH,
        SettleJob::Retry(_) => RETRY,
        SettleJob::Kill => KILL,
    };
    let mut query = sqlx::query::<DB>(sql).bind(id).bind(owner);
    if let SettleJob::Retry(due_at) = how {
        query = query.bind(DB::time(due_at));
    }
    let done = query.execute(pool).await.map_err(super::unavailable)?;
    Ok(DB::rows_affected(&done) > 0)
}

const INSERT_OUTBOX: &str = "INSERT INTO outbox (contact_key, recipient, channel, kind, \
     payload, idempotency_key, next_attempt_at, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING";

const INSERT_JOB: &str = "INSERT INTO jobs (kind, due_at, payload, unique_key, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (unique_key) DO NOTHING";
/// A job of the same key that is done or dead (an earlier hold of the same booking) runs again.
const REVIVE_JOB: &str = "INSERT INTO jobs (kind, due_at, payload, unique_key, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (unique_key) DO UPDATE SET due_at = excluded.due_at, \
     payload = excluded.payload, status = 'pending', attempts = 0, claim_owner = NULL, \
     claim_until = NULL";
/// The keys starting with a prefix, as the range [`key_range`] gives: a walk of the unique
/// index, not a scan of every pending job (the keys compare byte by byte on both backends:
/// SQLite's `BINARY`, PostgreSQL's column is `COLLATE "C"`).
const VOID_JOBS: &str = "DELETE FROM jobs WHERE status = 'pending' \
     AND unique_key >= $1 AND unique_key < $2";
/// A recurring job is due again, its claim released and its attempts counted afresh.
const AGAIN: &str = "UPDATE jobs SET due_at = $3, claim_owner = NULL, claim_until = NULL, \
     attempts = 0 WHERE id = $1 AND claim_owner = $2 AND status = 'pending'";
const CONFIRM_HELD: &str = "UPDATE bookings SET status = 'confirmed', updated_at = $1 \
     WHERE id = $2 AND status = 'pending'";
const HOLD_PENDING: &str = "UPDATE bookings SET status = 'pending', updated_at = $1 \
     WHERE id = $2 AND status <> 'cancelled'";
const MOVE: &str = "UPDATE bookings SET start = $1, \"end\" = $2, updated_at = $3, \
     attendance = NULL, sequence = sequence + 1 WHERE id = $4 AND status <> 'cancelled'";
const CANCEL: &str = "UPDATE bookings SET sequence = sequence + 1, status = 'cancelled', \
     updated_at = $1 WHERE id = $2 AND status <> 'cancelled'";
const SAVE_TOKEN: &str = "INSERT INTO calendar_sync (calendar_id, sync_token, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (calendar_id) DO UPDATE SET \
     sync_token = excluded.sync_token, updated_at = excluded.updated_at";
const READ_TOKEN: &str = "SELECT sync_token FROM calendar_sync WHERE calendar_id = $1";

/// A job's arguments sealed, before a transaction opens.
fn seal_jobs(sealer: &Sealer, jobs: &[JobRecord]) -> Vec<Vec<u8>> {
    (jobs.iter())
        .map(|j| sealer.seal_str(Field::JobPayload, &j.payload))
        .collect()
}

async fn insert_jobs<DB: Dialect>(
    conn: &mut DB::Connection,
    sql: &'static str,
    jobs: &[JobRecord],
    sealed: &[Vec<u8>],
    now: DateTime<Utc>,
) -> Result<(), StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for (job, payload) in jobs.iter().zip(sealed) {
        sqlx::query::<DB>(sql)
            .bind(job.kind.as_str())
            .bind(DB::time(job.due_at))
            .bind(payload.as_slice())
            .bind(job.unique_key.as_str())
            .bind(DB::time(now))
            .execute(&mut *conn)
            .await
            .map_err(super::unavailable)?;
    }
    Ok(())
}

/// See [`JobRepository::complete_job_with`]: the settle first, so a lost claim writes nothing.
pub(super) async fn complete<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    (id, owner, completion, now): (i64, &str, &JobCompletion, DateTime<Utc>),
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let outbox = &completion.outbox;
    let sealed: Vec<(String, Vec<u8>, Vec<u8>)> = (outbox.iter())
        .map(|m| {
            (
                sealer.contact_key(&m.contact),
                sealer.seal_str(Field::OutboxRecipient, &m.recipient),
                sealer.seal_str(Field::OutboxPayload, &m.payload),
            )
        })
        .collect();
    let sealed_jobs = seal_jobs(sealer, &completion.jobs);
    let mut tx = pool.begin().await.map_err(super::unavailable)?;
    let settle = match completion.again_at {
        Some(at) => sqlx::query::<DB>(AGAIN)
            .bind(id)
            .bind(owner)
            .bind(DB::time(at)),
        None => sqlx::query::<DB>(FINISH).bind(id).bind(owner),
    };
    let done = settle.execute(&mut *tx).await.map_err(super::unavailable)?;
    if DB::rows_affected(&done) == 0 {
        tx.rollback().await.map_err(super::unavailable)?;
        return Ok(false);
    }
    // Cancels first: a booking staff moved into the time of one they cancelled must not
    // meet it (PostgreSQL's exclusion constraint would refuse the move).
    let mut writes: Vec<&BookingWrite> = completion.bookings.iter().collect();
    writes.sort_by_key(|w| match w {
        BookingWrite::Cancel(_) => 0,
        BookingWrite::Confirm(_) => 1,
        BookingWrite::Move { .. } => 2,
    });
    for write in writes {
        let query = match write {
            BookingWrite::Confirm(booking) => sqlx::query::<DB>(CONFIRM_HELD)
                .bind(DB::time(now))
                .bind(DB::id(*booking)),
            BookingWrite::Cancel(booking) => sqlx::query::<DB>(CANCEL)
                .bind(DB::time(now))
                .bind(DB::id(*booking)),
            BookingWrite::Move { id, start, end } => sqlx::query::<DB>(MOVE)
                .bind(DB::time(*start))
                .bind(DB::time(*end))
                .bind(DB::time(now))
                .bind(DB::id(*id)),
        };
        query.execute(&mut *tx).await.map_err(super::unavailable)?;
    }
    for prefix in &completion.void_jobs {
        let (low, high) = key_range(prefix);
        sqlx::query::<DB>(VOID_JOBS)
            .bind(low)
            .bind(high.as_str())
            .execute(&mut *tx)
            .await
            .map_err(super::unavailable)?;
    }
    insert_jobs::<DB>(&mut *tx, INSERT_JOB, &completion.jobs, &sealed_jobs, now).await?;
    for ((contact, recipient, payload), message) in sealed.iter().zip(outbox) {
        sqlx::query::<DB>(INSERT_OUTBOX)
            .bind(contact.as_str())
            .bind(recipient.as_slice())
            .bind(message.channel.as_str())
            .bind(message.kind.as_str())
            .bind(payload.as_slice())
            .bind(message.idempotency_key.as_str())
            .bind(DB::time(message.not_before))
            .bind(DB::time(now))
            .execute(&mut *tx)
            .await
            .map_err(super::unavailable)?;
    }
    if let Some(token) = &completion.sync_token {
        sqlx::query::<DB>(SAVE_TOKEN)
            .bind(token.calendar.as_str())
            .bind(token.token.as_deref())
            .bind(DB::time(now))
            .execute(&mut *tx)
            .await
            .map_err(super::unavailable)?;
    }
    tx.commit().await.map_err(super::unavailable)?;
    Ok(true)
}

/// See [`JobRepository::schedule_jobs`].
pub(super) async fn schedule<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    jobs: &[JobRecord],
    now: DateTime<Utc>,
) -> Result<(), StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let sealed = seal_jobs(sealer, jobs);
    let mut tx = pool.begin().await.map_err(super::unavailable)?;
    insert_jobs::<DB>(&mut *tx, INSERT_JOB, jobs, &sealed, now).await?;
    tx.commit().await.map_err(super::unavailable)
}

/// See [`JobRepository::defer_booking`].
pub(super) async fn defer<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    (id, retry, now): (BookingId, &JobRecord, DateTime<Utc>),
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let sealed = seal_jobs(sealer, std::slice::from_ref(retry));
    let mut tx = pool.begin().await.map_err(super::unavailable)?;
    let held = sqlx::query::<DB>(HOLD_PENDING)
        .bind(DB::time(now))
        .bind(DB::id(id))
        .execute(&mut *tx)
        .await
        .map_err(super::unavailable)?;
    if DB::rows_affected(&held) == 0 {
        tx.rollback().await.map_err(super::unavailable)?;
        return Ok(false);
    }
    insert_jobs::<DB>(
        &mut *tx,
        REVIVE_JOB,
        std::slice::from_ref(retry),
        &sealed,
        now,
    )
    .await?;
    tx.commit().await.map_err(super::unavailable)?;
    Ok(true)
}

/// See [`JobRepository::sync_token`].
pub(super) async fn sync_token<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    calendar: &str,
) -> Result<Option<String>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (Option<String>,): for<'r> FromRow<'r, DB::Row>,
{
    let row: Option<(Option<String>,)> = sqlx::query_as(READ_TOKEN)
        .bind(calendar)
        .fetch_optional(pool)
        .await
        .map_err(super::unavailable)?;
    Ok(row.and_then(|(token,)| token))
}

/// See [`JobRepository::next_job_due`].
pub(super) async fn next_due<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
) -> Result<Option<DateTime<Utc>>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    (Option<DB::Time>,): for<'r> FromRow<'r, DB::Row>,
{
    let (due,): (Option<DB::Time>,) =
        sqlx::query_as("SELECT MIN(due_at) FROM jobs WHERE status = 'pending'")
            .fetch_one(pool)
            .await
            .map_err(super::unavailable)?;
    due.map(DB::read_time).transpose()
}

/// See [`JobRepository::last_inbound`].
pub(super) async fn last_inbound<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    contact_key: &str,
) -> Result<Option<LastInbound>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String, DB::Time): for<'r> FromRow<'r, DB::Row>,
{
    let row: Option<(String, DB::Time)> = sqlx::query_as(
        "SELECT channel, at FROM turns WHERE contact_key = $1 AND channel <> 'staff' \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(contact_key)
    .fetch_optional(pool)
    .await
    .map_err(super::unavailable)?;
    let Some((channel, at)) = row else {
        return Ok(None);
    };
    let channel = Channel::parse(&channel)
        .ok_or_else(|| StoreError::Corrupt(format!("turn channel {channel:?}")))?;
    Ok(Some(LastInbound {
        channel,
        at: DB::read_time(at)?,
    }))
}

/// What a redacted turn holds instead of its words: sealed empty text and reply, and an
/// empty understanding, so every reader of the turn log reads it as before.
const REDACT_TURNS: &str = "UPDATE turns SET text = $1, reply = $2, understood = $3, \
     reply_extra = NULL, heard = NULL, redacted_at = $4 \
     WHERE at < $5 AND redacted_at IS NULL";
/// Messages sent (or given up) before the window: their payloads are the same words.
const DROP_OLD_OUTBOX: &str = "DELETE FROM outbox WHERE created_at < $1 AND status <> 'pending'";

/// See [`JobRepository::complete_retention`]: the finish first, so a lost claim writes
/// nothing.
pub(super) async fn complete_retention<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    (id, owner, cutoff, next, now): (i64, &str, DateTime<Utc>, &JobRecord, DateTime<Utc>),
) -> Result<Option<u64>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut tx = pool.begin().await.map_err(super::unavailable)?;
    let done = sqlx::query::<DB>(FINISH)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(super::unavailable)?;
    if DB::rows_affected(&done) == 0 {
        tx.rollback().await.map_err(super::unavailable)?;
        return Ok(None);
    }
    let redacted = sqlx::query::<DB>(REDACT_TURNS)
        .bind(sealer.seal_str(Field::TurnText, ""))
        .bind(sealer.seal_str(Field::TurnReply, ""))
        .bind(sealer.seal_str(Field::TurnUnderstood, "{}"))
        .bind(DB::time(now))
        .bind(DB::time(cutoff))
        .execute(&mut *tx)
        .await
        .map_err(super::unavailable)?;
    let turns = DB::rows_affected(&redacted);
    let dropped = sqlx::query::<DB>(DROP_OLD_OUTBOX)
        .bind(DB::time(cutoff))
        .execute(&mut *tx)
        .await
        .map_err(super::unavailable)?;
    let messages = DB::rows_affected(&dropped);
    let detail = format!(
        "message text of {turns} turns before {} redacted and {messages} sent messages \
         deleted; bookings and counts kept",
        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    sqlx::query::<DB>(
        "INSERT INTO privacy_audit (action, contact_key, detail, at) \
         VALUES ('retention', NULL, $1, $2)",
    )
    .bind(detail)
    .bind(DB::time(now))
    .execute(&mut *tx)
    .await
    .map_err(super::unavailable)?;
    let next = std::slice::from_ref(next);
    insert_jobs::<DB>(&mut *tx, INSERT_JOB, next, &seal_jobs(sealer, next), now).await?;
    tx.commit().await.map_err(super::unavailable)?;
    Ok(Some(turns))
}

/// The keys that start with `prefix`, as a range of the byte order: from `prefix` itself up
/// to (not including) the first string after every one of them. Voiding a booking's
/// reminders by this range walks the unique index instead of testing every pending job's
/// key. (A prefix of nothing but U+10FFFF, a noncharacter, has no such string: its range ends
/// before the keys that continue it with another U+10FFFF. Sara's prefixes are ASCII.)
pub(super) fn key_range(prefix: &str) -> (&str, String) {
    let mut head: Vec<char> = prefix.chars().collect();
    while let Some(last) = head.pop() {
        // The next code point that is a char (skipping the surrogates).
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            head.push(next);
            return (prefix, head.into_iter().collect());
        }
    }
    (
        prefix,
        char::MAX.to_string().repeat(prefix.chars().count() + 1),
    )
}

#[cfg(test)]
mod key_range_tests {
    use super::key_range;

    #[test]
    fn the_range_holds_the_keys_that_start_with_the_prefix_and_no_other() {
        let (low, high) = key_range("reminder:b1:");
        let within = |key: &str| key >= low && key < high.as_str();
        assert!(within("reminder:b1:"));
        assert!(within("reminder:b1:2026-12-04T09:00Z:1440"));
        assert!(!within("reminder:b10:2026-12-04T09:00Z:1440"));
        assert!(!within("reminder:b1"));
        assert!(!within("reminder:b2:"));
        // The next char after the last one, skipping what is not a char.
        assert_eq!(key_range("a\u{d7ff}").1, "a\u{e000}");
        assert_eq!(key_range("a\u{10ffff}").1, "b");
        assert_eq!(key_range("\u{10ffff}").1, "\u{10ffff}\u{10ffff}");
    }
}
