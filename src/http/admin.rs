//! Admin routes (bearer token): `/admin/stats`, `/admin/bookings`, `/logs/{id}` and the
//! fault-injection route `/admin/debug/panic/{phone}` (only with `debug.faults`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use sara_actors::model::Phone;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/stats", get(stats))
        .route("/admin/bookings", get(bookings))
        .route("/admin/outbox", get(outbox))
        .route("/logs/{id}", get(logs))
        .route("/admin/conversations/{phone}/hand-back", post(hand_back))
        .route("/admin/debug/panic/{phone}", post(panic))
}

/// Checks `Authorization: Bearer <admin token>` in constant time.
pub fn require_admin(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = app.config.admin.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(ApiError::forbidden(
            "admin token is not configured (SARA_ADMIN__TOKEN)",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    if bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("wrong bearer token"))
    }
}

/// `GET /admin/outbox`: the newest messages first (CONTRACT.md's shape).
async fn outbox(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<crate::store::outbox::OutboxView>>, ApiError> {
    require_admin(&app, &headers)?;
    let rows = app
        .db
        .outbox()
        .list_outbox(500)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(rows))
}

async fn stats(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers)?;
    let store = app
        .db
        .stats()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let engine = app.engine.stats().await;
    let fallbacks = app
        .metrics
        .render()
        .lines()
        .find_map(|l| {
            l.strip_prefix("sara_nlu_fallbacks_total ")
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0) as u64;
    Ok(Json(json!({
        "conversations": store.conversations,
        "live_actors": engine.live_conversations,
        "turns": store.turns,
        "bookings": store.bookings,
        "restarts": engine.restarts,
        "fallbacks": fallbacks,
    })))
}

async fn bookings(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&app, &headers)?;
    let tz = app.engine.business().timezone;
    let list = app
        .db
        .bookings(tz)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(list))
}

async fn logs(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&app, &headers)?;
    let log = app
        .db
        .turns_for(&id)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    log.map(Json)
        .ok_or_else(|| ApiError::not_found("no conversation with that id"))
}

async fn panic(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(phone): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !app.config.debug.faults {
        return Err(ApiError::not_found("no such route"));
    }
    require_admin(&app, &headers)?;
    let phone = Phone::parse(&phone).ok_or_else(|| ApiError::bad_request("not a phone number"))?;
    if !app.engine.inject_panic(phone) {
        return Err(ApiError::unavailable("engine stopped"));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "panicking"}))))
}

/// Staff give a conversation back to Sara after a hand-over.
async fn hand_back(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(phone): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&app, &headers)?;
    let phone = Phone::parse(&phone).ok_or_else(|| ApiError::bad_request("not a phone number"))?;
    match app.engine.hand_back(phone).await {
        Ok(()) => Ok(Json(json!({"status": "handed_back"}))),
        Err(sara_actors::engine::TurnError::StoreUnavailable) => {
            Err(ApiError::unavailable("store unavailable"))
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}
