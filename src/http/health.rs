//! `/health` (alive), `/ready` (store and Redis reachable) and `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::cache::CacheHealth;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// `GET /health`.
#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// The process is alive.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Health))
)]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /ready`.
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready`, `degraded` (Redis down), `unavailable` (the store down) or `draining`.
    status: &'static str,
    /// `sqlite` or `postgres`.
    store: &'static str,
    /// `up` or `down`; absent while draining.
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
    /// `off` (in-process cache), `up` or `down`; absent while draining.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'static str>,
}

/// 200 when the store and (if configured) Redis answer; 503 otherwise, with which one is
/// down, and 503 `draining` once shutdown has begun. Redis down is "degraded": turns are still answered (the store's guarantees hold),
/// but the instance runs without cross-instance leases and rate limits, so it is not ready.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "The store (and Redis, if configured) answer", body = Readiness),
        (status = 503, description = "The store or Redis is down, or the instance is draining", body = Readiness),
    )
)]
async fn ready(State(app): State<AppState>) -> (StatusCode, Json<Readiness>) {
    if app.drain.is_draining() {
        let body = Readiness {
            status: "draining",
            store: app.db.backend(),
            database: None,
            redis: None,
        };
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
    let body = Readiness {
        status,
        store: app.db.backend(),
        database: Some(if store_up { "up" } else { "down" }),
        redis: Some(redis),
    };
    (code, Json(body))
}

/// Prometheus text exposition of every metric Sara keeps.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String))
)]
async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let live = app.engine.stats().await.live_conversations;
    metrics::gauge!("sara_live_conversations").set(live as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
