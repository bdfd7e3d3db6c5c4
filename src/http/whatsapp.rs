//! WhatsApp Cloud API webhooks: `GET /webhook/whatsapp` (Meta's verification handshake) and
//! `POST /webhook/whatsapp` (messages and delivery statuses). A message is answered with 200
//! once its turn is committed; the reply itself goes out through the channel actor.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::Duration;
use sara_actors::engine::Inbound;
use sara_actors::model::{Channel, Phone};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::webhook::{answer, clip};
use super::{ApiError, AppState};
use crate::channels::whatsapp::{WhatsAppSignature, WhatsAppWebhook};
use crate::config::Secret;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify, receive))
}

/// Meta's verification handshake.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's webhook verification: the challenge back when the verify token matches.
#[utoipa::path(
    get,
    path = "/webhook/whatsapp",
    tag = "whatsapp",
    params(Handshake),
    responses(
        (status = 200, description = "`hub.challenge`, as plain text", content_type = "text/plain", body = String),
        (status = 400, description = "The query cannot be read", body = super::openapi::ErrorBody),
        (status = 403, description = "Wrong or missing verify token, or `hub.mode` is not `subscribe`", body = super::openapi::ErrorBody),
    )
)]
async fn verify(
    State(app): State<AppState>,
    Query(q): Query<Handshake>,
) -> Result<impl IntoResponse, ApiError> {
    let expected = app
        .config
        .whatsapp
        .verify_token
        .as_ref()
        .map(Secret::expose)
        .ok_or_else(|| ApiError::forbidden("whatsapp.verify_token is not configured"))?;
    let given = q.token.unwrap_or_default();
    let token_ok: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    match (q.mode.as_deref(), q.challenge) {
        (Some("subscribe"), Some(challenge)) if token_ok => {
            Ok(([(header::CONTENT_TYPE, "text/plain")], challenge))
        }
        _ => Err(ApiError::forbidden("verification refused")),
    }
}

/// Messages and delivery statuses from the WhatsApp Cloud API: 200 once every message's turn
/// is committed (the replies go out through the outbox).
#[utoipa::path(
    post,
    path = "/webhook/whatsapp",
    tag = "whatsapp",
    security(("meta_signature" = [])),
    request_body(content = WhatsAppWebhook, content_type = "application/json"),
    responses(
        (status = 200, description = "Received"),
        (status = 400, description = "The body is not a webhook JSON", body = super::openapi::ErrorBody),
    )
)]
async fn receive(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let secret = app
        .config
        .whatsapp
        .app_secret
        .as_ref()
        .map(Secret::expose)
        .ok_or_else(|| ApiError::forbidden("whatsapp.app_secret is not configured"))?;
    let signed = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|signature| WhatsAppSignature::new(secret).verify(&body, signature));
    if !signed {
        let refused = ApiError::forbidden("missing or bad X-Hub-Signature-256");
        return Err(super::limits::refuse_unsigned(&app, peer, refused).await);
    }
    let hook: WhatsAppWebhook = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed webhook JSON: {e}")))?;
    for update in hook.status_updates() {
        super::delivery::record(&app, &update).await?;
    }
    let now = app.clock.now();
    let ours = app.config.whatsapp.phone_number_id.as_deref();
    let for_others = hook.messages().count() - hook.messages_to(ours).count();
    if for_others > 0 {
        tracing::warn!(
            messages = for_others,
            "whatsapp messages for another business number ignored"
        );
    }
    for message in hook.messages_to(ours) {
        let Some(phone) = Phone::parse(&message.from) else {
            tracing::warn!("whatsapp message from something that is not a phone number");
            continue;
        };
        // A message without words (media) is still a turn: the engine answers that it reads
        // text only, through the outbox like every reply.
        let text = message.said().unwrap_or_default();
        // "Friday" is read relative to the message's own day, which Meta signs; a time in
        // the future is not believed.
        let at = message
            .sent_at()
            .filter(|t| *t <= now + Duration::minutes(5))
            .unwrap_or(now);
        let inbound = Inbound {
            phone,
            channel: Channel::WhatsApp,
            text: clip(text),
            provider_id: Some(message.id.chars().take(128).collect()),
            at,
        };
        // A store outage is a 503 so Meta delivers the webhook again; turns already committed
        // are then answered from the dedup record. The reply itself is an outbox row of the
        // turn's commit, sent by the engine's outbox relay.
        answer(&app, inbound).await?;
        mark_read(&app, &message.id);
    }
    Ok(StatusCode::OK)
}

/// The blue ticks: tells WhatsApp the customer's message was read, now that its turn is
/// committed. Best effort and off the webhook's path; a lost receipt costs nothing.
fn mark_read(app: &AppState, message_id: &str) {
    let Some(client) = app.read_receipts.clone() else {
        return;
    };
    let id: String = message_id.chars().take(256).collect();
    tokio::spawn(async move {
        if let Err(error) = client.mark_read(&id).await {
            tracing::debug!(%error, "whatsapp read receipt not sent");
        }
    });
}
