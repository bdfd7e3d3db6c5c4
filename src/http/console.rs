//! `/admin/conversations/{phone}`: one conversation's transcript and the take-over console.
//!
//! Every turn shows its channel, the customer's text, what was understood and by which NLU,
//! Sara's reply and how long it took; staff messages are marked as staff. The buttons are
//! staff actions the engine commits like turns ([`StaffAction`]): "Take over" (Sara stays
//! quiet), "Send" under the "Reply" box (to the customer on the conversation's last
//! channel, through the outbox, kind `staff_reply`), "Hand back" (Sara answers again).
//!
//! Each POST takes the console's CSRF token (a cookie session without it is 403) and
//! answers a browser with a redirect back to the page, a bearer (a script) with JSON.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use chrono_tz::Tz;
use maud::{Markup, html};
use sara_actors::engine::StaffAction;
use sara_actors::model::{Channel, Phone};
use sara_actors::ports::ConversationStore;
use serde::Deserialize;

use super::auth::{AdminAuth, CSRF_FIELD};
use super::dashboard::{StoredState, current_step, shell, staff_badge};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::store::TurnView;
use crate::store::forget::Forgotten;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(take_over))
        .routes(routes!(reply))
        .routes(routes!(hand_back))
        .routes(routes!(forget))
}

/// What a staff action answers a script (a bearer request).
#[derive(serde::Serialize, ToSchema)]
struct ActionDone {
    /// `taken_over`, `sent` or `handed_back`.
    status: String,
}

/// The longest staff message accepted (ten SMS segments).
const MAX_REPLY_CHARS: usize = 1600;

fn parse_phone(phone: &str) -> Result<Phone, ApiError> {
    Phone::parse(phone).ok_or_else(|| ApiError::bad_request("not a phone number"))
}

fn page_url(phone: &Phone) -> String {
    format!("/admin/conversations/{}", phone.as_str())
}

#[utoipa::path(
    get,
    path = "/admin/conversations/{phone}",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    responses(
        (status = 200, description = "The transcript and the take-over console", content_type = "text/html", body = String),
        (status = 400, description = "Not a phone number", body = ErrorBody),
        (status = 404, description = "No conversation with that phone", body = ErrorBody),
    )
)]
async fn page(
    auth: AdminAuth,
    State(app): State<AppState>,
    Path(phone): Path<String>,
) -> Result<Response, ApiError> {
    let phone = parse_phone(&phone)?;
    let log = app
        .db
        .turns_for(phone.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("no conversation with that phone"))?;
    let state = app
        .db
        .load(&phone)
        .await?
        .map(|stored| StoredState::parse(&stored.state))
        .unwrap_or_default();
    let business = app.engine.business();
    let tz = business.timezone;
    let now = app.engine.now();
    let reply_on = reply_channel(&log.turns);
    let name = state.dialogue.caller.clone();
    let title = match &name {
        Some(name) => format!("{name} ({})", phone.as_str()),
        None => phone.as_str().to_string(),
    };
    let url = page_url(&phone);
    let body = html! {
        main {
            h1 { (title) }
            section id="status" data-live {
                p {
                    (staff_badge(&state.dialogue, now))
                    @if !state.dialogue.taken_over {
                        " " span.meta { "Sara is answering. Step: " (current_step(&state.dialogue)) }
                    } @else {
                        " " span.meta { "Sara is quiet on this conversation until you hand it back." }
                    }
                }
            }
            section.actions {
                @if !state.dialogue.taken_over {
                    form method="post" action=(format!("{url}/take-over")) {
                        input type="hidden" name=(CSRF_FIELD) value=(auth.csrf());
                        button type="submit" { "Take over" }
                    }
                }
                form method="post" action=(format!("{url}/hand-back")) {
                    input type="hidden" name=(CSRF_FIELD) value=(auth.csrf());
                    button type="submit" { "Hand back" }
                }
            }
            section {
                @match reply_on {
                    Some(channel) => {
                        form method="post" action=(format!("{url}/reply")) {
                            input type="hidden" name=(CSRF_FIELD) value=(auth.csrf());
                            input type="hidden" name="key" value=(uuid::Uuid::new_v4().to_string());
                            p {
                                label for="reply" { "Reply" }
                                " " span.meta { "(goes by " (channel_name(channel)) ")" }
                                br;
                                textarea id="reply" name="text" rows="3" maxlength=(MAX_REPLY_CHARS) required {}
                            }
                            button type="submit" { "Send" }
                        }
                    }
                    None => p.meta { "No text channel to reply on: this caller has only phoned or used email." }
                }
            }
            section {
                form method="post" action=(format!("{url}/forget"))
                    onsubmit="return confirm('Erase everything Sara keeps about this caller? Their bookings stay as anonymous time blocks.')" {
                    input type="hidden" name=(CSRF_FIELD) value=(auth.csrf());
                    button type="submit" { "Forget this caller" }
                }
            }
            section id="transcript" data-live {
                h2 { "Transcript" }
                @for turn in &log.turns {
                    (turn_view(turn, tz))
                }
            }
        }
    };
    Ok(shell(&format!("Sara — {title}"), Some(&auth), body).into_response())
}

/// Where a staff reply goes: the customer's last channel that takes text from Sara (a
/// caller gets an SMS); `None` when there is none (email or the terminal chat only).
fn reply_channel(turns: &[TurnView]) -> Option<Channel> {
    turns
        .iter()
        .rev()
        .find(|t| t.channel != Channel::Staff)
        .and_then(|t| match t.channel {
            Channel::Sms | Channel::Voice => Some(Channel::Sms),
            Channel::WhatsApp => Some(Channel::WhatsApp),
            _ => None,
        })
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::WhatsApp => "WhatsApp",
        Channel::Voice => "phone",
        Channel::Email => "email",
        _ => "SMS",
    }
}

fn turn_view(turn: &TurnView, tz: Tz) -> Markup {
    let at = turn.at.with_timezone(&tz).format("%a %b %-d %H:%M:%S");
    html! {
        @if turn.channel == Channel::Staff {
            div.turn.staffturn {
                div.meta { span.badge.staff { "Staff" } " " (at) }
                @match turn.intent.as_str() {
                    "staff_reply" => p { (turn.reply) },
                    "take_over" => p.meta { "Staff took the conversation over." },
                    "hand_back" => p.meta { "Staff handed the conversation back to Sara." },
                    other => p.meta { (other) },
                }
            }
        } @else {
            div.turn {
                div.meta {
                    span.badge { (channel_name(turn.channel)) } " " (at)
                    " · understood " strong { (turn.intent) } " by " (turn.nlu)
                    " · " (turn.elapsed_ms) " ms"
                }
                p { "Customer: " (turn.text) }
                @if turn.reply.is_empty() {
                    p.meta { "Sara stayed quiet." }
                } @else {
                    p { "Sara: " (turn.reply) }
                }
                details { summary.meta { "What was understood" } pre { (turn.understood) } }
            }
        }
    }
}

#[derive(Deserialize, ToSchema)]
struct ActionForm {
    /// The page's CSRF token (needed with the session cookie, not with a bearer).
    csrf: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct ReplyForm {
    /// The page's CSRF token (needed with the session cookie, not with a bearer).
    csrf: Option<String>,
    /// The message to the customer (at most 1,600 characters).
    text: String,
    /// Generated with the page: a form sent twice writes one message.
    key: Option<String>,
}

/// A browser goes back to the page; a script gets JSON.
fn done(auth: &AdminAuth, phone: &Phone, status: &str) -> Response {
    if auth.session().is_some() {
        Redirect::to(&page_url(phone)).into_response()
    } else {
        Json(ActionDone {
            status: status.to_string(),
        })
        .into_response()
    }
}

/// Staff take the conversation over: Sara stops answering it.
#[utoipa::path(
    post,
    path = "/admin/conversations/{phone}/take-over",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Done (a bearer request)", body = ActionDone),
        (status = 303, description = "Done: back to the page (a browser)"),
        (status = 400, description = "Not a phone number, or the form cannot be read", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
        (status = 415, description = "Not a form", body = ErrorBody),
        (status = 422, description = "The form cannot be read", body = ErrorBody),
    )
)]
async fn take_over(
    auth: AdminAuth,
    State(app): State<AppState>,
    Path(phone): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, ApiError> {
    auth.check_csrf(form.csrf.as_deref())?;
    let phone = parse_phone(&phone)?;
    app.engine
        .staff(phone.clone(), StaffAction::TakeOver)
        .await?;
    Ok(done(&auth, &phone, "taken_over"))
}

/// Staff give a conversation back to Sara (also lifts a hand-over or a quarantine). A
/// script may post it without a body.
#[utoipa::path(
    post,
    path = "/admin/conversations/{phone}/hand-back",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Done (a bearer request)", body = ActionDone),
        (status = 303, description = "Done: back to the page (a browser)"),
        (status = 400, description = "Not a phone number", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
    )
)]
async fn hand_back(
    auth: AdminAuth,
    State(app): State<AppState>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let csrf = form_urlencoded::parse(&body)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    auth.check_csrf(csrf.as_deref())?;
    let phone = parse_phone(&phone)?;
    app.engine.hand_back(phone.clone()).await?;
    Ok(done(&auth, &phone, "handed_back"))
}

/// Staff reply to the customer on the conversation's last channel, through the outbox.
#[utoipa::path(
    post,
    path = "/admin/conversations/{phone}/reply",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    request_body(content = ReplyForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Queued (a bearer request)", body = ActionDone),
        (status = 303, description = "Queued: back to the page (a browser)"),
        (status = 400, description = "Not a phone number, an empty or too long reply, or the form cannot be read", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
        (status = 404, description = "No conversation with that phone", body = ErrorBody),
        (status = 409, description = "The conversation has no SMS or WhatsApp channel to reply on", body = ErrorBody),
        (status = 415, description = "Not a form", body = ErrorBody),
        (status = 422, description = "No `text` field", body = ErrorBody),
    )
)]
async fn reply(
    auth: AdminAuth,
    State(app): State<AppState>,
    Path(phone): Path<String>,
    Form(form): Form<ReplyForm>,
) -> Result<Response, ApiError> {
    auth.check_csrf(form.csrf.as_deref())?;
    let phone = parse_phone(&phone)?;
    let text = form.text.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request("the reply is empty"));
    }
    if text.chars().count() > MAX_REPLY_CHARS {
        return Err(ApiError::bad_request(format!(
            "the reply is longer than {MAX_REPLY_CHARS} characters"
        )));
    }
    let log = app
        .db
        .turns_for(phone.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("no conversation with that phone"))?;
    let channel = reply_channel(&log.turns).ok_or_else(|| ApiError::BadRequest {
        status: StatusCode::CONFLICT,
        detail: "no SMS or WhatsApp channel to reply on".into(),
    })?;
    let key = form
        .key
        .filter(|k| !k.is_empty() && k.len() <= 64)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    app.engine
        .staff(
            phone.clone(),
            StaffAction::Reply {
                channel,
                text: text.to_string(),
                key,
            },
        )
        .await?;
    Ok(done(&auth, &phone, "sent"))
}

/// Erases the caller's personal data (see [`crate::privacy`]); a browser goes back to the
/// day screen, where the conversation is no longer listed.
#[utoipa::path(
    post,
    path = "/admin/conversations/{phone}/forget",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "What was erased (a bearer request)", body = Forgotten),
        (status = 303, description = "Erased: on to `/admin` (a browser)"),
        (status = 400, description = "Not a phone number, or the form cannot be read", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
        (status = 415, description = "Not a form", body = ErrorBody),
        (status = 422, description = "The form cannot be read", body = ErrorBody),
    )
)]
async fn forget(
    auth: AdminAuth,
    State(app): State<AppState>,
    Path(phone): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, ApiError> {
    auth.check_csrf(form.csrf.as_deref())?;
    let phone = parse_phone(&phone)?;
    let forgotten = crate::privacy::forget_caller(
        &app.db,
        &app.cache,
        Some(&app.engine),
        &phone,
        app.engine.now(),
    )
    .await?;
    if auth.session().is_some() {
        Ok(Redirect::to("/admin").into_response())
    } else {
        Ok(Json(forgotten).into_response())
    }
}
