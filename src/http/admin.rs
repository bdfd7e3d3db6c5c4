//! Admin routes (the admin token, see [`super::auth`]): `/admin/stats`, `/admin/bookings`, `/logs/{id}` and the
//! fault-injection routes `/admin/debug/panic/{phone}` and `/admin/debug/clock` (only with
//! `debug.faults`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sara_actors::model::Phone;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::AdminAuth;
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::store::forget::AuditEntry;
use crate::store::outbox::OutboxView;
use crate::store::{BookingCounts, BookingView, TurnView, VoicemailView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(bookings))
        .routes(routes!(outbox))
        .routes(routes!(audit))
        .routes(routes!(logs))
        .routes(routes!(panic))
        .routes(routes!(clock))
}

/// The longest single advance of the debug clock (ten years), so no instant overflows.
const MAX_ADVANCE_MINUTES: i64 = 10 * 366 * 24 * 60;

/// `{"advance_minutes": N}`.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ClockAdvance {
    /// 0 or more (the clock never goes back), at most ten years.
    #[schema(minimum = 0, maximum = 5_270_400)]
    advance_minutes: i64,
}

/// `POST /admin/debug/clock`.
#[derive(Serialize, ToSchema)]
struct ClockNow {
    /// The clock's now, RFC 3339 in the business offset.
    now: String,
}

/// Moves the process's clock N minutes forward (never back), then runs what became due:
/// the scheduler's jobs (reminders) and the outbox's rows, until neither has anything due.
#[utoipa::path(
    post,
    path = "/admin/debug/clock",
    tag = "admin",
    security(("admin_bearer" = []), ("admin_session" = [])),
    request_body = ClockAdvance,
    responses(
        (status = 200, description = "The clock's new now", body = ClockNow),
        (status = 400, description = "Not `{\"advance_minutes\": N}` with N in range", body = ErrorBody),
        (status = 404, description = "`debug.faults` is off", body = ErrorBody),
    )
)]
async fn clock(
    State(app): State<AppState>,
    auth: Result<AdminAuth, ApiError>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if !app.config.debug.faults {
        return Err(ApiError::not_found("no such route"));
    }
    auth?;
    let advance: ClockAdvance = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request("expected a JSON body {\"advance_minutes\": N} with N >= 0")
    })?;
    let minutes = advance.advance_minutes;
    if !(0..=MAX_ADVANCE_MINUTES).contains(&minutes) {
        return Err(ApiError::bad_request(format!(
            "advance_minutes must be between 0 and {MAX_ADVANCE_MINUTES}"
        )));
    }
    let now = app.clock.advance(chrono::Duration::minutes(minutes));
    if minutes > 0 {
        tracing::warn!(minutes, now = %now, "debug clock advanced");
    }
    app.engine.wake_background();
    app.engine.settle().await;
    let now = app
        .clock
        .now()
        .with_timezone(&app.engine.business().timezone);
    Ok(Json(ClockNow {
        now: now.to_rfc3339(),
    }))
}

/// `GET /admin/stats`.
#[derive(Serialize, ToSchema)]
struct StatsBody {
    conversations: i64,
    /// Conversation actors in memory now.
    live_actors: usize,
    turns: i64,
    bookings: BookingCounts,
    /// Conversation actors restarted after a panic, since this process started.
    restarts: u64,
    /// Turns the rules answered because the model could not, since this process started.
    fallbacks: u64,
}

#[utoipa::path(
    get,
    path = "/admin/stats",
    tag = "admin",
    security(("admin_bearer" = []), ("admin_session" = [])),
    responses((status = 200, description = "Counts", body = StatsBody))
)]
async fn stats(_: AdminAuth, State(app): State<AppState>) -> Result<Json<StatsBody>, ApiError> {
    let store = app.db.stats().await?;
    let engine = app.engine.stats().await;
    Ok(Json(StatsBody {
        conversations: store.conversations,
        live_actors: engine.live_conversations,
        turns: store.turns,
        bookings: store.bookings,
        restarts: engine.restarts,
        fallbacks: engine.fallbacks,
    }))
}

#[utoipa::path(
    get,
    path = "/admin/bookings",
    tag = "admin",
    security(("admin_bearer" = []), ("admin_session" = [])),
    responses((status = 200, description = "Every booking of every calendar", body = [BookingView]))
)]
async fn bookings(
    _: AdminAuth,
    State(app): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let tz = app.engine.business().timezone;
    Ok(Json(app.db.bookings(tz).await?))
}

/// How many messages `GET /admin/outbox` lists (the newest).
const OUTBOX_LIST_LIMIT: i64 = 500;

#[utoipa::path(
    get,
    path = "/admin/outbox",
    tag = "admin",
    security(("admin_bearer" = []), ("admin_session" = [])),
    responses((status = 200, description = "The newest 500 outbound messages, newest first", body = [OutboxView]))
)]
async fn outbox(_: AdminAuth, State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let list = app
        .db
        .outbox()
        .list_outbox(OUTBOX_LIST_LIMIT)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "outbox list failed");
            ApiError::unavailable("store unavailable")
        })?;
    Ok(Json(list))
}

/// How many rows `GET /logs/audit` lists (the newest).
const AUDIT_LIST_LIMIT: i64 = 500;

/// The privacy audit: who was forgotten when (by contact key) and what went, and each
/// retention run (what it redacted).
#[utoipa::path(
    get,
    path = "/logs/audit",
    tag = "admin",
    security(("admin_bearer" = []), ("admin_session" = [])),
    responses((status = 200, description = "The newest 500 audit rows", body = [AuditEntry]))
)]
async fn audit(_: AdminAuth, State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(app.db.privacy().audit(AUDIT_LIST_LIMIT).await?))
}

/// `GET /logs/{id}`.
#[derive(Serialize, ToSchema)]
struct LogBody {
    /// The contact's phone (E.164); null for voicemails of a withheld number.
    conversation: Option<String>,
    turns: Vec<LogTurn>,
    voicemails: Vec<VoicemailView>,
}

#[derive(Serialize, ToSchema)]
struct LogTurn {
    #[serde(flatten)]
    turn: TurnView,
    /// What the caller actually heard of a reply they interrupted (voice relay).
    #[serde(skip_serializing_if = "Option::is_none")]
    heard: Option<String>,
}

/// One conversation's turns in order, and the call's voicemails.
#[utoipa::path(
    get,
    path = "/logs/{id}",
    tag = "admin",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("id" = String, Path, description = "A CallSid, MessageSid, WhatsApp message id or phone number")),
    responses(
        (status = 200, description = "The conversation's turns", body = LogBody),
        (status = 404, description = "No conversation or voicemail with that id", body = ErrorBody),
    )
)]
async fn logs(
    _: AdminAuth,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LogBody>, ApiError> {
    let log = app.db.turns_for(&id).await?;
    let phone = log
        .as_ref()
        .and_then(|l| Phone::parse(&l.conversation))
        .or_else(|| Phone::parse(&id));
    // A call's voicemails (by CallSid, or the caller's), shown even when the caller never
    // spoke a turn.
    let voicemails = app.db.voicemails(&id, phone.as_ref()).await?;
    if log.is_none() && voicemails.is_empty() {
        return Err(ApiError::not_found("no conversation with that id"));
    }
    let heard = match &phone {
        Some(phone) => app.db.heard_of(phone).await?,
        None => Vec::new(),
    };
    let (conversation, turns) = match log {
        Some(log) => (Some(log.conversation), log.turns),
        None => (phone.map(|p| p.as_str().to_string()), Vec::new()),
    };
    let turns = turns
        .into_iter()
        .map(|turn| {
            let heard = heard
                .iter()
                .find(|(p, _)| Some(p) == turn.provider_id.as_ref())
                .map(|(_, what)| what.clone());
            LogTurn { turn, heard }
        })
        .collect();
    Ok(Json(LogBody {
        conversation,
        turns,
        voicemails,
    }))
}

/// `POST /admin/debug/panic/{phone}`.
#[derive(Serialize, ToSchema)]
struct Panicking {
    /// Always `panicking`.
    status: &'static str,
}

/// Makes that conversation's actor panic now (to prove supervision).
#[utoipa::path(
    post,
    path = "/admin/debug/panic/{phone}",
    tag = "admin",
    security(("admin_bearer" = []), ("admin_session" = [])),
    params(("phone" = String, Path, description = "The conversation's phone number, E.164", pattern = r"^\+[1-9][0-9]{7,14}$")),
    responses(
        (status = 202, description = "The actor is panicking", body = Panicking),
        (status = 400, description = "Not a phone number", body = ErrorBody),
        (status = 404, description = "`debug.faults` is off", body = ErrorBody),
    )
)]
async fn panic(
    State(app): State<AppState>,
    auth: Result<AdminAuth, ApiError>,
    Path(phone): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !app.config.debug.faults {
        return Err(ApiError::not_found("no such route"));
    }
    auth?;
    let phone = Phone::parse(&phone).ok_or_else(|| ApiError::bad_request("not a phone number"))?;
    if !app.engine.inject_panic(phone) {
        return Err(ApiError::unavailable("engine stopped"));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Panicking {
            status: "panicking",
        }),
    ))
}
