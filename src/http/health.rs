//! `/health` (alive), `/ready` (store reachable) and `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match app.db.ping().await {
        Ok(()) => Ok(Json(json!({"status": "ready", "store": app.db.backend()}))),
        Err(error) => {
            tracing::warn!(%error, "store not reachable");
            Err(ApiError::unavailable("store not reachable"))
        }
    }
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let live = app.engine.stats().await.live_conversations;
    metrics::gauge!("sara_live_conversations").set(live as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
