//! `POST /webhook/sms`: Twilio's SMS webhook. Signature first, then parse, then one engine
//! turn; the reply goes back in the TwiML body.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::engine::{Inbound, TurnError};
use sara_actors::model::{Channel, Phone};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::webhook::{TwilioForm, after_turn, before_turn, clip, param, required_sid};
use super::{ApiError, AppState};
use crate::channels::twilio::TwiML;
use crate::channels::twilio_rest::{OptChange, opt_change};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sms))
}

pub fn twiml(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

/// The engine's view of a (signature-checked) SMS webhook's form parameters.
pub fn sms_inbound(params: &[(String, String)], at: DateTime<Utc>) -> Result<Inbound, ApiError> {
    let phone = param(params, "From")
        .and_then(Phone::parse)
        .ok_or_else(|| ApiError::bad_request("From must be a phone number"))?;
    Ok(Inbound {
        phone,
        channel: Channel::Sms,
        text: clip(param(params, "Body").unwrap_or_default()),
        // The dedup key: a replay must carry the same one (see `webhook::unambiguous`).
        provider_id: Some(required_sid(params, "MessageSid", &["SM", "MM"])?.to_owned()),
        at,
    })
}

/// An SMS to the business number: one turn; the reply is the TwiML `<Message>` (none for
/// an opt-out, an opt-in or a number that opted out).
#[utoipa::path(
    post,
    path = "/webhook/sms",
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::SmsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML `<Response><Message>…</Message></Response>`", content_type = "text/xml", body = String),
        (status = 400, description = "`From` is not a phone number, `MessageSid` is not a message sid, or a parameter repeats", body = super::openapi::ErrorBody),
    )
)]
async fn sms(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    let inbound = sms_inbound(&params, app.clock.now())?;
    // Twilio answers opt-out keywords itself: Sara records them and says nothing.
    let opt_out_type = param(&params, "OptOutType");
    match opt_change(opt_out_type, &inbound.text) {
        Some(OptChange::OptOut) => return opt(&app, inbound.phone, inbound.at, true).await,
        Some(OptChange::OptIn) => return opt(&app, inbound.phone, inbound.at, false).await,
        // Twilio answered HELP itself (Advanced Opt-Out): no second answer.
        None if opt_out_type.is_some_and(|t| t.trim().eq_ignore_ascii_case("HELP")) => {
            return Ok(twiml(TwiML::new().render()));
        }
        None => {}
    }
    if let Some(reply) = before_turn(&app, &inbound).await? {
        return Ok(message(&reply));
    }
    let back_in = opts_back_in(&inbound.text);
    let (phone, at, provider_id) = (
        inbound.phone.clone(),
        inbound.at,
        inbound.provider_id.clone(),
    );
    let reply = match app.engine.turn(inbound).await {
        // The conversation knows the number opted out: the turn was not run.
        Err(TurnError::SmsOptedOut) if back_in => return opt(&app, phone, at, false).await,
        Err(TurnError::SmsOptedOut) => {
            // Twilio would not deliver an answer to a number that opted out, and Sara sends
            // it none: the message waits for the customer to opt in again.
            tracing::debug!("SMS from a number that opted out; not answered until START");
            return Ok(twiml(TwiML::new().render()));
        }
        result => after_turn(&app, provider_id.as_deref(), result).await?,
    };
    Ok(message(&reply))
}

/// The TwiML answer carrying `reply` (none when it is silent).
fn message(reply: &Reply) -> Response {
    let doc = if reply.silent || reply.text.is_empty() {
        TwiML::new()
    } else {
        TwiML::new().message(&reply.text)
    };
    twiml(doc.render())
}

/// Records an opt-out (`out`) or opt-in through the number's conversation and answers with
/// empty TwiML; logged once, when it changes what Sara may send.
async fn opt(
    app: &AppState,
    phone: Phone,
    at: DateTime<Utc>,
    out: bool,
) -> Result<Response, ApiError> {
    super::limits::check_phone(app, &phone).await?;
    let masked = phone.masked();
    if opt_recorded(app.engine.sms_opt(phone, out, at).await)? {
        if out {
            tracing::info!(phone = %masked, "SMS opt-out recorded: no more SMS to this number until START");
        } else {
            tracing::info!(phone = %masked, "SMS opt-in recorded: SMS to this number may be sent again");
        }
    }
    Ok(twiml(TwiML::new().render()))
}

/// An opt change the engine could not record is refused with 503, so Twilio's retry (or the
/// customer's next STOP) records it: it must never be lost behind a 200.
fn opt_recorded(result: Result<bool, TurnError>) -> Result<bool, ApiError> {
    result.map_err(|error| {
        tracing::warn!(%error, "SMS opt change not recorded");
        ApiError::unavailable("opt-out not recorded; retry later").retry_after(5)
    })
}

/// Whether a message from a number that opted out opts it in again: Twilio's default opt-in
/// words alone (START, UNSTOP and, from such a number, YES).
fn opts_back_in(body: &str) -> bool {
    let word = body.trim().trim_end_matches(['.', '!']).trim();
    word.eq_ignore_ascii_case("yes") || opt_change(None, body) == Some(OptChange::OptIn)
}
