//! The yardstick `limit_turns_per_s` is measured against: a bare axum route that does only
//! the minimal work of a turn — parse the form, then ONE transaction per request that
//! inserts a turn-sized row (~500 bytes) and upserts a state row — on the same database
//! backend, on a pool of its own with Sara's pool settings ([`crate::store::open_pool`]). Sara beats it only by committing many turns per
//! transaction (group commit).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;

use crate::store::RawPool;

const TWIML: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>ok</Message></Response>";

/// Creates the two tables the bare route writes (in the database Sara uses, beside its own).
pub async fn prepare(pool: &RawPool) -> Result<(), sqlx::Error> {
    match pool {
        RawPool::Sqlite(pool) => {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS bench_turns (id INTEGER PRIMARY KEY, \
                 phone TEXT NOT NULL, provider_id TEXT UNIQUE, payload TEXT NOT NULL)",
            )
            .execute(pool)
            .await?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS bench_state (phone TEXT PRIMARY KEY, \
                 state TEXT NOT NULL, version INTEGER NOT NULL)",
            )
            .execute(pool)
            .await?;
        }
        RawPool::Postgres(pool) => {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS bench_turns (id BIGSERIAL PRIMARY KEY, \
                 phone TEXT NOT NULL, provider_id TEXT UNIQUE, payload TEXT NOT NULL)",
            )
            .execute(pool)
            .await?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS bench_state (phone TEXT PRIMARY KEY, \
                 state TEXT NOT NULL, version BIGINT NOT NULL)",
            )
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// A turn-sized payload: the message, a reply-sized filler and the bookkeeping a turn row
/// carries, about 500 bytes in all.
fn payload(text: &str) -> String {
    let mut p = format!(
        "{{\"channel\":\"sms\",\"intent\":\"inform\",\"nlu\":\"rules\",\"text\":{text:?},\"reply\":\""
    );
    while p.len() < 480 {
        p.push_str("Sara answers with a sentence of about this length. ");
    }
    p.truncate(480);
    p.push_str("\"}");
    p
}

async fn write(pool: &RawPool, phone: &str, sid: &str, text: &str) -> Result<(), sqlx::Error> {
    let payload = payload(text);
    let state = "{\"d\":{\"k\":\"book\",\"s\":\"Cleaning\"}}";
    match pool {
        RawPool::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query("INSERT INTO bench_turns (phone, provider_id, payload) VALUES (?, ?, ?)")
                .bind(phone)
                .bind(sid)
                .bind(&payload)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO bench_state (phone, state, version) VALUES (?, ?, 1) \
                 ON CONFLICT (phone) DO UPDATE SET state = excluded.state, \
                 version = bench_state.version + 1",
            )
            .bind(phone)
            .bind(state)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        RawPool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO bench_turns (phone, provider_id, payload) VALUES ($1, $2, $3)",
            )
            .bind(phone)
            .bind(sid)
            .bind(&payload)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO bench_state (phone, state, version) VALUES ($1, $2, 1) \
                 ON CONFLICT (phone) DO UPDATE SET state = excluded.state, \
                 version = bench_state.version + 1",
            )
            .bind(phone)
            .bind(state)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
    }
}

async fn turn(State(pool): State<Arc<RawPool>>, body: Bytes) -> Response {
    let mut phone = String::new();
    let mut sid = String::new();
    let mut text = String::new();
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "From" => phone = v.into_owned(),
            "MessageSid" => sid = v.into_owned(),
            "Body" => text = v.into_owned(),
            _ => {}
        }
    }
    match write(&pool, &phone, &sid, &text).await {
        Ok(()) => ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], TWIML).into_response(),
        Err(error) => {
            tracing::warn!(%error, "bare route write failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Serves the bare route on `listener` until `shutdown` resolves.
pub async fn serve(
    pool: RawPool,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/webhook/sms", post(turn))
        .with_state(Arc::new(pool));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_payload_is_turn_sized() {
        let p = super::payload("Hi, I'd like to book a cleaning");
        assert!((450..=550).contains(&p.len()), "{}", p.len());
    }
}
