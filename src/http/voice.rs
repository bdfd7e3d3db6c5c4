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
use super::{ApiError, AppState, caller_id};
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
    /// `verified` when the call start's SHAKEN/STIR verdict verified the caller ID (see
    /// `caller_id`); the URL is Twilio-signed, so a caller cannot add it.
    caller: Option<String>,
}

fn gather_url(app: &AppState, n: u32, verified: bool) -> String {
    format!(
        "{}/webhook/voice/gather?n={n}{}",
        app.config.server.public_url.trim_end_matches('/'),
        if verified { "&caller=verified" } else { "" }
    )
}

/// Speaks `reply` and listens for the next turn, or dials staff, or hangs up.
fn speak(app: &AppState, reply: &Reply, next: u32, verified: bool) -> TwiML {
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
    TwiML::new().gather_speech(&gather_url(app, next, verified), &reply.text)
}

/// A caller whose number is withheld (`From=anonymous`, `Restricted`, …) has no phone to
/// keep a conversation or a booking under: Sara says what she can do without one and puts
/// the call through to staff (voicemail if nobody answers) instead of failing the call.
fn withheld_number(app: &AppState) -> Response {
    let reply = Reply {
        text: "I can't see your number, so I can't book or look up an appointment on this call. \
               You can text us, or call again from a number that isn't withheld. \
               I'll put you through to the team now."
            .into(),
        handover: true,
        ..Reply::default()
    };
    metrics::counter!("sara_withheld_number_calls_total").increment(1);
    twiml(speak(app, &reply, 1, false).render())
}

fn is_withheld(params: &[(String, String)]) -> bool {
    param(params, "From").and_then(Phone::parse).is_none()
}

async fn call_start(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    if is_withheld(&params) {
        return Ok(withheld_number(&app));
    }
    let hello = dialogue::greeting(app.engine.business(), Channel::Voice);
    let verified = caller_id::verified_by_twilio(&params);
    Ok(twiml(speak(&app, &hello, 1, verified).render()))
}

async fn gather(
    State(app): State<AppState>,
    Query(turn): Query<Turn>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    let n = turn.n.unwrap_or(1);
    if is_withheld(&params) {
        return Ok(withheld_number(&app));
    }
    let verified =
        turn.caller.as_deref() == Some("verified") || caller_id::verified_by_twilio(&params);
    let Some(inbound) = gather_inbound(&params, n, app.clock.now())? else {
        // Silence or noise: ask again without spending a turn.
        let again = Reply {
            text: "Sorry, I didn't catch that. How can I help?".into(),
            ..Reply::default()
        };
        return Ok(twiml(speak(&app, &again, n, verified).render()));
    };
    if !verified && caller_id::asks_to_change_a_booking(&app, &inbound.text) {
        metrics::counter!("sara_unverified_caller_handovers_total").increment(1);
        let reply = Reply {
            text: "I can't confirm it's really you calling from this number, so I can't look \
                   up, move or cancel an appointment on this call. I can still make a new \
                   booking, or you can text us from your phone. I'll put you through to the \
                   team now."
                .into(),
            handover: true,
            ..Reply::default()
        };
        return Ok(twiml(speak(&app, &reply, n, verified).render()));
    }
    let reply = answer(&app, inbound).await?;
    Ok(twiml(
        speak(&app, &reply, n.saturating_add(1), verified).render(),
    ))
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
