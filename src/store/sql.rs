//! What both backends share: the SQL text they run alike (sqlx's SQLite driver takes `$N`
//! placeholders as PostgreSQL does), the rows it reads as `FromRow` structs, and the reads
//! and writes built on them, written once over [`Dialect`].
//!
//! A backend's own module keeps only what truly differs: the group commit, booking inserts
//! and moves, the overlap check and the connect options.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingId, Channel};
use sara_actors::ports::{
    BoxFuture, CalendarError, CalendarWrite, CommitOutcome, ConversationStore, JobCompletion,
    JobRecord, LastInbound, OutboxMessage, StoredContact, StoredConversation, TurnCommit,
};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Database, Decode, Encode, Executor, FromRow, Type};

use super::admin::{self, AdminReadModel, ConversationLog, ConversationSummary, Stats};
use super::crypto::{Field, Sealer};
use super::forget::{self, AuditEntry, Forgotten, PrivacyRepository};
use super::jobs::{self, ClaimedJob, JobRepository, SettleJob};
use super::outbox::{self, ClaimedMessage, DeliveryReport, OutboxRepository, OutboxView, Settle};
use super::sessions::{self, SessionRepository};
use super::voice::{self, VoicemailReport, VoicemailView};
use super::{
    BookingRepository, Store, StoreError, open_reply, parse_phone, parse_status, unavailable,
};

/// How the two backends store what their SQL has in common: an instant is fixed-width UTC
/// text on SQLite (so text order is time order) and a `timestamptz` on PostgreSQL; a booking
/// id is text on SQLite and a `uuid` on PostgreSQL.
pub(super) trait Dialect: Database<Arguments: sqlx::IntoArguments<Self>> {
    type Time: for<'q> Encode<'q, Self>
        + for<'r> Decode<'r, Self>
        + Type<Self>
        + Send
        + Sync
        + Unpin
        + 'static;
    type Id: for<'q> Encode<'q, Self>
        + for<'r> Decode<'r, Self>
        + Type<Self>
        + Send
        + Sync
        + Unpin
        + 'static;

    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    const BACKEND: &'static str;

    /// The contact key of the first turn whose provider id starts with `$1`; `$2` is `$1`
    /// followed by U+10FFFF, so `[$1, $2)` in code point order is exactly those ids.
    const PROVIDER_PREFIX: &'static str;

    /// [`outbox::claim_sql`] with the backend's row lock clause.
    const CLAIM_OUTBOX: &'static str;

    /// [`jobs::claim_jobs_sql`] with the backend's row lock clause.
    const CLAIM_JOBS: &'static str;

    fn time(at: DateTime<Utc>) -> Self::Time;
    fn read_time(stored: Self::Time) -> Result<DateTime<Utc>, StoreError>;
    fn id(id: BookingId) -> Self::Id;
    fn read_id(stored: Self::Id) -> Result<BookingId, StoreError>;
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Whether the backend has one writer at a time (SQLite): then every write of the process
    /// queues on the store's [`WriteGate`] first.
    const SINGLE_WRITER: bool;

    /// The backend's migrations (`migrations/sqlite` or `migrations/postgres`).
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// The group commit (see [`ConversationStore::commit`]).
    fn commit<'a>(
        store: &'a SqlStore<Self>,
        batch: &'a [TurnCommit],
    ) -> BoxFuture<'a, Result<Vec<CommitOutcome>, StoreError>>;

    /// See [`BookingRepository::write_bookings`].
    fn write_bookings<'a>(
        store: &'a SqlStore<Self>,
        writes: &'a [CalendarWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<(), CalendarError>>, CalendarError>>;

    fn sqlite_pool(_pool: &sqlx::Pool<Self>) -> Option<&SqlitePool> {
        None
    }

    fn postgres_pool(_pool: &sqlx::Pool<Self>) -> Option<&PgPool> {
        None
    }
}

/// This process's turn at SQLite's single write lock. Every write transaction of the
/// process takes it before `BEGIN IMMEDIATE`, so the group commit and the booking writer
/// queue for each other here and are woken the moment the other is done. Without it the
/// loser of a race for the lock got `SQLITE_BUSY` and slept in SQLite's busy handler (1, 2,
/// 5, 10 … ms), which stalled every turn queued behind it. Other processes on the same file
/// (`sara migrate`, a second `sara chat`) still meet the busy timeout.
pub(super) type WriteGate = tokio::sync::Mutex<()>;

/// A store on one backend: its pool, the keys, and this process's queue for the write lock
/// (taken only on a [`Dialect::SINGLE_WRITER`] backend). One implementation of the store's
/// traits serves both backends; what differs comes from the [`Dialect`].
pub struct SqlStore<DB: Database> {
    pub(super) pool: sqlx::Pool<DB>,
    pub(super) sealer: Arc<Sealer>,
    pub(super) writes: WriteGate,
}

/// The SQLite store.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;
/// The PostgreSQL store.
pub type PgStore = SqlStore<sqlx::Postgres>;

impl<DB: Database> SqlStore<DB> {
    pub(super) fn new(pool: sqlx::Pool<DB>, sealer: Arc<Sealer>) -> SqlStore<DB> {
        SqlStore {
            pool,
            sealer,
            writes: WriteGate::default(),
        }
    }
}

pub(super) const KEY_CHECK_INSERT: &str = "INSERT INTO store_key_check (id, sealed, created_at) \
     VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING";
pub(super) const KEY_CHECK: &str = "SELECT sealed FROM store_key_check WHERE id = 1";
/// Always one row: the conversation's columns are NULL for a contact without one.
const LOAD_CONTACT: &str = "SELECT c.state, c.version, c.owner_epoch, \
     EXISTS (SELECT 1 FROM sms_opt_outs o WHERE o.contact_key = $1) AS sms_opted_out \
     FROM (SELECT 1) AS one LEFT JOIN conversations c ON c.contact_key = $1";
const PROCESSED_REPLY: &str = "SELECT reply, reply_extra FROM turns WHERE provider_id = $1";
const CONTACT_OF_PROVIDER_ID: &str = "SELECT contact_key FROM turns WHERE provider_id = $1";
const ALL_BOOKINGS: &str = "SELECT id, phone, name, email, service, start, \"end\", status, \
     sequence, staff, event_id FROM bookings ORDER BY start, id";
const ATTENDED: &str = "SELECT id FROM bookings WHERE attendance = 'confirmed'";
pub(super) const UPCOMING_BOOKINGS: &str = "SELECT id, phone, name, email, service, start, \"end\", \
     status, sequence, staff, event_id FROM bookings WHERE status <> 'cancelled' AND \"end\" > $1 \
     ORDER BY start, id";
/// A retried write of the same booking is a no-op (`ON CONFLICT (id)`); on PostgreSQL the
/// exclusion constraint is then not consulted for it. A cancelled row of the same id (a hold
/// released after the Google write failed) is booked again, through the same guards.
const INSERT_BOOKING: &str = "INSERT INTO bookings (id, contact_key, phone, name, email, \
     service, start, \"end\", status, created_at, updated_at, staff, event_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12) \
     ON CONFLICT (id) DO UPDATE SET start = excluded.start, \"end\" = excluded.\"end\", \
     status = excluded.status, staff = excluded.staff, event_id = excluded.event_id, \
     updated_at = excluded.updated_at WHERE bookings.status = 'cancelled'";
const MOVE_BOOKING: &str = "UPDATE bookings SET start = $1, \"end\" = $2, updated_at = $3, \
     attendance = NULL, sequence = sequence + 1 WHERE id = $4 AND status <> 'cancelled'";
/// Cancels the bookings `$2` picks (`= $2` one, `= ANY($2)` a run on PostgreSQL) at time
/// `$1`; a cancelled booking stays cancelled and keeps its sequence.
macro_rules! cancel_bookings_sql {
    ($which:literal) => {
        concat!(
            "UPDATE bookings SET sequence = sequence + CASE status WHEN 'cancelled' THEN 0 \
             ELSE 1 END, status = 'cancelled', updated_at = $1 WHERE id ",
            $which
        )
    };
}
pub(super) use cancel_bookings_sql;
const CANCEL_BOOKING: &str = cancel_bookings_sql!("= $2");

/// A contact's conversation row (NULLs when it has none), its state still sealed, and its
/// SMS opt-out.
#[derive(FromRow)]
pub(super) struct ContactRow {
    state: Option<Vec<u8>>,
    version: Option<i64>,
    owner_epoch: Option<i64>,
    sms_opted_out: bool,
}

/// A committed turn's reply, sealed: what a duplicate delivery is answered with.
#[derive(FromRow)]
pub(super) struct ReplyRow {
    pub provider_id: String,
    pub reply: Vec<u8>,
    pub reply_extra: Option<Vec<u8>>,
}

#[derive(FromRow)]
pub(super) struct StoredReply {
    reply: Vec<u8>,
    reply_extra: Option<Vec<u8>>,
}

/// A booking row, its personal data still sealed.
#[derive(FromRow)]
pub(super) struct BookingRow<I, T> {
    id: I,
    phone: Vec<u8>,
    name: Option<Vec<u8>>,
    email: Option<Vec<u8>>,
    service: String,
    start: T,
    end: T,
    status: String,
    sequence: i64,
    /// '' = not with a staff member.
    staff: String,
    event_id: Option<String>,
}

impl<I, T> BookingRow<I, T> {
    fn open<DB: Dialect<Id = I, Time = T>>(self, sealer: &Sealer) -> Result<Booking, StoreError> {
        Ok(Booking {
            id: DB::read_id(self.id)?,
            phone: parse_phone(&sealer.open_str(Field::BookingPhone, &self.phone)?)?,
            name: sealer.open_opt(Field::BookingName, self.name.as_deref())?,
            email: sealer.open_opt(Field::BookingEmail, self.email.as_deref())?,
            service: self.service,
            start: DB::read_time(self.start)?,
            end: DB::read_time(self.end)?,
            status: parse_status(&self.status)?,
            sequence: u32::try_from(self.sequence).unwrap_or(u32::MAX),
            staff: (!self.staff.is_empty()).then_some(self.staff),
            event_id: self.event_id,
        })
    }
}

/// One booking's personal data, sealed, and the keys its row is found by. Sealed before a
/// transaction opens, so AES does not run under a lock.
pub(super) struct SealedBooking {
    pub contact_key: String,
    pub phone: Vec<u8>,
    pub name: Option<Vec<u8>>,
    pub email: Option<Vec<u8>>,
}

impl SealedBooking {
    pub fn new(sealer: &Sealer, booking: &Booking) -> SealedBooking {
        SealedBooking {
            contact_key: sealer.contact_key(&booking.phone),
            phone: sealer.seal_str(Field::BookingPhone, booking.phone.as_str()),
            name: (booking.name.as_deref()).map(|n| sealer.seal_str(Field::BookingName, n)),
            email: (booking.email.as_deref()).map(|e| sealer.seal_str(Field::BookingEmail, e)),
        }
    }
}

/// One turn's personal data, sealed before the commit's transaction opens (no lock is held
/// while AES runs; a turn that turns out a duplicate or a conflict only wasted its sealing).
pub(super) struct SealedTurn {
    /// For a first turn, which may create the contact.
    pub phone: Option<Vec<u8>>,
    pub state: Vec<u8>,
    pub text: Vec<u8>,
    pub reply: Vec<u8>,
    /// The reply's parts beside its text, when it has any.
    pub reply_extra: Option<Vec<u8>>,
    pub understood: Vec<u8>,
    /// The turn's outbox rows: (contact key, sealed recipient, sealed payload).
    pub outbox: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// The turn's jobs' sealed payloads.
    pub jobs: Vec<Vec<u8>>,
}

impl SealedTurn {
    pub fn new(sealer: &Sealer, item: &sara_actors::ports::TurnCommit) -> SealedTurn {
        SealedTurn {
            // Only a first turn may create the contact.
            phone: (item.expected_version == 0)
                .then(|| sealer.seal_str(Field::ContactPhone, item.phone.as_str())),
            state: sealer.seal_str(Field::ConversationState, &item.state),
            text: sealer.seal_str(Field::TurnText, &item.turn.text),
            reply: sealer.seal_str(Field::TurnReply, &item.turn.reply.text),
            reply_extra: super::seal_reply_extra(sealer, &item.turn.reply),
            understood: sealer.seal_str(Field::TurnUnderstood, &item.turn.understood),
            outbox: (item.outbox.iter())
                .map(|m| {
                    (
                        sealer.contact_key(&m.contact),
                        sealer.seal_str(Field::OutboxRecipient, &m.recipient),
                        sealer.seal_str(Field::OutboxPayload, &m.payload),
                    )
                })
                .collect(),
            jobs: (item.jobs.iter())
                .map(|j| sealer.seal_str(Field::JobPayload, &j.payload))
                .collect(),
        }
    }
}

/// Provider id → stored reply, opened, for the ids a commit's batch found already committed.
pub(super) fn open_replies(
    sealer: &Sealer,
    rows: Vec<ReplyRow>,
) -> Result<HashMap<String, Reply>, StoreError> {
    rows.into_iter()
        .map(|row| {
            let reply = open_reply(sealer, &row.reply, row.reply_extra.as_deref())?;
            Ok((row.provider_id, reply))
        })
        .collect()
}

/// The sealed key check value: the stored one, or `candidate` when this is the first start
/// (instances starting together agree on whichever row was inserted first).
pub(super) async fn key_check<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    candidate: &[u8],
) -> Result<Vec<u8>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    (Vec<u8>,): for<'r> FromRow<'r, DB::Row>,
{
    sqlx::query::<DB>(KEY_CHECK_INSERT)
        .bind(candidate)
        .bind(DB::time(Utc::now()))
        .execute(pool)
        .await
        .map_err(unavailable)?;
    sqlx::query_scalar::<DB, Vec<u8>>(KEY_CHECK)
        .fetch_one(pool)
        .await
        .map_err(unavailable)
}

pub(super) async fn load_contact<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    key: &str,
) -> Result<StoredContact, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    ContactRow: for<'r> FromRow<'r, DB::Row>,
{
    let row = sqlx::query_as::<DB, ContactRow>(LOAD_CONTACT)
        .bind(key)
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    let conversation = match (row.state, row.version, row.owner_epoch) {
        (Some(state), Some(version), Some(owner_epoch)) => Some(StoredConversation {
            state: sealer.open_str(Field::ConversationState, &state)?,
            version,
            owner_epoch,
        }),
        _ => None,
    };
    Ok(StoredContact {
        conversation,
        sms_opted_out: row.sms_opted_out,
    })
}

pub(super) async fn processed_reply<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    provider_id: &str,
) -> Result<Option<Reply>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    StoredReply: for<'r> FromRow<'r, DB::Row>,
{
    let row = sqlx::query_as::<DB, StoredReply>(PROCESSED_REPLY)
        .bind(provider_id)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    row.map(|row| open_reply(sealer, &row.reply, row.reply_extra.as_deref()))
        .transpose()
}

/// The contact key of the conversation that holds `id`: an exact provider id, else the
/// first one that starts with it (a CallSid whose turns carry a per-turn suffix).
pub(super) async fn conversation_of_provider_id<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    id: &str,
) -> Result<Option<String>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    (String,): for<'r> FromRow<'r, DB::Row>,
{
    if id.is_empty() {
        return Ok(None);
    }
    let exact = sqlx::query_scalar::<DB, String>(CONTACT_OF_PROVIDER_ID)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    if exact.is_some() {
        return Ok(exact);
    }
    sqlx::query_scalar::<DB, String>(DB::PROVIDER_PREFIX)
        .bind(id)
        .bind(format!("{id}\u{10FFFF}"))
        .fetch_optional(pool)
        .await
        .map_err(unavailable)
}

/// Every booking (`from` = `None`), or those not cancelled that end after `from`; ordered by
/// start.
pub(super) async fn bookings<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    from: Option<DateTime<Utc>>,
) -> Result<Vec<Booking>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    BookingRow<DB::Id, DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let query = match from {
        None => sqlx::query_as::<DB, BookingRow<DB::Id, DB::Time>>(ALL_BOOKINGS),
        Some(from) => sqlx::query_as(UPCOMING_BOOKINGS).bind(DB::time(from)),
    };
    let rows = query.fetch_all(pool).await.map_err(unavailable)?;
    rows.into_iter().map(|row| row.open::<DB>(sealer)).collect()
}

/// The ids of the bookings whose attendance the customer confirmed.
pub(super) async fn attended<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
) -> Result<Vec<BookingId>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    (DB::Id,): for<'r> FromRow<'r, DB::Row>,
{
    let rows: Vec<(DB::Id,)> = sqlx::query_as(ATTENDED)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.into_iter().map(|(id,)| DB::read_id(id)).collect()
}

const OPT_OUT: &str = "INSERT INTO sms_opt_outs (contact_key, opted_out_at) VALUES ($1, $2) \
     ON CONFLICT (contact_key) DO NOTHING";
const OPT_IN: &str = "DELETE FROM sms_opt_outs WHERE contact_key = $1";
const OPTED_OUT: &str = "SELECT contact_key FROM sms_opt_outs WHERE contact_key = $1";

/// Records that contact `key` opted out of SMS (`out`) or back in; whether that changed
/// anything (a repeated STOP does not).
pub(super) async fn set_sms_opt_out<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    key: &str,
    out: bool,
    at: DateTime<Utc>,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    let query = if out {
        sqlx::query::<DB>(OPT_OUT).bind(key).bind(DB::time(at))
    } else {
        sqlx::query::<DB>(OPT_IN).bind(key)
    };
    let done = query.execute(pool).await.map_err(unavailable)?;
    Ok(DB::rows_affected(&done) > 0)
}

/// Whether contact `key` has opted out of SMS.
pub(super) async fn sms_opted_out<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    key: &str,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    (String,): for<'r> FromRow<'r, DB::Row>,
{
    let row: Option<(String,)> = sqlx::query_as(OPTED_OUT)
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    Ok(row.is_some())
}

/// Inserts one booking row (nothing when its id is already written and not cancelled).
pub(super) async fn insert_booking<'c, DB: Dialect>(
    conn: &'c mut DB::Connection,
    booking: &Booking,
    sealed: &SealedBooking,
) -> Result<(), sqlx::Error>
where
    &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    sqlx::query::<DB>(INSERT_BOOKING)
        .bind(DB::id(booking.id))
        .bind(sealed.contact_key.as_str())
        .bind(sealed.phone.as_slice())
        .bind(sealed.name.as_deref())
        .bind(sealed.email.as_deref())
        .bind(booking.service.as_str())
        .bind(DB::time(booking.start))
        .bind(DB::time(booking.end))
        .bind(booking.status.as_str())
        .bind(DB::time(Utc::now()))
        .bind(booking.staff.as_deref().unwrap_or(""))
        .bind(booking.event_id.as_deref())
        .execute(conn)
        .await
        .map(drop)
}

/// Moves a booking that is not cancelled; how many rows moved (0 or 1).
pub(super) async fn move_booking<'c, DB: Dialect>(
    conn: &'c mut DB::Connection,
    id: BookingId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<u64, sqlx::Error>
where
    &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let done = sqlx::query::<DB>(MOVE_BOOKING)
        .bind(DB::time(start))
        .bind(DB::time(end))
        .bind(DB::time(Utc::now()))
        .bind(DB::id(id))
        .execute(conn)
        .await?;
    Ok(DB::rows_affected(&done))
}

/// Marks a booking cancelled; how many rows matched (0 for an unknown id).
pub(super) async fn cancel_booking<'c, DB: Dialect>(
    conn: &'c mut DB::Connection,
    id: BookingId,
) -> Result<u64, sqlx::Error>
where
    &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let done = sqlx::query::<DB>(CANCEL_BOOKING)
        .bind(DB::time(Utc::now()))
        .bind(DB::id(id))
        .execute(conn)
        .await?;
    Ok(DB::rows_affected(&done))
}

/// A round trip to the database, for `/ready`.
pub(super) async fn ping<DB: Dialect>(pool: &sqlx::Pool<DB>) -> Result<(), StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    sqlx::query::<DB>("SELECT 1")
        .execute(pool)
        .await
        .map(drop)
        .map_err(unavailable)
}

/// The reads and writes above as boxed futures, for any backend that meets what their SQL
/// needs of it (both do): the sqlx bounds are stated once, here.
pub(super) trait Shared: Dialect {
    fn run_migrations(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<(), StoreError>>;
    fn key_check<'a>(
        pool: &'a sqlx::Pool<Self>,
        candidate: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, StoreError>>;
    fn ping(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<(), StoreError>>;
    fn load_contact<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        key: String,
    ) -> BoxFuture<'a, Result<StoredContact, StoreError>>;
    fn processed_reply<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Reply>, StoreError>>;
    fn bookings<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        from: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<Vec<Booking>, StoreError>>;
    fn attended(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<Vec<BookingId>, StoreError>>;
    fn set_sms_opt_out<'a>(
        pool: &'a sqlx::Pool<Self>,
        key: &'a str,
        out: bool,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn sms_opted_out<'a>(
        pool: &'a sqlx::Pool<Self>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn fall_back_to_sms<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        provider_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<outbox::Fallback, StoreError>>;
    fn turns_for<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConversationLog>, StoreError>>;
    fn stats(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<Stats, StoreError>>;
    fn record_heard<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        provider_id: &'a str,
        heard: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn heard_of<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>>;
    fn store_voicemail<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        report: &'a VoicemailReport,
        alert: Option<&'a OutboxMessage>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn voicemails<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        call_sid: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<VoicemailView>, StoreError>>;
    fn claim_outbox<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (Channel, &'a str, DateTime<Utc>, DateTime<Utc>, i64),
    ) -> BoxFuture<'a, Result<Vec<ClaimedMessage>, StoreError>>;
    fn settle<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: i64,
        owner: &'a str,
        how: Settle<'a>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn update_status<'a>(
        pool: &'a sqlx::Pool<Self>,
        channel: Channel,
        provider_id: &'a str,
        report: DeliveryReport,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn list_outbox<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<OutboxView>, StoreError>>;
    fn outbox_backlog(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<i64, StoreError>>;
    fn claim_jobs<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (&'a str, DateTime<Utc>, DateTime<Utc>, i64),
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StoreError>>;
    fn settle_job<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: i64,
        owner: &'a str,
        how: SettleJob,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn complete_job<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (i64, &'a str, &'a JobCompletion, DateTime<Utc>),
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn schedule_jobs<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        jobs: &'a [JobRecord],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn defer_booking<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (BookingId, &'a JobRecord, DateTime<Utc>),
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn sync_token<'a>(
        pool: &'a sqlx::Pool<Self>,
        calendar: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;
    fn next_job_due(
        pool: &sqlx::Pool<Self>,
    ) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>>;
    fn last_inbound<'a>(
        pool: &'a sqlx::Pool<Self>,
        contact_key: String,
    ) -> BoxFuture<'a, Result<Option<LastInbound>, StoreError>>;
    fn schedule_job<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        job: &'a JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn complete_retention<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (i64, &'a str, DateTime<Utc>, &'a JobRecord, DateTime<Utc>),
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;
    fn conversations<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<ConversationSummary>, StoreError>>;
    fn create_session<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: &'a str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn session_valid<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn end_session<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn forget<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        phone: &'a sara_actors::model::Phone,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Forgotten, StoreError>>;
    fn audit(
        pool: &sqlx::Pool<Self>,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>>;
}

impl<DB: Dialect> Shared for DB
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    (String,): for<'r> FromRow<'r, DB::Row>,
    (Vec<u8>,): for<'r> FromRow<'r, DB::Row>,
    ContactRow: for<'r> FromRow<'r, DB::Row>,
    StoredReply: for<'r> FromRow<'r, DB::Row>,
    BookingRow<DB::Id, DB::Time>: for<'r> FromRow<'r, DB::Row>,
    (DB::Id,): for<'r> FromRow<'r, DB::Row>,
    admin::TurnRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
    admin::Counts: for<'r> FromRow<'r, DB::Row>,
    admin::StatusCount: for<'r> FromRow<'r, DB::Row>,
    DB::Connection: sqlx::migrate::Migrate,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    outbox::ClaimedRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
    outbox::ListedRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
    jobs::JobRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
    admin::ConversationListRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
    forget::AuditRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    (Option<DB::Time>,): for<'r> FromRow<'r, DB::Row>,
    (String, DB::Time): for<'r> FromRow<'r, DB::Row>,
    outbox::FailedRow: for<'r> FromRow<'r, DB::Row>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    (String, Vec<u8>): for<'r> FromRow<'r, DB::Row>,
    voice::VoicemailRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
    (Option<String>,): for<'r> FromRow<'r, DB::Row>,
{
    fn forget<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        phone: &'a sara_actors::model::Phone,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Forgotten, StoreError>> {
        Box::pin(forget::forget(pool, sealer, phone, at))
    }

    fn audit(
        pool: &sqlx::Pool<Self>,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(forget::audit(pool, limit))
    }

    fn conversations<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<ConversationSummary>, StoreError>> {
        Box::pin(admin::conversations(pool, sealer, limit))
    }

    fn create_session<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: &'a str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(sessions::create(pool, id, now, expires_at))
    }

    fn session_valid<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(sessions::valid(pool, id, now))
    }

    fn end_session<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(sessions::end(pool, id))
    }

    fn record_heard<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        provider_id: &'a str,
        heard: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(voice::record_heard(pool, sealer, provider_id, heard))
    }

    fn heard_of<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>> {
        Box::pin(voice::heard_of(pool, sealer, key))
    }

    fn store_voicemail<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        report: &'a VoicemailReport,
        alert: Option<&'a OutboxMessage>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(voice::store_voicemail(pool, sealer, report, alert, now))
    }

    fn voicemails<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        call_sid: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<VoicemailView>, StoreError>> {
        Box::pin(voice::voicemails(pool, sealer, call_sid, key))
    }

    fn claim_jobs<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (&'a str, DateTime<Utc>, DateTime<Utc>, i64),
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StoreError>> {
        Box::pin(jobs::claim(pool, sealer, args))
    }

    fn settle_job<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: i64,
        owner: &'a str,
        how: SettleJob,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(jobs::settle(pool, id, owner, how))
    }

    fn complete_job<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (i64, &'a str, &'a JobCompletion, DateTime<Utc>),
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(jobs::complete(pool, sealer, args))
    }

    fn schedule_jobs<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        jobs: &'a [JobRecord],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(jobs::schedule(pool, sealer, jobs, now))
    }

    fn defer_booking<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (BookingId, &'a JobRecord, DateTime<Utc>),
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(jobs::defer(pool, sealer, args))
    }

    fn sync_token<'a>(
        pool: &'a sqlx::Pool<Self>,
        calendar: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(jobs::sync_token(pool, calendar))
    }

    fn next_job_due(
        pool: &sqlx::Pool<Self>,
    ) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>> {
        Box::pin(jobs::next_due(pool))
    }

    fn last_inbound<'a>(
        pool: &'a sqlx::Pool<Self>,
        contact_key: String,
    ) -> BoxFuture<'a, Result<Option<LastInbound>, StoreError>> {
        Box::pin(async move { jobs::last_inbound(pool, &contact_key).await })
    }

    fn schedule_job<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        job: &'a JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(jobs::schedule(pool, sealer, std::slice::from_ref(job), now))
    }

    fn complete_retention<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (i64, &'a str, DateTime<Utc>, &'a JobRecord, DateTime<Utc>),
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(jobs::complete_retention(pool, sealer, args))
    }

    fn claim_outbox<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        args: (Channel, &'a str, DateTime<Utc>, DateTime<Utc>, i64),
    ) -> BoxFuture<'a, Result<Vec<ClaimedMessage>, StoreError>> {
        Box::pin(outbox::claim(pool, sealer, args))
    }

    fn settle<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: i64,
        owner: &'a str,
        how: Settle<'a>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(outbox::settle(pool, id, owner, how))
    }

    fn update_status<'a>(
        pool: &'a sqlx::Pool<Self>,
        channel: Channel,
        provider_id: &'a str,
        report: DeliveryReport,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(outbox::update_status(
            pool,
            channel,
            provider_id,
            report,
            error,
        ))
    }

    fn list_outbox<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<OutboxView>, StoreError>> {
        Box::pin(outbox::list(pool, sealer, limit))
    }

    fn outbox_backlog(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(outbox::backlog(pool))
    }

    fn run_migrations(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            DB::migrator()
                .run(pool)
                .await
                .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
        })
    }

    fn key_check<'a>(
        pool: &'a sqlx::Pool<Self>,
        candidate: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(key_check(pool, candidate))
    }

    fn ping(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(ping(pool))
    }

    fn load_contact<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        key: String,
    ) -> BoxFuture<'a, Result<StoredContact, StoreError>> {
        Box::pin(async move { load_contact(pool, sealer, &key).await })
    }

    fn processed_reply<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Reply>, StoreError>> {
        Box::pin(processed_reply(pool, sealer, provider_id))
    }

    fn bookings<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        from: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<Vec<Booking>, StoreError>> {
        Box::pin(bookings(pool, sealer, from))
    }

    fn attended(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<Vec<BookingId>, StoreError>> {
        Box::pin(attended(pool))
    }

    fn set_sms_opt_out<'a>(
        pool: &'a sqlx::Pool<Self>,
        key: &'a str,
        out: bool,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(set_sms_opt_out(pool, key, out, at))
    }

    fn sms_opted_out<'a>(
        pool: &'a sqlx::Pool<Self>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(sms_opted_out(pool, key))
    }

    fn fall_back_to_sms<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        provider_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<outbox::Fallback, StoreError>> {
        Box::pin(outbox::fall_back_to_sms(pool, sealer, provider_id, now))
    }

    fn turns_for<'a>(
        pool: &'a sqlx::Pool<Self>,
        sealer: &'a Sealer,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConversationLog>, StoreError>> {
        Box::pin(admin::turns_for(pool, sealer, id))
    }

    fn stats(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(admin::stats(pool))
    }
}

impl<DB: Shared> Store for SqlStore<DB> {
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    fn admin(&self) -> &dyn AdminReadModel {
        self
    }

    fn outbox(&self) -> &dyn OutboxRepository {
        self
    }

    fn jobs(&self) -> &dyn JobRepository {
        self
    }

    fn sessions(&self) -> &dyn SessionRepository {
        self
    }

    fn privacy(&self) -> &dyn PrivacyRepository {
        self
    }

    fn run_migrations(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        DB::run_migrations(&self.pool)
    }

    fn key_check<'a>(&'a self, candidate: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        DB::key_check(&self.pool, candidate)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        DB::ping(&self.pool)
    }

    fn sms_opted_out<'a>(
        &'a self,
        contact_key: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        DB::sms_opted_out(&self.pool, contact_key)
    }

    fn record_heard<'a>(
        &'a self,
        provider_id: &'a str,
        heard: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        DB::record_heard(&self.pool, &self.sealer, provider_id, heard)
    }

    fn heard_of<'a>(
        &'a self,
        contact_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>> {
        DB::heard_of(&self.pool, &self.sealer, contact_key)
    }

    fn store_voicemail<'a>(
        &'a self,
        report: &'a VoicemailReport,
        alert: Option<&'a OutboxMessage>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        DB::store_voicemail(&self.pool, &self.sealer, report, alert, now)
    }

    fn voicemails<'a>(
        &'a self,
        call_sid: &'a str,
        contact_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<VoicemailView>, StoreError>> {
        DB::voicemails(&self.pool, &self.sealer, call_sid, contact_key)
    }

    fn fall_back_to_sms<'a>(
        &'a self,
        provider_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<outbox::Fallback, StoreError>> {
        DB::fall_back_to_sms(&self.pool, &self.sealer, provider_id, now)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.close())
    }

    fn sqlite_pool(&self) -> Option<&SqlitePool> {
        DB::sqlite_pool(&self.pool)
    }

    fn postgres_pool(&self) -> Option<&PgPool> {
        DB::postgres_pool(&self.pool)
    }
}

impl<DB: Shared> ConversationStore for SqlStore<DB> {
    fn load_contact<'a>(
        &'a self,
        phone: &'a sara_actors::model::Phone,
    ) -> BoxFuture<'a, Result<StoredContact, StoreError>> {
        DB::load_contact(&self.pool, &self.sealer, self.sealer.contact_key(phone))
    }

    fn set_sms_opt_out<'a>(
        &'a self,
        phone: &'a sara_actors::model::Phone,
        out: bool,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = self.sealer.contact_key(phone);
            DB::set_sms_opt_out(&self.pool, &key, out, at).await
        })
    }

    fn commit(
        &self,
        batch: Vec<TurnCommit>,
    ) -> BoxFuture<'_, Result<Vec<CommitOutcome>, StoreError>> {
        Box::pin(async move { DB::commit(self, &batch).await })
    }

    fn processed_reply<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Reply>, StoreError>> {
        DB::processed_reply(&self.pool, &self.sealer, provider_id)
    }
}

impl<DB: Shared> BookingRepository for SqlStore<DB> {
    fn upcoming_bookings(
        &self,
        from: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>> {
        DB::bookings(&self.pool, &self.sealer, Some(from))
    }

    fn write_bookings<'a>(
        &'a self,
        writes: &'a [CalendarWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<(), CalendarError>>, CalendarError>> {
        DB::write_bookings(self, writes)
    }
}

impl<DB: Shared> AdminReadModel for SqlStore<DB> {
    fn turns_for<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConversationLog>, StoreError>> {
        DB::turns_for(&self.pool, &self.sealer, id)
    }

    fn all_bookings(&self) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>> {
        DB::bookings(&self.pool, &self.sealer, None)
    }

    fn attended_bookings(&self) -> BoxFuture<'_, Result<Vec<BookingId>, StoreError>> {
        DB::attended(&self.pool)
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        DB::stats(&self.pool)
    }

    fn conversations(
        &self,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<ConversationSummary>, StoreError>> {
        DB::conversations(&self.pool, &self.sealer, limit)
    }
}

impl<DB: Shared> PrivacyRepository for SqlStore<DB> {
    fn forget<'a>(
        &'a self,
        phone: &'a sara_actors::model::Phone,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Forgotten, StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::forget(&self.pool, &self.sealer, phone, at).await
        })
    }

    fn audit(&self, limit: i64) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
        DB::audit(&self.pool, limit)
    }
}

impl<DB: Shared> SessionRepository for SqlStore<DB> {
    fn create_session<'a>(
        &'a self,
        id: &'a str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::create_session(&self.pool, id, now, expires_at).await
        })
    }

    fn session_valid<'a>(
        &'a self,
        id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        DB::session_valid(&self.pool, id, now)
    }

    fn end_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::end_session(&self.pool, id).await
        })
    }
}

/// The write gate's guard on a single-writer backend, nothing on the others.
async fn single_writer<DB: Dialect>(
    store: &SqlStore<DB>,
) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    if DB::SINGLE_WRITER {
        Some(store.writes.lock().await)
    } else {
        None
    }
}

/// The claim holder's update of row `id`.
fn settled<'a, DB: Shared>(
    store: &'a SqlStore<DB>,
    id: i64,
    owner: &'a str,
    how: Settle<'a>,
) -> BoxFuture<'a, Result<bool, StoreError>> {
    Box::pin(async move {
        let _turn = single_writer(store).await;
        DB::settle(&store.pool, id, owner, how).await
    })
}

impl<DB: Shared> OutboxRepository for SqlStore<DB> {
    fn claim_outbox<'a>(
        &'a self,
        channel: Channel,
        owner: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<ClaimedMessage>, StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            let args = (channel, owner, now, lease_until, limit);
            DB::claim_outbox(&self.pool, &self.sealer, args).await
        })
    }

    fn mark_sent<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        provider_id: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        settled(self, id, owner, Settle::Sent { provider_id, at })
    }

    fn reschedule<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        next_attempt_at: DateTime<Utc>,
        error: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let how = Settle::Retry {
            at: next_attempt_at,
            error,
        };
        settled(self, id, owner, how)
    }

    fn mark_dead<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        error: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        settled(self, id, owner, Settle::Dead { error })
    }

    fn update_status<'a>(
        &'a self,
        channel: Channel,
        provider_id: &'a str,
        report: DeliveryReport,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::update_status(&self.pool, channel, provider_id, report, error).await
        })
    }

    fn list_outbox(&self, limit: i64) -> BoxFuture<'_, Result<Vec<OutboxView>, StoreError>> {
        DB::list_outbox(&self.pool, &self.sealer, limit)
    }

    fn backlog(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        DB::outbox_backlog(&self.pool)
    }
}

/// The claim holder's update of job `id`.
fn settled_job<'a, DB: Shared>(
    store: &'a SqlStore<DB>,
    id: i64,
    owner: &'a str,
    how: SettleJob,
) -> BoxFuture<'a, Result<bool, StoreError>> {
    Box::pin(async move {
        let _turn = single_writer(store).await;
        DB::settle_job(&store.pool, id, owner, how).await
    })
}

impl<DB: Shared> JobRepository for SqlStore<DB> {
    fn claim_jobs<'a>(
        &'a self,
        owner: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::claim_jobs(&self.pool, &self.sealer, (owner, now, lease_until, limit)).await
        })
    }

    fn finish_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        settled_job(self, id, owner, SettleJob::Finish)
    }

    fn retry_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        due_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        settled_job(self, id, owner, SettleJob::Retry(due_at))
    }

    fn kill_job<'a>(&'a self, id: i64, owner: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        settled_job(self, id, owner, SettleJob::Kill)
    }

    fn complete_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        outbox: &'a [OutboxMessage],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let completion = JobCompletion {
                outbox: outbox.to_vec(),
                ..JobCompletion::default()
            };
            let _turn = single_writer(self).await;
            DB::complete_job(&self.pool, &self.sealer, (id, owner, &completion, now)).await
        })
    }

    fn complete_job_with<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        completion: &'a JobCompletion,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::complete_job(&self.pool, &self.sealer, (id, owner, completion, now)).await
        })
    }

    fn schedule_jobs<'a>(
        &'a self,
        jobs: &'a [JobRecord],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::schedule_jobs(&self.pool, &self.sealer, jobs, now).await
        })
    }

    fn defer_booking<'a>(
        &'a self,
        id: BookingId,
        retry: &'a JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::defer_booking(&self.pool, &self.sealer, (id, retry, now)).await
        })
    }

    fn sync_token<'a>(
        &'a self,
        calendar: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        DB::sync_token(&self.pool, calendar)
    }

    fn next_job_due(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>> {
        DB::next_job_due(&self.pool)
    }

    fn last_inbound<'a>(
        &'a self,
        phone: &'a sara_actors::model::Phone,
    ) -> BoxFuture<'a, Result<Option<LastInbound>, StoreError>> {
        DB::last_inbound(&self.pool, self.sealer.contact_key(phone))
    }

    fn schedule_job<'a>(
        &'a self,
        job: &'a JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::schedule_job(&self.pool, &self.sealer, job, now).await
        })
    }

    fn complete_retention<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        cutoff: DateTime<Utc>,
        next: &'a JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let _turn = single_writer(self).await;
            DB::complete_retention(&self.pool, &self.sealer, (id, owner, cutoff, next, now)).await
        })
    }
}

/// The migrator as a rolling deploy needs it: a binary starts on a database that a newer
/// binary has already migrated (a rollback, or an old pod restarting mid-rollout) instead of
/// refusing the versions it does not know. That is safe because every migration only adds
/// (tables, nullable or defaulted columns, indexes) and is never edited once released; a
/// migration that removes or renames must wait until no older binary runs (expand, then
/// contract, one release apart).
pub(super) fn rollback_safe(mut migrator: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    migrator.set_ignore_missing(true);
    migrator
}
