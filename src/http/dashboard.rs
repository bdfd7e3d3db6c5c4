//! `GET /admin`: the front-desk console's day screen, and logging in and out of it.
//!
//! Logging in: `GET /admin?token=…` once (or the login form, `POST /admin/login`) trades the
//! admin token for a session (see [`super::auth`]) and redirects to a clean `/admin`. The
//! day screen shows who is waiting for staff first, today's and the coming week's bookings,
//! the conversations with their current step, and what needs a look (restarts, NLU
//! fallbacks, messages given up, quarantined conversations). It is plain server-rendered
//! HTML; a few lines of script re-read the page every few seconds and swap the parts marked
//! `data-live`, so a new booking shows without a reload.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sara_actors::dialogue::{DialogueState, FormKind};
use sara_actors::understanding::Slot;
use serde::Deserialize;

use super::auth::{self, AdminAuth, CSRF_FIELD, check_token};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::store::{BookingView, ConversationSummary};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dashboard))
        .routes(routes!(login))
        .routes(routes!(logout))
}

/// How many conversations the day screen lists (the most recently active).
const CONVERSATION_LIST: i64 = 100;
/// How many outbox rows are read for the "needs a look" count of given-up messages.
const OUTBOX_SCAN: i64 = 500;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenQuery {
    /// The admin token, once: traded for a session cookie and a redirect to `/admin`.
    token: Option<String>,
}

/// A browser that presented nothing gets the login page; wrong or stale credentials 401.
#[utoipa::path(
    get,
    path = "/admin",
    tag = "console",
    params(TokenQuery),
    responses(
        (status = 200, description = "The day screen, or the login page to a browser that presented nothing", content_type = "text/html", body = String),
        (status = 303, description = "Logged in (`?token=`): the session cookie is set, back to `/admin`"),
        (status = 400, description = "The query cannot be read", body = ErrorBody),
        (status = 401, description = "Wrong token or a stale session", body = ErrorBody),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address", body = ErrorBody),
    )
)]
async fn dashboard(
    State(app): State<AppState>,
    parts: Parts,
    auth: Result<AdminAuth, ApiError>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    if let Some(token) = query.token {
        check_token(&app, Some(&token))?;
        let cookie = auth::new_session(&app).await?;
        return Ok(auth::with_cookie(
            Redirect::to("/admin").into_response(),
            cookie,
        ));
    }
    let auth = match auth {
        Ok(auth) => auth,
        Err(_) if !auth::presents_credentials(&parts) => {
            return Ok(login_page(&app.engine.business().name).into_response());
        }
        Err(error) => return Err(error),
    };
    Ok(day_screen(&app, &auth).await?.into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginForm {
    /// The admin token.
    token: String,
}

/// The login form: the token once, a session from then on. (A forged login could only log
/// a browser into the business's own console: there is one admin.)
#[utoipa::path(
    post,
    path = "/admin/login",
    tag = "console",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in: the session cookie is set, on to `/admin`"),
        (status = 400, description = "The form cannot be read", body = ErrorBody),
        (status = 401, description = "Wrong token", body = ErrorBody),
        (status = 403, description = "No admin token is configured", body = ErrorBody),
        (status = 415, description = "Not a form", body = ErrorBody),
        (status = 422, description = "No `token` field", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address", body = ErrorBody),
    )
)]
async fn login(
    State(app): State<AppState>,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    check_token(&app, Some(&form.token))?;
    let cookie = auth::new_session(&app).await?;
    Ok(auth::with_cookie(
        Redirect::to("/admin").into_response(),
        cookie,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CsrfForm {
    /// The page's CSRF token (needed with the session cookie, not with a bearer).
    csrf: Option<String>,
}

#[utoipa::path(
    post,
    path = "/admin/logout",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged out: the cookie is cleared, on to `/admin`"),
        (status = 400, description = "The form cannot be read", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
        (status = 415, description = "Not a form", body = ErrorBody),
        (status = 422, description = "The form cannot be read", body = ErrorBody),
    )
)]
async fn logout(
    State(app): State<AppState>,
    auth: AdminAuth,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    auth.check_csrf(form.csrf.as_deref())?;
    let cookie = auth::end_session(&app, &auth).await?;
    Ok(auth::with_cookie(
        Redirect::to("/admin").into_response(),
        cookie,
    ))
}

/// The page around every console screen: readable on a phone, and the poll that keeps the
/// `data-live` parts current.
pub(super) fn shell(title: &str, auth: Option<&AdminAuth>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/admin" { strong { "Sara" } }
                    @if let Some(auth) = auth.filter(|a| a.session().is_some()) {
                        form method="post" action="/admin/logout" {
                            input type="hidden" name=(CSRF_FIELD) value=(auth.csrf());
                            button type="submit" { "Log out" }
                        }
                    }
                }
                (body)
                script { (PreEscaped(REFRESH)) }
            }
        }
    }
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:0 .8rem 2rem;color:#222}\
header{display:flex;justify-content:space-between;align-items:center;padding:.6rem 0;border-bottom:1px solid #ddd}\
header form{margin:0}a{color:#0b5cad}h2{margin:1.4rem 0 .5rem;font-size:1.15rem}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}\
td,th{padding:.35rem .6rem;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}\
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-size:.8rem;background:#eee}\
.waiting{background:#ffe08a}.staff{background:#cfe3ff}.alert{background:#ffd0d0}\
.cards{display:flex;flex-wrap:wrap;gap:.6rem}.cards>div{border:1px solid #e4e4e4;border-radius:.4rem;padding:.4rem .7rem}\
.n{font-size:1.4rem;font-weight:600}ul.plain{list-style:none;padding:0}ul.plain li{padding:.3rem 0;border-bottom:1px solid #eee}\
.turn{border-left:3px solid #ccc;padding:.3rem .6rem;margin:.5rem 0}.turn.staffturn{border-color:#0b5cad;background:#f3f8ff}\
.meta{color:#666;font-size:.85rem}textarea{width:100%;box-sizing:border-box;font:inherit}\
button{font:inherit;padding:.35rem .8rem}.actions{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-end}\
.actions form{margin:0}pre{white-space:pre-wrap;font-size:.8rem}.ok{background:#c9f2d0}\
.warn{color:#8a4b00}.notice{border:1px solid #e0a000;background:#fff6dc;border-radius:.4rem;padding:.4rem .7rem}\
.booking{border-bottom:1px solid #eee;padding:.3rem 0}form.booking p{margin:.4rem 0}";

/// Re-reads the page every few seconds and swaps each element marked `data-live` (by id),
/// leaving forms being typed in alone.
const REFRESH: &str = "setInterval(async()=>{try{const r=await fetch(location.pathname,{credentials:'same-origin'});\
if(!r.ok)return;const d=new DOMParser().parseFromString(await r.text(),'text/html');\
document.querySelectorAll('[data-live]').forEach(e=>{const n=d.getElementById(e.id);if(n)e.replaceWith(n);});}catch(_){}},3000);";

fn login_page(business: &str) -> Markup {
    shell(
        &format!("Sara — {business}"),
        None,
        html! {
            main {
                h1 { "Sara at " (business) }
                form method="post" action="/admin/login" {
                    p {
                        label for="token" { "Admin token" }
                        br;
                        input id="token" name="token" type="password" autocomplete="current-password" required;
                    }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// What the console reads of a stored conversation state (the engine's
/// `ConversationState`, whose dialogue is under `d`).
#[derive(Deserialize, Default)]
pub(super) struct StoredState {
    #[serde(rename = "d", default)]
    pub dialogue: DialogueState,
}

impl StoredState {
    pub fn parse(json: &str) -> StoredState {
        serde_json::from_str(json).unwrap_or_default()
    }
}

/// Who has the conversation now, as a badge.
pub(super) fn staff_badge(dialogue: &DialogueState, now: DateTime<Utc>) -> Markup {
    html! {
        @if dialogue.taken_over {
            span.badge.staff { "Staff have it" }
        } @else if dialogue.waiting_for_staff(now) {
            span.badge.waiting { "Waiting for staff" }
        }
    }
}

/// The step the conversation is at, in words.
pub(super) fn current_step(dialogue: &DialogueState) -> String {
    let Some(form) = &dialogue.form else {
        return if dialogue.proposal.is_some() {
            "asked a yes/no question".into()
        } else {
            "idle".into()
        };
    };
    let what = match form.kind {
        FormKind::Book => "booking",
        FormKind::Reschedule => "moving a booking",
        FormKind::Cancel => "cancelling",
    };
    let service = form.service.as_deref().unwrap_or("");
    let asked = match form.asked {
        Some(Slot::Service) => "asked which service",
        Some(Slot::Date) => "asked which day",
        Some(Slot::Time) | Some(Slot::Option) => "asked which time",
        Some(Slot::Name) => "asked the name",
        Some(Slot::Email) => "asked the email",
        Some(Slot::Booking) => "asked which booking",
        Some(Slot::Confirmation) => "waiting for the confirmation",
        None => "in progress",
    };
    if service.is_empty() {
        format!("{what}: {asked}")
    } else {
        format!("{what} {service}: {asked}")
    }
}

/// A booking's start in the business time zone.
fn local_start(b: &BookingView, tz: Tz) -> Option<DateTime<Tz>> {
    DateTime::parse_from_rfc3339(&b.start)
        .ok()
        .map(|d| d.with_timezone(&tz))
}

async fn day_screen(app: &AppState, auth: &AdminAuth) -> Result<Markup, ApiError> {
    let business = app.engine.business().clone();
    let tz = business.timezone;
    let now = app.engine.now();
    let today = now.with_timezone(&tz).date_naive();
    let bookings = app.db.bookings(tz).await?;
    let conversations = app.db.conversations(CONVERSATION_LIST).await?;
    let engine = app.engine.stats().await;
    let quarantined = app.engine.quarantined().await;
    let given_up = match app.db.outbox().list_outbox(OUTBOX_SCAN).await {
        Ok(rows) => rows
            .iter()
            .filter(|r| r.status == "dead" || r.status == "failed")
            .count(),
        Err(error) => {
            tracing::warn!(%error, "outbox list failed");
            0
        }
    };

    // The caller's name: as they gave it in the conversation, else on a booking.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for b in &bookings {
        if let Some(name) = b.name.as_deref() {
            names.insert(b.phone.as_str(), name);
        }
    }
    let mut rows: Vec<(&ConversationSummary, StoredState)> = conversations
        .iter()
        .map(|c| (c, StoredState::parse(&c.state)))
        .collect();
    // Waiting for staff first, then the most recent.
    rows.sort_by_key(|(c, s)| {
        (
            !s.dialogue.waiting_for_staff(now),
            std::cmp::Reverse(c.updated_at),
        )
    });
    let waiting = rows
        .iter()
        .filter(|(_, s)| s.dialogue.waiting_for_staff(now))
        .count();

    let on = |day: NaiveDate| {
        bookings
            .iter()
            .filter(move |b| local_start(b, tz).is_some_and(|s| s.date_naive() == day))
    };
    let week: Vec<NaiveDate> = (1..=7).map(|n| today + Duration::days(n)).collect();

    let label = |c: &ConversationSummary, s: &StoredState| -> String {
        let name = s
            .dialogue
            .caller
            .as_deref()
            .or_else(|| names.get(c.phone.as_str()).copied());
        match name {
            Some(name) => format!("{name} ({})", c.phone),
            None => c.phone.clone(),
        }
    };

    let body = html! {
        main id="day" data-live {
            h1 { "Sara at " (business.name) }
            p.meta { "Today is " (today.format("%A, %B %-d")) "." }

            section id="waiting" {
                h2 { "Who is waiting (" (waiting) ")" }
                @if waiting == 0 {
                    p.meta { "Nobody is waiting." }
                } @else {
                    ul.plain {
                        @for (c, s) in rows.iter().filter(|(_, s)| s.dialogue.waiting_for_staff(now)) {
                            li {
                                a href=(format!("/admin/conversations/{}", c.phone)) { (label(c, s)) }
                                " " span.badge.waiting { "Waiting for staff" }
                            }
                        }
                    }
                }
            }

            section id="today" {
                h2 { "Today" }
                (booking_table(on(today).collect(), tz))
            }

            section id="week" {
                h2 { "This week" }
                @for day in &week {
                    @let list: Vec<&BookingView> = on(*day).collect();
                    @if !list.is_empty() {
                        h3 { (day.format("%A, %B %-d")) " " span.meta { (weekday_hint(*day, today)) } }
                        (booking_table(list, tz))
                    }
                }
                @if week.iter().all(|d| on(*d).next().is_none()) {
                    p.meta { "No bookings in the coming week." }
                }
            }

            section id="conversations" {
                h2 { "Conversations" }
                div.scroll {
                    table {
                        tr { th { "Caller" } th { "Step" } th { "Last message" } }
                        @for (c, s) in &rows {
                            tr {
                                td {
                                    a href=(format!("/admin/conversations/{}", c.phone)) { (label(c, s)) }
                                    " " (staff_badge(&s.dialogue, now))
                                }
                                td { (current_step(&s.dialogue)) }
                                td { (c.updated_at.with_timezone(&tz).format("%a %b %-d %H:%M")) }
                            }
                        }
                    }
                }
            }

            section id="attention" {
                h2 { "Needs a look" }
                div.cards {
                    div { div.n { (engine.restarts) } "actor restarts" }
                    div { div.n { (engine.fallbacks) } "NLU fallbacks" }
                    div { div.n { (given_up) } a href="/admin/outbox" { "messages given up" } }
                    div { div.n { (quarantined.len()) } "quarantined conversations" }
                }
                @if !quarantined.is_empty() {
                    ul.plain {
                        @for phone in &quarantined {
                            li {
                                a href=(format!("/admin/conversations/{}", phone.as_str())) { (phone.as_str()) }
                                " " span.badge.alert { "Quarantined" }
                            }
                        }
                    }
                }
                p.meta {
                    (engine.live_conversations) " conversations live now, "
                    (engine.turns) " messages since the start."
                }
            }
        }
    };
    Ok(shell(
        &format!("Sara — {}", business.name),
        Some(auth),
        body,
    ))
}

fn weekday_hint(day: NaiveDate, today: NaiveDate) -> &'static str {
    if day == today.succ_opt().unwrap_or(today) {
        "tomorrow"
    } else if day.iso_week() == today.iso_week() {
        "this week"
    } else {
        "next week"
    }
}

/// The bookings of a day in time order: who, what, with whom (once staff exist), and their
/// status with the attendance the customer confirmed in answer to a reminder.
fn booking_table(list: Vec<&BookingView>, tz: Tz) -> Markup {
    let with_staff = list.iter().any(|b| b.staff.is_some());
    html! {
        @if list.is_empty() {
            p.meta { "No bookings." }
        } @else {
            div.scroll {
                table {
                    tr {
                        th { "Time" } th { "Customer" } th { "Service" }
                        @if with_staff { th { "With" } }
                        th { "Status" }
                    }
                    @for b in list {
                        tr {
                            td { (local_start(b, tz).map(|s| s.format("%H:%M").to_string()).unwrap_or_default()) }
                            td {
                                a href=(format!("/admin/conversations/{}", b.phone)) {
                                    (b.name.as_deref().unwrap_or(b.phone.as_str()))
                                }
                            }
                            td { (b.service) }
                            @if with_staff { td { (b.staff.as_deref().unwrap_or("")) } }
                            td {
                                span.badge { (b.status) }
                                @if b.attendance.as_deref() == Some("confirmed") {
                                    " " span.badge.ok { "attending" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
