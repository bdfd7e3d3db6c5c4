//! `POST /webhook/sms`: Twilio's SMS webhook. Signature first, then parse, then one engine
//! turn; the reply goes back in the TwiML body.

use axum::Router;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use sara_actors::dialogue::{self, Reply};
use sara_actors::engine::{Inbound, TurnError};
use sara_actors::model::{Channel, Phone};

use super::{ApiError, AppState};
use crate::channels::twilio::{TwiML, TwilioSignature};

/// Longest message text handed to the engine; Twilio concatenates at most 1,600 characters.
const MAX_TEXT_CHARS: usize = 1600;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhook/sms", post(sms))
}

/// Checks `X-Twilio-Signature` against the public URL (never the Host header) and returns the
/// form parameters.
pub fn verified_twilio_form(
    app: &AppState,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let Some(token) = app.config.twilio.auth_token.as_deref() else {
        tracing::warn!("twilio.auth_token is not set; refusing Twilio webhooks");
        return Err(ApiError::forbidden("webhook signing is not configured"));
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::forbidden("missing X-Twilio-Signature"))?;
    let params: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path = uri.0.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!(
        "{}{}",
        app.config.server.public_url.trim_end_matches('/'),
        path
    );
    if !TwilioSignature::new(token).verify(&url, &params, signature) {
        return Err(ApiError::forbidden("bad X-Twilio-Signature"));
    }
    Ok(params)
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Keeps the first `MAX_TEXT_CHARS` characters of what a caller sent.
pub fn clip(text: &str) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}

/// Turns an engine result into what the caller hears. Problems that a retry of the same
/// webhook can fix (the store is down) are a 503; everything else gets a polite reply.
pub fn caller_reply(result: Result<Reply, TurnError>) -> Result<Reply, ApiError> {
    match result {
        Ok(reply) => Ok(reply),
        Err(TurnError::StoreUnavailable) => {
            Err(ApiError::unavailable("store unavailable; retry later").retry_after(5))
        }
        // Another instance held the conversation for the whole lease wait; nothing was
        // applied, so the provider's retry is both safe and likely to succeed.
        Err(TurnError::Busy) => {
            Err(ApiError::unavailable("conversation busy; retry later").retry_after(1))
        }
        Err(TurnError::CalendarUnavailable) => Ok(dialogue::calendar_unavailable_reply()),
        Err(error) => {
            tracing::warn!(%error, "turn not completed; asking the caller to repeat");
            Ok(dialogue::missed_turn_reply())
        }
    }
}

fn twiml(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

async fn sms(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = match verified_twilio_form(&app, &uri, &headers, &body) {
        Ok(params) => params,
        Err(refused) => return Err(super::limits::refuse_unsigned(&app, peer, refused).await),
    };
    let phone = param(&params, "From")
        .and_then(Phone::parse)
        .ok_or_else(|| ApiError::bad_request("From must be a phone number"))?;
    super::limits::check_phone(&app, &phone).await?;
    let inbound = Inbound {
        phone,
        channel: Channel::Sms,
        text: clip(param(&params, "Body").unwrap_or_default()),
        provider_id: param(&params, "MessageSid")
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(64).collect()),
        at: Utc::now(),
    };
    // A webhook already processed is answered from the cache without touching the engine;
    // a miss (or Redis down) goes on to the engine, whose store has the final word.
    if let Some(id) = &inbound.provider_id
        && let Some(text) = app.cache.processed_reply(id).await
    {
        metrics::counter!("sara_duplicate_webhooks_total").increment(1);
        let doc = if text.is_empty() {
            TwiML::new()
        } else {
            TwiML::new().message(&text)
        };
        return Ok(twiml(doc.render()));
    }
    let provider_id = inbound.provider_id.clone();
    let reply = caller_reply(app.engine.turn(inbound).await)?;
    if let Some(id) = &provider_id {
        // Only now, after the commit: the cache never claims an id before it is done.
        let text = if reply.silent {
            ""
        } else {
            reply.text.as_str()
        };
        app.cache.remember_reply(id, text).await;
    }
    let doc = if reply.silent || reply.text.is_empty() {
        TwiML::new()
    } else {
        TwiML::new().message(&reply.text)
    };
    Ok(twiml(doc.render()))
}
