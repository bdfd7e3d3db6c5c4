//! The OpenAI understanding through the real binary, against a local stand-in for the
//! chat-completions API (same client code as production, base URL from config): a failing or
//! late model leaves the turn to the rules, and the hybrid routing asks the model only for the
//! turns the rules are unsure of.

use std::time::Duration;

use chrono::Weekday;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Sara, phone, upcoming};

/// A chat completion as the API sends it, with `content` as the assistant message.
fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_772_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 420, "completion_tokens": 40, "total_tokens": 460}
    })
}

async fn sara_with_model(model: &MockServer, routing: &str, deadline_ms: &str) -> Sara {
    let api_base = format!("{}/v1", model.uri());
    Sara::start_with(&[
        ("SARA_AI__PROVIDER", "openai"),
        ("SARA_AI__ROUTING", routing),
        ("SARA_AI__API_BASE", &api_base),
        ("SARA_AI__MODEL", "gpt-4o-mini"),
        ("OPENAI_API_KEY", "sk-test"),
        ("SARA_AI__CHAT_DEADLINE_MS", deadline_ms),
    ])
    .await
}

async fn requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .len()
}

#[tokio::test]
async fn garbage_an_error_or_a_late_model_leaves_each_turn_to_the_rules() {
    let model = MockServer::start().await;
    let chat = || {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("authorization", "Bearer sk-test"))
    };
    chat()
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("hello there!")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&model)
        .await;
    chat()
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&model)
        .await;
    chat()
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion(r#"{"acts": ["goodbye"]}"#))
                // Far past the deadline (1.5 s, long enough for a loaded machine to send the
                // request); nothing asserts how long the turn took.
                .set_delay(Duration::from_secs(120)),
        )
        .with_priority(3)
        .mount(&model)
        .await;
    let sara = sara_with_model(&model, "always", "1500").await;
    let me = phone(701);
    let (day, day_text) = upcoming(Weekday::Tue);

    let hello = sara.text(&me, "hello").await;
    assert!(hello.contains("Harbor Street Clinic"), "{hello}");
    sara.text(&me, &format!("I'd like a cleaning on {day_text} at 10am"))
        .await;
    let confirm = sara.text(&me, "my name is Sam Ortiz").await;
    assert!(
        confirm.contains("Sam Ortiz") && confirm.contains("10:00 AM"),
        "the rules understood all three turns: {confirm}"
    );
    assert!(
        confirm.contains(&day.format("%A, %B %-d").to_string()),
        "{confirm}"
    );

    assert_eq!(requests(&model).await, 3, "every turn asked the model once");
    assert_eq!(sara.metric("sara_nlu_fallbacks_total").await, 3.0);
    let (_, stats) = sara.admin_get("/admin/stats").await;
    assert_eq!(stats["fallbacks"], 3, "the engine's own count: {stats}");
}

#[tokio::test]
async fn hybrid_asks_the_model_only_for_the_unclear_turn_and_acts_on_its_answer() {
    let model = MockServer::start().await;
    let (day, _) = upcoming(Weekday::Wed);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            &json!({
                "acts": ["book"], "service": "Whitening", "date": day.format("%Y-%m-%d").to_string(),
                "time": null, "day_part": "afternoon", "name": null, "email": null, "choice": null
            })
            .to_string(),
        )))
        .mount(&model)
        .await;
    let sara = sara_with_model(&model, "hybrid", "6000").await;
    let me = phone(702);

    sara.text(&me, "hello").await;
    assert_eq!(requests(&model).await, 0, "a greeting needs no model");

    let offer = sara
        .text(
            &me,
            "ugh my teeth look so yellow lately, anything u can do for me later in the day",
        )
        .await;
    assert_eq!(requests(&model).await, 1);
    // Only the model's answer named the day, the service and the afternoon.
    assert!(
        offer.contains(&day.format("%A, %B %-d").to_string()) && offer.contains("PM"),
        "{offer}"
    );
    assert!(!offer.contains("AM"), "afternoon times only: {offer}");
    assert_eq!(sara.metric("sara_nlu_fallbacks_total").await, 0.0);
    assert_eq!(sara.metric("sara_nlu_breaker_open").await, 0.0);
}

/// Runs `sara eval` on a three-turn corpus with the model at `model`; returns the summary and
/// the predictions.
async fn eval_with_model(model: &MockServer, routing: &str) -> (Value, Vec<Value>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let corpus = dir.path().join("corpus.jsonl");
    let predictions = dir.path().join("predictions.jsonl");
    let dialog = json!({
        "id": "d1", "now": "2019-03-01T08:00:00", "timezone": "America/Los_Angeles",
        "turns": [
            {"user": "ugh my teeth look so yellow lately, anything u can do for me later in the day", "acts": ["book"],
             "slots": {"date": "2019-03-07"}},
            {"user": "what's the weather in Paris", "acts": [], "score": false},
            {"user": "yes", "acts": ["affirm"]}
        ]
    });
    std::fs::write(&corpus, format!("{dialog}\n")).expect("corpus written");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sara"))
        .arg("eval")
        .arg(&corpus)
        .arg("--predictions")
        .arg(&predictions)
        .env("SARA_CONFIG", &config)
        .env("SARA_LOG", "error")
        .env("SARA_AI__PROVIDER", "openai")
        .env("SARA_AI__ROUTING", routing)
        .env("SARA_AI__API_BASE", format!("{}/v1", model.uri()))
        .env("OPENAI_API_KEY", "sk-test")
        .output()
        .await
        .expect("sara eval runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let summary: Value = serde_json::from_str(stdout.lines().last().expect("a last line"))
        .expect("the last line is JSON");
    let predictions = std::fs::read_to_string(&predictions)
        .expect("predictions written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (summary, predictions)
}

#[tokio::test]
async fn eval_with_the_model_reports_the_share_of_scored_turns_it_answered() {
    let model = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(completion(
                &json!({
                    "acts": ["book"], "service": "Consultation", "date": "2019-03-07", "time": null,
                    "day_part": null, "name": null, "email": null, "choice": null
                })
                .to_string(),
            )),
        )
        .mount(&model)
        .await;

    let (summary, predictions) = eval_with_model(&model, "always").await;
    assert_eq!(requests(&model).await, 3, "every turn asked the model");
    assert_eq!(summary["turns"], 3);
    assert_eq!(summary["llm_share"], 1.0);
    assert_eq!(summary["date_accuracy"], 1.0);
    let llm: Vec<&Value> = predictions.iter().map(|p| &p["llm"]).collect();
    assert_eq!(llm, [true, true, true]);
    assert_eq!(predictions[0]["date"], "2019-03-07");

    // Hybrid: "yes" and the weather are the rules'; the unclear first turn is the model's.
    model.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            &json!({"acts": ["book"], "date": "2019-03-07"}).to_string(),
        )))
        .mount(&model)
        .await;
    let (summary, predictions) = eval_with_model(&model, "hybrid").await;
    let asked = requests(&model).await;
    let llm: Vec<bool> = predictions
        .iter()
        .map(|p| p["llm"].as_bool().expect("a bool"))
        .collect();
    assert_eq!(llm.iter().filter(|&&l| l).count(), asked);
    assert!(llm[0] && !llm[2], "{llm:?}");
    assert_eq!(summary["llm_share"], 0.5, "one of the two scored turns");

    // A broken model: the rules answer every turn and none counts as the model's.
    model.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&model)
        .await;
    let (summary, predictions) = eval_with_model(&model, "always").await;
    assert_eq!(summary["llm_share"], 0.0);
    assert!(predictions.iter().all(|p| p["llm"] == false));
    assert_eq!(predictions[2]["act"], "affirm", "the rules answered");
}

/// The times of day in Sara's line, in the order she said them ("1:00 PM", "2:30 PM").
fn times_said(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0].contains(':') && w[1].trim_end_matches([',', '.', '?']) == "PM")
        .map(|w| format!("{} PM", w[0]))
        .collect()
}

#[tokio::test]
async fn the_model_gets_the_offered_times_and_filled_slots_as_data_and_resolves_the_pick() {
    let model = MockServer::start().await;
    let (day, day_text) = upcoming(Weekday::Wed);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(completion(
                &json!({
                    "acts": ["choose"], "service": null, "date": null, "time": null,
                    "day_part": null, "name": null, "email": null, "choice": 2
                })
                .to_string(),
            )),
        )
        .mount(&model)
        .await;
    let sara = sara_with_model(&model, "hybrid", "6000").await;
    let me = phone(703);
    let offer = sara
        .text(
            &me,
            &format!("a whitening on {day_text} afternoon please, my name is Ana Ruiz"),
        )
        .await;
    let offered = times_said(&offer);
    assert_eq!(offered.len(), 3, "three afternoon times: {offer}");
    assert_eq!(requests(&model).await, 0, "the rules read that one");

    let reply = sara
        .text(&me, "hmm the middle one i guess, if that still works?")
        .await;
    let received = model.received_requests().await.expect("recording is on");
    assert_eq!(received.len(), 1, "the rules were unsure: {reply}");
    let body: Value = serde_json::from_slice(&received[0].body).expect("a JSON request");
    let system = body["messages"][0]["content"]
        .as_str()
        .expect("the system message is text");
    let iso = day.format("%Y-%m-%d").to_string();
    assert!(
        system.contains("\"offered\":[")
            && system.contains(&format!("\"{iso}T"))
            && system.contains("\"service\":\"Whitening\"")
            && system.contains("\"name\":\"Ana Ruiz\""),
        "the offered times and the filled slots go as data: {system}"
    );
    // The model's "choice 2" is the second time Sara read out.
    assert!(
        reply.contains(&offered[1]) && reply.contains("Ana Ruiz"),
        "{offered:?} → {reply}"
    );
    assert!(
        sara.bookings().await.is_empty(),
        "nothing written before a yes"
    );
}
