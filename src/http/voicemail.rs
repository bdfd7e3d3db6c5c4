//! Voicemail: the callbacks of the `<Record>` that follows an unanswered hand-over (or an
//! after-hours call). `POST /webhook/voice/recording` is the `<Record action>` (the caller
//! finished; the call ends with a goodbye), `/webhook/voice/recording/status` Twilio's
//! `recordingStatusCallback`, `/webhook/voice/recording/transcription` its
//! `transcribeCallback`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::sms::twiml;
use super::webhook::{TwilioForm, param};
use super::{ApiError, AppState};
use crate::channels::twilio::TwiML;

/// The caller left a message: thank them and end the call.
pub async fn recorded(
    State(_app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    tracing::info!(
        duration = param(&params, "RecordingDuration").unwrap_or_default(),
        "voicemail recorded"
    );
    Ok(twiml(
        TwiML::new()
            .say("Thank you. The team will call you back. Goodbye.")
            .hangup()
            .render(),
    ))
}

pub async fn status(TwilioForm(params): TwilioForm) -> Result<impl IntoResponse, ApiError> {
    tracing::info!(
        status = param(&params, "RecordingStatus").unwrap_or("unknown"),
        "voicemail recording status"
    );
    Ok(StatusCode::NO_CONTENT)
}

pub async fn transcription(TwilioForm(params): TwilioForm) -> Result<impl IntoResponse, ApiError> {
    tracing::info!(
        status = param(&params, "TranscriptionStatus").unwrap_or("unknown"),
        "voicemail transcription"
    );
    Ok(StatusCode::NO_CONTENT)
}
