//! Delivery reports about the messages Sara sent: `POST /webhook/sms/status` (Twilio's
//! message status callbacks) and the `statuses` of WhatsApp webhooks, both applied through
//! the [`DeliveryStatuses`](sara_actors::outbound::DeliveryStatuses) hook in
//! [`AppState::delivery`].

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use sara_actors::outbound::StatusUpdate;

use super::webhook::TwilioForm;
use super::{ApiError, AppState};
use crate::channels::twilio_rest;

pub fn router() -> Router<AppState> {
    Router::new().route(twilio_rest::STATUS_CALLBACK_PATH, post(sms_status))
}

/// 204 for every well-formed, signed callback, also for a sid Sara does not know (Twilio
/// reports on messages other tools sent from the same account too).
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
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::debug!(channel, status, "delivery report about an unknown message");
            Ok(())
        }
        Err(error) => {
            tracing::warn!(%error, channel, "delivery report not recorded");
            Err(ApiError::unavailable("store unavailable; retry later").retry_after(5))
        }
    }
}
