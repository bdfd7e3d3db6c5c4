//! The channels' wire formats: signature checks and reply documents for each provider.

/// Tests only (also the integration tests in tests/, hence public and hidden).
#[doc(hidden)]
pub mod conformance;
pub mod email;
pub mod senders;
pub mod twilio;
pub mod twilio_rest;
pub mod whatsapp;

/// A provider's `Retry-After` header as it was sent (seconds or an HTTP date); the outbound
/// retry policy reads it.
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
