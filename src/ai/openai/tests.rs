//! The model NLU against a local stand-in for the chat-completions API (same client code as
//! production, base URL from the settings), the hybrid routing and the circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime, TimeZone};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::testing::{ModelStandIn, completion};
use super::*;
use crate::ai::{HybridNlu, Routing, RuleNlu};

fn services() -> Vec<String> {
    ["Consultation", "Cleaning", "Whitening"]
        .map(String::from)
        .to_vec()
}

/// Friday 6 March 2026, 09:00 in New York.
fn ctx(expecting: Option<Slot>) -> NluContext {
    NluContext {
        now: chrono_tz::America::New_York
            .with_ymd_and_hms(2026, 3, 6, 9, 0, 0)
            .single()
            .expect("a plain local time"),
        services: services(),
        expecting,
        prompt: None,
        facts: Default::default(),
    }
}

fn understood(value: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&value.to_string()))
}

fn settings(server: &MockServer, failures: u32, cooldown: Duration) -> OpenAiSettings {
    let _ = rustls::crypto::ring::default_provider().install_default();
    OpenAiSettings {
        api_base: format!("{}/v1", server.uri()),
        api_key: "sk-test".into(),
        model: "gpt-4o-mini".into(),
        business: "Harbor Street Clinic".into(),
        services: services(),
        request_timeout: Duration::from_secs(30),
        breaker_failures: failures,
        breaker_cooldown: cooldown,
    }
}

fn nlu(server: &MockServer, failures: u32, cooldown: Duration) -> Arc<OpenAiNlu> {
    Arc::new(OpenAiNlu::new(settings(server, failures, cooldown)).expect("client builds"))
}

async fn requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .len()
}

#[tokio::test]
async fn the_model_answer_becomes_an_understanding_and_the_request_is_a_strict_schema_completion() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test"))
        .respond_with(understood(json!({
            "acts": ["book"], "service": "cleaning", "date": "2026-03-10", "time": "15:00",
            "day_part": null, "name": "Sam Ortiz", "email": null, "choice": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    let nlu = nlu(&server, 3, Duration::from_secs(60));
    let u = Nlu::understand(
        &*nlu,
        "could Sam Ortiz get his teeth cleaned tuesday at 3",
        &ctx(None),
    )
    .await
    .expect("the model answered");
    assert_eq!(u.source, NluSource::Llm);
    assert_eq!(
        u.acts,
        [Act::Inform, Act::Book],
        "slots given lead with inform"
    );
    assert_eq!(u.service.as_deref(), Some("Cleaning"), "canonical name");
    assert_eq!(u.date, NaiveDate::from_ymd_opt(2026, 3, 10));
    assert_eq!(u.time, NaiveTime::from_hms_opt(15, 0, 0));
    assert_eq!(u.name.as_deref(), Some("Sam Ortiz"));

    let sent = server.received_requests().await.expect("recording is on");
    let body: Value = serde_json::from_slice(&sent[0].body).expect("a JSON request");
    assert_eq!(body["model"], "gpt-4o-mini");
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(
        format["json_schema"]["schema"]["properties"]["service"]["enum"],
        json!(["Consultation", "Cleaning", "Whitening", null])
    );
    let system = body["messages"][0]["content"]
        .as_str()
        .expect("system text");
    assert!(system.contains("Friday 2026-03-06 09:00"), "{system}");
    assert!(
        system.contains("Consultation, Cleaning, Whitening"),
        "{system}"
    );
    assert_eq!(
        body["messages"][1]["content"],
        "could Sam Ortiz get his teeth cleaned tuesday at 3"
    );
    assert!(!nlu.breaker_open());
}

#[tokio::test]
async fn an_error_status_an_unreadable_answer_or_garbage_is_an_error() {
    let server = MockServer::start().await;
    let nlu = nlu(&server, 10, Duration::from_secs(60));
    let answers = [
        ResponseTemplate::new(500).set_body_json(
            json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}),
        ),
        ResponseTemplate::new(200).set_body_json(completion("sure! you want a cleaning")),
        ResponseTemplate::new(200).set_body_string("<html>bad gateway</html>"),
        ResponseTemplate::new(200).set_body_json(completion("[\"book\"]")),
    ];
    for (i, answer) in answers.into_iter().enumerate() {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let result = Nlu::understand(&*nlu, "hm", &ctx(None)).await;
        assert!(result.is_err(), "answer {i} gave {result:?}");
        assert_eq!(requests(&server).await, 1, "one attempt, no retries");
    }
}

#[test]
fn the_answer_is_read_field_by_field_and_what_is_unusable_is_dropped() {
    let u = parse(
        r#"{"acts": ["greet", "teleport", "choose", 7], "service": "Massage",
            "date": "2026-02-30", "time": "25:00", "day_part": "after 14:00",
            "name": "  ", "email": "not an email", "choice": 2}"#,
        &services(),
    )
    .expect("an object");
    assert_eq!(
        u.acts,
        [Act::Choose, Act::Inform, Act::Greet],
        "unknown acts dropped, a part of day informs, the rules' order"
    );
    assert_eq!(u.service, None, "not a service of the business");
    assert_eq!(u.date, None, "no February 30th");
    assert_eq!(u.time, None);
    assert_eq!(
        u.day_part,
        Some(DayPart::After(
            NaiveTime::from_hms_opt(14, 0, 0).expect("valid")
        ))
    );
    assert_eq!((u.name, u.email), (None, None));
    assert_eq!(u.choice, Some(1), "the second option, 0-based");

    let missing = parse(r#"{"acts": ["affirm"]}"#, &services()).expect("an object");
    assert_eq!(missing.acts, [Act::Affirm]);
    assert_eq!(missing.service, None);
    let evening = parse(r#"{"acts": [], "day_part": "Evening"}"#, &services()).expect("obj");
    assert_eq!(evening.day_part, Some(DayPart::Evening));
    assert_eq!(evening.acts, [Act::Inform]);

    for junk in ["", "null", "[]", "\"book\"", "{not json"] {
        assert!(parse(junk, &services()).is_none(), "{junk:?}");
    }
}

#[test]
fn the_schema_is_strict_every_field_required_and_nullable() {
    let s = schema(&services());
    assert_eq!(s["additionalProperties"], false);
    let required: Vec<&str> = s["required"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let properties = s["properties"].as_object().expect("object");
    assert_eq!(required.len(), properties.len());
    for key in required {
        assert!(properties.contains_key(key), "{key}");
    }
    let acts = s["properties"]["acts"]["items"]["enum"]
        .as_array()
        .expect("act names");
    assert_eq!(acts.len(), 14);
}

#[test]
fn the_prompt_says_what_sara_waits_for() {
    let prompt = system_prompt(
        "Harbor Street Clinic",
        &services(),
        &ctx(Some(Slot::Option)),
    );
    assert!(prompt.contains("Harbor Street Clinic"));
    assert!(
        prompt.contains("a pick among the times she offered"),
        "{prompt}"
    );
}

#[tokio::test]
async fn hybrid_asks_the_model_only_when_the_rules_are_unsure() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(understood(json!({
            "acts": ["book"], "service": "Whitening", "date": null, "time": null,
            "day_part": "afternoon", "name": null, "email": null, "choice": null
        })))
        .mount(&server)
        .await;
    let hybrid = HybridNlu::new(
        RuleNlu::new(services()),
        nlu(&server, 3, Duration::from_secs(60)),
        Routing::Hybrid { threshold: 0.8 },
    );
    for (text, expecting) in [
        ("yes", Some(Slot::Confirmation)),
        ("3pm", Some(Slot::Time)),
        ("the second one", Some(Slot::Option)),
        ("I'd like to book a cleaning tomorrow at 10am", None),
    ] {
        let u = hybrid
            .understand(text, &ctx(expecting))
            .await
            .expect("rules answer");
        assert_eq!(u.source, NluSource::Rules, "{text}");
    }
    assert_eq!(requests(&server).await, 0, "confident turns need no model");

    let unclear = "ugh my teeth look so yellow lately, anything u can do for me later in the day";
    let rules = RuleNlu::new(services()).understand(unclear, &ctx(None));
    assert!(rules.confidence < 0.8, "the rules are unsure: {rules:?}");
    let u = hybrid
        .understand(unclear, &ctx(None))
        .await
        .expect("model answer");
    assert_eq!(u.source, NluSource::Llm);
    assert_eq!(u.service.as_deref(), Some("Whitening"));
    assert_eq!(u.day_part, Some(DayPart::Afternoon));
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn routing_always_asks_the_model_even_for_yes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(understood(json!({
            "acts": ["affirm"], "service": null, "date": null, "time": null,
            "day_part": null, "name": null, "email": null, "choice": null
        })))
        .mount(&server)
        .await;
    let always = HybridNlu::new(
        RuleNlu::new(services()),
        nlu(&server, 3, Duration::from_secs(60)),
        Routing::Always,
    );
    let u = always
        .understand("yes", &ctx(Some(Slot::Confirmation)))
        .await
        .expect("model answer");
    assert_eq!((u.source, u.acts), (NluSource::Llm, vec![Act::Affirm]));
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn a_late_model_leaves_the_turn_to_the_rules_and_counts_against_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(understood(json!({"acts": ["book"]})).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    let model = nlu(&server, 1, Duration::from_secs(3600));
    let primary = HybridNlu::new(RuleNlu::new(services()), model.clone(), Routing::Always);
    let rules = RuleNlu::new(services());
    // The engine's own composition: deadline on the primary, rules on error or lateness.
    let u = sara_actors::engine::ai::understand(
        &primary,
        Some(&rules),
        "book a cleaning tomorrow at 10am",
        &ctx(None),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(u.source, NluSource::Rules);
    assert!(u.has(Act::Book));
    assert_eq!(u.time, NaiveTime::from_hms_opt(10, 0, 0));
    assert!(model.breaker_open(), "the timeout was a failure");
}

#[tokio::test]
async fn the_breaker_opens_after_n_failures_then_spares_the_model_until_a_probe_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(understood(json!({"acts": ["greet"]})))
        .with_priority(2)
        .mount(&server)
        .await;

    // A long cool-down: once open, nothing reaches the model.
    let long = nlu(&server, 3, Duration::from_secs(3600));
    for _ in 0..3 {
        assert!(Nlu::understand(&*long, "hi", &ctx(None)).await.is_err());
    }
    assert!(long.breaker_open());
    for _ in 0..5 {
        let skipped = Nlu::understand(&*long, "hi", &ctx(None)).await;
        assert!(matches!(skipped, Err(NluError::Unavailable(_))));
    }
    assert_eq!(requests(&server).await, 3, "no request while open");

    // A zero cool-down: the next call is the probe; the model is back, so the breaker closes.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(understood(json!({"acts": ["greet"]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let short = nlu(&server, 2, Duration::ZERO);
    for _ in 0..2 {
        assert!(Nlu::understand(&*short, "hi", &ctx(None)).await.is_err());
    }
    assert!(short.breaker_open());
    let probe = Nlu::understand(&*short, "hi", &ctx(None))
        .await
        .expect("the probe reaches the recovered model");
    assert_eq!(probe.acts, [Act::Greet]);
    assert!(!short.breaker_open());
    assert_eq!(requests(&server).await, 3);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_lets_one_probe_through_after_the_cool_down() {
    let breaker = Breaker::new(2, Duration::from_secs(30));
    breaker.try_acquire().expect("closed").finish(false);
    breaker.try_acquire().expect("closed").finish(true);
    breaker.try_acquire().expect("closed").finish(false);
    assert!(!breaker.is_open(), "a success resets the count");
    // A call dropped unfinished (its deadline passed) is a failure.
    drop(breaker.try_acquire().expect("closed"));
    assert!(breaker.is_open());
    assert!(breaker.try_acquire().is_none());

    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(breaker.try_acquire().is_none(), "still cooling down");
    tokio::time::advance(Duration::from_secs(1)).await;
    let probe = breaker.try_acquire().expect("the cool-down is over");
    assert!(breaker.try_acquire().is_none(), "one probe at a time");
    probe.finish(false);
    assert!(breaker.try_acquire().is_none(), "a failed probe re-opens");

    tokio::time::advance(Duration::from_secs(30)).await;
    breaker.try_acquire().expect("probe").finish(true);
    assert!(!breaker.is_open());
    breaker.try_acquire().expect("closed").finish(true);
}

#[test]
fn the_configuration_is_checked_and_the_key_comes_only_from_the_environment() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    use figment::providers::{Format, Serialized, Toml};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let config: crate::config::Config =
        figment::Figment::from(Serialized::defaults(crate::config::Config::default()))
            .merge(Toml::file(&path))
            .extract()
            .expect("config.toml parses");
    let business = config.business().expect("the repository business is valid");
    let mut ai = config.ai.clone();
    let rules = crate::ai::configured(&ai, &business, Some("sk-ignored".into())).expect("rules");
    assert_eq!(rules.primary.name(), "rules");
    assert!(rules.fallback.is_none());

    ai.provider = crate::config::AiProvider::OpenAi;
    let no_key = crate::ai::configured(&ai, &business, None).err();
    assert!(no_key.is_some_and(|e| e.to_string().contains("OPENAI_API_KEY")));
    let model = crate::ai::configured(&ai, &business, Some("sk-test".into())).expect("openai");
    assert_eq!(model.primary.name(), "openai");
    assert_eq!(model.fallback.as_ref().map(|f| f.name()), Some("rules"));

    // An unknown provider or routing is refused when the config is read (config.rs tests).
    ai.routing = crate::config::AiRouting::Hybrid;
    ai.confidence_threshold = 1.5;
    assert!(crate::ai::configured(&ai, &business, Some("sk-test".into())).is_err());
}

#[test]
fn the_prompt_carries_saras_last_line() {
    let mut c = ctx(Some(Slot::Option));
    c.prompt =
        Some("I can do 9:30 AM, 10:00 AM or 11:15 AM on Monday, March 9. Which suits you?".into());
    let prompt = system_prompt("Harbor Street Clinic", &services(), &c);
    assert!(prompt.contains("9:30 AM, 10:00 AM or 11:15 AM"), "{prompt}");
    assert!(prompt.contains("Sara's last message"));
    let without = system_prompt("Harbor Street Clinic", &services(), &ctx(None));
    assert!(!without.contains("Sara's last message"));
}

#[test]
fn shifts_windows_and_a_second_request_are_read_and_checked() {
    let u = parse(
        r#"{"acts":["inform"],"service":null,"date":null,"time":null,"day_part":null,
            "name":null,"email":null,"choice":null,"shift_minutes":60,"shift_days":null,
            "lean":null,"earliest":false,"then":null}"#,
        &services(),
    )
    .expect("readable");
    assert_eq!(
        u.shift,
        Some(Shift {
            days: 0,
            minutes: 60
        })
    );
    let u = parse(
        r#"{"acts":["cancel"],"service":"Cleaning","date":"2026-03-12","time":null,
            "day_part":"between 11:30 and 14:00","name":null,"email":null,"choice":null,
            "shift_minutes":null,"shift_days":null,"lean":"later","earliest":false,
            "then":{"act":"book","service":"Whitening","date":"2026-03-09","time":"11:00"}}"#,
        &services(),
    )
    .expect("readable");
    assert_eq!(u.lean, Some(Lean::Later));
    assert!(matches!(u.day_part, Some(DayPart::Between(_, _))));
    let then = u.then.expect("second request");
    assert!(then.has(Act::Book));
    assert_eq!(then.service.as_deref(), Some("Whitening"));
    // A second request of the same kind, an unknown act or a huge shift is dropped.
    let u = parse(
        r#"{"acts":["book"],"service":null,"date":null,"time":null,"day_part":null,
            "name":null,"email":null,"choice":null,"shift_minutes":99999999,"shift_days":5000,
            "lean":"sideways","earliest":true,"then":{"act":"book","service":"Nope","date":null,"time":null}}"#,
        &services(),
    )
    .expect("readable");
    assert_eq!(u.shift, None);
    assert_eq!(u.lean, None);
    assert!(u.then.is_none());
    assert!(u.earliest);
}

#[tokio::test]
async fn hybrid_asks_the_model_when_the_rules_leave_a_time_unread() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(understood(json!({
            "acts": ["inform"], "service": null, "date": null, "time": "15:45",
            "day_part": null, "name": null, "email": null, "choice": null,
            "shift_minutes": null, "shift_days": null, "lean": null, "earliest": false,
            "then": null
        })))
        .mount(&server)
        .await;
    let hybrid = HybridNlu::new(
        RuleNlu::new(services()),
        nlu(&server, 3, Duration::from_secs(60)),
        Routing::Hybrid { threshold: 0.8 },
    );
    let text = "at 3 or maybe 4 I guess";
    let rules = RuleNlu::new(services()).understand(text, &ctx(Some(Slot::Time)));
    assert!(rules.unclear_when && rules.confidence < 0.8, "{rules:?}");
    let u = hybrid
        .understand(text, &ctx(Some(Slot::Time)))
        .await
        .expect("model answer");
    assert_eq!(u.source, NluSource::Llm);
    assert_eq!(requests(&server).await, 1);
}

#[test]
fn the_prompt_carries_the_offers_the_filled_slots_and_the_bookings_as_data() {
    use sara_actors::understanding::{BookingFact, DialogueFacts};
    let at = |d: u32, h: u32, m: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, 3, d)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .expect("a valid time")
    };
    let mut context = ctx(Some(Slot::Option));
    assert!(
        !system_prompt("Harbor Street Clinic", &[], &context).contains("What the conversation"),
        "nothing to tell, nothing told"
    );
    context.facts = DialogueFacts {
        offered: vec![at(9, 9, 30), at(9, 10, 0), at(9, 15, 0)],
        request: Some("reschedule".into()),
        service: Some("Cleaning".into()),
        name: Some("Jo Park".into()),
        upcoming_bookings: vec![BookingFact {
            service: "Cleaning".into(),
            start: at(6, 14, 0),
        }],
        ..DialogueFacts::default()
    };
    let prompt = system_prompt("Harbor Street Clinic", &[], &context);
    for part in [
        r#""offered":["2026-03-09T09:30:00","2026-03-09T10:00:00","2026-03-09T15:00:00"]"#,
        r#""request":"reschedule""#,
        r#""name":"Jo Park""#,
        r#""upcoming_bookings":[{"service":"Cleaning","start":"2026-03-06T14:00:00"}]"#,
    ] {
        assert!(prompt.contains(part), "{part} in {prompt}");
    }
}

#[tokio::test]
async fn the_model_stand_in_speaks_the_wire_format_and_understands_as_the_rules_do() {
    let business = sara_actors::business::Business::example();
    let standin = ModelStandIn::start(&business, Duration::from_millis(5))
        .await
        .expect("the stand-in starts");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let model = OpenAiNlu::new(OpenAiSettings {
        api_base: standin.api_base().to_string(),
        api_key: "sk-bench".into(),
        model: "gpt-4o-mini".into(),
        business: business.name.clone(),
        services: services(),
        request_timeout: Duration::from_secs(30),
        breaker_failures: 3,
        breaker_cooldown: Duration::from_secs(30),
    })
    .expect("client builds");
    let rules = RuleNlu::new(services());
    for (text, expecting) in [
        (
            "I'd like a cleaning tomorrow at 2pm, my name is Jo Park",
            None,
        ),
        ("the second one", Some(Slot::Option)),
        ("yes please", Some(Slot::Confirmation)),
        ("Sam Ortiz", Some(Slot::Name)),
        (
            "anything later in the afternoon on Monday?",
            Some(Slot::Option),
        ),
    ] {
        let ctx = ctx(expecting);
        let heard = model
            .understand(text, &ctx)
            .await
            .expect("the stand-in answers");
        let ruled = rules.understand(text, &ctx);
        assert_eq!(heard.source, NluSource::Llm, "{text}");
        assert_eq!(heard.acts, ruled.acts, "{text}");
        assert_eq!(
            (
                heard.service,
                heard.date,
                heard.time,
                heard.day_part,
                heard.name,
                heard.choice
            ),
            (
                ruled.service,
                ruled.date,
                ruled.time,
                ruled.day_part,
                ruled.name,
                ruled.choice
            ),
            "{text}"
        );
    }
    standin.stop().await;
}
