//! A local stand-in for an OpenAI-compatible chat-completions API (`POST /v1/chat/completions`),
//! for `sara bench --model-latency-ms N` and tests: it speaks the real wire format, so Sara
//! reaches it through the production client (`ai.api_base`); it answers after a set latency;
//! and it understands a message as the rule NLU does, reading "now", what Sara is waiting for
//! and her last line back out of the system prompt Sara sent. A dialog through it therefore
//! goes where it would go through the rules, only later: what it measures is the model's
//! round trip and Sara's handling of it, never a model's judgement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use sara_actors::business::Business;
use sara_actors::understanding::{Act, DayPart, Lean, NluContext, Slot, Understanding};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{PROMPT_NOW_FORMAT, waiting_for};
use crate::ai::RuleNlu;

/// A chat completion as the API sends it, with `content` as the assistant message.
pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_772_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 420, "completion_tokens": 40, "total_tokens": 460},
        "service_tier": "default",
        "system_fingerprint": "fp_test"
    })
}

struct Model {
    /// Chat completions asked for so far.
    requests: AtomicU64,
    rules: RuleNlu,
    services: Vec<String>,
    timezone: Tz,
    latency: Duration,
}

/// The stand-in, serving on 127.0.0.1 until stopped (or dropped).
pub struct ModelStandIn {
    api_base: String,
    model: Arc<Model>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ModelStandIn {
    /// Starts the stand-in for `business` (its services and time zone), answering each
    /// request `latency` after it arrived.
    pub async fn start(business: &Business, latency: Duration) -> std::io::Result<ModelStandIn> {
        let services: Vec<String> = business.services.iter().map(|s| s.name.clone()).collect();
        let model = Arc::new(Model {
            requests: AtomicU64::new(0),
            rules: RuleNlu::new(services.clone()),
            services,
            timezone: business.timezone,
            latency,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let api_base = format!("http://{}/v1", listener.local_addr()?);
        let router = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(model.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(ModelStandIn {
            api_base,
            model,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The API base to give Sara as `ai.api_base` (with `/v1`).
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// How many chat completions were asked for so far.
    pub fn requests(&self) -> u64 {
        self.model.requests.load(Ordering::Relaxed)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ModelStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An error as the API sends one.
fn refused(message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error",
        "param": null, "code": null}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// The text of a message's `content`: a string, or an array of `{"type":"text","text":…}`.
fn content(message: &Value) -> Option<String> {
    match &message["content"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

async fn chat(State(model): State<Arc<Model>>, body: axum::body::Bytes) -> Response {
    model.requests.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(model.latency).await;
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return refused("the body is not JSON");
    };
    let Some(messages) = request["messages"].as_array() else {
        return refused("messages is required");
    };
    let of_role = |role: &str| {
        messages
            .iter()
            .filter(|m| m["role"] == role)
            .filter_map(content)
            .next_back()
    };
    let (Some(system), Some(user)) = (of_role("system"), of_role("user")) else {
        return refused("a system and a user message are required");
    };
    let ctx = model.context(&system);
    let understood = model.rules.understand(&user, &ctx);
    let answer = schema_answer(&understood).to_string();
    axum::Json(completion(&answer)).into_response()
}

/// The rest of the line of `text` that starts with `label`.
fn line_after<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let start = text.find(label)? + label.len();
    let rest = &text[start..];
    Some(rest.split('\n').next().unwrap_or(rest))
}

impl Model {
    /// What the rules need, read back from the system prompt (`system_prompt`).
    fn context(&self, system: &str) -> NluContext {
        let tz = self.timezone;
        let now = line_after(system, "Now, in the business's time zone: ")
            .and_then(|rest| rest.split(". ").next())
            .and_then(|n| NaiveDateTime::parse_from_str(n.trim(), PROMPT_NOW_FORMAT).ok())
            .and_then(|n| tz.from_local_datetime(&n).earliest())
            .unwrap_or_else(|| Utc::now().with_timezone(&tz));
        let slots = [
            Slot::Service,
            Slot::Date,
            Slot::Time,
            Slot::Name,
            Slot::Email,
            Slot::Booking,
            Slot::Confirmation,
            Slot::Option,
        ];
        let expecting = line_after(system, "Sara is waiting for: ")
            .map(|w| w.trim().trim_end_matches('.'))
            .and_then(|w| slots.into_iter().find(|&s| waiting_for(Some(s)) == w));
        let prompt = line_after(system, "Sara's last message to the customer: ")
            .and_then(|p| serde_json::from_str::<String>(p.trim()).ok());
        NluContext {
            now,
            services: self.services.clone(),
            expecting,
            prompt,
            facts: Default::default(),
        }
    }
}

fn day_part(part: DayPart) -> String {
    let hm = |t: chrono::NaiveTime| t.format("%H:%M").to_string();
    match part {
        DayPart::Morning => "morning".into(),
        DayPart::Afternoon => "afternoon".into(),
        DayPart::Evening => "evening".into(),
        DayPart::After(t) => format!("after {}", hm(t)),
        DayPart::Before(t) => format!("before {}", hm(t)),
        DayPart::Between(from, to) => format!("between {} and {}", hm(from), hm(to)),
    }
}

/// `u` as the model answers it: the JSON of the strict schema (`schema`).
pub fn schema_answer(u: &Understanding) -> Value {
    let date = |u: &Understanding| u.date.map(|d| d.format("%Y-%m-%d").to_string());
    let time = |u: &Understanding| u.time.map(|t| t.format("%H:%M").to_string());
    let then = u.then.as_deref().and_then(|t| {
        let act = t
            .acts
            .iter()
            .find(|a| matches!(a, Act::Book | Act::Reschedule | Act::Cancel))?;
        Some(json!({"act": act.as_str(), "service": t.service, "date": date(t), "time": time(t)}))
    });
    json!({
        "acts": u.acts.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "service": u.service,
        "date": date(u),
        "time": time(u),
        "day_part": u.day_part.map(day_part),
        "name": u.name,
        "email": u.email,
        "choice": u.choice.filter(|&c| c < 20).map(|c| c + 1),
        "shift_minutes": u.shift.map(|s| s.minutes).filter(|&m| m != 0),
        "shift_days": u.shift.map(|s| s.days).filter(|&d| d != 0),
        "lean": u.lean.map(|l| match l {
            Lean::Later => "later",
            Lean::Earlier => "earlier",
        }),
        "earliest": u.earliest,
        "then": then,
    })
}
