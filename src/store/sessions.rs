//! The front-desk console's sessions, kept server-side so that a browser's cookie holds a
//! random id and never the admin token, and so that "Log out" (or the expiry) really ends
//! the session on every instance. A row is found by the SHA-256 of the id: whoever reads
//! the table cannot open a session with what is in it.

use chrono::{DateTime, Utc};
use sara_actors::ports::BoxFuture;
use sha2::{Digest, Sha256};

use super::StoreError;
use super::sql::Dialect;
use super::unavailable;

/// The sessions table as the console's login uses it.
pub trait SessionRepository: Send + Sync {
    /// Stores a new session `id` valid until `expires_at`; sessions expired at `now` are
    /// dropped on the way (logging in is rare, so this keeps the table small).
    fn create_session<'a>(
        &'a self,
        id: &'a str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether `id` names a session still valid at `now`.
    fn session_valid<'a>(
        &'a self,
        id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Ends the session `id` (logging out); an unknown id is fine.
    fn end_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// What the table keeps of a session id.
pub(super) fn id_hash(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const INSERT: &str =
    "INSERT INTO admin_sessions (id_hash, created_at, expires_at) VALUES ($1, $2, $3)";
const PURGE: &str = "DELETE FROM admin_sessions WHERE expires_at <= $1";
const VALID: &str = "SELECT id_hash FROM admin_sessions WHERE id_hash = $1 AND expires_at > $2";
const END: &str = "DELETE FROM admin_sessions WHERE id_hash = $1";

pub(super) async fn create<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    id: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>(PURGE)
        .bind(DB::time(now))
        .execute(pool)
        .await
        .map_err(unavailable)?;
    sqlx::query::<DB>(INSERT)
        .bind(id_hash(id))
        .bind(DB::time(now))
        .bind(DB::time(expires_at))
        .execute(pool)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn valid<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let found = sqlx::query_as::<DB, (String,)>(VALID)
        .bind(id_hash(id))
        .bind(DB::time(now))
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    Ok(found.is_some())
}

pub(super) async fn end<DB: Dialect>(pool: &sqlx::Pool<DB>, id: &str) -> Result<(), StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>(END)
        .bind(id_hash(id))
        .execute(pool)
        .await
        .map_err(unavailable)?;
    Ok(())
}
