//! Twilio Voice: `POST /webhook/voice` (a call starts), `/webhook/voice/gather` (what the
//! caller said, transcribed by Twilio) and `/webhook/voice/status` (call status callbacks).
//! Each spoken turn is one engine turn; its provider id is `CallSid:n`, where `n` counts the
//! gathers of the call (carried in the action URL, which Twilio signs).

use axum::Router;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use sara_actors::dialogue::{self, Reply};
use sara_actors::engine::Inbound;
use sara_actors::model::{Channel, Phone};
use serde::Deserialize;

use super::sms::twiml;
use super::webhook::{TwilioForm, answer, clip, param, required_sid};
use super::{ApiError, AppState};
use crate::channels::twilio::TwiML;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhook/voice", post(call_start))
        .route("/webhook/voice/gather", post(gather))
        .route("/webhook/voice/status", post(status))
}

#[derive(Deserialize)]
struct Turn {
    /// Which gather of the call this is (1 for the first).
    n: Option<u32>,
}

fn gather_url(app: &AppState, n: u32) -> String {
    format!(
        "{}/webhook/voice/gather?n={n}",
        app.config.server.public_url.trim_end_matches('/')
    )
}

/// Speaks `reply` and listens for the next turn, or dials staff, or hangs up.
fn speak(app: &AppState, reply: &Reply, next: u32) -> TwiML {
    let business = app.engine.business();
    if reply.handover {
        let doc = TwiML::new().say(&reply.text);
        return match &business.phone {
            Some(staff) => doc
                .dial(staff.as_str())
                .say("Nobody could take the call just now. Please leave a message after the tone.")
                .record(120),
            None => doc
                .say("Please leave a message after the tone and the team will call you back.")
                .record(120),
        };
    }
    if reply.end {
        return TwiML::new().say(&reply.text).hangup();
    }
    TwiML::new().gather_speech(&gather_url(app, next), &reply.text)
}

async fn call_start(
    State(app): State<AppState>,
    _signed: TwilioForm,
) -> Result<Response, ApiError> {
    let hello = dialogue::greeting(app.engine.business(), Channel::Voice);
    Ok(twiml(speak(&app, &hello, 1).render()))
}

async fn gather(
    State(app): State<AppState>,
    Query(turn): Query<Turn>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    let n = turn.n.unwrap_or(1);
    let Some(inbound) = gather_inbound(&params, n, Utc::now())? else {
        // Silence or noise: ask again without spending a turn.
        let again = Reply {
            text: "Sorry, I didn't catch that. How can I help?".into(),
            ..Reply::default()
        };
        return Ok(twiml(speak(&app, &again, n).render()));
    };
    let reply = answer(&app, inbound).await?;
    Ok(twiml(speak(&app, &reply, n.saturating_add(1)).render()))
}

/// The engine's view of a (signature-checked) gather webhook, the `n`th of its call: `None`
/// when Twilio heard nothing (silence or noise).
pub fn gather_inbound(
    params: &[(String, String)],
    n: u32,
    at: DateTime<Utc>,
) -> Result<Option<Inbound>, ApiError> {
    let phone = param(params, "From")
        .and_then(Phone::parse)
        .ok_or_else(|| ApiError::bad_request("From must be a phone number"))?;
    let call = required_sid(params, "CallSid", &["CA"])?;
    let speech = param(params, "SpeechResult").unwrap_or_default().trim();
    if speech.is_empty() {
        return Ok(None);
    }
    Ok(Some(Inbound {
        phone,
        channel: Channel::Voice,
        text: clip(speech),
        provider_id: Some(format!("{call}:{n}")),
        at,
    }))
}

async fn status(TwilioForm(params): TwilioForm) -> Result<impl IntoResponse, ApiError> {
    tracing::info!(
        status = param(&params, "CallStatus").unwrap_or("unknown"),
        "call status"
    );
    Ok(StatusCode::NO_CONTENT)
}
