//! The store: where conversations, the turn log and bookings live (sqlx; SQLite embedded by
//! default, PostgreSQL in production).
//!
//! One repository per backend ([`sqlite`], [`postgres`]) behind one [`Database`] value:
//! `sqlx::Any` has no chrono/uuid types, and each backend wants its own SQL anyway (SQLite
//! takes the write lock with `BEGIN IMMEDIATE`; PostgreSQL forbids double bookings with an
//! exclusion constraint).
//!
//! Personal data: rows find a contact through a *contact key* ([`contact_key`]). Today that
//! is the E.164 phone itself; encryption at rest will make it a keyed hash and store the
//! phone, name and email as ciphertext, without changing the queries' shape.

mod postgres;
mod sqlite;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::str::FromStr;
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

pub use sara_actors::ports::StoreError;

/// How long a SQLite connection waits for the write lock before giving up. Writers are
/// serialised by SQLite; a group commit of a few hundred turns takes milliseconds.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected store. Cloning is cheap (the pools are shared).
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

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
    /// throw-away database) or `postgres://...`. Does not migrate: call [`Database::migrate`].
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> Result<Database, StoreError> {
        Database::connect_with(&crate::config::StorageConfig {
            database_url: url.to_string(),
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
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {}", describe(&e))))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            // Every connection to `:memory:` is its own database: keep exactly one.
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
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
                .connect_with(options)
                .await
                .map_err(unavailable)?;
            Ok(Database::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
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
            Ok(Database::Postgres(pool))
        } else {
            Err(StoreError::Unavailable(
                "unsupported database URL: expected sqlite:// or postgres://".to_string(),
            ))
        }
    }

    /// Applies the backend's migrations (`migrations/sqlite` or `migrations/postgres`).
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let outcome = match self {
            Database::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Database::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        };
        outcome.map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
    }

    /// A round trip to the database, for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Database::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Database::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
        .map_err(unavailable)
    }

    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }

    /// The conversation behind `id`: a provider message id (MessageSid, wamid; a CallSid
    /// also finds turns stored as the CallSid plus a suffix) or a phone number.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn turns_for(&self, id: &str) -> Result<Option<ConversationLog>, StoreError> {
        let by_provider = match self {
            Database::Sqlite(pool) => sqlite::conversation_of_provider_id(pool, id).await?,
            Database::Postgres(pool) => postgres::conversation_of_provider_id(pool, id).await?,
        };
        let Some(key) = by_provider.or_else(|| Phone::parse(id).map(|p| contact_key(&p))) else {
            return Ok(None);
        };
        match self {
            Database::Sqlite(pool) => sqlite::conversation_log(pool, &key).await,
            Database::Postgres(pool) => postgres::conversation_log(pool, &key).await,
        }
    }

    /// Every booking, ordered by start, times shown in `tz`.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn bookings(&self, tz: Tz) -> Result<Vec<BookingView>, StoreError> {
        let all = match self {
            Database::Sqlite(pool) => sqlite::all_bookings(pool).await?,
            Database::Postgres(pool) => postgres::all_bookings(pool).await?,
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
        match self {
            Database::Sqlite(pool) => sqlite::stats(pool).await,
            Database::Postgres(pool) => postgres::stats(pool).await,
        }
    }

    /// Bookings that are not cancelled and end after `from`, ordered by start.
    pub async fn upcoming_bookings(
        &self,
        from: DateTime<Utc>,
    ) -> Result<Vec<Booking>, CalendarError> {
        match self {
            Database::Sqlite(pool) => sqlite::upcoming_bookings(pool, from).await,
            Database::Postgres(pool) => postgres::upcoming_bookings(pool, from).await,
        }
        .map_err(calendar_unavailable)
    }

    /// Writes a booking, idempotent by id; `SlotTaken` when a confirmed booking overlaps a
    /// confirmed one.
    pub async fn insert_booking(&self, booking: &Booking) -> Result<(), CalendarError> {
        match self {
            Database::Sqlite(pool) => sqlite::insert_booking(pool, booking).await,
            Database::Postgres(pool) => postgres::insert_booking(pool, booking).await,
        }
    }

    /// Moves a booking that is not cancelled; the old time is kept when the new one is taken.
    pub async fn move_booking(
        &self,
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), CalendarError> {
        match self {
            Database::Sqlite(pool) => sqlite::move_booking(pool, id, start, end).await,
            Database::Postgres(pool) => postgres::move_booking(pool, id, start, end).await,
        }
    }

    /// Marks a booking cancelled; cancelling twice is fine, an unknown id is `NotFound`.
    pub async fn cancel_booking(&self, id: BookingId) -> Result<(), CalendarError> {
        match self {
            Database::Sqlite(pool) => sqlite::cancel_booking(pool, id).await,
            Database::Postgres(pool) => postgres::cancel_booking(pool, id).await,
        }
    }
}

impl ConversationStore for Database {
    fn load<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<Option<StoredConversation>, StoreError>> {
        Box::pin(async move {
            let key = contact_key(phone);
            match self {
                Database::Sqlite(pool) => sqlite::load(pool, &key).await,
                Database::Postgres(pool) => postgres::load(pool, &key).await,
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
            match self {
                Database::Sqlite(pool) => sqlite::commit(pool, &batch).await,
                Database::Postgres(pool) => postgres::commit(pool, &batch).await,
            }
        })
    }

    fn processed_reply<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            match self {
                Database::Sqlite(pool) => sqlite::processed_reply(pool, provider_id).await,
                Database::Postgres(pool) => postgres::processed_reply(pool, provider_id).await,
            }
        })
    }
}

/// The key rows use to find a contact. The phone itself until encryption at rest lands;
/// then a keyed hash of it (the one place to change).
pub fn contact_key(phone: &Phone) -> String {
    phone.as_str().to_string()
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

fn parse_channel(s: &str) -> Result<Channel, StoreError> {
    Channel::parse(s).ok_or_else(|| corrupt("unknown channel in the turn log"))
}

fn parse_phone(s: &str) -> Result<Phone, StoreError> {
    Phone::parse(s).ok_or_else(|| corrupt("a stored phone is not E.164"))
}

fn parse_status(s: &str) -> Result<sara_actors::model::BookingStatus, StoreError> {
    sara_actors::model::BookingStatus::parse(s).ok_or_else(|| corrupt("unknown booking status"))
}
