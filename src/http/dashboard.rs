//! `GET /admin`: the HTML dashboard for the business owner. The admin token is accepted as a
//! bearer header or once as `?token=`, which sets an HttpOnly cookie and redirects to a clean URL.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::admin::require_admin;
use super::{ApiError, AppState};

const COOKIE: &str = "sara_admin";

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Moves a cookie token into the `Authorization` header form `require_admin` checks.
fn with_cookie_token(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        });
    if let Some(token) = from_cookie
        && !headers.contains_key(header::AUTHORIZATION)
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    headers
}

async fn dashboard(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    if let Some(token) = query.token {
        let mut probe = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            probe.insert(header::AUTHORIZATION, value);
        }
        require_admin(&app, &probe)?;
        let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/admin");
        let mut response = Redirect::to("/admin").into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return Ok(response);
    }
    require_admin(&app, &with_cookie_token(&headers))?;
    let business = app.engine.business().clone();
    let stats = app
        .db
        .stats()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let engine = app.engine.stats().await;
    let bookings = app
        .db
        .bookings(business.timezone)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(page(&business.name, &stats, &engine, &bookings).into_response())
}

fn page(
    name: &str,
    stats: &crate::store::Stats,
    engine: &sara_actors::engine::EngineStats,
    bookings: &[crate::store::BookingView],
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Sara — " (name) }
                style { "body{font:15px system-ui;margin:2rem;color:#222}table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}.n{font-size:1.6rem;font-weight:600}.cards{display:flex;gap:2rem;margin-bottom:2rem}" }
            }
            body {
                h1 { "Sara at " (name) }
                div.cards {
                    div { div.n { (stats.conversations) } "conversations" }
                    div { div.n { (engine.live_conversations) } "live now" }
                    div { div.n { (stats.turns) } "messages" }
                    div { div.n { (engine.restarts) } "restarts" }
                }
                h2 { "Bookings" }
                table {
                    tr { th { "When" } th { "Service" } th { "Name" } th { "Phone" } th { "Status" } }
                    @for b in bookings {
                        tr {
                            td { (b.start) }
                            td { (b.service) }
                            td { (b.name.as_deref().unwrap_or("—")) }
                            td { (b.phone) }
                            td { (b.status) }
                        }
                    }
                }
            }
        }
    }
}
