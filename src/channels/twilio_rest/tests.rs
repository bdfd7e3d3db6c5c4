use super::*;
use base64::Engine as _;
use sara_actors::outbound::{Content, OutboundKind};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "secret-token";
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

fn phone(s: &str) -> Phone {
    Phone::parse(s).expect("phone")
}

fn client(base: &str, from: &str) -> TwilioRest {
    let _ = rustls::crypto::ring::default_provider().install_default();
    TwilioRest::new(TwilioRestSettings {
        api_base: base.to_string(),
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
        from: TwilioSender::parse(from).expect("sender"),
        public_url: "https://sara.example/".into(),
        timeout: Duration::from_millis(500),
    })
    .expect("client")
}

fn message(body: &str) -> OutboundMessage {
    OutboundMessage {
        key: "SM-in-1:0".into(),
        channel: Channel::Sms,
        to: Recipient::Phone(phone("+15550001111")),
        kind: OutboundKind::Reminder,
        content: Content::text(body),
    }
}

fn form_of(request: &wiremock::Request) -> Vec<(String, String)> {
    form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn created(sid: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(serde_json::json!({
        "account_sid": SID, "sid": sid, "status": "queued", "to": "+15550001111",
        "from": "+15550100000", "body": "x", "num_segments": "1", "error_code": null
    }))
}

async fn stand_in(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn an_sms_is_posted_with_basic_auth_and_every_form_field() {
    let server = stand_in(created("SM11111111111111111111111111111111")).await;
    let twilio = client(&server.uri(), "+15550100000");
    let sent = twilio
        .send(&message("Hi Maria, a reminder & more: 2:00 PM"))
        .await
        .expect("sent");
    assert_eq!(sent.provider_id, "SM11111111111111111111111111111111");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let auth = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .expect("authorization");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    assert_eq!(auth, format!("Basic {expected}"));
    assert_eq!(
        request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded")
    );
    let mut form = form_of(request);
    form.sort();
    let want = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        form,
        vec![
            want("Body", "Hi Maria, a reminder & more: 2:00 PM"),
            want("From", "+15550100000"),
            want("StatusCallback", "https://sara.example/webhook/sms/status"),
            want("To", "+15550001111"),
        ]
    );
}

#[tokio::test]
async fn a_messaging_service_sender_goes_as_messaging_service_sid() {
    let server = stand_in(created("SM22222222222222222222222222222222")).await;
    let twilio = client(&server.uri(), SERVICE);
    twilio.send(&message("Hello")).await.expect("sent");
    let requests = server.received_requests().await.expect("recorded");
    let form = form_of(&requests[0]);
    assert!(form.contains(&("MessagingServiceSid".into(), SERVICE.into())));
    assert!(!form.iter().any(|(k, _)| k == "From"), "{form:?}");
}

#[tokio::test]
async fn twilio_answers_are_sorted_into_retryable_and_permanent() {
    let cases: Vec<(ResponseTemplate, bool, Option<u64>, &str)> = vec![
        (ResponseTemplate::new(500), true, None, "HTTP 500"),
        (ResponseTemplate::new(503).insert_header("Retry-After", "7"), true, Some(7), "HTTP 503"),
        (
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_json(serde_json::json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
            true,
            Some(30),
            "HTTP 429: 20429 Too Many Requests",
        ),
        (
            ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "code": 21211, "message": "The 'To' number is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400
            })),
            false,
            None,
            "HTTP 400: 21211 The 'To' number is not a valid phone number.",
        ),
        (
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"code": 21610, "status": 400})),
            false,
            None,
            "HTTP 400: 21610",
        ),
        (ResponseTemplate::new(401).set_body_string("<html>"), false, None, "HTTP 401"),
        (ResponseTemplate::new(404), false, None, "HTTP 404"),
    ];
    for (response, retryable, retry_after, reason) in cases {
        let server = stand_in(response).await;
        let error = client(&server.uri(), "+15550100000")
            .send(&message("Hello"))
            .await
            .expect_err("refused");
        assert_eq!(error.is_retryable(), retryable, "{error}");
        assert_eq!(
            error.retry_after(),
            retry_after.map(Duration::from_secs),
            "{error}"
        );
        assert!(error.to_string().ends_with(reason), "{error} / {reason}");
    }
}

#[tokio::test]
async fn an_accepted_message_without_a_sid_is_still_sent_once() {
    let server = stand_in(ResponseTemplate::new(201).set_body_string("not json")).await;
    let sent = client(&server.uri(), "+15550100000")
        .send(&message("Hello"))
        .await
        .expect("accepted counts as sent");
    assert_eq!(sent.provider_id, "");
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retryable() {
    let slow = stand_in(created("SM1").set_delay(Duration::from_secs(5))).await;
    let error = client(&slow.uri(), "+15550100000")
        .send(&message("Hello"))
        .await
        .expect_err("timed out");
    assert!(
        error.is_retryable() && error.to_string().contains("timed out"),
        "{error}"
    );
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let error = client(&format!("http://127.0.0.1:{port}"), "+15550100000")
        .send(&message("Hello"))
        .await
        .expect_err("refused");
    assert!(error.is_retryable(), "{error}");
    assert!(
        !error.to_string().contains(SID),
        "no account sid in errors: {error}"
    );
}

#[tokio::test]
async fn content_an_sms_cannot_carry_is_refused_before_any_request() {
    let server = stand_in(created("SM1")).await;
    let twilio = client(&server.uri(), "+15550100000");
    let mut template = message("");
    template.content = Content::Template {
        name: "appointment_reminder".into(),
        language: "en_US".into(),
        parameters: vec![],
    };
    let mut email = message("Hello");
    email.to = Recipient::Email("ana@example.com".into());
    for m in [template, email, message("   ")] {
        let error = twilio.send(&m).await.expect_err("refused");
        assert!(!error.is_retryable(), "{error}");
    }
    assert!(
        server
            .received_requests()
            .await
            .expect("recorded")
            .is_empty()
    );
    // Long bodies are cut where Twilio would cut them.
    let long = "a".repeat(2000);
    let form = twilio.form(&phone("+15550001111"), &long);
    let body = form
        .iter()
        .find(|(k, _)| *k == "Body")
        .map(|(_, v)| v.len());
    assert_eq!(body, Some(1600));
}

#[test]
fn the_sender_is_a_number_or_a_messaging_service() {
    assert_eq!(
        TwilioSender::parse(" +1 555 010 0000 ").expect("number"),
        TwilioSender::Number(phone("+15550100000"))
    );
    assert_eq!(
        TwilioSender::parse(SERVICE).expect("service"),
        TwilioSender::MessagingService(SERVICE.into())
    );
    for bad in ["MG123", "MGzz23456789abcdef0123456789abcdef", "Sara", ""] {
        assert!(TwilioSender::parse(bad).is_err(), "{bad:?}");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let missing = TwilioRest::new(TwilioRestSettings {
        api_base: "https://api.twilio.com".into(),
        account_sid: " ".into(),
        auth_token: TOKEN.into(),
        from: TwilioSender::parse("+15550100000").expect("number"),
        public_url: "https://sara.example".into(),
        timeout: Duration::from_secs(1),
    });
    assert!(matches!(
        missing,
        Err(TwilioRestError::Missing("account_sid"))
    ));
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn status_callbacks_become_delivery_reports() {
    let sid = "SM33333333333333333333333333333333";
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<DeliveryState>,
        Option<&'a str>,
    );
    let cases: &[Case] = &[
        ("queued", None, None, None),
        ("accepted", None, None, None),
        ("sending", None, None, None),
        ("scheduled", None, None, None),
        ("sent", None, Some(DeliveryState::Sent), None),
        ("delivered", Some("0"), Some(DeliveryState::Delivered), None),
        ("read", None, Some(DeliveryState::Read), None),
        (
            "undelivered",
            Some("30003"),
            Some(DeliveryState::Failed),
            Some("30003"),
        ),
        (
            "failed",
            Some("30008"),
            Some(DeliveryState::Failed),
            Some("30008"),
        ),
        ("canceled", None, Some(DeliveryState::Failed), None),
        ("DELIVERED", None, Some(DeliveryState::Delivered), None),
        ("something-new", None, None, None),
    ];
    for &(status, code, state, error) in cases {
        let mut p = vec![
            ("MessageSid", sid),
            ("MessageStatus", status),
            ("AccountSid", SID),
        ];
        if let Some(code) = code {
            p.push(("ErrorCode", code));
        }
        let update = status_update(&params(&p)).expect("parses");
        assert_eq!(update.as_ref().map(|u| u.state), state, "{status}");
        if let Some(update) = update {
            assert_eq!(update.provider_id, sid);
            assert_eq!(update.channel, Channel::Sms);
            assert_eq!(update.error.as_deref(), error, "{status}");
        }
    }
    // The older SmsSid/SmsStatus names Twilio still sends alongside.
    let legacy = status_update(&params(&[("SmsSid", sid), ("SmsStatus", "sent")])).expect("parses");
    assert_eq!(legacy.map(|u| u.state), Some(DeliveryState::Sent));
    for bad in [
        params(&[("MessageStatus", "sent")]),
        params(&[("MessageSid", sid)]),
        params(&[("MessageSid", ""), ("MessageStatus", "sent")]),
        params(&[("MessageSid", "SM<script>"), ("MessageStatus", "sent")]),
        params(&[("MessageSid", &"S".repeat(65)), ("MessageStatus", "sent")]),
    ] {
        assert!(status_update(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn opt_outs_are_the_keyword_alone_or_twilios_opt_out_type() {
    let cases: &[(Option<&str>, &str, Option<OptChange>)] = &[
        (None, "STOP", Some(OptChange::OptOut)),
        (None, "stop", Some(OptChange::OptOut)),
        (None, "  Stop. ", Some(OptChange::OptOut)),
        (None, "STOPALL", Some(OptChange::OptOut)),
        (None, "unsubscribe", Some(OptChange::OptOut)),
        (None, "END", Some(OptChange::OptOut)),
        (None, "quit!", Some(OptChange::OptOut)),
        (None, "Revoke", Some(OptChange::OptOut)),
        (None, "OPTOUT", Some(OptChange::OptOut)),
        (None, "cancel", Some(OptChange::OptOut)),
        (None, "START", Some(OptChange::OptIn)),
        (None, "unstop", Some(OptChange::OptIn)),
        (None, "please cancel it", None),
        (None, "stop by at 3", None),
        (None, "X", None),
        (None, "C", None),
        (None, "yes", None),
        (None, "stopp", None),
        (None, "", None),
        (Some("STOP"), "no more please", Some(OptChange::OptOut)),
        (Some("START"), "yes", Some(OptChange::OptIn)),
        (Some("HELP"), "help", None),
        (Some("HELP"), "STOP", None),
        (Some(""), "STOP", Some(OptChange::OptOut)),
        (Some("other"), "hello", None),
    ];
    for &(opt_out_type, body, want) in cases {
        assert_eq!(
            opt_change(opt_out_type, body),
            want,
            "{opt_out_type:?} {body:?}"
        );
    }
}

/// Twilio's own Python library sends the same request Sara does: the same path, the same
/// basic auth and the same form.
#[tokio::test]
async fn twilios_own_client_sends_the_request_sara_sends() {
    let server = stand_in(created("SM44444444444444444444444444444444")).await;
    for from in ["+15550100000", SERVICE] {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
            .respond_with(created("SM44444444444444444444444444444444"))
            .mount(&server)
            .await;
        let body = "Hi Maria, a reminder: Friday, March 6 at 2:00 PM. Reply C to confirm.";
        let callback = "https://sara.example/webhook/sms/status";
        let args = [
            "twilio-send",
            &server.uri(),
            SID,
            TOKEN,
            from,
            "+15550001111",
            body,
            callback,
        ];
        let Some(answer) = crate::channels::conformance::run_async(
            args.iter().map(|s| s.to_string()).collect(),
            vec![],
        )
        .await
        else {
            return;
        };
        assert_eq!(answer["sid"], "SM44444444444444444444444444444444");
        client(&server.uri(), from)
            .send(&message(body))
            .await
            .expect("sent");
        let requests = server.received_requests().await.expect("recorded");
        assert_eq!(requests.len(), 2);
        let (theirs, ours) = (&requests[0], &requests[1]);
        assert_eq!(theirs.url.path(), ours.url.path());
        assert_eq!(theirs.method, ours.method);
        let header = |r: &wiremock::Request, name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(
            header(theirs, "authorization"),
            header(ours, "authorization")
        );
        assert_eq!(
            header(theirs, "content-type").map(|c| c
                .split(';')
                .next()
                .unwrap_or_default()
                .to_string()),
            header(ours, "content-type")
        );
        let (mut a, mut b) = (form_of(theirs), form_of(ours));
        a.sort();
        b.sort();
        assert_eq!(a, b, "from {from}");
    }
}

#[tokio::test]
async fn the_client_is_built_from_config_only_when_all_three_keys_are_set() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = stand_in(created("SM55555555555555555555555555555555")).await;
    let mut config = crate::config::Config::default();
    config.server.public_url = "https://sara.example".into();
    config.twilio.api_base = server.uri();
    assert!(TwilioRest::from_config(&config).expect("valid").is_none());
    config.twilio.account_sid = Some(SID.into());
    config.twilio.from = Some("15550100000".into());
    assert!(
        TwilioRest::from_config(&config).expect("valid").is_none(),
        "no token"
    );
    config.twilio.auth_token = Some(TOKEN.into());
    let twilio = TwilioRest::from_config(&config)
        .expect("valid")
        .expect("configured");
    twilio.send(&message("Hello")).await.expect("sent");
    let requests = server.received_requests().await.expect("recorded");
    let form = form_of(&requests[0]);
    assert!(
        form.contains(&("From".into(), "+15550100000".into())),
        "{form:?}"
    );
    assert!(form.contains(&(
        "StatusCallback".into(),
        "https://sara.example/webhook/sms/status".into()
    )));
    config.twilio.from = Some("Sara".into());
    assert!(TwilioRest::from_config(&config).is_err());
}
