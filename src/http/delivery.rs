//! Delivery reports about the messages Sara sent: `POST /webhook/sms/status` (Twilio's
//! message status callbacks) and the `statuses` of WhatsApp webhooks, both applied through
//! the [`DeliveryStatuses`](sara_actors::outbound::DeliveryStatuses) hook in
//! [`AppState::delivery`].

use axum::extract::State;
use axum::http::StatusCode;
use sara_actors::model::Channel;
use sara_actors::outbound::{DeliveryState, StatusUpdate};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::webhook::TwilioForm;
use super::{ApiError, AppState};
use crate::channels::twilio_rest;
use crate::store::outbox::Fallback;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sms_status))
}

/// 204 for every well-formed, signed callback, also for a sid Sara does not know (Twilio
/// reports on messages other tools sent from the same account too).
#[utoipa::path(
    post,
    path = twilio_rest::STATUS_CALLBACK_PATH,
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::MessageStatusForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Applied (or about a message Sara does not know)"),
        (status = 400, description = "`MessageSid` or `MessageStatus` is missing or malformed", body = super::openapi::ErrorBody),
    )
)]
async fn sms_status(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<StatusCode, ApiError> {
    let update = twilio_rest::status_update(&params).map_err(ApiError::bad_request)?;
    if let Some(update) = update {
        record(&app, &update).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Applies one delivery report. A store that cannot answer is a 503, so the provider sends
/// the report again; a report about an unknown message is counted and dropped.
pub async fn record(app: &AppState, update: &StatusUpdate) -> Result<(), ApiError> {
    let (channel, status) = (update.channel.as_str(), update.state.as_str());
    metrics::counter!("sara_delivery_reports_total", "channel" => channel, "status" => status)
        .increment(1);
    let Some(hook) = &app.delivery else {
        tracing::debug!(
            channel,
            status,
            "delivery report with no outbox to apply it to"
        );
        return Ok(());
    };
    match hook.record_status(update).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(channel, status, "delivery report about an unknown message");
        }
        Err(error) => {
            tracing::warn!(%error, channel, "delivery report not recorded");
            return Err(ApiError::unavailable("store unavailable; retry later").retry_after(5));
        }
    }
    if update.channel == Channel::WhatsApp && update.state == DeliveryState::Failed {
        fall_back(app, &update.provider_id).await?;
    }
    Ok(())
}

/// A WhatsApp message Meta could not deliver goes once as an SMS to a customer known on SMS,
/// when Sara can send SMS (Twilio REST is configured). Run for every `failed` report, so a
/// report re-delivered after a store error still queues it (and a second one queues nothing).
async fn fall_back(app: &AppState, provider_id: &str) -> Result<(), ApiError> {
    let t = &app.config.twilio;
    if t.account_sid.is_none() || t.from.is_none() || t.auth_token.is_none() {
        tracing::debug!("WhatsApp message failed; no SMS sender to fall back to");
        return Ok(());
    }
    match app.db.fall_back_to_sms(provider_id, app.clock.now()).await {
        Ok(Fallback::Queued) => {
            metrics::counter!("sara_outbox_fallbacks_total", "channel" => "sms").increment(1);
            tracing::info!("WhatsApp message failed; sent again by SMS");
            Ok(())
        }
        Ok(Fallback::Nothing) => Ok(()),
        Ok(Fallback::NotKnownOnSms) => {
            tracing::info!("WhatsApp message failed; the customer is known on no other channel");
            Ok(())
        }
        Ok(Fallback::NoText) => {
            tracing::info!("WhatsApp template failed; it has no text an SMS could carry");
            Ok(())
        }
        Err(error) => {
            tracing::warn!(%error, "SMS fallback not queued");
            Err(ApiError::unavailable("store unavailable; retry later").retry_after(5))
        }
    }
}
