//! The store: where conversations, the turn log and bookings live (sqlx; SQLite embedded by
//! default, PostgreSQL in production).
//!
//! One repository per backend ([`sqlite`], [`postgres`]) behind one [`Database`] value:
//! `sqlx::Any` has no chrono/uuid types, and each backend wants its own SQL anyway (SQLite
//! takes the write lock with `BEGIN IMMEDIATE`; PostgreSQL forbids double bookings with an
//! exclusion constraint).
//!
//! Personal data is encrypted at rest ([`crypto`]): phones, names, emails, the conversation
//! state and the turns' text, reply and understanding are AES-256-GCM values, and rows find a
//! contact through a *contact key*, a keyed hash of the phone ([`Database::contact_key`]).
//! Provider message ids, intents, services and times stay clear: they are not personal data
//! and the queries need them.

mod crypto;
mod file_mode;
mod postgres;
mod sqlite;

#[cfg(test)]
mod privacy_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sara_actors::model::{Booking, BookingId, Channel, Phone};
use sara_actors::ports::{
    BoxFuture, CalendarError, CommitOutcome, ConversationStore, StoredConversation, TurnCommit,
};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use crypto::EncryptionKey;

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

    /// The reply sealed and base64-encoded (Redis values are text).
    pub fn seal_reply(&self, reply: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(self.sealer.seal_str(Field::CachedReply, reply))
    }

    /// `None` for anything that does not open (another key, a tampered value).
    pub fn open_reply(&self, sealed: &str) -> Option<String> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        self.sealer.open_str(Field::CachedReply, &raw).ok()
    }
}
pub use sara_actors::ports::StoreError;

use crypto::{Field, Sealer};

/// How long a SQLite connection waits for the write lock before giving up. Writers are
/// serialised by SQLite; a group commit of a few hundred turns takes milliseconds.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite's page cache per connection, as its `cache_size` pragma takes it (negative: KiB).
const SQLITE_CACHE_KIB: i64 = -8192;

/// The WAL size (in 4 KiB pages, ~40 MiB) at which a commit checkpoints by itself.
const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// How often the background checkpoint copies the WAL back into the database file.
const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies committed WAL frames into the database file every second on a connection of its
/// own. SQLite's automatic checkpoint runs inside the commit that crosses the threshold
/// (1,000 pages by default) and holds that commit, and every turn waiting behind it, through
/// the copy and two fsyncs; a `PASSIVE` checkpoint here takes no write lock, so commits go on
/// meanwhile. Ends when the pool is closed.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut every = tokio::time::interval(SQLITE_CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %describe(&error), "background checkpoint failed");
        }
    }
}

/// A connected store with its encryption keys. Cloning is cheap (the pool and keys are
/// shared).
#[derive(Clone, Debug)]
pub struct Database {
    pool: Pool,
    sealer: Arc<Sealer>,
    /// SQLite only: this process's queue for the write lock ([`sqlite::WriteGate`]).
    sqlite_writes: Arc<sqlite::WriteGate>,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What the key check row holds once opened: proof that the key in use is the database's.
const KEY_CHECK: &[u8] = b"sara: this key opens this database";

/// `GET /logs/{id}`: one conversation's turns in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationLog {
    /// The contact's phone (E.164).
    pub conversation: String,
    pub turns: Vec<TurnView>,
}

/// One turn as the admin sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnView {
    /// 1, 2, 3… per conversation, without gaps.
    pub seq: i64,
    pub channel: Channel,
    pub provider_id: Option<String>,
    pub text: String,
    pub reply: String,
    pub intent: String,
    /// Which understanding read the message ("rules", "llm", "staff").
    pub nlu: String,
    pub at: DateTime<Utc>,
}

/// `GET /admin/bookings`: one booking, times in the business offset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BookingView {
    pub id: BookingId,
    pub phone: String,
    pub name: Option<String>,
    pub service: String,
    /// RFC 3339 with the business's UTC offset at that instant.
    pub start: String,
    pub end: String,
    /// `confirmed`, `pending` or `cancelled`.
    pub status: String,
}

/// `GET /admin/stats`: what the store counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub conversations: i64,
    pub turns: i64,
    pub bookings: BookingCounts,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BookingCounts {
    pub confirmed: i64,
    pub pending: i64,
    pub cancelled: i64,
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
            database_url: url.to_string(),
            encryption_key: encryption_key.map(str::to_string),
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
        let url = storage.database_url.as_str();
        let acquire_timeout = Duration::from_millis(storage.acquire_timeout_ms.max(1));
        let given = storage
            .encryption_key
            .as_deref()
            .map(EncryptionKey::from_base64)
            .transpose()?;
        if url.starts_with("sqlite:") {
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
                file_mode::private_sqlite_files(options.get_filename()).map_err(|e| {
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
                None => {
                    crypto::load_or_create_key_file(&crypto::key_file_for(options.get_filename()))?
                }
            };
            if !in_memory {
                tokio::spawn(checkpoint_in_background(pool.clone()));
            }
            Ok(Database::new(Pool::Sqlite(pool), &key))
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
            let statement_timeout = format!("{}ms", storage.statement_timeout_ms.max(1));
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| {
                    StoreError::Unavailable(format!("bad PostgreSQL URL: {}", describe(&e)))
                })?
                .options([("statement_timeout", statement_timeout.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(storage.max_connections.max(1))
                .acquire_timeout(acquire_timeout)
                .connect_with(options)
                .await
                .map_err(unavailable)?;
            Ok(Database::new(Pool::Postgres(pool), &key))
        } else {
            Err(StoreError::Unavailable(
                "unsupported database URL: expected sqlite:// or postgres://".to_string(),
            ))
        }
    }

    fn new(pool: Pool, key: &EncryptionKey) -> Database {
        Database {
            pool,
            sealer: Arc::new(Sealer::new(key)),
            sqlite_writes: Arc::new(sqlite::WriteGate::default()),
        }
    }

    /// Applies the backend's migrations (`migrations/sqlite` or `migrations/postgres`), then
    /// checks that the key opens this database: the first start seals a known value, later
    /// starts must open it, so a wrong key is refused here rather than failing turn by turn.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let outcome = match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        };
        outcome.map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let candidate = self.sealer.seal(Field::KeyCheck, KEY_CHECK);
        let stored = match &self.pool {
            Pool::Sqlite(pool) => sqlite::key_check(pool, &candidate).await?,
            Pool::Postgres(pool) => postgres::key_check(pool, &candidate).await?,
        };
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
        Database::new(self.pool.clone(), key)
    }

    /// A database on a pool made elsewhere (tests create one PostgreSQL database each).
    #[cfg(test)]
    pub(crate) fn on_postgres_pool(pool: PgPool, key: &EncryptionKey) -> Database {
        Database::new(Pool::Postgres(pool), key)
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
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Pool::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
        .map_err(unavailable)
    }

    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match &self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    /// The SQLite pool, for `sara bench`'s bare-route yardstick (same pool settings).
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for `sara bench`'s bare-route yardstick (same pool settings).
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// The conversation behind `id`: a provider message id (MessageSid, wamid; a CallSid
    /// also finds turns stored as the CallSid plus a suffix) or a phone number.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn turns_for(&self, id: &str) -> Result<Option<ConversationLog>, StoreError> {
        let by_provider = match &self.pool {
            Pool::Sqlite(pool) => sqlite::conversation_of_provider_id(pool, id).await?,
            Pool::Postgres(pool) => postgres::conversation_of_provider_id(pool, id).await?,
        };
        let Some(key) = by_provider.or_else(|| Phone::parse(id).map(|p| self.contact_key(&p)))
        else {
            return Ok(None);
        };
        match &self.pool {
            Pool::Sqlite(pool) => sqlite::conversation_log(pool, &self.sealer, &key).await,
            Pool::Postgres(pool) => postgres::conversation_log(pool, &self.sealer, &key).await,
        }
    }

    /// Every booking, ordered by start, times shown in `tz`.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn bookings(&self, tz: Tz) -> Result<Vec<BookingView>, StoreError> {
        let all = match &self.pool {
            Pool::Sqlite(pool) => sqlite::all_bookings(pool, &self.sealer).await?,
            Pool::Postgres(pool) => postgres::all_bookings(pool, &self.sealer).await?,
        };
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
            })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlite::stats(pool).await,
            Pool::Postgres(pool) => postgres::stats(pool).await,
        }
    }

    /// Bookings that are not cancelled and end after `from`, ordered by start.
    pub async fn upcoming_bookings(
        &self,
        from: DateTime<Utc>,
    ) -> Result<Vec<Booking>, CalendarError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlite::upcoming_bookings(pool, &self.sealer, from).await,
            Pool::Postgres(pool) => postgres::upcoming_bookings(pool, &self.sealer, from).await,
        }
        .map_err(calendar_unavailable)
    }

    /// Writes a booking, idempotent by id; `SlotTaken` when a confirmed booking overlaps a
    /// confirmed one.
    pub async fn insert_booking(&self, booking: &Booking) -> Result<(), CalendarError> {
        self.insert_bookings(std::slice::from_ref(booking))
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(CalendarError::Unavailable("no booking result".into())))
    }

    /// Writes several bookings in one transaction, decided in order as one
    /// [`Database::insert_booking`] each would be; one result per booking.
    pub async fn insert_bookings(&self, bookings: &[Booking]) -> Vec<Result<(), CalendarError>> {
        let outcome = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlite::insert_bookings(pool, &self.sqlite_writes, &self.sealer, bookings).await
            }
            Pool::Postgres(pool) => postgres::insert_bookings(pool, &self.sealer, bookings).await,
        };
        outcome.unwrap_or_else(|error| vec![Err(error); bookings.len()])
    }

    /// Moves a booking that is not cancelled; the old time is kept when the new one is taken.
    pub async fn move_booking(
        &self,
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), CalendarError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                sqlite::move_booking(pool, &self.sqlite_writes, id, start, end).await
            }
            Pool::Postgres(pool) => postgres::move_booking(pool, id, start, end).await,
        }
    }

    /// Marks a booking cancelled; cancelling twice is fine, an unknown id is `NotFound`.
    pub async fn cancel_booking(&self, id: BookingId) -> Result<(), CalendarError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlite::cancel_booking(pool, &self.sqlite_writes, id).await,
            Pool::Postgres(pool) => postgres::cancel_booking(pool, id).await,
        }
    }
}

impl ConversationStore for Database {
    fn load<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<Option<StoredConversation>, StoreError>> {
        Box::pin(async move {
            let key = self.contact_key(phone);
            match &self.pool {
                Pool::Sqlite(pool) => sqlite::load(pool, &self.sealer, &key).await,
                Pool::Postgres(pool) => postgres::load(pool, &self.sealer, &key).await,
            }
        })
    }

    fn commit(
        &self,
        batch: Vec<TurnCommit>,
    ) -> BoxFuture<'_, Result<Vec<CommitOutcome>, StoreError>> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            match &self.pool {
                Pool::Sqlite(pool) => {
                    sqlite::commit(pool, &self.sqlite_writes, &self.sealer, &batch).await
                }
                Pool::Postgres(pool) => postgres::commit(pool, &self.sealer, &batch).await,
            }
        })
    }

    fn processed_reply<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            match &self.pool {
                Pool::Sqlite(pool) => {
                    sqlite::processed_reply(pool, &self.sealer, provider_id).await
                }
                Pool::Postgres(pool) => {
                    postgres::processed_reply(pool, &self.sealer, provider_id).await
                }
            }
        })
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

/// A conversation row as both backends read it, its state opened.
fn open_conversation(
    sealer: &Sealer,
    state: &[u8],
    version: i64,
    owner_epoch: i64,
) -> Result<StoredConversation, StoreError> {
    Ok(StoredConversation {
        state: sealer.open_str(Field::ConversationState, state)?,
        version,
        owner_epoch,
    })
}

/// A turn row as both backends read it (seq, channel, provider id, sealed text, sealed reply,
/// intent, nlu), opened; each backend reads `at` its own way.
type SealedTurnRow = (
    i64,
    String,
    Option<String>,
    Vec<u8>,
    Vec<u8>,
    String,
    String,
);

fn open_turn(
    sealer: &Sealer,
    (seq, channel, provider_id, text, reply, intent, nlu): SealedTurnRow,
    at: DateTime<Utc>,
) -> Result<TurnView, StoreError> {
    Ok(TurnView {
        seq,
        channel: parse_channel(&channel)?,
        provider_id,
        text: sealer.open_str(Field::TurnText, &text)?,
        reply: sealer.open_str(Field::TurnReply, &reply)?,
        intent,
        nlu,
        at,
    })
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
