//! The store: where conversations, the turn log and bookings live (sqlx; SQLite embedded by
//! default, PostgreSQL in production).
//!
//! One trait, [`Store`], and an implementation per backend: [`SqliteStore`] and [`PgStore`].
//! Each implements the engine's [`ConversationStore`] port, the [`BookingRepository`] the
//! local calendar writes through and, through the backend-neutral reads of [`admin`], the
//! [`AdminReadModel`]; [`Database`] is the handle the service passes around. The SQL both
//! backends run alike is written once ([`sql`], [`admin`]: sqlx's SQLite driver takes `$N`
//! placeholders); a backend's module keeps only what truly differs (SQLite takes the write
//! lock with `BEGIN IMMEDIATE` and checks overlaps itself, PostgreSQL batches with `UNNEST`
//! and forbids double bookings with an exclusion constraint; the connect options).
//!
//! Personal data is encrypted at rest ([`crypto`]): phones, names, emails, the conversation
//! state and the turns' text, reply and understanding are AES-256-GCM values, and rows find a
//! contact through a *contact key*, a keyed hash of the phone ([`Database::contact_key`]).
//! Provider message ids, intents, services and times stay clear: they are not personal data
//! and the queries need them.

mod admin;
mod crypto;
mod file_mode;
pub mod forget;
pub mod jobs;
pub mod outbox;
mod postgres;
mod queue;
pub mod sessions;
mod sql;
mod sqlite;
mod voice;

#[cfg(test)]
mod jobs_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
mod privacy_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod sessions_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingId, Channel, Phone};
use sara_actors::ports::{
    BoxFuture, CalendarError, CalendarWrite, CommitOutcome, ConversationStore, StoredContact,
    TurnCommit,
};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

pub use admin::{
    AdminReadModel, BookingCounts, BookingView, ConversationLog, ConversationSummary, Stats,
    TurnView,
};
pub use crypto::EncryptionKey;
pub use sql::{PgStore, SqlStore, SqliteStore};
pub use voice::{VoicemailReport, VoicemailView};

/// Seals what the processed-webhook cache keeps (replies hold names) and gives keyed
/// pseudonyms for phone numbers and addresses in cache keys.
#[derive(Clone)]
pub struct CacheSealer {
    sealer: Arc<Sealer>,
}

impl CacheSealer {
    /// The sealer of any database opened with `key` (tests compute Redis keys with it).
    pub fn from_key(key: &EncryptionKey) -> CacheSealer {
        CacheSealer {
            sealer: Arc::new(Sealer::new(key)),
        }
    }

    pub fn pseudonym(&self, value: &str) -> String {
        self.sealer.pseudonym(value)
    }

    /// The whole reply as JSON, sealed and base64-encoded (Redis values are text).
    pub fn seal_reply(&self, reply: &Reply) -> String {
        use base64::Engine as _;
        let json = serde_json::to_string(reply).expect("a reply serializes");
        base64::engine::general_purpose::STANDARD
            .encode(self.sealer.seal_str(Field::CachedReply, &json))
    }

    /// `None` for anything that does not open (another key, a tampered value). A value
    /// remembered before whole replies were (its text alone) opens as that text, silent
    /// when empty, as it was answered then.
    pub fn open_reply(&self, sealed: &str) -> Option<Reply> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        let opened = self.sealer.open_str(Field::CachedReply, &raw).ok()?;
        Some(serde_json::from_str(&opened).unwrap_or_else(|_| Reply {
            silent: opened.is_empty(),
            text: opened,
            ..Reply::default()
        }))
    }
}
pub use sara_actors::ports::StoreError;

use crypto::{Field, Sealer};

/// The bookings as the local calendar keeps them. Writes are decided in order, idempotent by
/// booking id; a confirmed booking never overlaps another confirmed one.
pub trait BookingRepository: Send + Sync {
    /// Bookings that are not cancelled and end after `from`, ordered by start.
    fn upcoming_bookings(
        &self,
        from: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>>;

    /// Makes several writes (bookings, moves, cancels), each decided in order as a write of
    /// its own would be (`SlotTaken` on an overlap with a confirmed booking, the earlier
    /// writes of the batch included); one result per write. In one transaction where the
    /// backend gains by it (SQLite: one turn at the write lock for the batch). `Err` when
    /// nothing could be decided.
    fn write_bookings<'a>(
        &'a self,
        writes: &'a [CalendarWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<(), CalendarError>>, CalendarError>>;
}

/// A backend: the engine's port, the booking repository, the admin reads, and its upkeep.
pub trait Store: ConversationStore + BookingRepository {
    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    fn backend(&self) -> &'static str;

    fn admin(&self) -> &dyn AdminReadModel;

    fn outbox(&self) -> &dyn outbox::OutboxRepository;

    fn jobs(&self) -> &dyn jobs::JobRepository;

    fn sessions(&self) -> &dyn sessions::SessionRepository;

    fn privacy(&self) -> &dyn forget::PrivacyRepository;

    /// Applies the backend's migrations (`migrations/sqlite` or `migrations/postgres`).
    fn run_migrations(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The sealed key check value: the stored one, or `candidate` on the first start.
    fn key_check<'a>(&'a self, candidate: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, StoreError>>;

    /// A round trip to the database, for `/ready`.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Whether a contact has opted out of SMS.
    fn sms_opted_out<'a>(&'a self, contact_key: &'a str)
    -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records what a caller heard of the reply of turn `provider_id` (see [`voice`]).
    fn record_heard<'a>(
        &'a self,
        provider_id: &'a str,
        heard: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// What the caller of contact `contact_key` heard of interrupted replies, by provider id.
    fn heard_of<'a>(
        &'a self,
        contact_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, StoreError>>;

    /// Stores one voicemail callback's report, and its staff alert once (see [`voice`]).
    fn store_voicemail<'a>(
        &'a self,
        report: &'a VoicemailReport,
        alert: Option<&'a sara_actors::ports::OutboxMessage>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The voicemails of a call or of a contact.
    fn voicemails<'a>(
        &'a self,
        call_sid: &'a str,
        contact_key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<VoicemailView>, StoreError>>;

    /// Queues the SMS fallback of a WhatsApp message Meta reported `failed`.
    fn fall_back_to_sms<'a>(
        &'a self,
        provider_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<outbox::Fallback, StoreError>>;

    /// Closes the pool, waiting for connections in use to be returned.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// The SQLite pool (tests that look at the rows themselves).
    fn sqlite_pool(&self) -> Option<&SqlitePool> {
        None
    }

    /// The PostgreSQL pool (tests that look at the rows themselves).
    fn postgres_pool(&self) -> Option<&PgPool> {
        None
    }
}

/// A connected store with its encryption keys. Cloning is cheap (the store and keys are
/// shared).
#[derive(Clone)]
pub struct Database {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// What the key check row holds once opened: proof that the key in use is the database's.
const KEY_CHECK: &[u8] = b"sara: this key opens this database";

/// A connection pool with the settings Sara's own store uses (`[storage]`: size, acquire
/// timeout, SQLite's WAL and page cache, PostgreSQL's statement timeout), for tools that
/// measure the database beside Sara: `sara bench`'s bare-route yardstick opens one of its own,
/// so it never shares (or borrows) the store's connections.
#[derive(Clone)]
pub enum RawPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl RawPool {
    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            RawPool::Sqlite(pool) => pool.close().await,
            RawPool::Postgres(pool) => pool.close().await,
        }
    }
}

/// Opens a [`RawPool`] for `storage.database_url`. Runs no migration and reads no key.
pub async fn open_pool(storage: &crate::config::StorageConfig) -> Result<RawPool, StoreError> {
    let url = storage.database_url.expose();
    if url.starts_with("sqlite:") {
        let pool = sqlite::connect(storage, Some(EncryptionKey::generate()))
            .await?
            .0;
        Ok(RawPool::Sqlite(pool))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(RawPool::Postgres(postgres::connect(storage).await?))
    } else {
        Err(StoreError::Unavailable(
            "unsupported database URL: expected sqlite:// or postgres://".to_string(),
        ))
    }
}

impl Database {
    /// Connects to `sqlite://PATH` (the file is created when missing; `sqlite::memory:` for a
    /// throw-away database) or `postgres://...`. Does not migrate: call [`Database::migrate`],
    /// which also checks that the key opens the database.
    ///
    /// `encryption_key` is `storage.encryption_key` (base64 of 32 bytes). PostgreSQL requires
    /// it. For a SQLite file without one, the key is read from `PATH.key`, which is created
    /// (mode 0600) on first start; `sqlite::memory:` gets a random key that dies with it.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str, encryption_key: Option<&str>) -> Result<Database, StoreError> {
        Database::connect_with(&crate::config::StorageConfig {
            database_url: crate::config::Secret::new(url),
            encryption_key: encryption_key.map(crate::config::Secret::new),
            ..Default::default()
        })
        .await
    }

    /// Like [`Database::connect`] with the pool settings of `[storage]`: its size, how long a
    /// request waits for a connection (then the store is "unavailable" and the webhook gets
    /// a fast 503 instead of hanging while the database is down), and PostgreSQL's
    /// `statement_timeout`. The pool reconnects by itself when the database comes back.
    pub async fn connect_with(
        storage: &crate::config::StorageConfig,
    ) -> Result<Database, StoreError> {
        let url = storage.database_url.expose();
        let given = storage
            .encryption_key
            .as_ref()
            .map(crate::config::Secret::expose)
            .map(EncryptionKey::from_base64)
            .transpose()?;
        if url.starts_with("sqlite:") {
            let (pool, key) = sqlite::connect(storage, given).await?;
            Ok(Database::on_sqlite(pool, &key))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // Several instances share the database, so no instance may invent a key.
            let key = given.ok_or_else(|| {
                StoreError::Unavailable(
                    "storage.encryption_key (SARA_STORAGE__ENCRYPTION_KEY) is required with \
                     PostgreSQL: base64 of 32 random bytes, e.g. `openssl rand -base64 32`, the \
                     same on every instance"
                        .to_string(),
                )
            })?;
            let pool = postgres::connect(storage).await?;
            Ok(Database::on_postgres_pool(pool, &key))
        } else {
            Err(StoreError::Unavailable(
                "unsupported database URL: expected sqlite:// or postgres://".to_string(),
            ))
        }
    }

    fn on_sqlite(pool: SqlitePool, key: &EncryptionKey) -> Database {
        let sealer = Arc::new(Sealer::new(key));
        Database {
            store: Arc::new(SqliteStore::new(pool, sealer.clone())),
            sealer,
        }
    }

    /// A database on a pool made elsewhere (tests create one PostgreSQL database each).
    pub(crate) fn on_postgres_pool(pool: PgPool, key: &EncryptionKey) -> Database {
        let sealer = Arc::new(Sealer::new(key));
        Database {
            store: Arc::new(PgStore::new(pool, sealer.clone())),
            sealer,
        }
    }

    /// Applies the backend's migrations (`migrations/sqlite` or `migrations/postgres`), then
    /// checks that the key opens this database: the first start seals a known value, later
    /// starts must open it, so a wrong key is refused here rather than failing turn by turn.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.store.run_migrations().await?;
        let candidate = self.sealer.seal(Field::KeyCheck, KEY_CHECK);
        let stored = self.store.key_check(&candidate).await?;
        match self.sealer.open(Field::KeyCheck, &stored) {
            Ok(opened) if opened == KEY_CHECK => Ok(()),
            _ => Err(StoreError::Unavailable(
                "storage.encryption_key does not open this database: its personal data was \
                 encrypted with another key (SARA_STORAGE__ENCRYPTION_KEY, or for SQLite \
                 without it, the .key file beside the database)"
                    .to_string(),
            )),
        }
    }

    /// The same pool under another key (tests: a wrong key must fail clearly).
    #[cfg(test)]
    pub(crate) fn with_key(&self, key: &EncryptionKey) -> Database {
        match (self.sqlite_pool(), self.postgres_pool()) {
            (Some(pool), _) => Database::on_sqlite(pool.clone(), key),
            (None, Some(pool)) => Database::on_postgres_pool(pool.clone(), key),
            (None, None) => unreachable!("a store has a pool"),
        }
    }

    /// The key rows use to find the contact `phone`: hex(HMAC-SHA256(index key, E.164)).
    pub fn contact_key(&self, phone: &Phone) -> String {
        self.sealer.contact_key(phone)
    }

    /// The database's keys as the cache needs them, so Redis holds no contact detail in clear.
    pub fn cache_sealer(&self) -> CacheSealer {
        CacheSealer {
            sealer: self.sealer.clone(),
        }
    }

    /// A round trip to the database, for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// Queues the SMS fallback of a WhatsApp message Meta reported `failed` (see
    /// [`outbox::fall_back_to_sms`]): once, and only for a customer known on SMS.
    pub async fn fall_back_to_sms(
        &self,
        provider_id: &str,
        now: DateTime<Utc>,
    ) -> Result<outbox::Fallback, StoreError> {
        self.store.fall_back_to_sms(provider_id, now).await
    }

    /// Whether `phone` has opted out of SMS (no SMS may be sent to it).
    pub async fn sms_opted_out(&self, phone: &Phone) -> Result<bool, StoreError> {
        let key = self.contact_key(phone);
        self.store.sms_opted_out(&key).await
    }

    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The SQLite pool (tests that look at the rows themselves).
    #[cfg(test)]
    pub(crate) fn sqlite_pool(&self) -> Option<&SqlitePool> {
        self.store.sqlite_pool()
    }

    /// The PostgreSQL pool (tests that look at the rows themselves).
    #[cfg(test)]
    pub(crate) fn postgres_pool(&self) -> Option<&PgPool> {
        self.store.postgres_pool()
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.store.close().await
    }

    /// The conversation behind `id`: a provider message id (MessageSid, wamid; a CallSid
    /// also finds turns stored as the CallSid plus a suffix) or a phone number.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn turns_for(&self, id: &str) -> Result<Option<ConversationLog>, StoreError> {
        self.store.admin().turns_for(id).await
    }

    /// Records what the caller heard of the reply of turn `provider_id` before interrupting
    /// it; whether that turn exists.
    pub async fn record_heard(&self, provider_id: &str, heard: &str) -> Result<bool, StoreError> {
        self.store.record_heard(provider_id, heard).await
    }

    /// What the caller of `phone` heard of the replies they interrupted, by provider id.
    pub async fn heard_of(&self, phone: &Phone) -> Result<Vec<(String, String)>, StoreError> {
        let key = self.contact_key(phone);
        self.store.heard_of(&key).await
    }

    /// Stores one voicemail callback's report (`phone` = the caller's, when known); `true`
    /// for the first report of that recording. `alert` goes to the outbox with the first
    /// report that leaves the voicemail with its recording URL, and never twice.
    pub async fn store_voicemail(
        &self,
        mut report: VoicemailReport,
        phone: Option<&Phone>,
        alert: Option<&sara_actors::ports::OutboxMessage>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        report.contact_key = phone.map(|p| self.contact_key(p));
        self.store.store_voicemail(&report, alert, now).await
    }

    /// The voicemails of call `call_sid`, or of the conversation of `phone`.
    pub async fn voicemails(
        &self,
        call_sid: &str,
        phone: Option<&Phone>,
    ) -> Result<Vec<VoicemailView>, StoreError> {
        let key = phone.map(|p| self.contact_key(p)).unwrap_or_default();
        self.store.voicemails(call_sid, &key).await
    }

    /// The outbox, for its relays and `/admin/outbox` (see [`outbox`]).
    pub fn outbox(&self) -> &dyn outbox::OutboxRepository {
        self.store.outbox()
    }

    /// The scheduled jobs, for the schedulers (see [`jobs`]).
    pub fn jobs(&self) -> &dyn jobs::JobRepository {
        self.store.jobs()
    }

    /// Forgetting a caller and the privacy audit (see [`forget`]).
    pub fn privacy(&self) -> &dyn forget::PrivacyRepository {
        self.store.privacy()
    }

    /// The console's login sessions (see [`sessions`]).
    pub fn sessions(&self) -> &dyn sessions::SessionRepository {
        self.store.sessions()
    }

    /// The `limit` conversations that changed last, newest first, for the console.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn conversations(&self, limit: i64) -> Result<Vec<ConversationSummary>, StoreError> {
        self.store.admin().conversations(limit).await
    }

    /// Every booking, ordered by start, times shown in `tz`.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn bookings(&self, tz: Tz) -> Result<Vec<BookingView>, StoreError> {
        let all = self.store.admin().all_bookings().await?;
        let attended: std::collections::HashSet<BookingId> = self
            .store
            .admin()
            .attended_bookings()
            .await?
            .into_iter()
            .collect();
        Ok(all
            .into_iter()
            .map(|b| BookingView {
                id: b.id,
                phone: b.phone.as_str().to_string(),
                name: b.name,
                service: b.service,
                start: b.start.with_timezone(&tz).to_rfc3339(),
                end: b.end.with_timezone(&tz).to_rfc3339(),
                status: b.status.as_str().to_string(),
                attendance: attended.contains(&b.id).then(|| "confirmed".to_string()),
                // A booking mirrored to Google carries its event id.
                calendar: if b.event_id.is_some() {
                    "google"
                } else {
                    "local"
                }
                .to_string(),
                event_id: b.event_id,
                staff: b.staff,
            })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        self.store.admin().stats().await
    }

    /// Bookings that are not cancelled and end after `from`, ordered by start.
    pub async fn upcoming_bookings(
        &self,
        from: DateTime<Utc>,
    ) -> Result<Vec<Booking>, CalendarError> {
        self.store
            .upcoming_bookings(from)
            .await
            .map_err(calendar_unavailable)
    }

    /// Writes a booking, idempotent by id; `SlotTaken` when a confirmed booking overlaps a
    /// confirmed one.
    pub async fn insert_booking(&self, booking: &Booking) -> Result<(), CalendarError> {
        self.write_one(CalendarWrite::Book(booking.clone())).await
    }

    /// Makes several writes, decided in order as one write each would be (see
    /// [`BookingRepository::write_bookings`]); one result per write.
    pub async fn write_bookings(&self, writes: &[CalendarWrite]) -> Vec<Result<(), CalendarError>> {
        self.store
            .write_bookings(writes)
            .await
            .unwrap_or_else(|error| vec![Err(error); writes.len()])
    }

    /// Moves a booking that is not cancelled; the old time is kept when the new one is taken.
    pub async fn move_booking(
        &self,
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), CalendarError> {
        self.write_one(CalendarWrite::Move { id, start, end }).await
    }

    /// Marks a booking cancelled; cancelling twice is fine, an unknown id is `NotFound`.
    pub async fn cancel_booking(&self, id: BookingId) -> Result<(), CalendarError> {
        self.write_one(CalendarWrite::Cancel(id)).await
    }

    async fn write_one(&self, write: CalendarWrite) -> Result<(), CalendarError> {
        self.write_bookings(std::slice::from_ref(&write))
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(CalendarError::Unavailable("no calendar result".into())))
    }
}

/// Delivery reports (Twilio's status callbacks, WhatsApp's `statuses`) move the outbox row
/// the provider's id names.
impl sara_actors::outbound::DeliveryStatuses for Database {
    fn record_status<'a>(
        &'a self,
        update: &'a sara_actors::outbound::StatusUpdate,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.outbox().update_status(
            update.channel,
            &update.provider_id,
            update.state,
            update.error.as_deref(),
        )
    }
}

impl ConversationStore for Database {
    fn load_contact<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<StoredContact, StoreError>> {
        self.store.load_contact(phone)
    }

    fn set_sms_opt_out<'a>(
        &'a self,
        phone: &'a Phone,
        out: bool,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.store.set_sms_opt_out(phone, out, at)
    }

    fn commit(
        &self,
        batch: Vec<TurnCommit>,
    ) -> BoxFuture<'_, Result<Vec<CommitOutcome>, StoreError>> {
        if batch.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        self.store.commit(batch)
    }

    fn processed_reply<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Reply>, StoreError>> {
        self.store.processed_reply(provider_id)
    }
}

/// A database error in words that carry no data: SQL text and values may hold personal
/// data, so only the kind, the SQLSTATE and the constraint name are kept.
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            match db.constraint() {
                Some(constraint) => format!("database error {code} on {constraint}"),
                None => format!("database error {code}"),
            }
        }
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".to_string(),
        sqlx::Error::PoolClosed => "the database pool is closed".to_string(),
        sqlx::Error::Io(io) => format!("database I/O error: {}", io.kind()),
        sqlx::Error::Tls(_) => "database TLS error".to_string(),
        sqlx::Error::Configuration(_) => "database configuration error".to_string(),
        sqlx::Error::RowNotFound => "row not found".to_string(),
        sqlx::Error::ColumnDecode { index, .. } => format!("cannot decode column {index}"),
        sqlx::Error::Decode(_) => "cannot decode a value".to_string(),
        sqlx::Error::Protocol(_) => "database protocol error".to_string(),
        sqlx::Error::WorkerCrashed => "the SQLite worker crashed".to_string(),
        _ => "database error".to_string(),
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

fn calendar_unavailable(e: StoreError) -> CalendarError {
    CalendarError::Unavailable(e.to_string())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// The parts of `reply` beside its text, sealed, for the `reply_extra` column; `None` when
/// the reply is its text alone (most are: no second seal for them).
fn seal_reply_extra(sealer: &Sealer, reply: &Reply) -> Option<Vec<u8>> {
    let extra = Reply {
        text: String::new(),
        ..reply.clone()
    };
    if extra == Reply::default() {
        return None;
    }
    let json = serde_json::to_string(&extra).expect("a reply serializes");
    Some(sealer.seal_str(Field::TurnReplyExtra, &json))
}

/// A stored reply, whole again: its sealed text and, when there is one, its sealed rest.
fn open_reply(sealer: &Sealer, text: &[u8], extra: Option<&[u8]>) -> Result<Reply, StoreError> {
    let text = sealer.open_str(Field::TurnReply, text)?;
    let Some(extra) = extra else {
        return Ok(Reply {
            text,
            ..Reply::default()
        });
    };
    let extra = sealer.open_str(Field::TurnReplyExtra, extra)?;
    let extra: Reply =
        serde_json::from_str(&extra).map_err(|_| corrupt("a stored reply does not parse"))?;
    Ok(Reply { text, ..extra })
}

fn parse_channel(s: &str) -> Result<Channel, StoreError> {
    Channel::parse(s).ok_or_else(|| corrupt("unknown channel in the turn log"))
}

fn parse_phone(s: &str) -> Result<Phone, StoreError> {
    Phone::parse(s).ok_or_else(|| corrupt("a stored phone is not E.164"))
}

fn parse_status(s: &str) -> Result<sara_actors::model::BookingStatus, StoreError> {
    sara_actors::model::BookingStatus::parse(s).ok_or_else(|| corrupt("unknown booking status"))
}
