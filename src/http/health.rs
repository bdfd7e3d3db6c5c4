//! `/health` (alive), `/ready` (store and Redis reachable) and `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::cache::CacheHealth;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the store and (if configured) Redis answer; 503 otherwise, with which one is
/// down, and 503 `draining` once shutdown has begun. Redis down is "degraded": turns are still answered (the store's guarantees hold),
/// but the instance runs without cross-instance leases and rate limits, so it is not ready.
async fn ready(State(app): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    if app.drain.is_draining() {
        let body = json!({"status": "draining", "store": app.db.backend()});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let (store, cache) = tokio::join!(app.db.ping(), app.cache.health());
    let store_up = match store {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "store not reachable");
            false
        }
    };
    let redis = match cache {
        CacheHealth::InProcess => "off",
        CacheHealth::Up => "up",
        CacheHealth::Down => "down",
    };
    let (code, status) = match (store_up, cache) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (true, CacheHealth::Down) => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
        (true, _) => (StatusCode::OK, "ready"),
    };
    let body = json!({
        "status": status,
        "store": app.db.backend(),
        "database": if store_up { "up" } else { "down" },
        "redis": redis,
    });
    (code, Json(body))
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let live = app.engine.stats().await.live_conversations;
    metrics::gauge!("sara_live_conversations").set(live as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
