//! The accept loop: HTTP/1.1 connections served by hyper with a timer, under a cap.
//!
//! `axum::serve` runs hyper without a timer, so a client that sends half a request head (or
//! nothing) holds its socket for ever, and nothing caps how many sockets there are: a
//! thousand idle connections used up the file descriptors and `/health` stopped answering.
//! Here every connection is bounded in time and number:
//! - the request head (and, between requests on a kept-alive connection, the wait for the next
//!   one) must arrive within `server.header_read_timeout_secs`, else the socket is closed;
//! - a connection with no request in flight on which no byte moved for
//!   `server.idle_timeout_secs` (a client that does not read its response) is closed; the
//!   request itself is bounded by the router's deadline;
//! - at most `server.max_connections` are open. When a new one arrives at the cap, the
//!   connection that has been waiting longest for a request head is closed to make room (an
//!   idle or half-sent connection is worth less than a new caller); when every connection
//!   has a request in flight, the newcomer gets an immediate `503` with `Retry-After` and is
//!   closed.
//!
//! HTTP/2 is not offered: Twilio and Meta call over HTTP/1.1, and a TLS proxy in front speaks
//! HTTP/1.1 to its upstream.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};

use crate::config::ConnectionLimits;

/// Descriptors kept free for everything that is not an inbound connection: the database
/// pool, Redis, outbound HTTP, log and key files.
const RESERVED_FDS: u64 = 256;

/// Refusals (`503` written to a connection over the cap) in progress at once; past that a
/// newcomer is closed without an answer.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// How long a refusal may take to write before the socket is dropped anyway.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(2);

/// How long a newcomer at the cap waits for an evicted connection to let go of its slot.
const EVICTION_WAIT: Duration = Duration::from_millis(500);

/// The limits in force, after the file-descriptor limit was taken into account.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ServerLimits {
    /// The configured limits, the cap lowered when the process may not open that many
    /// descriptors (`fd_limit`, the soft `RLIMIT_NOFILE`, when known).
    pub fn new(config: &ConnectionLimits, fd_limit: Option<u64>) -> ServerLimits {
        let wanted = config.max_connections.max(1);
        let max_connections = match fd_limit {
            Some(limit) if limit.saturating_sub(RESERVED_FDS) < wanted as u64 => {
                let lowered = limit.saturating_sub(RESERVED_FDS).max(16) as usize;
                tracing::warn!(
                    configured = wanted,
                    fd_limit = limit,
                    max_connections = lowered,
                    "server.max_connections lowered to fit the open-file limit"
                );
                lowered
            }
            _ => wanted,
        };
        ServerLimits {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms.max(1)),
            max_connections,
        }
    }
}

/// Raises the soft open-file limit to the hard one where the system allows it, and returns
/// the soft limit then in force (`None` where it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let before = getrlimit(Resource::Nofile);
        let soft = before.current;
        if soft.is_some() && soft != before.maximum {
            let raised = Rlimit {
                current: before.maximum,
                maximum: before.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::info!(
                    from = soft,
                    to = before.maximum,
                    "open-file limit raised to the hard limit"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    soft,
                    hard = before.maximum,
                    "open-file limit could not be raised"
                ),
            }
        }
        let now = getrlimit(Resource::Nofile).current;
        tracing::info!(open_files = now, "open-file limit");
        now
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// What the accept loop knows about one open connection.
struct Connection {
    /// Requests of this connection whose response has not started yet.
    in_flight: AtomicUsize,
    /// Milliseconds since the server's start at which the connection last became idle (no
    /// request in flight): when it was accepted or its last response started.
    idle_since: AtomicU64,
    /// Milliseconds since the server's start at which a byte last moved either way.
    last_io: AtomicU64,
    /// Set to close the connection now.
    evict: Notify,
}

/// The open connections, so that the longest-idle one can be closed when the cap is reached.
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn insert(&self) -> (u64, Arc<Connection>) {
        let now = self.now_ms();
        let conn = Arc::new(Connection {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            last_io: AtomicU64::new(now),
            evict: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // A panic while holding this lock leaves the map consistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells the connection that has waited longest for a request to close; false when every
    /// connection has a request in flight.
    fn evict_longest_idle(&self) -> bool {
        let open = self.lock();
        let victim = open
            .values()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.idle_since.load(Ordering::Relaxed));
        match victim {
            Some(conn) => {
                metrics::counter!("sara_connections_evicted_total").increment(1);
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then lets open requests finish
/// for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        open: Mutex::new(HashMap::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let mut last_accept_error: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors: free one by closing the longest-idle connection,
                    // and say so at most once a second.
                    if last_accept_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(%error, "accept error");
                        last_accept_error = Some(Instant::now());
                    }
                    registry.evict_longest_idle();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if registry.evict_longest_idle() => {
                tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(permit) = permit else {
            metrics::counter!("sara_connections_refused_total").increment(1);
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSAL_DEADLINE, refuse(stream)).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (id, conn) = registry.insert();
        let task = ConnectionTask {
            registry: registry.clone(),
            conn,
            router: router.clone(),
            builder: builder.clone(),
            idle_timeout: limits.idle_timeout,
            stop: stop_rx.clone(),
        };
        tokio::spawn(async move {
            task.run(stream, peer).await;
            task.registry.remove(id);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection gives its slot back when it ends: having them all means all are done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    Ok(())
}

/// An immediate `503` with `Retry-After` to a connection over the cap, then close.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str =
        r#"{"error":"unavailable","detail":"too many open connections; retry later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    if stream.write_all(response.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
        // Read what the client sent until it closes, so that closing does not reset the
        // connection before the client has read the answer.
        let mut sink = [0u8; 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
            if n == 0 {
                break;
            }
        }
    }
}

struct ConnectionTask {
    registry: Arc<Registry>,
    conn: Arc<Connection>,
    router: Router,
    builder: Arc<hyper::server::conn::http1::Builder>,
    idle_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl ConnectionTask {
    async fn run(&self, stream: TcpStream, peer: SocketAddr) {
        let io = TokioIo::new(Watched {
            inner: stream,
            registry: self.registry.clone(),
            conn: self.conn.clone(),
        });
        let service = ConnectionService {
            router: self.router.clone(),
            peer,
            registry: self.registry.clone(),
            conn: self.conn.clone(),
        };
        // With upgrades: the ConversationRelay WebSocket (`GET /webhook/voice/relay`) takes
        // the connection over after its handshake; the connection future then ends here.
        let connection = self.builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        let mut stop = self.stop.clone();
        let mut stopping = *stop.borrow();
        if stopping {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            let idle_deadline = self.idle_deadline();
            tokio::select! {
                _ = connection.as_mut() => return,
                () = self.conn.evict.notified() => return,
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        connection.as_mut().graceful_shutdown();
                    }
                }
                () = tokio::time::sleep_until(idle_deadline) => {
                    if self.conn.in_flight.load(Ordering::Acquire) == 0
                        && self.idle_deadline() <= tokio::time::Instant::now()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// When the connection counts as idle if no byte moves before then.
    fn idle_deadline(&self) -> tokio::time::Instant {
        let last = self.conn.last_io.load(Ordering::Relaxed);
        let at = self.registry.epoch + Duration::from_millis(last) + self.idle_timeout;
        tokio::time::Instant::from_std(at)
    }
}

/// The router as hyper calls it for one connection: the peer address for `ConnectInfo`, and
/// the count of requests in flight for the eviction choice.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    registry: Arc<Registry>,
    conn: Arc<Connection>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        let busy = InFlight::enter(self.registry.clone(), self.conn.clone());
        Box::pin(async move {
            let response = tower_service::Service::call(&mut router, req).await;
            drop(busy);
            response
        })
    }
}

/// One request in flight on a connection; when it ends the connection is idle again.
struct InFlight {
    registry: Arc<Registry>,
    conn: Arc<Connection>,
}

impl InFlight {
    fn enter(registry: Arc<Registry>, conn: Arc<Connection>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight { registry, conn }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.registry.now_ms();
        self.conn.idle_since.store(now, Ordering::Relaxed);
        self.conn.last_io.store(now, Ordering::Relaxed);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that notes when a byte last moved, for the idle timeout.
struct Watched {
    inner: TcpStream,
    registry: Arc<Registry>,
    conn: Arc<Connection>,
}

impl Watched {
    fn touch(&self) {
        self.conn
            .last_io
            .store(self.registry.now_ms(), Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn the_cap_fits_under_the_open_file_limit() {
        assert_eq!(
            ServerLimits::new(&limits(1024), Some(1024)).max_connections,
            768
        );
        assert_eq!(
            ServerLimits::new(&limits(1024), Some(65536)).max_connections,
            1024
        );
        assert_eq!(ServerLimits::new(&limits(1024), None).max_connections, 1024);
        assert_eq!(ServerLimits::new(&limits(0), None).max_connections, 1);
        assert_eq!(
            ServerLimits::new(&limits(500), Some(100)).max_connections,
            16
        );
    }
}
