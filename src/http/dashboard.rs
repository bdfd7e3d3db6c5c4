//! `GET /admin`: the HTML dashboard for the business owner. The admin token is accepted as a
//! bearer header or once as `?token=`, which sets an HttpOnly cookie and redirects to a clean URL.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::auth::{AdminAuth, COOKIE, check_token};
use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn dashboard(
    State(app): State<AppState>,
    auth: Result<AdminAuth, ApiError>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    if let Some(token) = query.token {
        check_token(&app, Some(&token))?;
        let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/admin");
        let mut response = Redirect::to("/admin").into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return Ok(response);
    }
    auth?;
    let business = app.engine.business().clone();
    let stats = app.db.stats().await?;
    let engine = app.engine.stats().await;
    let bookings = app.db.bookings(business.timezone).await?;
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
