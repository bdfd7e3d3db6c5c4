//! Twilio Voice: `POST /webhook/voice` (a call starts), `/webhook/voice/gather` (what the
//! caller said, transcribed by Twilio) and `/webhook/voice/status` (call status callbacks).
//! Each spoken turn is one engine turn; its provider id is `CallSid:n`, where `n` counts the
//! gathers of the call (carried in the action URL, which Twilio signs).
//!
//! Every `<Gather>` is followed by a `<Redirect>` (silence never ends the call), every
//! `<Dial>` to staff has an `action` (`/webhook/voice/dial`: voicemail only when nobody
//! answered) and every `<Record>` its own callbacks (`/webhook/voice/recording…`, see
//! `voicemail`), so no recording ever reaches a gather URL as a turn.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sara_actors::dialogue::{self, Reply};
use sara_actors::engine::Inbound;
use sara_actors::model::{Channel, Phone};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::sms::twiml;
use super::webhook::{TwilioForm, answer, clip, param, required_sid};
use super::{ApiError, AppState, caller_id, relay, voicemail};
use crate::channels::twilio::TwiML;
use crate::config::VoiceMode;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(call_start))
        .routes(routes!(gather))
        .routes(routes!(status))
        .routes(routes!(dial_done))
        .routes(routes!(relay::handshake))
        .routes(routes!(relay::ended))
        .routes(routes!(voicemail::recorded))
        .routes(routes!(voicemail::status))
        .routes(routes!(voicemail::transcription))
}

/// The gather's place in the call, carried in the action URL Sara wrote (and Twilio signed).
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Turn {
    /// Which gather of the call this is (1 for the first).
    n: Option<u32>,
    /// `verified` when the call start's SHAKEN/STIR verdict verified the caller ID (see
    /// `caller_id`); the URL is Twilio-signed, so a caller cannot add it.
    caller: Option<String>,
    /// How many times in a row this gather heard nothing.
    quiet: Option<u32>,
    /// How many times in a row this gather heard words below `voice.min_confidence`.
    unsure: Option<u32>,
}

/// Where a spoken prompt listens next: the gather `n` of the call, and how many silent or
/// unclear answers came before it (carried in the signed action URL, so no state is kept).
#[derive(Clone, Copy, Debug, Default)]
struct Listen {
    n: u32,
    verified: bool,
    quiet: u32,
    unsure: u32,
}

/// Re-prompts (after silence, or after words Twilio was unsure of) before the caller is put
/// through to the team.
const MAX_REPROMPTS: u32 = 2;

/// `path` under the public URL.
pub fn public(app: &AppState, path: &str) -> String {
    format!(
        "{}{path}",
        app.config.server.public_url.trim_end_matches('/')
    )
}

fn gather_url(app: &AppState, listen: Listen) -> String {
    let mut url = public(app, &format!("/webhook/voice/gather?n={}", listen.n));
    if listen.verified {
        url.push_str("&caller=verified");
    }
    if listen.quiet > 0 {
        url.push_str(&format!("&quiet={}", listen.quiet));
    }
    if listen.unsure > 0 {
        url.push_str(&format!("&unsure={}", listen.unsure));
    }
    url
}

/// Words the speech recognizer should expect: the services' and the staff's names (the ones
/// a caller is most likely to say, "a whitening with Anna", and a recognizer most likely to
/// miss), each once, in the config's order.
pub fn hints(app: &AppState) -> String {
    let business = app.engine.business();
    let mut words: Vec<String> = Vec::new();
    let names = business.services.iter().map(|s| &s.name);
    for name in names.chain(business.staff.iter().map(|s| &s.name)) {
        // A comma separates hints; a name with one is still one phrase.
        let word = name.replace(',', " ").trim().to_string();
        if !word.is_empty() && !words.iter().any(|w| w.eq_ignore_ascii_case(&word)) {
            words.push(word);
        }
    }
    words.join(",")
}

/// The voicemail: a prompt, the `<Record>` whose recording goes to its own callbacks (never
/// to a gather URL), and a goodbye when the caller left no message.
pub fn voicemail_twiml(app: &AppState, doc: TwiML, prompt: &str) -> TwiML {
    let transcribe = app
        .config
        .voice
        .transcribe_voicemail
        .then(|| public(app, "/webhook/voice/recording/transcription"));
    doc.say(prompt)
        .record(
            120,
            &public(app, "/webhook/voice/recording"),
            &public(app, "/webhook/voice/recording/status"),
            transcribe.as_deref(),
        )
        .say("I didn't hear a message. Goodbye.")
        .hangup()
}

/// Puts the caller through to staff after `doc`: `<Dial>` with an action (so a finished
/// staff call ends there and only an unanswered one reaches the voicemail), or the voicemail
/// at once when no staff number is configured.
pub fn put_through(app: &AppState, doc: TwiML) -> TwiML {
    match &app.engine.business().phone {
        Some(staff) => doc.dial(staff.as_str(), &public(app, "/webhook/voice/dial")),
        None => voicemail_twiml(
            app,
            doc,
            "Please leave a message after the tone and the team will call you back.",
        ),
    }
}

/// Speaks `reply` and listens for the next turn, or dials staff, or hangs up.
fn speak(app: &AppState, reply: &Reply, listen: Listen) -> TwiML {
    if reply.handover {
        return put_through(app, TwiML::new().say(&reply.text));
    }
    if reply.end {
        return TwiML::new().say(&reply.text).hangup();
    }
    // Silence falls through the <Gather> to the redirect: the same gather, one more quiet.
    let silent = Listen {
        quiet: listen.quiet + 1,
        ..listen
    };
    TwiML::new()
        .gather_speech(&gather_url(app, listen), &reply.text, &hints(app))
        .redirect(&gather_url(app, silent))
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
    twiml(speak(app, &reply, Listen::default()).render())
}

fn is_withheld(params: &[(String, String)]) -> bool {
    param(params, "From").and_then(Phone::parse).is_none()
}

/// A call starts: the greeting and the first `<Gather>` (in relay mode a `<Connect>` to the
/// ConversationRelay WebSocket).
#[utoipa::path(
    post,
    path = "/webhook/voice",
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::CallForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML: `<Say>` and `<Gather input=\"speech\">`, or `<Connect><ConversationRelay>`", content_type = "text/xml", body = String),
        (status = 400, description = "A parameter repeats, or (relay mode) `CallSid` is not a call sid", body = super::openapi::ErrorBody),
    )
)]
async fn call_start(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    if is_withheld(&params) {
        return Ok(withheld_number(&app));
    }
    if app.config.voice.mode == VoiceMode::Relay {
        return relay::connect(&app, &params);
    }
    let hello = dialogue::greeting(app.engine.business(), Channel::Voice);
    let listen = Listen {
        n: 1,
        verified: caller_id::verified_by_twilio(&params),
        ..Listen::default()
    };
    Ok(twiml(speak(&app, &hello, listen).render()))
}

/// What the caller said: one turn, then the next `<Gather>`, a `<Dial>` to staff, or `<Hangup/>`.
#[utoipa::path(
    post,
    path = "/webhook/voice/gather",
    tag = "twilio",
    security(("twilio_signature" = [])),
    params(Turn),
    request_body(content = super::openapi::GatherForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML: `<Say>` and the next `<Gather>`, `<Dial>` or `<Hangup/>`", content_type = "text/xml", body = String),
        (status = 400, description = "The query cannot be read, `CallSid` is not a call sid, or a parameter repeats", body = super::openapi::ErrorBody),
    )
)]
async fn gather(
    State(app): State<AppState>,
    Query(turn): Query<Turn>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    if is_withheld(&params) {
        return Ok(withheld_number(&app));
    }
    let listen = Listen {
        n: turn.n.unwrap_or(1),
        verified: turn.caller.as_deref() == Some("verified")
            || caller_id::verified_by_twilio(&params),
        quiet: turn.quiet.unwrap_or(0),
        unsure: turn.unsure.unwrap_or(0),
    };
    let Some(inbound) = gather_inbound(&params, listen.n, app.clock.now())? else {
        // Silence or noise: ask again without spending a turn, twice; then the team. The
        // redirect after a <Gather> already counts the silence that led to it.
        let quiet = listen.quiet.max(1);
        if quiet > MAX_REPROMPTS {
            metrics::counter!("sara_voice_reprompt_handovers_total").increment(1);
            let reply =
                handover("I can't hear you on this line. I'll put you through to the team.");
            return Ok(twiml(speak(&app, &reply, listen).render()));
        }
        let again = Reply {
            text: "Sorry, I didn't catch that. How can I help?".into(),
            ..Reply::default()
        };
        return Ok(twiml(
            speak(&app, &again, Listen { quiet, ..listen }).render(),
        ));
    };
    if is_unclear(&app, &params) {
        let unsure = listen.unsure + 1;
        metrics::counter!("sara_voice_low_confidence_total").increment(1);
        if unsure > MAX_REPROMPTS {
            metrics::counter!("sara_voice_reprompt_handovers_total").increment(1);
            let reply = handover(
                "I'm having trouble understanding you on this line. I'll put you through to the team.",
            );
            return Ok(twiml(speak(&app, &reply, listen).render()));
        }
        let again = Reply {
            text: "Sorry, I didn't quite get that. Could you say it again?".into(),
            ..Reply::default()
        };
        return Ok(twiml(
            speak(&app, &again, Listen { unsure, ..listen }).render(),
        ));
    }
    if !listen.verified && caller_id::asks_to_change_a_booking(&app, &inbound.text) {
        metrics::counter!("sara_unverified_caller_handovers_total").increment(1);
        let reply = handover(
            "I can't confirm it's really you calling from this number, so I can't look \
             up, move or cancel an appointment on this call. I can still make a new \
             booking, or you can text us from your phone. I'll put you through to the \
             team now.",
        );
        return Ok(twiml(speak(&app, &reply, listen).render()));
    }
    let reply = answer(&app, inbound).await?;
    let next = Listen {
        n: listen.n.saturating_add(1),
        verified: listen.verified,
        ..Listen::default()
    };
    Ok(twiml(speak(&app, &reply, next).render()))
}

fn handover(text: &str) -> Reply {
    Reply {
        text: text.into(),
        handover: true,
        ..Reply::default()
    }
}

/// Whether Twilio was unsure of the words it heard (`Confidence` below
/// `voice.min_confidence`). A missing or unreadable `Confidence` is not a reason to ask again.
fn is_unclear(app: &AppState, params: &[(String, String)]) -> bool {
    param(params, "Confidence")
        .and_then(|c| c.trim().parse::<f32>().ok())
        .is_some_and(|c| c.is_finite() && c < app.config.voice.min_confidence)
}

/// After the staff call of a hand-over: nothing more when someone answered, the voicemail
/// when nobody did (no answer, busy, failed, or the caller hung up before).
#[utoipa::path(
    post,
    path = "/webhook/voice/dial",
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::DialForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML: `<Hangup/>`, or the voicemail's `<Record>`", content_type = "text/xml", body = String),
        (status = 400, description = "A parameter repeats", body = super::openapi::ErrorBody),
    )
)]
async fn dial_done(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    let status = param(&params, "DialCallStatus").unwrap_or_default();
    tracing::info!(status, "staff call ended");
    if status == "completed" || status == "answered" {
        return Ok(twiml(TwiML::new().hangup().render()));
    }
    Ok(twiml(
        voicemail_twiml(
            &app,
            TwiML::new(),
            "Nobody could take the call just now. Please leave a message after the tone.",
        )
        .render(),
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

/// Twilio's call status callback (logged).
#[utoipa::path(
    post,
    path = "/webhook/voice/status",
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::CallForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Received"),
        (status = 400, description = "A parameter repeats", body = super::openapi::ErrorBody),
    )
)]
async fn status(TwilioForm(params): TwilioForm) -> Result<impl IntoResponse, ApiError> {
    tracing::info!(
        status = param(&params, "CallStatus").unwrap_or("unknown"),
        "call status"
    );
    Ok(StatusCode::NO_CONTENT)
}
