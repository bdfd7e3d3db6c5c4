//! Rate limits and the processed-webhook cache as the webhook handlers use them.
//!
//! Limits apply per caller phone after the signature check, and per source IP only to
//! requests that fail it: providers send every customer's webhooks from a few addresses, so
//! a per-IP limit on signed traffic would throttle the whole business (CONTRACT.md).

use std::net::SocketAddr;

use super::{ApiError, AppState};
use sara_actors::model::Phone;

/// Turns a failed signature check into a 429 once the source IP has failed too often.
pub async fn refuse_unsigned(app: &AppState, peer: SocketAddr, refused: ApiError) -> ApiError {
    match app.cache.hit_bad_signature(peer.ip()).await {
        Ok(()) => refused,
        Err(limited) => {
            metrics::counter!("sara_rate_limited_total", "kind" => "bad_signature").increment(1);
            ApiError::too_many_requests(limited.retry_after_secs)
        }
    }
}

/// Counts a signed webhook from `phone`; a 429 over the per-phone limit.
pub async fn check_phone(app: &AppState, phone: &Phone) -> Result<(), ApiError> {
    app.cache.hit_phone(phone).await.map_err(|limited| {
        metrics::counter!("sara_rate_limited_total", "kind" => "phone").increment(1);
        ApiError::too_many_requests(limited.retry_after_secs)
    })
}
