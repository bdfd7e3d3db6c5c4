//! What every webhook does before and after the engine: Twilio signature checks, reading
//! form parameters, and turning an engine result into what the caller hears.

use axum::extract::OriginalUri;
use axum::http::HeaderMap;
use sara_actors::dialogue::{self, Reply};
use sara_actors::engine::TurnError;

use super::{ApiError, AppState};
use crate::channels::twilio::TwilioSignature;

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
