//! Guessing the admin token: failed admin requests counted per source address, and an
//! address over the limit refused with `429` + `Retry-After` on every admin route (a right
//! guess included, so a 429 says nothing about the token) until its minute is over. Also
//! the response headers every admin page gets (it lists customers).
//!
//! The count is per instance and per source address as Sara sees it: behind a proxy that
//! does not pass the client's own connection, every client shares the proxy's address
//! (README, "Security").

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past it, those whose window is over are forgotten.
const MAX_ADDRESSES: usize = 10_000;

/// Failed admin requests per source address, in fixed windows.
#[derive(Default)]
pub struct AdminThrottle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AdminThrottle {
    /// Seconds until `ip` may try again, when it has used up `limit` failures.
    pub fn blocked(&self, ip: IpAddr, limit: u32, now: Instant) -> Option<u64> {
        if limit == 0 {
            return None;
        }
        let failures = self.lock();
        let &(start, count) = failures.get(&ip)?;
        let left = WINDOW
            .checked_sub(now.saturating_duration_since(start))
            .filter(|left| !left.is_zero())?;
        (count >= limit).then(|| left.as_secs().max(1))
    }

    /// Counts a failure of `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.lock();
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        }
        let entry = failures.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        // Counters stay consistent across a panic elsewhere; a poisoned lock is still fine.
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The process's throttle (one server per process).
fn throttle() -> &'static AdminThrottle {
    static THROTTLE: std::sync::OnceLock<AdminThrottle> = std::sync::OnceLock::new();
    THROTTLE.get_or_init(AdminThrottle::default)
}

/// Middleware on the admin routes: refuses an address that failed too often, counts a 401,
/// and marks every answer not to be cached, framed or sniffed.
pub async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let limit = app.config.limits.admin_failures_per_ip_per_minute;
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let mut response = match ip.and_then(|ip| throttle().blocked(ip, limit, Instant::now())) {
        Some(retry_after) => {
            metrics::counter!("sara_rate_limited_total", "kind" => "admin_token").increment(1);
            ApiError::too_many_requests(retry_after).into_response()
        }
        None => {
            let response = next.run(req).await;
            if response.status() == StatusCode::UNAUTHORIZED
                && let Some(ip) = ip
            {
                metrics::counter!("sara_admin_auth_failures_total").increment(1);
                throttle().failed(ip, Instant::now());
            }
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The shortest admin token Sara accepts.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Why `token` is too weak to guard the admin routes, if it is.
pub fn weakness(token: &str) -> Option<String> {
    let chars: Vec<char> = token.chars().collect();
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if chars.len() < MIN_TOKEN_CHARS {
        Some(format!(
            "admin.token (SARA_ADMIN__TOKEN) has {} characters; use at least {MIN_TOKEN_CHARS} random ones (e.g. `openssl rand -hex 32`), or leave it unset to turn the admin routes off",
            chars.len()
        ))
    } else if distinct.len() < 8 {
        Some(format!(
            "admin.token (SARA_ADMIN__TOKEN) repeats too few characters ({} distinct); use a random one (e.g. `openssl rand -hex 32`)",
            distinct.len()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_the_limit_until_its_window_is_over() {
        let throttle = AdminThrottle::default();
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let other: IpAddr = "203.0.113.8".parse().expect("ip");
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.blocked(ip, 3, start), None);
            throttle.failed(ip, start);
        }
        assert_eq!(throttle.blocked(ip, 3, start), Some(60));
        assert_eq!(throttle.blocked(other, 3, start), None);
        assert_eq!(throttle.blocked(ip, 0, start), None, "0 turns it off");
        assert_eq!(throttle.blocked(ip, 3, start + WINDOW), None);
    }

    #[test]
    fn short_or_repetitive_tokens_are_weak() {
        assert!(weakness("admin").is_some());
        assert!(weakness("aaaaaaaaaaaaaaaaaaaaaaaa").is_some());
        assert!(weakness("test-admin-token").is_none());
        assert!(weakness("3f9c1e0b7a2d4c6e8f0a1b2c3d4e5f60").is_none());
    }
}
