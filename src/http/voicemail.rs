//! Voicemail: the callbacks of the `<Record>` that follows an unanswered hand-over.
//! `POST /webhook/voice/recording` is the `<Record action>` (the caller finished; the call
//! ends with a goodbye), `/webhook/voice/recording/status` Twilio's
//! `recordingStatusCallback`, `/webhook/voice/recording/transcription` its
//! `transcribeCallback`. Each stores what it knows of the recording (its URL, length,
//! transcription) under its `RecordingSid`, so none of them is lost whichever arrives first;
//! `/logs/{CallSid}` shows them. The first callback that carries the recording's URL also
//! writes the staff alert (`staff_alert`, by email to `email.staff`) to the outbox, in the
//! same transaction, so it is sent once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sara_actors::model::{Channel, Phone};
use sara_actors::outbound::{Content, OutboundKind, OutboundMessage, Recipient};
use sara_actors::ports::{OutboxKind, OutboxMessage};

use super::sms::twiml;
use super::webhook::{TwilioForm, param, required_sid};
use super::{ApiError, AppState};
use crate::channels::twilio::TwiML;
use crate::store::VoicemailReport;

/// What a voicemail callback says about its recording.
fn report(params: &[(String, String)]) -> Result<VoicemailReport, ApiError> {
    let recording_sid = required_sid(params, "RecordingSid", &["RE"])?.to_string();
    let call_sid = required_sid(params, "CallSid", &["CA"])?.to_string();
    let recording_url = param(params, "RecordingUrl")
        .map(str::trim)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(|u| u.chars().take(1000).collect());
    let duration_s = param(params, "RecordingDuration").and_then(|d| d.trim().parse().ok());
    let transcription = (param(params, "TranscriptionStatus") == Some("completed"))
        .then(|| param(params, "TranscriptionText"))
        .flatten()
        .map(|t| t.chars().take(4000).collect());
    Ok(VoicemailReport {
        recording_sid,
        call_sid,
        contact_key: None,
        recording_url,
        duration_s,
        transcription,
    })
}

/// The staff alert about a voicemail whose recording is at `url` (by email to
/// `email.staff`; `None` without a staff address). It concerns the caller's conversation, or
/// the business's own number for a caller whose number is withheld.
fn staff_alert(
    app: &AppState,
    report: &VoicemailReport,
    caller: Option<&Phone>,
) -> Option<OutboxMessage> {
    let url = report.recording_url.as_deref()?;
    let staff = app.config.email.staff.clone()?;
    let contact = caller.or(app.engine.business().phone.as_ref())?.clone();
    let who = caller.map_or("a caller whose number is withheld", Phone::as_str);
    let mut text = format!(
        "{who} left a voicemail (call {call}).\n\nRecording: {url}\n",
        call = report.call_sid
    );
    if let Some(seconds) = report.duration_s {
        text.push_str(&format!("Length: {seconds} s\n"));
    }
    if let Some(words) = &report.transcription {
        text.push_str(&format!("Transcription: {words}\n"));
    }
    text.push_str(&format!(
        "\nThe transcription, when Twilio sends one, is shown with the call: /logs/{}\n",
        report.call_sid
    ));
    let message = OutboundMessage {
        key: format!("{}:staff_alert", report.recording_sid),
        channel: Channel::Email,
        to: Recipient::Email(staff.clone()),
        kind: OutboundKind::StaffAlert,
        content: Content::Email {
            subject: format!(
                "Voicemail from {}",
                caller.map_or("a withheld number", Phone::as_str)
            ),
            text,
            invite: None,
        },
    };
    Some(OutboxMessage {
        contact,
        recipient: staff,
        channel: Channel::Email,
        kind: OutboxKind::StaffAlert,
        payload: serde_json::to_string(&message).ok()?,
        idempotency_key: message.key,
        not_before: app.clock.now(),
    })
}

async fn store(app: &AppState, params: &[(String, String)]) -> Result<(), ApiError> {
    let report = report(params)?;
    let phone = param(params, "From").and_then(Phone::parse);
    let alert = staff_alert(app, &report, phone.as_ref());
    let first = app
        .db
        .store_voicemail(report, phone.as_ref(), alert.as_ref(), app.clock.now())
        .await
        .map_err(|error| {
            tracing::warn!(%error, "voicemail not stored; Twilio will retry");
            ApiError::unavailable("store unavailable; retry later").retry_after(5)
        })?;
    if alert.is_some() {
        app.engine.wake_outbox();
    }
    if first {
        metrics::counter!("sara_voicemails_total").increment(1);
        tracing::info!("voicemail stored");
    }
    Ok(())
}

/// The caller left a message: store it, thank them and end the call. A store that is down
/// does not keep the caller on the line: the recording status callback stores it again.
#[utoipa::path(
    post,
    path = "/webhook/voice/recording",
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::RecordingForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML: thanks and `<Hangup/>`", content_type = "text/xml", body = String),
        (status = 400, description = "A parameter repeats", body = super::openapi::ErrorBody),
    )
)]
pub async fn recorded(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    if let Err(error) = store(&app, &params).await {
        tracing::warn!(error = %error.detail(), "voicemail action not stored");
    }
    Ok(twiml(
        TwiML::new()
            .say("Thank you. The team will call you back. Goodbye.")
            .hangup()
            .render(),
    ))
}

/// Twilio's recording status callback: the recording is complete (or failed).
#[utoipa::path(
    post,
    path = "/webhook/voice/recording/status",
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::RecordingForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Stored (or not completed)"),
        (status = 400, description = "`RecordingSid` or `CallSid` is malformed, or a parameter repeats", body = super::openapi::ErrorBody),
    )
)]
pub async fn status(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<impl IntoResponse, ApiError> {
    let status = param(&params, "RecordingStatus").unwrap_or("unknown");
    if status != "completed" {
        tracing::warn!(status, "voicemail recording not completed");
        return Ok(StatusCode::NO_CONTENT);
    }
    store(&app, &params).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Twilio's transcription callback.
#[utoipa::path(
    post,
    path = "/webhook/voice/recording/transcription",
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::RecordingForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "`RecordingSid` or `CallSid` is malformed, or a parameter repeats", body = super::openapi::ErrorBody),
    )
)]
pub async fn transcription(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<impl IntoResponse, ApiError> {
    store(&app, &params).await?;
    Ok(StatusCode::NO_CONTENT)
}
