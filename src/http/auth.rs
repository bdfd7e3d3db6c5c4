//! Who may use the admin routes: the [`AdminAuth`] extractor. A handler that takes an
//! `AdminAuth` argument only runs for a request that carries the admin token as
//! `Authorization: Bearer <token>` (scripts), or the console's session cookie
//! [`COOKIE`]. Every token check goes through [`check_token`], the one place a per-source
//! throttle of wrong tokens belongs.
//!
//! Sessions: logging in (`GET /admin?token=`, or the login form) trades the token for a
//! random id ([`new_session`]) kept server-side with an expiry (the store's
//! `admin_sessions`), so the cookie never holds the token and "Log out" ends the session on
//! every instance. The cookie is HttpOnly, SameSite=Strict, and Secure when the public URL
//! is https.
//!
//! CSRF: every state-changing form of the console carries [`AdminAuth::csrf`], a token
//! derived from the session id, and its handler calls [`AdminAuth::check_csrf`]: a POST
//! authenticated by the cookie without the right token is 403. A bearer request needs none
//! (a browser never adds that header by itself).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::config::Secret;

/// The console's session cookie: a random session id, never the admin token.
pub const COOKIE: &str = "sara_session";

/// The form field (or `X-CSRF-Token` header) carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// Proof that the request carried the admin token, or a live session's cookie.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    /// The session id when the cookie authenticated the request; `None` for a bearer.
    session: Option<String>,
}

impl AdminAuth {
    /// The session the request came with (the cookie's id), if it was not a bearer.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The CSRF token the console's forms carry for this session (empty for a bearer, who
    /// needs none).
    pub fn csrf(&self) -> String {
        self.session.as_deref().map(csrf_of).unwrap_or_default()
    }

    /// 403 unless a cookie-authenticated request presents its session's CSRF token.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ApiError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let expected = csrf_of(session);
        match given {
            Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
            _ => Err(ApiError::forbidden("missing or wrong CSRF token")),
        }
    }
}

/// A session's CSRF token: a hash of its id under a label of its own (so it is neither the
/// id nor the id's hash the store keeps), which a page of another site cannot know.
fn csrf_of(session: &str) -> String {
    hex(&Sha256::digest(
        format!("sara console csrf\0{session}").as_bytes(),
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `given` against the configured admin token, in constant time.
pub fn check_token(app: &AppState, given: Option<&str>) -> Result<(), ApiError> {
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
        Ok(())
    } else {
        Err(ApiError::unauthorized("wrong bearer token"))
    }
}

/// What the request presented: a bearer token, else the session cookie.
enum Presented {
    Bearer(String),
    Session(String),
    Nothing,
}

fn presented(parts: &Parts) -> Presented {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        return Presented::Bearer(token.to_owned());
    }
    match session_cookie(parts) {
        Some(id) => Presented::Session(id),
        None => Presented::Nothing,
    }
}

/// The session id of the request's [`COOKIE`], if it has one.
pub fn session_cookie(parts: &Parts) -> Option<String> {
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
        .filter(|id| !id.is_empty())
}

/// Whether the request presented any admin credential (a browser that never logged in
/// gets the login page rather than a 401).
pub fn presents_credentials(parts: &Parts) -> bool {
    !matches!(presented(parts), Presented::Nothing)
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        match presented(parts) {
            Presented::Bearer(token) => {
                check_token(app, Some(&token))?;
                Ok(AdminAuth { session: None })
            }
            Presented::Session(id) => {
                // An admin token switched off turns the sessions off too.
                if app.config.admin.token.is_none() {
                    return Err(ApiError::forbidden(
                        "admin token is not configured (SARA_ADMIN__TOKEN)",
                    ));
                }
                let valid = app
                    .db
                    .sessions()
                    .session_valid(&id, app.engine.now())
                    .await?;
                if valid {
                    Ok(AdminAuth { session: Some(id) })
                } else {
                    Err(ApiError::unauthorized(
                        "session expired or logged out; log in again",
                    ))
                }
            }
            Presented::Nothing => Err(ApiError::unauthorized("missing bearer token")),
        }
    }
}

/// Starts a session (the admin token was just checked): stores a fresh random id and
/// returns the `Set-Cookie` value that hands it to the browser.
pub async fn new_session(app: &AppState) -> Result<HeaderValue, ApiError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ApiError::internal("no randomness for a session id"))?;
    let id = hex(&bytes);
    let now = app.engine.now();
    let hours = app.config.admin.session_hours.max(1);
    let expires = now + chrono::Duration::hours(i64::from(hours));
    app.db.sessions().create_session(&id, now, expires).await?;
    cookie(app, &id, u64::from(hours) * 3600)
}

/// Ends the request's session (logging out) and returns the `Set-Cookie` that clears it.
pub async fn end_session(app: &AppState, auth: &AdminAuth) -> Result<HeaderValue, ApiError> {
    if let Some(id) = auth.session() {
        app.db.sessions().end_session(id).await?;
    }
    cookie(app, "", 0)
}

fn cookie(app: &AppState, id: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    let secure = if app.config.server.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .map_err(|_| ApiError::internal("session cookie is not a header value"))
}

/// Adds `Set-Cookie: cookie` to `response`.
pub fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_checks_its_own_csrf_token_and_a_bearer_needs_none() {
        let session = AdminAuth {
            session: Some("abc".into()),
        };
        let other = AdminAuth {
            session: Some("abd".into()),
        };
        assert!(session.check_csrf(Some(&session.csrf())).is_ok());
        assert!(session.check_csrf(Some(&other.csrf())).is_err());
        assert!(session.check_csrf(None).is_err());
        assert!(session.check_csrf(Some("")).is_err());
        assert_ne!(session.csrf(), "abc");
        assert!(AdminAuth { session: None }.check_csrf(None).is_ok());
    }
}
