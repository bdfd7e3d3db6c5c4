//! Who may use the admin routes: the [`AdminAuth`] extractor. A handler that takes an
//! `AdminAuth` argument only runs for a request that carries the admin token, as
//! `Authorization: Bearer <token>` or as the dashboard's `sara_admin` cookie (set by
//! `GET /admin?token=`). Every check goes through [`check_token`], the one place a
//! per-source throttle of wrong tokens belongs.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::config::Secret;

/// The dashboard's cookie holding the admin token.
pub const COOKIE: &str = "sara_admin";

/// Proof that the request carried the admin token.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

/// Checks `given` against the configured admin token, in constant time.
pub fn check_token(app: &AppState, given: Option<&str>) -> Result<AdminAuth, ApiError> {
    let Some(token) = app
        .config
        .admin
        .token
        .as_ref()
        .map(Secret::expose)
        .filter(|t| !t.is_empty())
    else {
        return Err(ApiError::forbidden(
            "admin token is not configured (SARA_ADMIN__TOKEN)",
        ));
    };
    let given = given.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    if bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())) {
        Ok(AdminAuth)
    } else {
        Err(ApiError::unauthorized("wrong bearer token"))
    }
}

/// The token of `Authorization: Bearer …`, else of the dashboard cookie.
fn presented(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        return Some(token.to_owned());
    }
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(COOKIE)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        })
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        check_token(app, presented(parts).as_deref())
    }
}
