//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, generated from the code.
//!
//! Each route module's `router()` registers its handlers through `utoipa_axum::routes!`,
//! which takes the method and path from the handler's `#[utoipa::path]` attribute: the route
//! the server answers and the operation the document lists are one declaration, so they
//! cannot drift (`tests/api/openapi.rs` checks the document against the running server and
//! that no route is registered any other way). The request and response schemas are derived
//! from the types the handlers read and write (`WhatsAppWebhook`, `BookingView`, …); the
//! Twilio forms, which Sara reads as raw signed parameters, are described by the structs
//! below.
//!
//! What the shared layers of [`super::router`] answer on any route (the request deadline and
//! the drain's 503, the body limit's 413, the rate limits' 429, the admin token's 401) is
//! added to every operation it applies to by [`shared_answers`], in one place, rather than
//! repeated on each handler.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr};
use utoipa::{OpenApi as _, ToSchema};

/// Every error answer's body (CONTRACT.md): a stable code and a sentence for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `rate_limited`,
    /// `unavailable`, `payload_too_large`, `unsupported_media_type`, …
    pub error: String,
    pub detail: String,
}

/// The security scheme names operations refer to.
pub const ADMIN_BEARER: &str = "admin_bearer";
pub const ADMIN_SESSION: &str = "admin_session";
pub const TWILIO_SIGNATURE: &str = "twilio_signature";
pub const META_SIGNATURE: &str = "meta_signature";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Sara",
        description = "The AI receptionist's HTTP surface: the Twilio and WhatsApp webhooks, \
            health, readiness and metrics, and the admin routes. Errors are JSON \
            `{\"error\", \"detail\"}`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "twilio", description = "Twilio SMS and Voice webhooks, signed with `X-Twilio-Signature`"),
        (name = "whatsapp", description = "WhatsApp Cloud API webhooks, signed with `X-Hub-Signature-256`"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "admin", description = "Admin JSON routes (bearer token)"),
        (name = "console", description = "The front-desk console (HTML; bearer or session cookie)"),
    )
)]
struct Base;

/// The document's frame: info, tags, the error schema and the security schemes. The routes
/// add the paths.
pub fn base() -> OpenApi {
    let mut api = Base::openapi();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        ADMIN_BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The admin token (`admin.token`)"))
                .build(),
        ),
    );
    components.add_security_scheme(
        ADMIN_SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            super::auth::COOKIE,
            "The console's session cookie, set by `GET /admin?token=` or `POST /admin/login`",
        ))),
    );
    components.add_security_scheme(
        TWILIO_SIGNATURE,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Twilio-Signature",
            "base64 HMAC-SHA1, keyed with the Twilio auth token, of the public URL plus the \
             sorted form parameters (Twilio's request validation)",
        ))),
    );
    components.add_security_scheme(
        META_SIGNATURE,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Hub-Signature-256",
            "`sha256=` and the hex HMAC-SHA256 of the raw body, keyed with the app secret",
        ))),
    );
    api
}

/// The whole document, as the server's routes declare it.
pub fn document() -> OpenApi {
    let (public, admin) = super::routes();
    let mut api = public.merge(admin).into_openapi();
    shared_answers(&mut api);
    api
}

/// The document as served: built once per process.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| document().to_json().unwrap_or_else(|_| "{}".into()));

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn with_retry_after(response: RefOr<Response>) -> RefOr<Response> {
    let RefOr::T(mut response) = response else {
        return response;
    };
    response.headers.insert(
        "Retry-After".to_string(),
        HeaderBuilder::new()
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Integer),
            ))
            .description(Some("Seconds to wait before retrying"))
            .build()
            .into(),
    );
    RefOr::T(response)
}

/// Adds `status` unless the handler already describes it.
fn add(operation: &mut Operation, status: u16, response: RefOr<Response>) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert(response);
}

/// The answers the shared layers give, on the operations they apply to:
/// - every route: 503 + `Retry-After` past the request deadline or when the store is down;
/// - a route that reads a body: 413 over `server.max_body_bytes`;
/// - webhooks (`/webhook/…`): 503 + `Retry-After` while draining, 429 (per caller, and per
///   address for failed signature checks), 403 on a missing or bad signature;
/// - admin routes: 401 without the token or a session, 429 when one address keeps
///   presenting wrong tokens.
fn shared_answers(api: &mut OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        let operations = [
            (&mut item.get, false),
            (&mut item.post, true),
            (&mut item.put, true),
            (&mut item.delete, false),
            (&mut item.patch, true),
        ];
        for (operation, has_body) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            add(
                operation,
                503,
                with_retry_after(error(
                    "Unavailable: the request deadline passed, the store is down, or the \
                     instance is shutting down; retry after `Retry-After` seconds",
                )),
            );
            if has_body {
                add(
                    operation,
                    413,
                    error("The body is over `server.max_body_bytes`"),
                );
            }
            if path.starts_with("/webhook") {
                add(
                    operation,
                    403,
                    error("Missing or bad signature (or the channel's secret is not configured)"),
                );
                add(
                    operation,
                    429,
                    with_retry_after(error(
                        "Too many messages from this caller, or too many failed signature \
                         checks from this address",
                    )),
                );
            }
            let admin = operation.security.as_ref().is_some_and(|security| {
                serde_json::to_string(security)
                    .is_ok_and(|s| s.contains(ADMIN_BEARER) || s.contains(ADMIN_SESSION))
            });
            if admin {
                add(
                    operation,
                    401,
                    error("Missing or wrong admin token or session"),
                );
                add(
                    operation,
                    429,
                    with_retry_after(error("Too many wrong admin tokens from this address")),
                );
            }
        }
    }
}

// The Twilio forms. Sara reads a webhook's parameters as the signed list Twilio sent (the
// signature covers every one of them, known or not), so these structs only describe the
// parameters the handlers read: they are never built.

/// Twilio's incoming-message webhook (`POST /webhook/sms`); Twilio sends more parameters.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SmsForm {
    /// The customer's number, E.164.
    #[schema(rename = "From", pattern = r"^\+[1-9][0-9]{7,14}$")]
    from: String,
    #[schema(rename = "To")]
    to: Option<String>,
    /// The message text (at most 1,600 characters are read).
    #[schema(rename = "Body")]
    body: Option<String>,
    /// The message's id, the dedup key of the turn.
    #[schema(rename = "MessageSid", pattern = r"^(SM|MM)[0-9a-fA-F]{32}$")]
    message_sid: String,
    /// Set by Twilio's Advanced Opt-Out: `STOP`, `START` or `HELP`.
    #[schema(rename = "OptOutType")]
    opt_out_type: Option<String>,
}

/// Twilio's message status callback (`POST /webhook/sms/status`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MessageStatusForm {
    #[schema(rename = "MessageSid", pattern = r"^(SM|MM)[0-9a-fA-F]{32}$")]
    message_sid: String,
    /// `queued`, `sent`, `delivered`, `read`, `undelivered`, `failed`, … (the ones Sara
    /// does not track are accepted and ignored).
    #[schema(rename = "MessageStatus", pattern = r"^[a-z-]{1,32}$")]
    message_status: String,
    #[schema(rename = "ErrorCode")]
    error_code: Option<String>,
}

/// A Twilio voice webhook: the call start (`POST /webhook/voice`) and the call status
/// callback (`POST /webhook/voice/status`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CallForm {
    #[schema(rename = "CallSid", pattern = r"^CA[0-9a-fA-F]{32}$")]
    call_sid: String,
    /// The caller's number; a withheld or unparsable one is told to call from a visible number.
    #[schema(rename = "From")]
    from: Option<String>,
    #[schema(rename = "To")]
    to: Option<String>,
    /// SHAKEN/STIR verdict; `TN-Validation-Passed-A` means the caller ID is verified.
    #[schema(rename = "StirVerstat")]
    stir_verstat: Option<String>,
    /// In status callbacks: `completed`, `busy`, `no-answer`, …
    #[schema(rename = "CallStatus")]
    call_status: Option<String>,
}

/// What the caller said (`POST /webhook/voice/gather`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GatherForm {
    #[schema(rename = "CallSid", pattern = r"^CA[0-9a-fA-F]{32}$")]
    call_sid: String,
    #[schema(rename = "From", pattern = r"^\+[1-9][0-9]{7,14}$")]
    from: String,
    /// Twilio's transcription; absent or empty when the caller said nothing.
    #[schema(rename = "SpeechResult")]
    speech_result: Option<String>,
    /// 0.0–1.0; below `voice.min_confidence` Sara asks again.
    #[schema(rename = "Confidence")]
    confidence: Option<String>,
}

/// The `<Dial>` action after a hand-over (`POST /webhook/voice/dial`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DialForm {
    #[schema(rename = "CallSid", pattern = r"^CA[0-9a-fA-F]{32}$")]
    call_sid: String,
    #[schema(rename = "From")]
    from: Option<String>,
    /// `completed` when staff answered; anything else leads to voicemail.
    #[schema(rename = "DialCallStatus")]
    dial_call_status: Option<String>,
}

/// The `<Connect action>` callback after a ConversationRelay session
/// (`POST /webhook/voice/relay/end`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RelayEndForm {
    #[schema(rename = "CallSid", pattern = r"^CA[0-9a-fA-F]{32}$")]
    call_sid: String,
    /// JSON Sara sent with `end`; `{"reason": "handover"}` puts the caller through to staff.
    #[schema(rename = "HandoffData")]
    handoff_data: Option<String>,
    #[schema(rename = "SessionStatus")]
    session_status: Option<String>,
}

/// A voicemail's action, recording status and transcription callbacks
/// (`POST /webhook/voice/recording…`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RecordingForm {
    #[schema(rename = "CallSid", pattern = r"^CA[0-9a-fA-F]{32}$")]
    call_sid: String,
    #[schema(rename = "RecordingSid", pattern = r"^RE[0-9a-fA-F]{32}$")]
    recording_sid: String,
    #[schema(rename = "From")]
    from: Option<String>,
    #[schema(rename = "RecordingUrl")]
    recording_url: Option<String>,
    /// Seconds.
    #[schema(rename = "RecordingDuration")]
    recording_duration: Option<String>,
    /// `completed` once the recording is complete.
    #[schema(rename = "RecordingStatus")]
    recording_status: Option<String>,
    #[schema(rename = "TranscriptionStatus")]
    transcription_status: Option<String>,
    #[schema(rename = "TranscriptionText")]
    transcription_text: Option<String>,
}

/// TwiML, the answer to a Twilio voice or SMS webhook.
pub const TWIML: &str = "text/xml";

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut all = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                all.push((path.clone(), method.clone(), operation.clone()));
            }
        }
        all
    }

    #[test]
    fn the_shared_layers_answers_are_on_the_operations_they_apply_to() {
        let doc = serde_json::to_value(super::document()).expect("document");
        let all = operations(&doc);
        assert!(all.len() > 25, "{} operations", all.len());
        for (path, method, operation) in all {
            let responses = &operation["responses"];
            assert!(responses["503"].is_object(), "{method} {path}: no 503");
            // `/ready` describes its own 503 (what is down); every other one is the layers'.
            if path != "/ready" {
                assert!(
                    responses["503"]["headers"]["Retry-After"].is_object(),
                    "{method} {path}: the 503 names no Retry-After"
                );
            }
            if method == "post" {
                assert!(responses["413"].is_object(), "{method} {path}: no 413");
            }
            if path.starts_with("/webhook") {
                for status in ["403", "429"] {
                    assert!(
                        responses[status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
            }
            let security = operation["security"].to_string();
            if security.contains(super::ADMIN_BEARER) {
                assert!(responses["401"].is_object(), "{method} {path}: no 401");
            }
            assert!(
                !responses
                    .as_object()
                    .expect("responses")
                    .contains_key("500"),
                "{method} {path}: a 500 is a bug, never a documented answer"
            );
        }
    }

    /// Every `$ref` in the document names a schema the document has.
    #[test]
    fn every_reference_resolves() {
        let doc = serde_json::to_value(super::document()).expect("document");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let text = doc.to_string();
        let mut refs = 0;
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "no schema {name:?}");
            refs += 1;
        }
        assert!(refs > 10, "{refs} references");
    }
}
