//! Shutting down without dropping a turn. On SIGTERM the instance first *drains*: `/ready`
//! answers 503 (the load balancer stops sending), every new webhook gets 503 + `Retry-After`
//! (the provider retries it, on another instance), and the webhooks already in flight finish.
//! The listener stays open meanwhile, so a request that arrives before the load balancer has
//! noticed is answered 503 rather than refused. [`crate::app::App::serve`] then flushes the
//! due outbox rows and stops the engine, all within `server.shutdown_grace_secs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use super::ApiError;

/// Whether this instance is draining, and how many webhooks are still being answered.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Drain {
    /// From now on: not ready, new webhooks refused.
    pub fn start(&self) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            tracing::info!(
                in_flight = self.in_flight.load(Ordering::Acquire),
                "draining: /ready is 503, new webhooks get 503 + Retry-After"
            );
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Resolves once no webhook is being answered (after [`Drain::start`], none can begin).
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a webhook while it is answered; decrements even when the handler's future is dropped.
struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The middleware on the webhook routes: 503 + `Retry-After` while draining, else counted.
pub async fn guard(State(drain): State<Arc<Drain>>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/webhook") {
        return next.run(request).await;
    }
    drain.in_flight.fetch_add(1, Ordering::AcqRel);
    let counted = InFlight(drain.clone());
    // Checked after counting: a webhook either sees the flag or is waited for.
    if drain.is_draining() {
        drop(counted);
        let mut refused =
            ApiError::unavailable("this instance is shutting down; retry").into_response();
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        *refused.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return refused;
    }
    let response = next.run(request).await;
    drop(counted);
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Drain, InFlight};

    #[tokio::test]
    async fn idle_waits_for_the_webhooks_in_flight() {
        let drain = Arc::new(Drain::default());
        drain
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let first = InFlight(drain.clone());
        drain.start();
        assert!(drain.is_draining());
        let waiting = tokio::spawn({
            let drain = drain.clone();
            async move { drain.idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "idle while a webhook is in flight");
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("idle once the last webhook ended")
            .expect("task");
    }
}
