//! Voice over ConversationRelay: a local ConversationRelay client speaks Twilio's documented
//! messages (`setup`, `prompt`, `interrupt`, `dtmf`, `error`) over a real WebSocket to the
//! real server, after the signed handshake Twilio makes, and reads Sara's `text` and `end`.

use std::time::Duration;

use chrono::Weekday;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{AUTH_TOKEN, Sara, phone, spawn_app_with, upcoming};
use crate::voice::{attribute, twiml_elements};
use sara::channels::twilio::TwilioSignature;
use sara::config::VoiceMode;

async fn relay_app() -> Sara {
    spawn_app_with(|config| config.voice.mode = VoiceMode::Relay).await
}

/// One ConversationRelay session as Twilio runs it.
struct Relay {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What Sara said in one reply: its `text` tokens joined, and the `end` message if any.
#[derive(Debug, Default)]
struct Said {
    tokens: Vec<String>,
    end: Option<Value>,
}

impl Said {
    fn text(&self) -> String {
        self.tokens.concat()
    }
}

/// The call start in relay mode: the TwiML, and the path and query of the relay URL in it.
async fn call_start(sara: &Sara, call: &str, from: &str) -> (String, String) {
    let (status, xml) = sara
        .twilio(
            "/webhook/voice",
            &[("CallSid", call), ("From", from), ("To", "+15550100000")],
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        twiml_elements(&xml),
        ["Response", "Connect", "ConversationRelay"],
        "{xml}"
    );
    let url = attribute(&xml, "ConversationRelay", "url").expect("relay url");
    let path = url
        .strip_prefix("wss://sara.example.com")
        .unwrap_or_else(|| panic!("the relay URL is the public URL over wss: {url}"))
        .to_string();
    (xml, path)
}

/// Opens the WebSocket to `path` with `signature` (None: no header).
async fn open(
    sara: &Sara,
    path: &str,
    signature: Option<String>,
) -> Result<Relay, tungstenite::Error> {
    let base = sara.base.replacen("http://", "ws://", 1);
    let mut request = format!("{base}{path}")
        .into_client_request()
        .expect("request");
    if let Some(signature) = signature {
        request.headers_mut().insert(
            "x-twilio-signature",
            signature.parse().expect("header value"),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(Relay { ws })
}

/// The signature Twilio sends on the handshake: the wss URL it connected to, no parameters.
fn handshake_signature(path: &str) -> String {
    TwilioSignature::new(AUTH_TOKEN).sign(&format!("wss://sara.example.com{path}"), &[])
}

/// A call started and its session set up, as Twilio does it.
async fn session(sara: &Sara, call: &str, from: &str) -> Relay {
    let (_, path) = call_start(sara, call, from).await;
    let mut relay = open(sara, &path, Some(handshake_signature(&path)))
        .await
        .expect("the signed handshake is accepted");
    relay
        .send(json!({
            "type": "setup",
            "sessionId": "VX00000000000000000000000000000000",
            "accountSid": "AC00000000000000000000000000000000",
            "parentCallSid": "",
            "callSid": call,
            "from": from,
            "to": "+15550100000",
            "forwardedFrom": "+15550100000",
            "callerName": "",
            "direction": "inbound",
            "callType": "PSTN",
            "callStatus": "RINGING",
            "customParameters": {}
        }))
        .await;
    relay
}

impl Relay {
    async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send to sara");
    }

    async fn prompt(&mut self, words: &str) {
        self.send(json!({"type": "prompt", "voicePrompt": words, "lang": "en-US", "last": true}))
            .await;
    }

    /// The next message from Sara (`None` when the socket closed).
    async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("sara answers within the test's patience")?;
            match message.ok()? {
                Message::Text(text) => return Some(serde_json::from_str(&text).expect("json")),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Sara's messages up to the `text` with `last: true` (and an `end` right after it), or
    /// up to an `end`.
    async fn reply(&mut self) -> Said {
        let mut said = Said::default();
        while let Some(message) = self.next().await {
            match message["type"].as_str() {
                Some("text") => {
                    said.tokens
                        .push(message["token"].as_str().expect("token").to_string());
                    if message["last"] == true {
                        break;
                    }
                }
                Some("end") => {
                    said.end = Some(message);
                    return said;
                }
                other => panic!("unexpected message {other:?}: {message}"),
            }
        }
        said
    }

    /// The reply, and the `end` that follows it when Sara hands the call over.
    async fn reply_and_end(&mut self) -> Said {
        let mut said = self.reply().await;
        if said.end.is_none() {
            let end = self.next().await.expect("an end message");
            assert_eq!(end["type"], "end", "{end}");
            said.end = Some(end);
        }
        said
    }
}

#[tokio::test]
async fn a_caller_books_over_conversation_relay_and_texts_later_in_the_same_conversation() {
    let sara = relay_app().await;
    let me = phone(60);
    let call = "CA00000000000000000000000000000060";
    let (xml, path) = call_start(&sara, call, &me).await;
    assert_eq!(
        attribute(&xml, "Connect", "action").as_deref(),
        Some("https://sara.example.com/webhook/voice/relay/end")
    );
    assert_eq!(path, format!("/webhook/voice/relay?call={call}"));
    assert!(
        attribute(&xml, "ConversationRelay", "welcomeGreeting")
            .is_some_and(|g| g.contains("Harbor Street Clinic")),
        "Twilio speaks the greeting at once: {xml}"
    );
    assert_eq!(
        attribute(&xml, "ConversationRelay", "interruptible").as_deref(),
        Some("any")
    );
    assert_eq!(
        attribute(&xml, "ConversationRelay", "hints").as_deref(),
        Some("Consultation,Cleaning,Whitening")
    );

    let mut relay = session(&sara, call, &me).await;
    let (_, day_text) = upcoming(Weekday::Wed);
    relay
        .prompt(&format!(
            "I'd like a consultation on {day_text} at 11am, my name is Ana Ruiz"
        ))
        .await;
    let spelled = relay.reply().await;
    assert_eq!(
        spelled.tokens[0], "That's A-N-A R-U-I-Z, is that right? ",
        "the heard name is spelled back, its first sentence a token of its own: {spelled:?}"
    );
    assert!(
        spelled.tokens.len() > 1,
        "said sentence by sentence: {spelled:?}"
    );
    relay.prompt("Yes.").await;
    let confirm = relay.reply().await;
    assert!(confirm.text().contains("Ana Ruiz"), "{confirm:?}");
    assert!(
        confirm.text().contains("Shall I confirm it?"),
        "{confirm:?}"
    );
    relay.prompt("Yes.").await;
    let done = relay.reply().await;
    assert!(done.text().to_lowercase().contains("booked"), "{done:?}");
    assert_eq!(sara.bookings().await.len(), 1);

    let (status, log) = sara.admin_get(&format!("/logs/{call}")).await;
    assert_eq!(status, 200);
    let turns = log["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 3, "{log}");
    assert_eq!(turns[0]["channel"], "voice");
    assert_eq!(turns[0]["provider_id"], format!("{call}:r1"));

    // The caller texts afterwards: the same conversation, which knows the booking.
    let text = sara.text(&me, "thanks! what are your opening hours?").await;
    assert!(!text.is_empty());
    let (_, by_phone) = sara.admin_get(&format!("/logs/{me}")).await;
    let channels: Vec<&str> = by_phone["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .filter_map(|t| t["channel"].as_str())
        .collect();
    assert_eq!(channels, ["voice", "voice", "voice", "sms"], "{by_phone}");
    assert_eq!(by_phone["conversation"], log["conversation"]);
}

#[tokio::test]
async fn an_interrupt_is_recorded_with_what_the_caller_heard_and_dtmf_answers_yes() {
    let sara = relay_app().await;
    let me = phone(61);
    let call = "CA00000000000000000000000000000061";
    let mut relay = session(&sara, call, &me).await;
    let (_, day_text) = upcoming(Weekday::Thu);
    relay
        .prompt(&format!(
            "I'd like a cleaning on {day_text} at 10am, my name is Lee Park"
        ))
        .await;
    let spelled = relay.reply().await;
    assert!(spelled.text().contains("L-E-E P-A-R-K"), "{spelled:?}");
    relay.prompt("yes").await;
    let confirm = relay.reply().await;
    assert!(confirm.text().contains("Lee Park"), "{confirm:?}");
    assert!(
        confirm.text().contains("press 1 for Yes"),
        "the keypad is offered for the question: {confirm:?}"
    );
    // The caller talks over the reply after its first words.
    let heard: String = confirm.tokens[0].chars().take(12).collect();
    relay
        .send(json!({
            "type": "interrupt",
            "utteranceUntilInterrupt": heard,
            "durationUntilInterruptMs": 900
        }))
        .await;
    // Then answers the question with the keypad: 1 = Yes.
    relay.send(json!({"type": "dtmf", "digit": "1"})).await;
    let done = relay.reply().await;
    assert!(done.text().to_lowercase().contains("booked"), "{done:?}");
    assert_eq!(sara.bookings().await.len(), 1);

    let (_, log) = sara.admin_get(&format!("/logs/{call}")).await;
    let turns = log["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 3, "{log}");
    assert_eq!(turns[1]["heard"], heard, "what the caller heard: {log}");
    assert!(turns[2].get("heard").is_none(), "{log}");
    assert_eq!(
        turns[2]["text"], "Yes",
        "the key press as the choice: {log}"
    );

    // Twilio reports an error and sends something Sara does not know: the session goes on.
    relay
        .send(json!({"type": "error", "description": "Invalid message received"}))
        .await;
    relay.send(json!({"type": "nonsense", "x": 1})).await;
    relay
        .ws
        .send(Message::Text("{not json".into()))
        .await
        .expect("send");
    relay.prompt("what are your opening hours").await;
    let hours = relay.reply().await;
    assert!(!hours.text().is_empty(), "{hours:?}");
}

#[tokio::test]
async fn asking_for_a_person_ends_the_session_with_handoff_data_and_the_action_dials_staff() {
    let sara = relay_app().await;
    let me = phone(62);
    let call = "CA00000000000000000000000000000062";
    let mut relay = session(&sara, call, &me).await;
    relay.prompt("can I talk to a real person please").await;
    let said = relay.reply_and_end().await;
    assert!(!said.text().is_empty(), "{said:?}");
    let end = said.end.expect("end");
    let handoff: Value = serde_json::from_str(
        end["handoffData"]
            .as_str()
            .expect("handoffData is a string"),
    )
    .expect("handoffData is JSON");
    assert_eq!(handoff["reason"], "handover", "{handoff}");

    // Twilio ends the session and posts the <Connect> action.
    let (status, xml) = sara
        .twilio(
            "/webhook/voice/relay/end",
            &[
                ("CallSid", call),
                ("From", me.as_str()),
                ("SessionId", "VX00000000000000000000000000000000"),
                ("SessionStatus", "ended"),
                ("HandoffData", end["handoffData"].as_str().expect("string")),
            ],
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(twiml_elements(&xml), ["Response", "Dial"], "{xml}");
    assert!(xml.contains(">+15550100000</Dial>"), "{xml}");
    assert_eq!(
        attribute(&xml, "Dial", "action").as_deref(),
        Some("https://sara.example.com/webhook/voice/dial"),
        "voicemail when nobody answers: {xml}"
    );

    // A session that ended without a hand-over hangs up.
    let (_, xml) = sara
        .twilio(
            "/webhook/voice/relay/end",
            &[("CallSid", call), ("SessionStatus", "completed")],
        )
        .await;
    assert_eq!(twiml_elements(&xml), ["Response", "Hangup"], "{xml}");

    // 0 on the keypad reaches staff at any point.
    let other = "CA00000000000000000000000000000063";
    let mut relay = session(&sara, other, &phone(63)).await;
    relay.send(json!({"type": "dtmf", "digit": "0"})).await;
    let said = relay.reply_and_end().await;
    let handoff: Value = serde_json::from_str(
        said.end.expect("end")["handoffData"]
            .as_str()
            .expect("string"),
    )
    .expect("json");
    assert_eq!(handoff["reason"], "handover");
}

#[tokio::test]
async fn a_forged_or_replayed_handshake_is_refused() {
    let sara = relay_app().await;
    let call = "CA00000000000000000000000000000064";
    let path = format!("/webhook/voice/relay?call={call}");
    let refused = |result: Result<Relay, tungstenite::Error>| match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("not an HTTP refusal: {other}"),
        Ok(_) => panic!("the handshake was accepted"),
    };
    assert_eq!(refused(open(&sara, &path, None).await), 403);
    assert_eq!(
        refused(open(&sara, &path, Some("Zm9yZ2Vk".into())).await),
        403
    );
    // A signature of another call's URL does not open this call.
    let other = handshake_signature("/webhook/voice/relay?call=CA00000000000000000000000000000065");
    assert_eq!(refused(open(&sara, &path, Some(other)).await), 403);
    // A signature over the https URL (not the wss one Twilio connected to) is not it either.
    let https =
        TwilioSignature::new(AUTH_TOKEN).sign(&format!("https://sara.example.com{path}"), &[]);
    assert_eq!(refused(open(&sara, &path, Some(https)).await), 403);

    // Signed, but the setup names another call: the session is closed without a word.
    let mut relay = open(&sara, &path, Some(handshake_signature(&path)))
        .await
        .expect("signed");
    relay
        .send(json!({"type": "setup", "callSid": "CA00000000000000000000000000000065", "from": phone(64)}))
        .await;
    assert!(relay.next().await.is_none(), "closed");
}

#[tokio::test]
async fn a_slow_model_gets_a_filler_line_first_and_the_answer_after() {
    let model = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"choices": []}))
                // Far past the voice deadline: the rules answer at the deadline.
                .set_delay(Duration::from_secs(120)),
        )
        .mount(&model)
        .await;
    let api_base = format!("{}/v1", model.uri());
    let sara = Sara::start_with(&[
        ("SARA_VOICE__MODE", "relay"),
        ("SARA_VOICE__FILLER_MS", "50"),
        ("SARA_AI__PROVIDER", "openai"),
        ("SARA_AI__ROUTING", "always"),
        ("SARA_AI__API_BASE", &api_base),
        ("SARA_AI__MODEL", "gpt-4o-mini"),
        ("OPENAI_API_KEY", "sk-test"),
        ("SARA_AI__VOICE_DEADLINE_MS", "1500"),
    ])
    .await;
    let me = phone(66);
    let call = "CA00000000000000000000000000000066";
    let mut relay = session(&sara, call, &me).await;
    relay.prompt("what are your opening hours").await;
    let filler = relay.reply().await;
    assert_eq!(
        filler.text(),
        "One moment while I check.",
        "the filler comes first: {filler:?}"
    );
    let mut answer = relay.reply().await;
    if answer
        .text()
        .starts_with("I'm sorry, this is taking longer")
    {
        // A loaded machine may take past the deadline's margin: the apology, then the answer.
        answer = relay.reply().await;
    }
    assert!(
        answer.text().contains("9") || answer.text().to_lowercase().contains("open"),
        "then the rules' answer: {answer:?}"
    );
    let (_, log) = sara.admin_get(&format!("/logs/{call}")).await;
    assert_eq!(log["turns"].as_array().map(Vec::len), Some(1), "{log}");

    // The caller talks over the filler of the next slow turn: its reply is not said (the
    // log shows what they heard), and their new words are answered.
    relay.prompt("hello").await;
    let filler = relay.reply().await;
    assert_eq!(filler.text(), "One moment while I check.", "{filler:?}");
    relay
        .send(json!({"type": "interrupt", "utteranceUntilInterrupt": "One moment", "durationUntilInterruptMs": 400}))
        .await;
    relay.prompt("where are you").await;
    let mut said = Vec::new();
    loop {
        let reply = relay.reply().await;
        let text = reply.text();
        if text.contains("Harbor Street") && text.contains("floor") {
            break;
        }
        assert!(
            !text.to_lowercase().starts_with("hi") && !text.is_empty(),
            "the interrupted reply is not said: {said:?} {text}"
        );
        said.push(text);
    }
    let (_, log) = sara.admin_get(&format!("/logs/{call}")).await;
    let turns = log["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 3, "{log}");
    assert_eq!(turns[1]["text"], "hello");
    assert_eq!(turns[1]["heard"], "One moment", "{log}");
}

#[tokio::test]
async fn the_staff_names_are_recognition_hints_beside_the_services_in_both_voice_modes() {
    let relay = spawn_app_with(|config| {
        crate::rules::anna_and_ben(config);
        config.voice.mode = VoiceMode::Relay;
    })
    .await;
    let (xml, _) = call_start(&relay, "CA00000000000000000000000000000067", &phone(67)).await;
    assert_eq!(
        attribute(&xml, "ConversationRelay", "hints").as_deref(),
        Some("Consultation,Cleaning,Whitening,Anna,Ben"),
        "{xml}"
    );

    let gather = spawn_app_with(crate::rules::anna_and_ben).await;
    let (status, xml) = gather
        .twilio(
            "/webhook/voice",
            &[
                ("CallSid", "CA00000000000000000000000000000068"),
                ("From", phone(68).as_str()),
                ("To", "+15550100000"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        attribute(&xml, "Gather", "hints").as_deref(),
        Some("Consultation,Cleaning,Whitening,Anna,Ben"),
        "{xml}"
    );
}

#[tokio::test]
async fn a_name_heard_on_the_call_is_spelled_back_and_a_no_lets_the_caller_spell_it() {
    let sara = relay_app().await;
    let me = phone(69);
    let call = "CA00000000000000000000000000000069";
    let mut relay = session(&sara, call, &me).await;
    let (_, day_text) = upcoming(Weekday::Tue);
    relay
        .prompt(&format!(
            "I'd like a consultation on {day_text} at 11am, my name is Jake Ross"
        ))
        .await;
    let spelled = relay.reply().await;
    assert!(
        spelled
            .text()
            .starts_with("That's J-A-K-E R-O-S-S, is that right?"),
        "{spelled:?}"
    );
    // "2" on the keypad is the No of the yes/no.
    relay.send(json!({"type": "dtmf", "digit": "2"})).await;
    let asked = relay.reply().await;
    assert!(
        asked
            .text()
            .contains("spell your name for me, letter by letter"),
        "{asked:?}"
    );
    relay.prompt("J-A-K-E R-O-S-E").await;
    let again = relay.reply().await;
    assert!(
        again
            .text()
            .starts_with("That's J-A-K-E R-O-S-E, is that right?"),
        "{again:?}"
    );
    relay.prompt("yes").await;
    let confirm = relay.reply().await;
    assert!(
        confirm.text().contains("Jake Rose") && confirm.text().contains("Shall I confirm it?"),
        "{confirm:?}"
    );
    assert!(
        sara.bookings().await.is_empty(),
        "nothing booked before the yes"
    );
    relay.prompt("yes please").await;
    let done = relay.reply().await;
    assert!(done.text().to_lowercase().contains("booked"), "{done:?}");
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0]["name"], "Jake Rose", "{bookings:?}");

    // The same caller texts a booking: typed names are not spelled back.
    let (_, later) = upcoming(Weekday::Thu);
    let text = sara
        .text(
            &me,
            &format!("book a cleaning on {later} at 10am, my name is Jo Park"),
        )
        .await;
    assert!(!text.contains("J-O"), "{text}");
    assert!(text.contains("Shall I confirm it?"), "{text}");
}
