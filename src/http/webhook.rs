//! What every webhook does before and after the engine: Twilio signature checks (and the
//! per-address limit on failed ones), reading form parameters, the per-caller limit and the
//! processed-webhook cache, and turning an engine result into what the caller hears.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::HeaderMap;
use sara_actors::dialogue::{self, Reply};
use sara_actors::engine::{Inbound, TurnError};

use super::{ApiError, AppState};
use crate::channels::twilio::TwilioSignature;
use crate::config::Secret;

/// Longest message text handed to the engine; Twilio concatenates at most 1,600 characters.
const MAX_TEXT_CHARS: usize = 1600;

/// Checks `X-Twilio-Signature` against the public URL (never the Host header) and returns the
/// form parameters.
pub fn verified_twilio_form(
    app: &AppState,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let Some(token) = app.config.twilio.auth_token.as_ref().map(Secret::expose) else {
        tracing::warn!("twilio.auth_token is not set; refusing Twilio webhooks");
        return Err(ApiError::forbidden("webhook signing is not configured"));
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::forbidden("missing X-Twilio-Signature"))?;
    let params = form_params(body);
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

/// The parameters of an `application/x-www-form-urlencoded` body, in order. Any bytes are
/// accepted: invalid UTF-8 is replaced, never refused.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
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

/// The form parameters of a Twilio webhook whose `X-Twilio-Signature` checked out. As an
/// extractor it reads the body (within the body limit), checks the signature against the
/// public URL and counts a failed check against the source address (a flood of forged
/// webhooks from one address gets 429).
pub struct TwilioForm(pub Vec<(String, String)>);

impl FromRequest<AppState> for TwilioForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let uri = match OriginalUri::from_request_parts(&mut parts, app).await {
            Ok(uri) => uri,
            Err(never) => match never {},
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(|rejection| ApiError::rejected(rejection.status(), rejection.body_text()))?;
        match verified_twilio_form(app, &uri, &headers, &body) {
            Ok(params) => Ok(TwilioForm(params)),
            Err(refused) => Err(match peer {
                Some(peer) => super::limits::refuse_unsigned(app, peer, refused).await,
                None => refused,
            }),
        }
    }
}

/// One verified message through the engine, as every channel runs it: the caller's rate
/// limit, then the processed-webhook cache (a provider's retry is answered without the
/// engine), then the turn; the reply is remembered only once the turn has committed.
pub async fn answer(app: &AppState, inbound: Inbound) -> Result<Reply, ApiError> {
    super::limits::check_phone(app, &inbound.phone).await?;
    if let Some(id) = &inbound.provider_id
        && let Some(text) = app.cache.processed_reply(id).await
    {
        metrics::counter!("sara_duplicate_webhooks_total").increment(1);
        return Ok(Reply {
            silent: text.is_empty(),
            text,
            ..Reply::default()
        });
    }
    let provider_id = inbound.provider_id.clone();
    let reply = caller_reply(app.engine.turn(inbound).await)?;
    if let Some(id) = &provider_id {
        let text = if reply.silent {
            ""
        } else {
            reply.text.as_str()
        };
        app.cache.remember_reply(id, text).await;
    }
    Ok(reply)
}
