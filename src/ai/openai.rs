//! The model NLU: one OpenAI chat completion per message, answered through a strict JSON schema
//! and read defensively, behind a circuit breaker so a failing model stops costing every turn
//! its deadline.
//!
//! The deadline itself is not applied here: the engine's AI actor bounds the whole call and
//! answers with the rules when it is late. A call dropped that way counts as a failure for the
//! breaker (see [`Permit`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs, ResponseFormat,
    ResponseFormatJsonSchema,
};
use chrono::{NaiveDate, NaiveTime};
use sara_actors::ports::{BoxFuture, Nlu, NluError};
use sara_actors::understanding::{
    Act, DayPart, Lean, NluContext, NluSource, Shift, Slot, Understanding,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::AiError;

/// Only this many characters of a message are sent, as the rules read at most this many.
const MAX_CHARS: usize = 2_000;

/// How sure Sara is of a model answer; above the rules' "weak" so the turn log tells them apart.
const MODEL_CONFIDENCE: f32 = 0.9;

/// Every act the schema allows, in the order the policy wants them (the rules' order): the
/// model's list is re-sorted into it so both NLUs lead with the same kind of act.
const ACT_ORDER: [Act; 14] = [
    Act::Handover,
    Act::OutOfScope,
    Act::Cancel,
    Act::Choose,
    Act::Inform,
    Act::Reschedule,
    Act::OtherOptions,
    Act::Deny,
    Act::Affirm,
    Act::Book,
    Act::Question,
    Act::Thanks,
    Act::Goodbye,
    Act::Greet,
];

/// How to reach the model.
#[derive(Clone, Debug)]
pub struct OpenAiSettings {
    /// The API base including `/v1` (a local stand-in in tests).
    pub api_base: String,
    pub api_key: String,
    pub model: String,
    /// The business name, for the prompt.
    pub business: String,
    /// Service names, used when the context lists none.
    pub services: Vec<String>,
    /// A safety net for callers without a deadline of their own; the engine's is shorter.
    pub request_timeout: Duration,
    /// Consecutive failures (errors, unreadable answers, timeouts) that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker skips the model before one probe call is let through.
    pub breaker_cooldown: Duration,
}

/// Understanding through an OpenAI chat completion with structured output.
pub struct OpenAiNlu {
    client: Client<OpenAIConfig>,
    settings: OpenAiSettings,
    breaker: Arc<Breaker>,
}

impl OpenAiNlu {
    pub fn new(settings: OpenAiSettings) -> Result<OpenAiNlu, AiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(settings.request_timeout)
            .build()
            .map_err(|e| AiError::Client(e.to_string()))?;
        let config = OpenAIConfig::new()
            .with_api_base(settings.api_base.trim_end_matches('/'))
            .with_api_key(settings.api_key.clone());
        // No retry layer (the library's default retries 5xx and 429 with backoff): a turn has
        // one short deadline and the rules as a fallback, so one attempt is all it can afford.
        let client = Client::with_config(config).with_http_service(ReqwestService::new(http));
        let breaker = Arc::new(Breaker::new(
            settings.breaker_failures,
            settings.breaker_cooldown,
        ));
        Ok(OpenAiNlu {
            client,
            settings,
            breaker,
        })
    }

    /// Whether the breaker currently skips the model.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    async fn ask(&self, text: &str, ctx: &NluContext) -> Result<Understanding, NluError> {
        let services = if ctx.services.is_empty() {
            &self.settings.services
        } else {
            &ctx.services
        };
        let message: String = text.chars().take(MAX_CHARS).collect();
        let request = CreateChatCompletionRequestArgs::default()
            .model(self.settings.model.clone())
            .temperature(0.0)
            .max_completion_tokens(300u32)
            .messages(vec![
                ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage::from(
                    system_prompt(&self.settings.business, services, ctx),
                )),
                ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage::from(message)),
            ])
            .response_format(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: Some("What the customer's message does and says".into()),
                    name: "understanding".into(),
                    schema: schema(services),
                    strict: Some(true),
                },
            })
            .build()
            .map_err(|e| NluError::Unavailable(format!("building the request: {e}")))?;
        let response = self
            .client
            .chat()
            .create(request)
            .await
            .map_err(|e| NluError::Unavailable(describe(&e)))?;
        let content = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| NluError::Unavailable("openai answered with no content".into()))?;
        parse(&content, services)
            .ok_or_else(|| NluError::Unavailable("openai answered something unreadable".into()))
    }
}

impl Nlu for OpenAiNlu {
    fn understand<'a>(
        &'a self,
        text: &'a str,
        ctx: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>> {
        Box::pin(async move {
            let Some(permit) = self.breaker.try_acquire() else {
                return Err(NluError::Unavailable("circuit breaker open".into()));
            };
            let result = self.ask(text, ctx).await;
            permit.finish(result.is_ok());
            result
        })
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}

/// An error for the log: status, error type and code, never a response body (a model answer
/// may echo the customer's name or email).
fn describe(error: &async_openai::error::OpenAIError) -> String {
    use async_openai::error::OpenAIError as E;
    match error {
        E::ApiError(r) => format!(
            "openai answered {} ({})",
            r.status_code,
            r.api_error
                .code
                .as_deref()
                .or(r.api_error.r#type.as_deref())
                .unwrap_or("no code")
        ),
        E::JSONDeserialize(e, _) => format!("openai answered something unreadable: {e}"),
        E::Reqwest(e) => format!("openai unreachable: {e}"),
        E::InvalidArgument(e) => format!("openai request: {e}"),
        _ => "openai call failed".into(),
    }
}

/// How the system prompt writes "now" (after `Now, in the business's time zone: `).
pub const PROMPT_NOW_FORMAT: &str = "%A %Y-%m-%d %H:%M";

/// What Sara is waiting for, as the system prompt says it.
pub fn waiting_for(expecting: Option<Slot>) -> &'static str {
    match expecting {
        None => "nothing in particular",
        Some(Slot::Service) => "which service the customer wants",
        Some(Slot::Date) => "a date",
        Some(Slot::Time) => "a time (a bare number is an hour)",
        Some(Slot::Name) => "the customer's name (a bare name is their name)",
        Some(Slot::Email) => "the customer's email address",
        Some(Slot::Booking) => "which of the customer's bookings they mean",
        Some(Slot::Confirmation) => "a yes or no to what she proposed",
        Some(Slot::Option) => {
            "a pick among the times she offered (\"the second one\" is choice 2; a time is a time)"
        }
    }
}

/// The system prompt: who Sara is, what the business offers, when "now" is and what Sara is
/// waiting for; the schema carries the output format.
pub fn system_prompt(business: &str, services: &[String], ctx: &NluContext) -> String {
    let services = if services.is_empty() {
        "(none listed)".to_string()
    } else {
        services.join(", ")
    };
    let now = ctx.now.format(PROMPT_NOW_FORMAT);
    let expecting = waiting_for(ctx.expecting);
    // Sara's last line carries what the rules cannot see: the options she read out, the
    // slots she restated, the booking she proposed.
    let said = match ctx.prompt.as_deref() {
        Some(p) if !p.trim().is_empty() => {
            let p: String = p.chars().take(600).collect();
            format!("Sara's last message to the customer: {p:?}\n")
        }
        _ => String::new(),
    };
    // The same as data, so "the second one", "the 3pm" or "the cleaning" resolve against
    // what was really offered and booked, not against a reading of Sara's wording.
    let facts = if ctx.facts.is_empty() {
        String::new()
    } else {
        format!(
            "What the conversation holds (JSON; times are local; \"offered\" in the order Sara \
read them out, so choice N is offered[N-1]; a picked time like \"the 3pm\" is the offered time \
at 15:00, reported as choice and time; \"upcoming_bookings\" are the customer's appointments a \
reschedule or cancel refers to): {}\n",
            serde_json::to_string(&ctx.facts).unwrap_or_default()
        )
    };
    format!(
        "You read messages sent to Sara, the receptionist of {business}, a business that takes \
appointments. Do not answer the customer: report what the message does and says, as JSON.\n\
Services offered: {services}. Report a service only with one of these exact names.\n\
Now, in the business's time zone: {now}. Resolve relative dates (\"tomorrow\", \"next Friday\", \
\"the 7th\") against this date. Dates are YYYY-MM-DD; times are 24-hour HH:MM (\"3pm\" is 15:00, \
\"half past 4\" in the afternoon is 16:30).\n\
Sara is waiting for: {expecting}.\n\
{said}\
{facts}\
Acts (list every one that applies, none when nothing applies):\n\
- book: wants a new appointment\n\
- reschedule: wants to move an existing appointment\n\
- cancel: wants to cancel an appointment\n\
- question: asks something about the business (prices, parking, hours, insurance, ...)\n\
- handover: wants to talk to a person\n\
- greet, goodbye, thanks\n\
- affirm: says yes / agrees; deny: says no / disagrees\n\
- inform: gives a date, time, part of day, name, email or service\n\
- choose: picks one of the options Sara offered\n\
- other_options: asks for other times than those offered\n\
- out_of_scope: asks for something a receptionist cannot do (prescriptions, diagnoses, \
medical advice)\n\
Fields: null when the message does not say. day_part is one of \"morning\", \"afternoon\", \
\"evening\", \"after HH:MM\", \"before HH:MM\" for a vague time (\"after 2\" is \"after 14:00\"); \
give time only for an exact time; \"between HH:MM and HH:MM\" for a window (\"around lunch\", \
\"late afternoon\"). choice is the 1-based position of the offered option picked.\n\
shift_minutes / shift_days: a move relative to the time being discussed (\"an hour later\" is 60 \
minutes, \"push it back 30 minutes\" 30, \"bring it forward an hour\" -60, \"a week later\" 7 days); \
then give no date or time. lean: \"later\" or \"earlier\" when other times in that direction are \
wanted. earliest: true for \"the earliest you have\", \"first available\", \"first thing\".\n\
When the message makes two different requests (\"cancel Thursday's cleaning and book me a whitening \
Monday at 11\"), report the first in the main fields and the second in then (its own act, service, \
date and time); otherwise then is null. If a time is unclear, leave it null rather than guess."
    )
}

/// The strict JSON schema of the answer; the service is limited to the business's names.
pub fn schema(services: &[String]) -> Value {
    let acts: Vec<&str> = ACT_ORDER.iter().map(|a| a.as_str()).collect();
    let service = if services.is_empty() {
        json!({"type": ["string", "null"]})
    } else {
        let mut names: Vec<Value> = services.iter().map(|s| json!(s)).collect();
        names.push(Value::Null);
        json!({"type": ["string", "null"], "enum": names})
    };
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": [
            "acts", "service", "date", "time", "day_part", "name", "email", "choice",
            "shift_minutes", "shift_days", "lean", "earliest", "then"
        ],
        "properties": {
            "shift_minutes": {"type": ["integer", "null"]},
            "shift_days": {"type": ["integer", "null"]},
            "lean": {"type": ["string", "null"], "enum": ["later", "earlier", null]},
            "earliest": {"type": "boolean"},
            "then": {
                "type": ["object", "null"],
                "additionalProperties": false,
                "required": ["act", "service", "date", "time"],
                "properties": {
                    "act": {"type": "string", "enum": ["book", "reschedule", "cancel"]},
                    "service": service.clone(),
                    "date": {"type": ["string", "null"], "description": "YYYY-MM-DD"},
                    "time": {"type": ["string", "null"], "description": "24-hour HH:MM"}
                }
            },
            "acts": {"type": "array", "items": {"type": "string", "enum": acts}},
            "service": service,
            "date": {"type": ["string", "null"], "description": "YYYY-MM-DD"},
            "time": {"type": ["string", "null"], "description": "24-hour HH:MM"},
            "day_part": {
                "type": ["string", "null"],
                "description": "morning | afternoon | evening | after HH:MM | before HH:MM"
            },
            "name": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
            "choice": {"type": ["integer", "null"], "description": "1-based option number"}
        }
    })
}

/// Reads the model's JSON. Anything it cannot use is dropped field by field (unknown acts, bad
/// dates, a service the business does not offer); `None` only when the answer is not a JSON
/// object at all.
pub fn parse(content: &str, services: &[String]) -> Option<Understanding> {
    let value: Value = serde_json::from_str(content.trim()).ok()?;
    let object = value.as_object()?;
    let text = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let mut acts: Vec<Act> = object
        .get("acts")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter_map(act_named)
                .collect()
        })
        .unwrap_or_default();
    let service = text("service").and_then(|s| {
        services
            .iter()
            .find(|known| known.eq_ignore_ascii_case(s))
            .cloned()
    });
    let date = text("date").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let time = text("time").and_then(parse_time);
    let day_part = text("day_part").and_then(parse_day_part);
    let name = text("name")
        .filter(|n| n.chars().count() <= 100 && !n.contains('@'))
        .map(str::to_string);
    let email = text("email")
        .filter(|e| {
            let parts: Vec<&str> = e.split('@').collect();
            parts.len() == 2
                && !parts[0].is_empty()
                && parts[1].contains('.')
                && !e.chars().any(char::is_whitespace)
        })
        .map(str::to_string);
    let choice = object
        .get("choice")
        .and_then(Value::as_u64)
        .filter(|&n| (1..=20).contains(&n))
        .map(|n| n as usize - 1);

    // The policy reads slots through the acts, as the rules give them: a slot given is an
    // inform, an option picked is a choose.
    let informs = date.is_some()
        || time.is_some()
        || day_part.is_some()
        || name.is_some()
        || email.is_some()
        || (service.is_some() && acts.is_empty());
    if informs && !acts.contains(&Act::Inform) {
        acts.push(Act::Inform);
    }
    if choice.is_some() && !acts.contains(&Act::Choose) {
        acts.push(Act::Choose);
    }
    acts.sort_by_key(|a| ACT_ORDER.iter().position(|o| o == a));
    acts.dedup();

    // A move of the time discussed: bounded, and only without a time of its own.
    let int = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_i64)
            .filter(|n| n.abs() <= 60 * 24 * 90)
    };
    let (minutes, days) = (
        int("shift_minutes").unwrap_or(0),
        int("shift_days").filter(|d| d.abs() <= 90).unwrap_or(0),
    );
    let shift = (minutes != 0 || days != 0)
        .then_some(Shift { days, minutes })
        .filter(|_| time.is_none() && date.is_none());
    let lean = match text("lean") {
        Some("later") => Some(Lean::Later),
        Some("earlier") => Some(Lean::Earlier),
        _ => None,
    };
    let earliest = object
        .get("earliest")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if (shift.is_some() || earliest) && !acts.contains(&Act::Inform) {
        acts.push(Act::Inform);
        acts.sort_by_key(|a| ACT_ORDER.iter().position(|o| o == a));
    }
    let then = object.get("then").and_then(Value::as_object).and_then(|t| {
        let act = t.get("act").and_then(Value::as_str).and_then(act_named)?;
        if !matches!(act, Act::Book | Act::Reschedule | Act::Cancel) || acts.contains(&act) {
            return None;
        }
        let field = |key: &str| t.get(key).and_then(Value::as_str).map(str::trim);
        let date = field("date").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let time = field("time").and_then(parse_time);
        let mut then_acts = vec![act];
        if date.is_some() || time.is_some() {
            then_acts.insert(0, Act::Inform);
        }
        Some(Box::new(Understanding {
            acts: then_acts,
            service: field("service").and_then(|s| {
                services
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(s))
                    .cloned()
            }),
            date,
            time,
            confidence: MODEL_CONFIDENCE,
            source: NluSource::Llm,
            ..Understanding::default()
        }))
    });

    Some(Understanding {
        acts,
        service,
        date,
        time,
        day_part,
        name,
        email,
        choice,
        shift,
        lean,
        earliest,
        then,
        confidence: MODEL_CONFIDENCE,
        source: NluSource::Llm,
        ..Understanding::default()
    })
}

fn act_named(name: &str) -> Option<Act> {
    let name = name.trim();
    ACT_ORDER
        .iter()
        .copied()
        .find(|a| a.as_str().eq_ignore_ascii_case(name))
}

fn parse_time(t: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .ok()
}

fn parse_day_part(s: &str) -> Option<DayPart> {
    let s = s.to_ascii_lowercase();
    match s.as_str() {
        "morning" => Some(DayPart::Morning),
        "afternoon" => Some(DayPart::Afternoon),
        "evening" => Some(DayPart::Evening),
        _ => {
            let (kind, rest) = s.split_once(' ')?;
            if kind == "between" {
                let (from, to) = rest.split_once(" and ")?;
                let (from, to) = (parse_time(from.trim())?, parse_time(to.trim())?);
                return (from < to).then_some(DayPart::Between(from, to));
            }
            let time = parse_time(rest.trim())?;
            match kind {
                "after" => Some(DayPart::After(time)),
                "before" => Some(DayPart::Before(time)),
                _ => None,
            }
        }
    }
}

/// A circuit breaker: closed, it lets calls through and counts consecutive failures; after
/// `threshold` of them it opens and refuses calls for `cooldown`; then it lets one probe
/// through (half-open), which closes it on success and re-opens it on failure. Its state is the
/// gauge `sara_nlu_breaker_open` (1 while open or probing).
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The probe call is in flight; others are refused until it ends.
    Probing,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        metrics::gauge!("sara_nlu_breaker_open").set(0.0);
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // The state is a plain value, valid even if a holder panicked.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), BreakerState::Closed { .. })
    }

    /// A permit to call the model, or `None` while the breaker is open.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } => {}
            BreakerState::Open { until } if Instant::now() >= until => {
                *state = BreakerState::Probing;
            }
            BreakerState::Open { .. } | BreakerState::Probing => return None,
        }
        Some(Permit {
            breaker: self,
            done: false,
        })
    }

    fn record(&self, ok: bool) {
        let mut state = self.lock();
        let next = match (*state, ok) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            (_, false) => BreakerState::Open {
                until: Instant::now() + self.cooldown,
            },
        };
        let was_open = !matches!(*state, BreakerState::Closed { .. });
        let is_open = !matches!(next, BreakerState::Closed { .. });
        if is_open != was_open {
            if is_open {
                tracing::warn!(
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "NLU model breaker opened"
                );
            } else {
                tracing::info!("NLU model breaker closed");
            }
        }
        metrics::gauge!("sara_nlu_breaker_open").set(if is_open { 1.0 } else { 0.0 });
        *state = next;
    }
}

/// One call's claim on the breaker. Dropped without [`Permit::finish`] (the caller's deadline
/// cancelled the call) it records a failure: a model that is too slow is as bad as one that
/// is down.
pub struct Permit<'a> {
    breaker: &'a Breaker,
    done: bool,
}

impl Permit<'_> {
    pub fn finish(mut self, ok: bool) {
        self.done = true;
        self.breaker.record(ok);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(false);
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "bench"))]
pub mod testing;
