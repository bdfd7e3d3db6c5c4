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
use crate::channels::twilio::{SignatureAlgorithm, TwilioSignature};
use crate::config::Secret;

/// Longest message text handed to the engine; Twilio concatenates at most 1,600 characters.
const MAX_TEXT_CHARS: usize = 1600;

/// Checks `X-Twilio-Signature` against the public URL (never the Host header), with and
/// without its default port as Twilio's own validator does, and returns the form parameters.
pub fn verified_twilio_form(
    app: &AppState,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let params = form_params(body);
    let path = uri.0.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!(
        "{}{}",
        app.config.server.public_url.trim_end_matches('/'),
        path
    );
    verify_twilio_signature(app, headers, &url, &params)?;
    unambiguous(&params)?;
    Ok(params)
}

/// Checks `X-Twilio-Signature` of a request Twilio made to `url` with form `params` (none for
/// a WebSocket handshake): with the auth token, or with the Webhooks SharedKey secret when
/// `X-Twilio-Webhooks-Signature-Settings` names one; with and without the default port.
pub fn verify_twilio_signature(
    app: &AppState,
    headers: &HeaderMap,
    url: &str,
    params: &[(String, String)],
) -> Result<(), ApiError> {
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::forbidden("missing X-Twilio-Signature"))?;
    let signed = match headers
        .get("x-twilio-webhooks-signature-settings")
        .map(|v| v.to_str().unwrap_or_default())
    {
        // An account that signs with a Webhooks SharedKey says so in this header; only the
        // key and the hash change, the signed string is the same.
        Some(settings) => {
            let Some(secret) = app
                .config
                .twilio
                .shared_key_secret
                .as_ref()
                .map(Secret::expose)
            else {
                tracing::warn!(
                    "a webhook signed with a Twilio SharedKey, but twilio.shared_key_secret is not set"
                );
                return Err(ApiError::forbidden("webhook shared key is not configured"));
            };
            let algorithm = SignatureAlgorithm::from_settings(settings)
                .ok_or_else(|| ApiError::forbidden("unsupported signature algorithm"))?;
            TwilioSignature::with_algorithm(secret, algorithm)
                .verify_any_port(url, params, signature)
        }
        None => {
            let Some(token) = app.config.twilio.auth_token.as_ref().map(Secret::expose) else {
                tracing::warn!("twilio.auth_token is not set; refusing Twilio webhooks");
                return Err(ApiError::forbidden("webhook signing is not configured"));
            };
            TwilioSignature::new(token).verify_any_port(url, params, signature)
        }
    };
    if !signed {
        return Err(ApiError::forbidden("bad X-Twilio-Signature"));
    }
    Ok(())
}

/// Parameters whose value names the caller or the message: in the signed string they must
/// stand where a parameter of one of these names starts. Twilio signs the sorted
/// name+value pairs concatenated without separators, so the same signature fits any other
/// split of that string; a captured webhook re-split so that the real `MessageSid` (or
/// `From`) text hides inside another parameter would otherwise pass as a new message from
/// someone else. A split that leaves such text anywhere else is refused.
/// (the text, the parameter names it may end, what must follow it to count as that
/// parameter's value).
type Anchor = (&'static str, &'static [&'static str], fn(&str) -> bool);

const ANCHORED: &[Anchor] = &[
    ("From", &["From", "ForwardedFrom"], |rest| {
        rest.starts_with(|c: char| c == '+' || c.is_ascii_digit())
    }),
    (
        "MessageSid",
        &["MessageSid", "SmsMessageSid", "OriginalRepliedMessageSid"],
        |rest| is_sid(rest.get(..34).unwrap_or_default(), &["SM", "MM"]),
    ),
    ("CallSid", &["CallSid", "ParentCallSid"], |rest| {
        is_sid(rest.get(..34).unwrap_or_default(), &["CA"])
    }),
];

/// Refuses a signed form whose names repeat or whose caller/message text stands anywhere but
/// at its own parameter (see [`ANCHORED`]).
pub fn unambiguous(params: &[(String, String)]) -> Result<(), ApiError> {
    let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(ApiError::bad_request("a form parameter is repeated"));
    }
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut signed = String::new();
    // (start, end) of each parameter name in `signed`.
    let mut name_spans = Vec::with_capacity(sorted.len());
    for (name, value) in sorted {
        name_spans.push((signed.len(), signed.len() + name.len(), name.as_str()));
        signed.push_str(name);
        signed.push_str(value);
    }
    for (needle, aliases, follows) in ANCHORED {
        for (at, _) in signed.match_indices(needle) {
            let end = at + needle.len();
            if !follows(&signed[end..]) {
                continue;
            }
            let anchored = name_spans.iter().any(|&(start, name_end, name)| {
                name_end == end && start <= at && aliases.contains(&name)
            });
            if !anchored {
                return Err(ApiError::forbidden(format!(
                    "signed parameters do not split as Twilio sent them ({needle})"
                )));
            }
        }
    }
    Ok(())
}

/// A Twilio resource id: one of `prefixes` and 32 hex digits.
pub fn is_sid(value: &str, prefixes: &[&str]) -> bool {
    value.len() == 34
        && prefixes.iter().any(|p| value.starts_with(p))
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The well-formed Twilio id in parameter `name`, or a 400.
pub fn required_sid<'a>(
    params: &'a [(String, String)],
    name: &str,
    prefixes: &[&str],
) -> Result<&'a str, ApiError> {
    param(params, name)
        .filter(|v| is_sid(v, prefixes))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name} must be a Twilio id ({} and 32 hex digits)",
                prefixes.join(" or ")
            ))
        })
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
    if let Some(reply) = before_turn(app, &inbound).await? {
        return Ok(reply);
    }
    let provider_id = inbound.provider_id.clone();
    after_turn(app, provider_id.as_deref(), app.engine.turn(inbound).await).await
}

/// The checks of [`answer`] before the engine: the caller's rate limit, then the
/// processed-webhook cache (`Some`: the reply a provider's retry gets without the engine).
pub async fn before_turn(app: &AppState, inbound: &Inbound) -> Result<Option<Reply>, ApiError> {
    let started = std::time::Instant::now();
    super::limits::check_phone(app, &inbound.phone).await?;
    if let Some(id) = &inbound.provider_id
        && let Some(reply) = app.cache.processed_reply(id).await
    {
        metrics::counter!("sara_duplicate_webhooks_total").increment(1);
        return Ok(Some(reply));
    }
    sara_actors::engine::record_stage("front", started.elapsed());
    Ok(None)
}

/// The end of [`answer`]: the engine's outcome as the caller's reply, remembered under the
/// message's provider id.
pub async fn after_turn(
    app: &AppState,
    provider_id: Option<&str>,
    result: Result<Reply, TurnError>,
) -> Result<Reply, ApiError> {
    let reply = caller_reply(result)?;
    if let Some(id) = provider_id {
        app.cache.remember_reply(id, &reply).await;
    }
    Ok(reply)
}
