//! The axum front door: one module per channel plus admin and health. Every route module
//! exports its own `router()`; [`router`] puts them together with the shared layers.

pub mod admin;
pub mod admin_throttle;
pub mod auth;
pub mod caller_id;
pub mod console;
pub mod dashboard;
pub mod delivery;
pub mod drain;
pub mod error;
pub mod health;
pub mod limits;
pub mod openapi;
pub mod rejections;
pub mod relay;
pub mod server;
pub mod sms;
pub mod voice;
pub mod voicemail;
pub mod webhook;
pub mod whatsapp;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use sara_actors::engine::Engine;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cache::Cache;
use crate::config::Config;
use crate::store::Database;
pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub db: Database,
    pub config: Arc<Config>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Processed-webhook replies, rate limits (and the engine's leases).
    pub cache: Cache,
    /// Marks customers' WhatsApp messages as read once their turn is committed (best effort);
    /// `None` when WhatsApp sending is not configured.
    pub read_receipts: Option<crate::channels::whatsapp::GraphClient>,
    /// Where providers' delivery reports (Twilio status callbacks, WhatsApp `statuses`) are
    /// applied: the outbox, once the store keeps one. `None` = reports are counted only.
    pub delivery: Option<Arc<dyn sara_actors::outbound::DeliveryStatuses>>,
    /// The process's one clock: a webhook's "now" is the engine's (the debug clock moves both).
    pub clock: Arc<sara_actors::ports::OffsetClock>,
    /// Set on SIGTERM: `/ready` 503, new webhooks 503 + `Retry-After` (see [`drain`]).
    pub drain: Arc<drain::Drain>,
}

/// Every route with its documentation, before the shared layers: the public routes, and
/// the admin routes (which get the admin throttle).
fn routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let public = OpenApiRouter::with_openapi(openapi::base())
        .merge(sms::router())
        .merge(delivery::router())
        .merge(voice::router())
        .merge(whatsapp::router())
        .merge(health::router())
        .routes(routes!(openapi::serve));
    let admin = admin::router()
        .merge(dashboard::router())
        .merge(console::router());
    (public, admin)
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    let (public, admin) = routes();
    let (routes, _) = public
        .merge(admin.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin_throttle::guard,
        )))
        .split_for_parts();
    routes
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.drain.clone(),
            drain::guard,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(axum::middleware::map_response(rejections::as_json))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                // Named by the route template, never the raw path (it may hold a phone number).
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "unmatched".into());
                // One id for the request, carried by every span under it: the engine's
                // actors continue this span (ractor's message span propagation), so the
                // turn and its commit log under the same `request_id`.
                tracing::info_span!(
                    "http",
                    method = %req.method(),
                    route,
                    request_id = %uuid::Uuid::now_v7()
                )
            }),
        )
        .with_state(state)
}
