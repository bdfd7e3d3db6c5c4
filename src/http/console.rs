//! `/admin/conversations/{phone}`: one conversation's transcript and the take-over console.
//!
//! Every turn shows its channel, the customer's text, what was understood and by which NLU,
//! Sara's reply and how long it took; staff messages are marked as staff. The buttons are
//! staff actions the engine commits like turns ([`StaffAction`]): "Take over" (Sara stays
//! quiet), "Send" under the "Reply" box (to the customer on the conversation's last
//! channel, through the outbox, kind `staff_reply`), "Hand back" (Sara answers again), and
//! booking for the customer: "Book" (service, "Day and time", optional staff and name),
//! and per upcoming booking "Move" (to its "New time") and "Cancel". Bookings go through
//! the conversation actor and the calendar actor like the customer's own, so the same rules
//! and limits apply; the customer gets a confirmation through the outbox, reminders follow,
//! and a refused time shows the reason and the nearest free times as buttons.
//!
//! Where a staff message goes ([`Reach`]): WhatsApp while its 24-hour customer-service
//! window is open; once it has closed Meta delivers no free text, so the message goes by
//! SMS when SMS is configured (the page says so beside the "Reply" box), and otherwise the
//! page says the customer cannot be written to and gives their number to call.
//!
//! Each POST goes through [`ConsolePost`] (the console's CSRF token — a cookie session
//! without it is 403 — and the phone of the path) and answers a browser with a redirect
//! back to the page, a bearer (a script) with JSON.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use sara_actors::dialogue::StaffChange;
use sara_actors::engine::{StaffAction, StaffOutcome};
use sara_actors::model::{BookingId, Channel, Phone};
use sara_actors::ports::ConversationStore;
use sara_actors::reminders::whatsapp_window_open;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{AdminAuth, CSRF_FIELD};
use super::dashboard::{StoredState, current_step, shell, staff_badge};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::channels::twilio_rest::TwilioRest;
use crate::store::forget::Forgotten;
use crate::store::{BookingView, TurnView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(take_over))
        .routes(routes!(reply))
        .routes(routes!(hand_back))
        .routes(routes!(forget))
        .routes(routes!(book))
        .routes(routes!(move_booking))
        .routes(routes!(cancel))
}

/// What a staff action answers a script (a bearer request).
#[derive(Serialize, ToSchema)]
struct ActionDone {
    /// `taken_over`, `sent`, `handed_back`, `booked`, `moved`, `cancelled`, or `held` (a
    /// booking change kept pending while the calendar is unreachable; a retry confirms it).
    status: String,
}

/// What a refused booking change answers a script (409).
#[derive(Serialize, ToSchema)]
struct ChangeRefused {
    /// Always `refused`.
    status: String,
    /// Why, in a sentence for people.
    reason: String,
    /// The nearest free times instead, RFC 3339 in the business's time zone.
    alternatives: Vec<String>,
}

// The console's forms. [`ConsolePost`] reads a form's fields by name, so these structs only
// describe them for the document: they are never built.

/// The form of take-over, hand-back and forget (a bearer may post no body at all).
#[derive(ToSchema)]
#[allow(dead_code)]
struct ActionForm {
    /// The page's CSRF token (needed with the session cookie, not with a bearer).
    csrf: Option<String>,
}

/// The "Reply" form.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ReplyForm {
    /// The page's CSRF token (needed with the session cookie, not with a bearer).
    csrf: Option<String>,
    /// The message to the customer (at most 1,600 characters; blank is refused).
    text: String,
    /// Generated with the page (at most 64 characters): a form sent twice writes one message.
    key: Option<String>,
}

/// The "Book" form.
#[derive(ToSchema)]
#[allow(dead_code)]
struct BookForm {
    /// The page's CSRF token (needed with the session cookie, not with a bearer).
    csrf: Option<String>,
    /// The service's name.
    service: String,
    /// The start, local wall-clock time of the business, `YYYY-MM-DDTHH:MM`.
    #[schema(
        example = "2026-12-03T10:30",
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$"
    )]
    when: String,
    /// A staff member's name; blank lets Sara pick.
    staff: Option<String>,
    /// The customer's name (at most 100 characters).
    #[schema(max_length = 100)]
    name: Option<String>,
    /// Generated with the page (a UUID, doubling as the booking's id): a form sent twice
    /// books once.
    key: Option<String>,
}

/// A booking's "Move" form.
#[derive(ToSchema)]
#[allow(dead_code)]
struct MoveForm {
    /// The page's CSRF token (needed with the session cookie, not with a bearer).
    csrf: Option<String>,
    /// The booking's id (a UUID).
    #[schema(format = "uuid")]
    booking: String,
    /// The new start, local wall-clock time of the business, `YYYY-MM-DDTHH:MM`.
    #[schema(
        example = "2026-12-03T10:30",
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$"
    )]
    when: String,
    /// Generated with the page: a form sent twice moves once.
    key: Option<String>,
}

/// A booking's "Cancel" form.
#[derive(ToSchema)]
#[allow(dead_code)]
struct CancelForm {
    /// The page's CSRF token (needed with the session cookie, not with a bearer).
    csrf: Option<String>,
    /// The booking's id (a UUID).
    #[schema(format = "uuid")]
    booking: String,
    /// Generated with the page: a form sent twice cancels once.
    key: Option<String>,
}

/// The longest staff message accepted (ten SMS segments).
const MAX_REPLY_CHARS: usize = 1600;
/// The longest customer name staff may type for a booking.
const MAX_NAME_CHARS: usize = 100;
/// What `<input type="datetime-local">` sends: local wall-clock time, to the minute.
const LOCAL_INPUT: &str = "%Y-%m-%dT%H:%M";

fn parse_phone(phone: &str) -> Result<Phone, ApiError> {
    Phone::parse(phone).ok_or_else(|| ApiError::bad_request("not a phone number"))
}

fn page_url(phone: &Phone) -> String {
    format!("/admin/conversations/{}", phone.as_str())
}

/// What every console POST starts with: the admin (session or bearer), the CSRF token
/// checked, the conversation's phone parsed, and the form's fields. A script may post
/// without a body (a bearer needs no CSRF token).
struct ConsolePost {
    auth: AdminAuth,
    phone: Phone,
    fields: HashMap<String, String>,
}

impl FromRequest<AppState> for ConsolePost {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let auth = AdminAuth::from_request_parts(&mut parts, app).await?;
        let Path(phone) = Path::<String>::from_request_parts(&mut parts, app)
            .await
            .map_err(|_| ApiError::bad_request("not a phone number"))?;
        let body = Bytes::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(|_| ApiError::bad_request("the form could not be read"))?;
        let fields: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
        auth.check_csrf(fields.get(CSRF_FIELD).map(String::as_str))?;
        Ok(ConsolePost {
            auth,
            phone: parse_phone(&phone)?,
            fields,
        })
    }
}

impl ConsolePost {
    /// A field's trimmed value; `None` when absent or blank.
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.field(name)
            .ok_or_else(|| ApiError::bad_request(format!("the form needs {name:?}")))
    }

    /// The form's once-only key (generated with the page): a form sent twice acts once.
    fn key(&self) -> String {
        self.field("key")
            .filter(|k| k.len() <= 64)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
    }

    /// A browser goes back to the page; a script gets JSON.
    fn done(&self, status: &str) -> Response {
        if self.auth.session().is_some() {
            Redirect::to(&page_url(&self.phone)).into_response()
        } else {
            Json(ActionDone {
                status: status.to_string(),
            })
            .into_response()
        }
    }
}

/// Where a message from staff reaches the customer now, and what the page says about it.
#[derive(Clone, Debug, PartialEq)]
struct Reach {
    /// `None`: no channel Sara can write on reaches them.
    channel: Option<Channel>,
    /// Why it is not the customer's own channel, when it is not.
    note: Option<String>,
}

/// The customer's last channel that takes text from Sara (a caller gets an SMS), and for
/// WhatsApp whether its 24-hour window is still open at `now`.
fn reach(turns: &[TurnView], now: DateTime<Utc>, sms: bool) -> Reach {
    let last = turns.iter().rev().find(|t| t.channel != Channel::Staff);
    let Some(last) = last else {
        return Reach {
            channel: None,
            note: Some("The customer has not written yet.".into()),
        };
    };
    match last.channel {
        Channel::Sms | Channel::Voice => Reach {
            channel: Some(Channel::Sms),
            note: None,
        },
        Channel::WhatsApp if whatsapp_window_open(Some(last.at), now) => Reach {
            channel: Some(Channel::WhatsApp),
            note: None,
        },
        Channel::WhatsApp if sms => Reach {
            channel: Some(Channel::Sms),
            note: Some(
                "WhatsApp's 24-hour window since their last message has closed, and WhatsApp \
                 delivers no free text after it: this goes by SMS instead."
                    .into(),
            ),
        },
        Channel::WhatsApp => Reach {
            channel: None,
            note: Some(
                "WhatsApp's 24-hour window since their last message has closed, so WhatsApp \
                 delivers no free text, and SMS is not set up: call them instead."
                    .into(),
            ),
        },
        _ => Reach {
            channel: None,
            note: Some("This caller has only used email or the terminal chat.".into()),
        },
    }
}

/// A message shown at the top of the page after a staff change was refused.
struct Notice {
    reason: String,
    /// Free times to pick instead, each a button posting the same change at that time.
    alternatives: Vec<DateTime<Utc>>,
    /// The form the alternatives post: its action and the fields it keeps.
    retry: Retry,
}

enum Retry {
    Book {
        service: String,
        staff: Option<String>,
        name: Option<String>,
    },
    Move {
        booking: BookingId,
    },
    Nothing,
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
    Ok(render(&app, &auth, &phone, None).await?.into_response())
}

/// The conversation's page, with `notice` (a refused change) above it.
async fn render(
    app: &AppState,
    auth: &AdminAuth,
    phone: &Phone,
    notice: Option<Notice>,
) -> Result<Markup, ApiError> {
    let log = app
        .db
        .turns_for(phone.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("no conversation with that phone"))?;
    let state = app
        .db
        .load(phone)
        .await?
        .map(|stored| StoredState::parse(&stored.state))
        .unwrap_or_default();
    let business = app.engine.business();
    let tz = business.timezone;
    let now = app.engine.now();
    let reach = reach(&log.turns, now, TwilioRest::configured(&app.config));
    let upcoming: Vec<BookingView> = app
        .db
        .bookings(tz)
        .await?
        .into_iter()
        .filter(|b| b.phone == phone.as_str() && b.status != "cancelled")
        .filter(|b| DateTime::parse_from_rfc3339(&b.end).is_ok_and(|end| end > now))
        .collect();
    let name = state.dialogue.caller.clone();
    let title = match &name {
        Some(name) => format!("{name} ({})", phone.as_str()),
        None => phone.as_str().to_string(),
    };
    let url = page_url(phone);
    let csrf = auth.csrf();
    let hidden_csrf = html! { input type="hidden" name=(CSRF_FIELD) value=(csrf); };
    let hidden_key =
        || html! { input type="hidden" name="key" value=(uuid::Uuid::new_v4().to_string()); };
    let local_now = now.with_timezone(&tz).format(LOCAL_INPUT).to_string();
    let body = html! {
        main {
            h1 { (title) }
            @if let Some(notice) = &notice {
                section.notice role="alert" {
                    p { strong { "Not done: " } (notice.reason) }
                    @if !notice.alternatives.is_empty() {
                        div.actions {
                            @for at in &notice.alternatives {
                                (alternative(&url, &hidden_csrf, &notice.retry, *at, tz))
                            }
                        }
                    }
                }
            }
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
                        (hidden_csrf)
                        button type="submit" { "Take over" }
                    }
                }
                form method="post" action=(format!("{url}/hand-back")) {
                    (hidden_csrf)
                    button type="submit" { "Hand back" }
                }
            }
            section {
                @match reach.channel {
                    Some(channel) => {
                        form method="post" action=(format!("{url}/reply")) {
                            (hidden_csrf)
                            (hidden_key())
                            p {
                                label for="reply" { "Reply" }
                                " " span.meta { "(goes by " (channel_name(channel)) ")" }
                                @if let Some(note) = &reach.note { br; span.meta.warn { (note) } }
                                br;
                                textarea id="reply" name="text" rows="3" maxlength=(MAX_REPLY_CHARS) required {}
                            }
                            button type="submit" { "Send" }
                        }
                    }
                    None => p.meta { "No text reply possible: " (reach.note.as_deref().unwrap_or("")) }
                }
            }
            section id="bookings" {
                h2 { "Bookings" }
                @if upcoming.is_empty() {
                    p.meta { "No upcoming bookings." }
                }
                @for b in &upcoming {
                    (upcoming_booking(&url, &hidden_csrf, b, tz, &local_now))
                }
                h3 { "Book for this customer" }
                form.booking method="post" action=(format!("{url}/book")) {
                    (hidden_csrf)
                    (hidden_key())
                    p {
                        label for="service" { "Service" } br;
                        select id="service" name="service" required {
                            @for s in &business.services {
                                option value=(s.name) { (s.name) " (" (s.minutes) " min)" }
                            }
                        }
                    }
                    p {
                        label for="when" { "Day and time" } br;
                        input id="when" name="when" type="datetime-local" min=(local_now) required;
                    }
                    @if !business.staff.is_empty() {
                        p {
                            label for="staff" { "Staff" } br;
                            select id="staff" name="staff" {
                                option value="" { "Anyone free" }
                                @for s in &business.staff {
                                    option value=(s.name) { (s.name) }
                                }
                            }
                        }
                    }
                    p {
                        label for="name" { "Name" } br;
                        input id="name" name="name" type="text" maxlength=(MAX_NAME_CHARS) value=[name.as_deref()];
                    }
                    button type="submit" { "Book" }
                    @match reach.channel {
                        Some(channel) => span.meta { " The customer is told by " (channel_name(channel)) "." },
                        None => span.meta { " The customer cannot be told by text: " (reach.note.as_deref().unwrap_or("")) },
                    }
                }
            }
            section {
                form method="post" action=(format!("{url}/forget"))
                    onsubmit="return confirm('Erase everything Sara keeps about this caller? Their bookings stay as anonymous time blocks.')" {
                    (hidden_csrf)
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
    Ok(shell(&format!("Sara — {title}"), Some(auth), body))
}

/// One upcoming booking of the customer with its "Move" and "Cancel" forms.
fn upcoming_booking(
    url: &str,
    hidden_csrf: &Markup,
    b: &BookingView,
    tz: Tz,
    local_now: &str,
) -> Markup {
    let start = DateTime::parse_from_rfc3339(&b.start).ok();
    let when = start
        .map(|s| s.with_timezone(&tz).format("%a %b %-d, %H:%M").to_string())
        .unwrap_or_default();
    let value = start
        .map(|s| s.with_timezone(&tz).format(LOCAL_INPUT).to_string())
        .unwrap_or_default();
    let input = format!("move-{}", b.id);
    html! {
        div.booking {
            p {
                strong { (b.service) } " " (when)
                @if let Some(staff) = &b.staff { " with " (staff) }
                " " span.badge { (b.status) }
                @if b.attendance.as_deref() == Some("confirmed") { " " span.badge.ok { "attending" } }
            }
            div.actions {
                form method="post" action=(format!("{url}/move")) {
                    (hidden_csrf)
                    input type="hidden" name="booking" value=(b.id);
                    label for=(input) { "New time" } " "
                    input id=(input) name="when" type="datetime-local" min=(local_now) value=(value) required;
                    " " button type="submit" { "Move" }
                }
                form method="post" action=(format!("{url}/cancel"))
                    onsubmit="return confirm('Cancel this booking? The customer is told.')" {
                    (hidden_csrf)
                    input type="hidden" name="booking" value=(b.id);
                    button type="submit" { "Cancel" }
                }
            }
        }
    }
}

/// A button that posts a refused change again at a free time.
fn alternative(
    url: &str,
    hidden_csrf: &Markup,
    retry: &Retry,
    at: DateTime<Utc>,
    tz: Tz,
) -> Markup {
    let local = at.with_timezone(&tz);
    let label = local.format("%a %b %-d, %-I:%M %p").to_string();
    let when = local.format(LOCAL_INPUT).to_string();
    html! {
        @match retry {
            Retry::Book { service, staff, name } => {
                form method="post" action=(format!("{url}/book")) {
                    (hidden_csrf)
                    input type="hidden" name="key" value=(uuid::Uuid::new_v4().to_string());
                    input type="hidden" name="service" value=(service);
                    input type="hidden" name="when" value=(when);
                    @if let Some(staff) = staff { input type="hidden" name="staff" value=(staff); }
                    @if let Some(name) = name { input type="hidden" name="name" value=(name); }
                    button type="submit" { "Book " (label) }
                }
            }
            Retry::Move { booking } => {
                form method="post" action=(format!("{url}/move")) {
                    (hidden_csrf)
                    input type="hidden" name="booking" value=(booking.to_string());
                    input type="hidden" name="when" value=(when);
                    button type="submit" { "Move to " (label) }
                }
            }
            Retry::Nothing => {}
        }
    }
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
        @if turn.redacted {
            div.turn {
                div.meta { span.badge { (channel_name(turn.channel)) } " " (at) " · " (turn.intent) }
                p.meta { "The words of this turn were removed after the retention window." }
            }
        } @else if turn.channel == Channel::Staff {
            div.turn.staffturn {
                div.meta { span.badge.staff { "Staff" } " " (at) }
                @match turn.intent.as_str() {
                    "staff_reply" => p { (turn.reply) },
                    "take_over" => p.meta { "Staff took the conversation over." },
                    "hand_back" => p.meta { "Staff handed the conversation back to Sara." },
                    "staff_book" => p { "Booked by staff: " (turn.reply) },
                    "staff_move" => p { "Moved by staff: " (turn.reply) },
                    "staff_cancel" => p { "Cancelled by staff: " (turn.reply) },
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
    )
)]
async fn take_over(State(app): State<AppState>, post: ConsolePost) -> Result<Response, ApiError> {
    app.engine
        .staff(post.phone.clone(), StaffAction::TakeOver)
        .await?;
    Ok(post.done("taken_over"))
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
        (status = 400, description = "Not a phone number, or the form cannot be read", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
    )
)]
async fn hand_back(State(app): State<AppState>, post: ConsolePost) -> Result<Response, ApiError> {
    app.engine.hand_back(post.phone.clone()).await?;
    Ok(post.done("handed_back"))
}

/// How the customer is reached now (for a reply, or a booking's confirmation).
async fn reach_of(app: &AppState, phone: &Phone) -> Result<Reach, ApiError> {
    let log = app
        .db
        .turns_for(phone.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("no conversation with that phone"))?;
    Ok(reach(
        &log.turns,
        app.engine.now(),
        TwilioRest::configured(&app.config),
    ))
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
        (status = 409, description = "No channel Sara can write on reaches the customer now", body = ErrorBody),
    )
)]
async fn reply(State(app): State<AppState>, post: ConsolePost) -> Result<Response, ApiError> {
    let text = post.required("text")?;
    if text.chars().count() > MAX_REPLY_CHARS {
        return Err(ApiError::bad_request(format!(
            "the reply is longer than {MAX_REPLY_CHARS} characters"
        )));
    }
    let reach = reach_of(&app, &post.phone).await?;
    let channel = reach.channel.ok_or_else(|| {
        ApiError::rejected(
            StatusCode::CONFLICT,
            reach
                .note
                .unwrap_or_else(|| "no SMS or WhatsApp channel to reply on".into()),
        )
    })?;
    app.engine
        .staff(
            post.phone.clone(),
            StaffAction::Reply {
                channel,
                text: text.to_string(),
                key: post.key(),
            },
        )
        .await?;
    Ok(post.done("sent"))
}

/// The local wall-clock time of a `datetime-local` field.
fn local_time(post: &ConsolePost, field: &str) -> Result<NaiveDateTime, ApiError> {
    let value = post.required(field)?;
    NaiveDateTime::parse_from_str(value, LOCAL_INPUT)
        .map_err(|_| ApiError::bad_request(format!("{field:?} is not a day and time")))
}

fn booking_id(post: &ConsolePost) -> Result<BookingId, ApiError> {
    post.required("booking")?
        .parse()
        .map_err(|_| ApiError::bad_request("not a booking id"))
}

/// Staff book for the customer, through the conversation and calendar actors like the
/// customer's own booking; the customer gets a confirmation.
#[utoipa::path(
    post,
    path = "/admin/conversations/{phone}/book",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    request_body(content = BookForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Booked (a bearer request: `{\"status\"}`, `held` while the calendar is unreachable), or refused (a browser: the page again, with the reason and the free times to pick)", content((ActionDone = "application/json"), (String = "text/html"))),
        (status = 303, description = "Booked: back to the page (a browser)"),
        (status = 400, description = "Not a phone number, no service or day and time, a day and time not `YYYY-MM-DDTHH:MM`, a name over 100 characters, or the form cannot be read", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
        (status = 404, description = "No conversation with that phone", body = ErrorBody),
        (status = 409, description = "Refused (a bearer request): the reason and the nearest free times", body = ChangeRefused),
    )
)]
async fn book(State(app): State<AppState>, post: ConsolePost) -> Result<Response, ApiError> {
    let service = post.required("service")?.to_string();
    let when = local_time(&post, "when")?;
    let staff = post.field("staff").map(str::to_string);
    let name = post.field("name").map(str::to_string);
    if name
        .as_deref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
    {
        return Err(ApiError::bad_request(format!(
            "the name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    let key = post.key();
    // The key doubles as the booking's id, so a form sent twice books once.
    let id = key.parse().unwrap_or_else(|_| uuid::Uuid::new_v4());
    let change = StaffChange::Book {
        id,
        service: service.clone(),
        date: when.date(),
        time: when.time(),
        staff: staff.clone(),
        name: name.clone(),
    };
    let retry = Retry::Book {
        service,
        staff,
        name,
    };
    staff_change(&app, post, change, key, retry, "booked").await
}

/// Staff move one of the customer's bookings to a new time.
#[utoipa::path(
    post,
    path = "/admin/conversations/{phone}/move",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    request_body(content = MoveForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Moved (a bearer request: `{\"status\"}`, `held` while the calendar is unreachable), or refused (a browser: the page again, with the reason and the free times to pick)", content((ActionDone = "application/json"), (String = "text/html"))),
        (status = 303, description = "Moved: back to the page (a browser)"),
        (status = 400, description = "Not a phone number, no or a malformed booking id or day and time, or the form cannot be read", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
        (status = 404, description = "No conversation with that phone", body = ErrorBody),
        (status = 409, description = "Refused (a bearer request): the reason and the nearest free times", body = ChangeRefused),
    )
)]
async fn move_booking(
    State(app): State<AppState>,
    post: ConsolePost,
) -> Result<Response, ApiError> {
    let booking = booking_id(&post)?;
    let when = local_time(&post, "when")?;
    let change = StaffChange::Move {
        booking,
        date: when.date(),
        time: when.time(),
    };
    let key = post.key();
    staff_change(&app, post, change, key, Retry::Move { booking }, "moved").await
}

/// Staff cancel one of the customer's bookings.
#[utoipa::path(
    post,
    path = "/admin/conversations/{phone}/cancel",
    tag = "console",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    request_body(content = CancelForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Cancelled (a bearer request: `{\"status\"}`, `held` while the calendar is unreachable), or refused (a browser: the page again, with the reason and the free times to pick)", content((ActionDone = "application/json"), (String = "text/html"))),
        (status = 303, description = "Cancelled: back to the page (a browser)"),
        (status = 400, description = "Not a phone number, no or a malformed booking id, or the form cannot be read", body = ErrorBody),
        (status = 403, description = "Missing or wrong CSRF token with the session cookie", body = ErrorBody),
        (status = 404, description = "No conversation with that phone", body = ErrorBody),
        (status = 409, description = "Refused (a bearer request): the reason and the nearest free times", body = ChangeRefused),
    )
)]
async fn cancel(State(app): State<AppState>, post: ConsolePost) -> Result<Response, ApiError> {
    let booking = booking_id(&post)?;
    let key = post.key();
    let change = StaffChange::Cancel { booking };
    staff_change(&app, post, change, key, Retry::Nothing, "cancelled").await
}

/// Runs a booking change through the engine. Done: back to the page (the transcript shows
/// it). Refused: a browser gets the page with the reason and the free times to pick, a
/// script 409 JSON `{"status": "refused", "reason", "alternatives": [RFC 3339]}`.
async fn staff_change(
    app: &AppState,
    post: ConsolePost,
    change: StaffChange,
    key: String,
    retry: Retry,
    status: &str,
) -> Result<Response, ApiError> {
    let notify = reach_of(app, &post.phone).await?.channel;
    let outcome = app
        .engine
        .staff(
            post.phone.clone(),
            StaffAction::Change {
                change,
                notify,
                key,
            },
        )
        .await?;
    let (reason, alternatives) = match outcome {
        StaffOutcome::Done => return Ok(post.done(status)),
        // Held as pending (the page lists it so); the retry job confirms it to the customer.
        StaffOutcome::Held => return Ok(post.done("held")),
        StaffOutcome::Refused {
            reason,
            alternatives,
        } => (reason, alternatives),
    };
    if post.auth.session().is_none() {
        let tz = app.engine.business().timezone;
        let alternatives: Vec<String> = (alternatives.iter())
            .map(|a| a.with_timezone(&tz).to_rfc3339())
            .collect();
        let body = ChangeRefused {
            status: "refused".into(),
            reason,
            alternatives,
        };
        return Ok((StatusCode::CONFLICT, Json(body)).into_response());
    }
    let notice = Notice {
        reason,
        alternatives,
        retry,
    };
    // 200: the browser shows the page again (error statuses answer in JSON, see
    // `rejections`); nothing was written.
    Ok(render(app, &post.auth, &post.phone, Some(notice))
        .await?
        .into_response())
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
    )
)]
async fn forget(State(app): State<AppState>, post: ConsolePost) -> Result<Response, ApiError> {
    let forgotten = crate::privacy::forget_caller(
        &app.db,
        &app.cache,
        Some(&app.engine),
        &post.phone,
        app.engine.now(),
    )
    .await?;
    if post.auth.session().is_some() {
        Ok(Redirect::to("/admin").into_response())
    } else {
        Ok(Json(forgotten).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(channel: Channel, at: DateTime<Utc>) -> TurnView {
        TurnView {
            seq: 1,
            channel,
            provider_id: None,
            text: "hi".into(),
            reply: String::new(),
            intent: "greet".into(),
            nlu: "rules".into(),
            at,
            understood: "{}".into(),
            elapsed_ms: 1,
            redacted: false,
        }
    }

    #[test]
    fn a_staff_message_goes_where_the_customer_can_read_it() {
        let now = Utc::now();
        let hours = |h| now - chrono::Duration::hours(h);
        let whatsapp = |h| vec![turn(Channel::WhatsApp, hours(h)), turn(Channel::Staff, now)];
        let cases = [
            (
                vec![turn(Channel::Sms, hours(100))],
                true,
                Some(Channel::Sms),
                false,
            ),
            (
                vec![turn(Channel::Voice, hours(1))],
                false,
                Some(Channel::Sms),
                false,
            ),
            (whatsapp(23), false, Some(Channel::WhatsApp), false),
            (whatsapp(25), true, Some(Channel::Sms), true),
            (whatsapp(25), false, None, true),
            (vec![turn(Channel::Email, hours(1))], true, None, true),
            (Vec::new(), true, None, true),
        ];
        for (turns, sms, channel, noted) in cases {
            let got = reach(&turns, now, sms);
            assert_eq!(got.channel, channel, "{turns:?} sms={sms}");
            assert_eq!(got.note.is_some(), noted, "{got:?}");
        }
    }
}
