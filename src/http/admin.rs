//! Admin routes (the admin token, see [`super::auth`]): `/admin/stats`, `/admin/bookings`, `/logs/{id}` and the
//! fault-injection route `/admin/debug/panic/{phone}` (only with `debug.faults`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use sara_actors::model::Phone;
use serde_json::json;

use super::auth::AdminAuth;
use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/stats", get(stats))
        .route("/admin/bookings", get(bookings))
        .route("/admin/outbox", get(outbox))
        .route("/logs/audit", get(audit))
        .route("/logs/{id}", get(logs))
        .route("/admin/debug/panic/{phone}", post(panic))
}

async fn stats(
    _: AdminAuth,
    State(app): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = app.db.stats().await?;
    let engine = app.engine.stats().await;
    Ok(Json(json!({
        "conversations": store.conversations,
        "live_actors": engine.live_conversations,
        "turns": store.turns,
        "bookings": store.bookings,
        "restarts": engine.restarts,
        "fallbacks": engine.fallbacks,
    })))
}

async fn bookings(
    _: AdminAuth,
    State(app): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let tz = app.engine.business().timezone;
    Ok(Json(app.db.bookings(tz).await?))
}

/// How many messages `GET /admin/outbox` lists (the newest).
const OUTBOX_LIST_LIMIT: i64 = 500;

async fn outbox(_: AdminAuth, State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let list = app
        .db
        .outbox()
        .list_outbox(OUTBOX_LIST_LIMIT)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "outbox list failed");
            ApiError::unavailable("store unavailable")
        })?;
    Ok(Json(list))
}

/// How many rows `GET /logs/audit` lists (the newest).
const AUDIT_LIST_LIMIT: i64 = 500;

/// The privacy audit: who was forgotten when (by contact key) and what went.
async fn audit(_: AdminAuth, State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(app.db.privacy().audit(AUDIT_LIST_LIMIT).await?))
}

async fn logs(
    _: AdminAuth,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let log = app.db.turns_for(&id).await?;
    log.map(Json)
        .ok_or_else(|| ApiError::not_found("no conversation with that id"))
}

async fn panic(
    State(app): State<AppState>,
    auth: Result<AdminAuth, ApiError>,
    Path(phone): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !app.config.debug.faults {
        return Err(ApiError::not_found("no such route"));
    }
    auth?;
    let phone = Phone::parse(&phone).ok_or_else(|| ApiError::bad_request("not a phone number"))?;
    if !app.engine.inject_panic(phone) {
        return Err(ApiError::unavailable("engine stopped"));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "panicking"}))))
}
