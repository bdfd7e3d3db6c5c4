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

/// Posts `params` to `path` with `signature` (and any extra headers); (status, body).
async fn post_signed(
    sara: &Sara,
    path: &str,
    params: &[(String, String)],
    signature: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut req = sara
        .client
        .post(format!("{}{path}", sara.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request reaches sara");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const SMS_URL: &str = "https://sara.example.com/webhook/sms";

#[tokio::test]
async fn a_signed_sms_or_gather_without_a_well_formed_twilio_id_is_refused() {
    let sara = Sara::start().await;
    let me = phone(1410);
    let signer = sara::channels::twilio::TwilioSignature::new(crate::helpers::AUTH_TOKEN);
    for message_sid in [
        None,
        Some(""),
        Some("SM123"),
        Some("XX0123456789abcdef0123456789abcdef"),
    ] {
        let mut params = pairs(&[("Body", "hello"), ("From", &me), ("To", "+15550100000")]);
        if let Some(v) = message_sid {
            params.push(("MessageSid".into(), v.into()));
        }
        let signature = signer.sign(SMS_URL, &params);
        let (status, body) = post_signed(&sara, "/webhook/sms", &params, &signature, &[]).await;
        assert_eq!(status, 400, "{message_sid:?}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(json["error"], "bad_request");
    }
    let (status, body) = sara
        .twilio(
            "/webhook/voice/gather?n=1",
            &[
                ("CallSid", "CA42"),
                ("From", &me),
                ("SpeechResult", "cancel my booking"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // A repeated parameter is not something Twilio sends.
    let params = pairs(&[
        ("Body", "hello"),
        ("From", &me),
        ("From", "+15550009999"),
        ("MessageSid", &sid()),
    ]);
    let signature = signer.sign(SMS_URL, &params);
    let (status, body) = post_signed(&sara, "/webhook/sms", &params, &signature, &[]).await;
    assert_eq!(status, 400, "{body}");
    let (_, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert!(log["turns"].as_array().is_none_or(Vec::is_empty), "{log}");
}

#[tokio::test]
async fn a_captured_sms_re_split_under_the_same_signature_is_refused() {
    let sara = Sara::start().await;
    let me = phone(1420);
    let victim = phone(1421);
    let signer = sara::channels::twilio::TwilioSignature::new(crate::helpers::AUTH_TOKEN);
    let message = sid();
    let genuine = pairs(&[
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("Body", "hello"),
        ("From", &me),
        ("FromCountry", "US"),
        ("MessageSid", &message),
        ("NumMedia", "0"),
        ("To", "+15550100000"),
    ]);
    let signature = signer.sign(SMS_URL, &genuine);
    let (status, body) = post_signed(&sara, "/webhook/sms", &genuine, &signature, &[]).await;
    assert_eq!(status, 200, "the genuine message is answered: {body}");
    // 1. MessageSid moved into another value: no dedup key any more.
    let hidden = pairs(&[
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("Body", "hello"),
        ("From", &me),
        ("FromCountry", &format!("USMessageSid{message}")),
        ("NumMedia", "0"),
        ("To", "+15550100000"),
    ]);
    assert_eq!(signer.sign(SMS_URL, &hidden), signature);
    for _ in 0..2 {
        let (status, body) = post_signed(&sara, "/webhook/sms", &hidden, &signature, &[]).await;
        assert!((400..500).contains(&status), "{status}: {body}");
    }

    // 2. A message whose body the attacker wrote so that it re-splits into a From and a
    //    MessageSid of their choosing, the rest swallowed by one parameter. Such a body is
    //    refused as sent already (a customer does not write "From+1555…MessageSidSM…").
    let crafted = format!("hiFrom{victim}MessageSid{}Nx", sid());
    let message = sid();
    let genuine = pairs(&[
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("Body", &crafted),
        ("From", &me),
        ("FromCountry", "US"),
        ("MessageSid", &message),
        ("NumMedia", "0"),
        ("To", "+15550100000"),
    ]);
    let signature = signer.sign(SMS_URL, &genuine);
    let (status, body) = post_signed(&sara, "/webhook/sms", &genuine, &signature, &[]).await;
    assert_eq!(status, 403, "{body}");
    let (_, rest) = crafted.split_once("Nx").expect("marker");
    let tail = format!("{rest}From{me}FromCountryUSMessageSid{message}NumMedia0");
    let forged_sid = crafted
        .split_once("MessageSid")
        .and_then(|(_, s)| s.get(..34))
        .expect("sid in body")
        .to_string();
    let impersonation = pairs(&[
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("Body", "hi"),
        ("From", &victim),
        ("MessageSid", &forged_sid),
        ("Nx", &tail),
        ("To", "+15550100000"),
    ]);
    for forged in [impersonation] {
        assert_eq!(
            signer.sign(SMS_URL, &forged),
            signature,
            "the re-split carries the captured signature"
        );
        for _ in 0..2 {
            let (status, body) = post_signed(&sara, "/webhook/sms", &forged, &signature, &[]).await;
            assert!((400..500).contains(&status), "{status}: {body}");
        }
    }
    let (_, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(log["turns"].as_array().map(Vec::len), Some(1), "{log}");
    let (status, _) = sara.admin_get(&format!("/logs/{victim}")).await;
    assert_eq!(status, 404, "nothing was said in the victim's name");
}

#[tokio::test]
async fn webhooks_signed_with_a_twilio_shared_key_and_hmac_sha256_are_accepted() {
    use sara::channels::twilio::{SignatureAlgorithm, TwilioSignature};
    const SHARED: &str = "shared-key-secret-for-tests";
    let sara = Sara::start_with(&[("SARA_TWILIO__SHARED_KEY_SECRET", SHARED)]).await;
    let params = pairs(&[
        ("Body", "hello"),
        ("From", &phone(1430)),
        ("MessageSid", &sid()),
        ("To", "+15550100000"),
    ]);
    let settings = [(
        "x-twilio-webhooks-signature-settings",
        "key=KS00000000000000000000000000000000,algorithm=HMAC_SHA256",
    )];
    let sha256 = TwilioSignature::with_algorithm(SHARED, SignatureAlgorithm::HmacSha256)
        .sign(SMS_URL, &params);
    let (status, body) = post_signed(&sara, "/webhook/sms", &params, &sha256, &settings).await;
    assert_eq!(status, 200, "{body}");
    // The same string under SHA-1, or SHA-256 with the auth token, is not that signature.
    let sha1 = TwilioSignature::new(SHARED).sign(SMS_URL, &params);
    let (status, _) = post_signed(&sara, "/webhook/sms", &params, &sha1, &settings).await;
    assert_eq!(status, 403);
    let wrong_key =
        TwilioSignature::with_algorithm(crate::helpers::AUTH_TOKEN, SignatureAlgorithm::HmacSha256)
            .sign(SMS_URL, &params);
    let (status, _) = post_signed(&sara, "/webhook/sms", &params, &wrong_key, &settings).await;
    assert_eq!(status, 403);
    let unknown = [(
        "x-twilio-webhooks-signature-settings",
        "key=KS00000000000000000000000000000000,algorithm=HMAC_MD5",
    )];
    let (status, _) = post_signed(&sara, "/webhook/sms", &params, &sha256, &unknown).await;
    assert_eq!(status, 403);
}
