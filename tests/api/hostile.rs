//! Sara on the open internet: what an attacker tries over raw sockets and signed webhooks,
//! and what Sara answers (issue 14). One test per defect found.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Sara, phone, sid};

fn addr(sara: &Sara) -> String {
    sara.base.trim_start_matches("http://").to_string()
}

/// A client with no pooled connections, so each request opens a socket of its own.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Reads until the server closes the socket (or resets it); how long that took, or `None`
/// if it was still open after `limit`. Whatever the server wrote is returned too.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((started.elapsed(), String::from_utf8_lossy(&seen).into()));
            }
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn half_sent_headers_and_silent_sockets_are_closed_within_the_header_timeout() {
    let sara = Sara::start_with(&[("SARA_SERVER__HEADER_READ_TIMEOUT_MS", "400")]).await;
    let mut half = TcpStream::connect(addr(&sara)).await.expect("connect");
    half.write_all(b"POST /webhook/sms HTTP/1.1\r\nHost: sara\r\nContent-Ty")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(addr(&sara)).await.expect("connect");
    let (half_after, _) = closed_within(&mut half, Duration::from_secs(5))
        .await
        .expect("a half-sent request head is closed");
    let (silent_after, _) = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent socket is closed");
    assert!(half_after < Duration::from_secs(3), "{half_after:?}");
    assert!(silent_after < Duration::from_secs(3), "{silent_after:?}");

    // A kept-alive connection that goes quiet after its request is closed the same way.
    let mut kept = TcpStream::connect(addr(&sara)).await.expect("connect");
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: sara\r\n\r\n")
        .await
        .expect("write");
    let (_, answer) = closed_within(&mut kept, Duration::from_secs(5))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn more_idle_sockets_than_the_cap_do_not_stop_health_or_a_signed_sms() {
    // The header timeout is long here: what keeps Sara answering is the cap making room.
    let sara = Sara::start_with(&[
        ("SARA_SERVER__MAX_CONNECTIONS", "16"),
        ("SARA_SERVER__HEADER_READ_TIMEOUT_MS", "60000"),
    ])
    .await;
    let mut idle = Vec::new();
    for i in 0..48 {
        let mut s = TcpStream::connect(addr(&sara)).await.expect("connect");
        if i % 2 == 0 {
            // Half of them start a request head and never finish it.
            s.write_all(b"GET /health HTTP/1.1\r\nHost: sa")
                .await
                .expect("write");
        }
        idle.push(s);
    }
    let client = fresh_client();
    for _ in 0..3 {
        let health = client
            .get(format!("{}/health", sara.base))
            .send()
            .await
            .expect("health answers while idle sockets are held");
        assert_eq!(health.status(), 200);
        let (status, body) =
            crate::helpers::signed_sms(&client, &sara.base, &phone(1400), "hello", &sid())
                .await
                .expect("the signed SMS is answered");
        assert_eq!(status, 200, "{body}");
    }
    // The sockets that made room were closed, not left hanging.
    let mut closed = 0;
    for s in &mut idle {
        if closed_within(s, Duration::from_millis(50)).await.is_some() {
            closed += 1;
        }
    }
    assert!(
        closed >= 48 - 16,
        "only {closed} of 48 idle sockets were closed"
    );
    assert!(sara.metric("sara_connections_evicted_total").await >= 32.0);
}

#[tokio::test]
async fn when_every_connection_has_a_request_in_flight_a_newcomer_gets_503_with_retry_after() {
    let sara = Sara::start_with(&[("SARA_SERVER__MAX_CONNECTIONS", "4")]).await;
    // Four requests whose bodies never finish arriving: each holds its connection busy. The
    // `100 Continue` Sara sends when the handler starts reading the body proves the request
    // is in flight.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr(&sara)).await.expect("connect");
        s.write_all(
            b"POST /webhook/sms HTTP/1.1\r\nHost: sara\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .expect("write");
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("100 Continue in time")
            .expect("read");
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 100"), "{head}");
        s.write_all(b"Body=").await.expect("write");
        busy.push(s);
    }
    let mut s = TcpStream::connect(addr(&sara)).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: sara\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (after, answer) = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("the newcomer is answered and closed");
    assert!(after < Duration::from_secs(3), "{after:?}");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1"), "{answer}");
    assert!(lower.contains("\"error\":\"unavailable\""), "{answer}");
    drop(busy);
    // Once the busy clients go away there is room again.
    let client = fresh_client();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = client.get(format!("{}/health", sara.base)).send().await
            && r.status() == 200
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "health answers again");
    assert!(sara.metric("sara_connections_refused_total").await >= 1.0);
}
