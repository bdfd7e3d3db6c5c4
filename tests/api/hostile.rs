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
/// Kills a server the test spawned by hand, however the test ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The base URL from the `sara listening on …` line a hand-spawned server prints first.
async fn listening_base(stdout: std::process::ChildStdout) -> String {
    use std::io::{BufRead, BufReader};
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("reader")
    .expect("first line");
    line.trim()
        .strip_prefix("sara listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string()
}

fn fresh_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
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

#[tokio::test]
async fn guessing_the_admin_token_is_throttled_per_address_and_counted() {
    let sara = Sara::start_with(&[("SARA_LIMITS__ADMIN_FAILURES_PER_IP_PER_MINUTE", "5")]).await;
    let get = |token: &str| {
        sara.client
            .get(format!("{}/admin/stats", sara.base))
            .bearer_auth(token)
            .send()
    };
    for i in 0..5 {
        let r = get(&format!("guess-{i}")).await.expect("request");
        assert_eq!(r.status(), 401);
    }
    let r = get("guess-5").await.expect("request");
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = r.json().await.expect("JSON error");
    assert_eq!(body["error"], "rate_limited");
    // Even the right token: a 429 must not tell a right guess from a wrong one.
    let r = get(crate::helpers::ADMIN_TOKEN).await.expect("request");
    assert_eq!(r.status(), 429);
    assert!(
        sara.metric("sara_rate_limited_total{kind=\"admin_token\"}")
            .await
            >= 2.0,
        "counted in the metrics"
    );
    // Webhooks are not admin routes.
    assert!(!sara.text(&phone(1440), "hello").await.is_empty());
}

#[tokio::test]
async fn a_weak_admin_token_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sara"))
        .arg("serve")
        .env("SARA_CONFIG", &config)
        .env("SARA_SERVER__BIND", "127.0.0.1:0")
        .env(
            "SARA_STORAGE__DATABASE_URL",
            format!("sqlite://{}", dir.path().join("sara.db").display()),
        )
        .env("SARA_ADMIN__TOKEN", "admin")
        .output()
        .await
        .expect("sara runs");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("sara listening"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SARA_ADMIN__TOKEN") && stderr.contains("at least 16"),
        "{stderr}"
    );
}

#[tokio::test]
async fn admin_answers_are_not_cached_framed_or_sniffed() {
    let sara = Sara::start().await;
    for (path, token) in [
        ("/admin", Some(crate::helpers::ADMIN_TOKEN)),
        ("/admin/bookings", Some(crate::helpers::ADMIN_TOKEN)),
        ("/admin/stats", None),
    ] {
        let mut req = sara.client.get(format!("{}{path}", sara.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("request");
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap_or_default()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_whatsapp_message_for_another_business_number_is_not_answered_through_ours() {
    const SECRET: &str = "wa-app-secret";
    let sara = Sara::start_with(&[
        ("SARA_WHATSAPP__APP_SECRET", SECRET),
        ("SARA_WHATSAPP__PHONE_NUMBER_ID", "1234567890"),
    ])
    .await;
    let send = |number_id: &str, from: &str| {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550100000", "phone_number_id": number_id},
                "messages": [{"from": from, "id": format!("wamid.{}", sid()),
                    "timestamp": "1764547200", "type": "text", "text": {"body": "hello"}}]
            }}]}]
        })
        .to_string();
        let signature =
            sara::channels::whatsapp::WhatsAppSignature::new(SECRET).sign(body.as_bytes());
        sara.client
            .post(format!("{}/webhook/whatsapp", sara.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
    };
    let other = phone(1450);
    let r = send("9999999999", other.trim_start_matches('+'))
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "acknowledged, so Meta does not retry");
    let (status, _) = sara.admin_get(&format!("/logs/{other}")).await;
    assert_eq!(status, 404, "no turn for another number's customer");
    let ours = phone(1451);
    let r = send("1234567890", ours.trim_start_matches('+'))
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let (status, log) = sara.admin_get(&format!("/logs/{ours}")).await;
    assert_eq!(status, 200, "{log}");
}

#[tokio::test]
async fn a_call_from_a_withheld_number_is_told_what_sara_can_do_and_put_through_to_staff() {
    let sara = Sara::start().await;
    let call = [
        ("CallSid", "CA00000000000000000000000000000a11"),
        ("From", "anonymous"),
        ("To", "+15550100000"),
    ];
    let (status, xml) = sara.twilio("/webhook/voice", &call).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("see your number"), "{xml}");
    assert!(
        xml.contains("<Dial timeout=\"20\"") && xml.contains(">+15550100000</Dial>"),
        "{xml}"
    );
    let mut gather = call.to_vec();
    gather.push(("SpeechResult", "cancel my appointment"));
    let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &gather).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<Dial"), "{xml}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_files_are_private_to_sara() {
    use std::os::unix::fs::PermissionsExt;
    let sara = Sara::start().await;
    // A turn makes SQLite write its WAL and shared-memory files.
    assert!(!sara.text(&phone(1460), "hello").await.is_empty());
    let db = std::path::PathBuf::from(sara.db_url.trim_start_matches("sqlite://"));
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let mode = std::fs::metadata(&name)
            .unwrap_or_else(|e| panic!("{name:?}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name:?}");
    }
}

#[tokio::test]
async fn the_frameworks_own_refusals_answer_with_the_contracts_json_error() {
    let sara = Sara::start().await;
    let json_error = |status: u16, text: &str, want: u16| {
        assert_eq!(status, want, "{text}");
        let body: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|_| panic!("{want} is JSON: {text:?}"));
        assert!(
            body["error"].is_string() && body["detail"].is_string(),
            "{body}"
        );
    };
    // 405: a GET to a POST-only webhook.
    let r = sara
        .client
        .get(format!("{}/webhook/sms", sara.base))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    json_error(status, &r.text().await.unwrap_or_default(), 405);
    // 404: no such route.
    let r = sara
        .client
        .get(format!("{}/nope", sara.base))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    json_error(status, &r.text().await.unwrap_or_default(), 404);
    // 400: a query the handler cannot read.
    let (status, text) = sara
        .twilio(
            "/webhook/voice/gather?n=many",
            &[
                ("CallSid", "CA00000000000000000000000000000b22"),
                ("From", &phone(1470)),
            ],
        )
        .await;
    json_error(status, &text, 400);
    // 413: a WhatsApp body over the limit.
    let r = sara
        .client
        .post(format!("{}/webhook/whatsapp", sara.base))
        .header("content-type", "application/json")
        .body(vec![b'{'; 200 * 1024])
        .send()
        .await;
    if let Ok(r) = r {
        let status = r.status().as_u16();
        json_error(status, &r.text().await.unwrap_or_default(), 413);
    }
}

#[tokio::test]
async fn an_unverified_caller_id_may_book_but_not_hear_or_cancel_a_booking() {
    use chrono::Weekday;
    let sara = Sara::start().await;
    let me = phone(1480);
    // The real customer booked by text.
    let (_, day_text) = crate::helpers::upcoming(Weekday::Wed);
    let asked = sara
        .text(
            &me,
            &format!("I'd like a consultation on {day_text} at 11am, my name is Ana Ruiz"),
        )
        .await;
    assert!(asked.contains("Ana Ruiz"), "{asked}");
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
    assert_eq!(sara.bookings().await.len(), 1);

    // Someone calls showing her number; Twilio could not verify it (no StirVerstat, or a
    // lower attestation).
    for (call_sid, verstat) in [
        ("CA000000000000000000000000000000c1", None),
        (
            "CA000000000000000000000000000000c2",
            Some("TN-Validation-Passed-C"),
        ),
    ] {
        let mut start = vec![("CallSid", call_sid), ("From", me.as_str())];
        if let Some(v) = verstat {
            start.push(("StirVerstat", v));
        }
        let (status, xml) = sara.twilio("/webhook/voice", &start).await;
        assert_eq!(status, 200, "{xml}");
        assert!(!xml.contains("caller=verified"), "{xml}");
        let mut cancel = start.clone();
        cancel.push(("SpeechResult", "I want to cancel my appointment"));
        let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &cancel).await;
        assert_eq!(status, 200, "{xml}");
        assert!(xml.contains("<Dial"), "put through to staff: {xml}");
        assert!(!xml.contains("11"), "the booking is not read out: {xml}");
    }
    let bookings = sara.bookings().await;
    assert_eq!(bookings[0]["status"], "confirmed");

    // A verified caller ID (full attestation) is believed.
    let start = [
        ("CallSid", "CA000000000000000000000000000000c3"),
        ("From", me.as_str()),
        ("StirVerstat", "TN-Validation-Passed-A"),
    ];
    let (_, xml) = sara.twilio("/webhook/voice", &start).await;
    assert!(xml.contains("gather?n=1&amp;caller=verified"), "{xml}");
    let cancel = [
        ("CallSid", "CA000000000000000000000000000000c3"),
        ("From", me.as_str()),
        ("SpeechResult", "I want to cancel my appointment"),
    ];
    let (status, xml) = sara
        .twilio("/webhook/voice/gather?n=1&caller=verified", &cancel)
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        !xml.contains("<Dial"),
        "a verified caller is answered: {xml}"
    );

    // An unverified caller can still book something new.
    let other = phone(1481);
    let book = [
        ("CallSid", "CA000000000000000000000000000000c4"),
        ("From", other.as_str()),
        ("SpeechResult", "I'd like to book a consultation"),
    ];
    let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &book).await;
    assert_eq!(status, 200, "{xml}");
    assert!(!xml.contains("<Dial"), "{xml}");
}

#[cfg(unix)]
#[tokio::test]
async fn under_a_small_open_file_limit_idle_sockets_do_not_exhaust_the_descriptors() {
    use std::process::{Command, Stdio};
    // The setting: a file limit Sara cannot raise (soft = hard), and more idle
    // sockets than it allows. The cap is lowered to fit, so accept never fails.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 320 && exec \"$0\" serve")
        .arg(env!("CARGO_BIN_EXE_sara"))
        .env("SARA_CONFIG", &config)
        .env("SARA_SERVER__BIND", "127.0.0.1:0")
        .env("SARA_SERVER__PUBLIC_URL", "https://sara.example.com")
        .env(
            "SARA_STORAGE__DATABASE_URL",
            format!("sqlite://{}", dir.path().join("sara.db").display()),
        )
        .env("SARA_TWILIO__AUTH_TOKEN", crate::helpers::AUTH_TOKEN)
        .env("SARA_SERVER__HEADER_READ_TIMEOUT_MS", "60000")
        .env("SARA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sara starts");
    let stdout = child.stdout.take().expect("piped");
    let child = Killed(child);
    let base = listening_base(stdout).await;
    let addr = base.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let client = fresh_client();
    let health = client.get(format!("{base}/health")).send().await;
    let sms = crate::helpers::signed_sms(&client, &base, &phone(1490), "hello", &sid()).await;
    drop(child);
    assert_eq!(health.expect("health answers").status(), 200);
    let (status, body) = sms.expect("the signed SMS is answered");
    assert_eq!(status, 200, "{body}");
    drop(idle);
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_closed_after_the_idle_timeout() {
    let sara = Sara::start_with(&[
        ("SARA_SERVER__IDLE_TIMEOUT_MS", "500"),
        ("SARA_SERVER__HEADER_READ_TIMEOUT_MS", "60000"),
    ])
    .await;
    let stream = TcpStream::connect(addr(&sara)).await.expect("connect");
    // Pipelined requests whose answers are never read: once the socket buffers are full,
    // Sara's writes stall and no byte moves either way.
    let (_read_half, mut write_half) = stream.into_split();
    let writer = tokio::spawn(async move {
        let batch = b"GET /health HTTP/1.1\r\nHost: sara\r\n\r\n".repeat(1000);
        let started = Instant::now();
        loop {
            if write_half.write_all(&batch).await.is_err() {
                return Some(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(20) {
                return None;
            }
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(25), writer)
        .await
        .expect("the writer ends")
        .expect("writer task");
    let after = closed.expect("Sara closed the stalled connection");
    assert!(after < Duration::from_secs(15), "{after:?}");
    // And keeps answering others.
    let health = fresh_client()
        .get(format!("{}/health", sara.base))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn an_email_address_the_smtp_server_refuses_never_reaches_the_log() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use tokio::io::AsyncBufReadExt;
    // An SMTP server that refuses the recipient, quoting it as real servers do.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let smtp = format!("smtp://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                let _ = write.write_all(b"220 stand-in ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let answer = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        "250-stand-in\r\n250 8BITMIME\r\n".to_string()
                    } else if upper.starts_with("RCPT TO:") {
                        let rcpt = line[8..].trim().trim_matches(['<', '>']).to_string();
                        format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n")
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        "250 OK\r\n".to_string()
                    };
                    let _ = write.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sara"))
        .arg("serve")
        .env("SARA_CONFIG", &config)
        .env("SARA_SERVER__BIND", "127.0.0.1:0")
        .env("SARA_SERVER__PUBLIC_URL", "https://sara.example.com")
        .env(
            "SARA_STORAGE__DATABASE_URL",
            format!("sqlite://{}", dir.path().join("sara.db").display()),
        )
        .env("SARA_TWILIO__AUTH_TOKEN", crate::helpers::AUTH_TOKEN)
        .env("SARA_EMAIL__SMTP_URL", &smtp)
        .env(
            "SARA_EMAIL__FROM",
            "Harbor Street Clinic <desk@harbor.example>",
        )
        .env("SARA_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sara starts");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let child = Killed(child);
    let base = listening_base(stdout).await;
    // Every log line, until the one saying the email was given up.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let client = fresh_client();
    let me = phone(1500);
    let (_, day_text) = crate::helpers::upcoming(chrono::Weekday::Tue);
    let ask = format!(
        "Book a cleaning on {day_text} at 10am please. I'm Ana Diaz, ana.refused@example.com"
    );
    for text in [ask.as_str(), "yes"] {
        let (status, body) = crate::helpers::signed_sms(&client, &base, &me, text, &sid())
            .await
            .expect("answered");
        assert_eq!(status, 200, "{body}");
    }
    let mut log = Vec::new();
    let given_up = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = rx.recv().await {
            let done = line.contains("outbound message given up");
            log.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    drop(child);
    let log = log.join("\n");
    assert!(given_up, "the refusal is logged: {log}");
    assert!(log.contains("550"), "{log}");
    assert!(!log.contains("ana.refused"), "{log}");
}
