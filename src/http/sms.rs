//! `POST /webhook/sms`: Twilio's SMS webhook. Signature first, then parse, then one engine
//! turn; the reply goes back in the TwiML body.

use axum::Router;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use sara_actors::engine::Inbound;
use sara_actors::model::{Channel, Phone};

use super::webhook::{TwilioForm, answer, clip, param, required_sid};
use super::{ApiError, AppState};
use crate::channels::twilio::TwiML;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhook/sms", post(sms))
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

async fn sms(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    let inbound = sms_inbound(&params, app.clock.now())?;
    let reply = answer(&app, inbound).await?;
    let doc = if reply.silent || reply.text.is_empty() {
        TwiML::new()
    } else {
        TwiML::new().message(&reply.text)
    };
    Ok(twiml(doc.render()))
}
