//! The one HTTP error type: JSON `{"error", "detail"}` (CONTRACT.md) with a 4xx for the
//! caller's fault and a 5xx for ours. The cause behind a 5xx is logged where it is converted
//! (the `From` impls below), never sent: store and driver messages name tables, hosts and
//! file paths a caller has no business seeing.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sara_actors::engine::TurnError;
use sara_actors::ports::StoreError;

/// What went wrong, as the caller is told it. The details are ours (fixed texts or the
/// caller's own input described), never a lower layer's error message.
#[derive(Debug)]
pub enum ApiError {
    /// 400 (or the status of an extractor's rejection: 413 for an oversized body, say).
    BadRequest {
        status: StatusCode,
        detail: String,
    },
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    /// 429 with `Retry-After`.
    RateLimited {
        retry_after: u64,
    },
    /// 503; with `Retry-After` when a retry can fix it.
    Unavailable {
        detail: String,
        retry_after: Option<u64>,
    },
    /// 500: the cause was logged when this was made.
    Internal,
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
        }
    }
    /// An extractor's rejection (malformed or oversized body) with its own 4xx status.
    pub fn rejected(status: StatusCode, detail: impl Into<String>) -> Self {
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::BadRequest {
            status,
            detail: detail.into(),
        }
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::Unauthorized(detail.into())
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::Forbidden(detail.into())
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::NotFound(detail.into())
    }
    /// A 429 with `Retry-After`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        ApiError::RateLimited {
            retry_after: retry_after_secs.max(1),
        }
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        ApiError::Unavailable {
            detail: detail.into(),
            retry_after: None,
        }
    }
    /// Adds `Retry-After` (seconds) to a 503 or a 429; other errors are left as they are.
    pub fn retry_after(self, secs: u64) -> Self {
        let secs = secs.max(1);
        match self {
            ApiError::Unavailable { detail, .. } => ApiError::Unavailable {
                detail,
                retry_after: Some(secs),
            },
            ApiError::RateLimited { .. } => ApiError::RateLimited { retry_after: secs },
            other => other,
        }
    }
    /// A 500: the cause is logged here and the caller only learns that it was our fault.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        ApiError::Internal
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { status, .. } => *status,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field: a stable code a client can match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// The `detail` field: for people, safe to show.
    pub fn detail(&self) -> &str {
        match self {
            ApiError::BadRequest { detail, .. }
            | ApiError::Unauthorized(detail)
            | ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Unavailable { detail, .. } => detail,
            ApiError::RateLimited { .. } => "too many requests; retry later",
            ApiError::Internal => "something went wrong on our side",
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            ApiError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The store is down or refused: a 503 the caller may retry. The store's own message (SQL,
/// host names, file paths) goes to the log only.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                ApiError::unavailable("store unavailable; retry later").retry_after(5)
            }
            StoreError::Corrupt(cause) => ApiError::internal(format!("stored data: {cause}")),
        }
    }
}

/// A turn or staff action the engine could not carry out.
impl From<TurnError> for ApiError {
    fn from(error: TurnError) -> Self {
        match error {
            TurnError::StoreUnavailable => {
                ApiError::unavailable("store unavailable; retry later").retry_after(5)
            }
            TurnError::Busy => {
                ApiError::unavailable("conversation busy; retry later").retry_after(1)
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status_code(),
            Json(super::openapi::ErrorBody {
                error: self.code().to_string(),
                detail: self.detail().to_string(),
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn body(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, retry, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn store_and_driver_text_never_reaches_the_client() {
        let secret = "connection to db.internal:5432 failed: password authentication failed";
        for error in [
            ApiError::from(StoreError::Unavailable(secret.into())),
            ApiError::from(StoreError::Corrupt(secret.into())),
            ApiError::from(TurnError::Internal(secret.into())),
            ApiError::internal(secret),
        ] {
            let (status, _, json) = body(error).await;
            assert!(status.is_server_error());
            let text = json.to_string();
            assert!(!text.contains("db.internal"), "{text}");
            assert!(json["error"].is_string() && json["detail"].is_string());
        }
    }

    #[tokio::test]
    async fn each_kind_has_its_status_code_and_retry_after() {
        let (status, retry, json) = body(ApiError::from(StoreError::Unavailable("x".into()))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("5"));
        assert_eq!(json["error"], "unavailable");
        let (status, retry, json) = body(ApiError::too_many_requests(0)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(json["error"], "rate_limited");
        let (status, retry, _) =
            body(ApiError::rejected(StatusCode::PAYLOAD_TOO_LARGE, "big")).await;
        assert_eq!((status, retry), (StatusCode::PAYLOAD_TOO_LARGE, None));
        let (status, _, json) = body(ApiError::unauthorized("missing bearer token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            json,
            json!({"error": "unauthorized", "detail": "missing bearer token"})
        );
    }
}
