//! Admin routes (the admin token, see [`super::auth`]): `/admin/stats`, `/admin/bookings`, `/logs/{id}` and the
//! fault-injection routes `/admin/debug/panic/{phone}` and `/admin/debug/clock` (only with
//! `debug.faults`).

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
        .route("/admin/debug/clock", post(clock))
}

/// The longest single advance of the debug clock (ten years), so no instant overflows.
const MAX_ADVANCE_MINUTES: i64 = 10 * 366 * 24 * 60;

/// `{"advance_minutes": N}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockAdvance {
    advance_minutes: i64,
}

/// Moves the process's clock N minutes forward (never back), then runs what became due:
/// the scheduler's jobs (reminders) and the outbox's rows, until neither has anything due.
async fn clock(
    State(app): State<AppState>,
    auth: Result<AdminAuth, ApiError>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if !app.config.debug.faults {
        return Err(ApiError::not_found("no such route"));
    }
    auth?;
    let advance: ClockAdvance = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request("expected a JSON body {\"advance_minutes\": N} with N >= 0")
    })?;
    let minutes = advance.advance_minutes;
    if !(0..=MAX_ADVANCE_MINUTES).contains(&minutes) {
        return Err(ApiError::bad_request(format!(
            "advance_minutes must be between 0 and {MAX_ADVANCE_MINUTES}"
        )));
    }
    let now = app.clock.advance(chrono::Duration::minutes(minutes));
    if minutes > 0 {
        tracing::warn!(minutes, now = %now, "debug clock advanced");
    }
    app.engine.wake_background();
    app.engine.settle().await;
    let now = app
        .clock
        .now()
        .with_timezone(&app.engine.business().timezone);
    Ok(Json(json!({ "now": now.to_rfc3339() })))
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

/// The privacy audit: who was forgotten when (by contact key) and what went, and each
/// retention run (what it redacted).
async fn audit(_: AdminAuth, State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(app.db.privacy().audit(AUDIT_LIST_LIMIT).await?))
}

async fn logs(
    _: AdminAuth,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let log = app.db.turns_for(&id).await?;
    let phone = log
        .as_ref()
        .and_then(|l| Phone::parse(&l.conversation))
        .or_else(|| Phone::parse(&id));
    // A call's voicemails (by CallSid, or the caller's), shown even when the caller never
    // spoke a turn.
    let voicemails = app.db.voicemails(&id, phone.as_ref()).await?;
    if log.is_none() && voicemails.is_empty() {
        return Err(ApiError::not_found("no conversation with that id"));
    }
    let heard = match &phone {
        Some(phone) => app.db.heard_of(phone).await?,
        None => Vec::new(),
    };
    let mut body = match &log {
        Some(log) => serde_json::to_value(log).unwrap_or_else(|_| json!({})),
        None => json!({"conversation": phone.map(|p| p.as_str().to_string()), "turns": []}),
    };
    // What the caller actually heard of a reply they interrupted (voice relay).
    if let Some(turns) = body.get_mut("turns").and_then(|t| t.as_array_mut()) {
        for turn in turns {
            let id = turn
                .get("provider_id")
                .and_then(|p| p.as_str())
                .map(str::to_string);
            if let Some((_, what)) = heard.iter().find(|(p, _)| Some(p) == id.as_ref()) {
                turn["heard"] = json!(what);
            }
        }
    }
    body["voicemails"] = json!(voicemails);
    Ok(Json(body))
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
