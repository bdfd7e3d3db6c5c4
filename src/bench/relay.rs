//! `sara bench --mode relay`: simulated Twilio ConversationRelay calls against an in-process
//! Sara in relay mode. Each call is what Twilio does: the signed call start
//! (`POST /webhook/voice`), the WebSocket to the `<ConversationRelay url>` it answers with a
//! handshake signed over that `ws://` URL, `setup`, then one `prompt` (`last: true`) per
//! utterance of the customer's booking dialog ([`super::dialog`], the same customers as the
//! SMS bench, spell-back included). `--concurrency` calls are in flight at once. Per turn it
//! measures prompt → first `text` token (what the caller first hears: a filler counts) and
//! prompt → the reply's last token. With `--model-latency-ms N` understanding goes through
//! the OpenAI client to a local model stand-in answering after N ms, on every turn.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::dialog::{self, Customer, Step, Wish};
use super::{BENCH_TOKEN, BenchOptions, TempDb, bench_config, round, rss_mib};
use crate::ai::openai::testing::ModelStandIn;
use crate::app::App;
use crate::channels::twilio::TwilioSignature;
use crate::config::{AiProvider, AiRouting, Config, VoiceMode};
use crate::http::relay::{APOLOGY, FILLER};

/// What the relay bench's callers are like.
#[derive(Clone, Copy, Debug, Default)]
pub struct Callers {
    /// Understanding by a local model stand-in answering after this long (`None`: the rules).
    pub model_latency: Option<Duration>,
    /// How long a caller speaks between hearing a reply and Sara getting the next prompt
    /// (Twilio sends the prompt when the caller stops speaking). Zero: the next prompt at
    /// once, far harsher than people on the phone.
    pub pause: Duration,
}

/// How long a call waits for Sara's next message before it counts as failed.
const PATIENCE: Duration = Duration::from_secs(30);

/// The last line of `sara bench --mode relay`.
#[derive(Clone, Debug, Serialize)]
pub struct RelaySummary {
    pub mode: &'static str,
    pub backend: &'static str,
    /// Calls started (each one booking dialog).
    pub calls: u64,
    /// Calls in flight at once.
    pub concurrency: u64,
    pub turns: u64,
    /// Calls that did not end in a booking (a refused handshake, a closed socket, a reply
    /// that never came, a dialog Sara could not finish).
    pub errors: u64,
    /// Filler lines said before a slow reply.
    pub fillers: u64,
    /// The model stand-in's latency; null when the rules understood every turn.
    pub model_latency_ms: Option<u64>,
    /// How long each caller spoke between a reply and the next prompt.
    pub pause_ms: u64,
    /// Prompt → first `text` token.
    pub first_token_p50_ms: f64,
    pub first_token_p95_ms: f64,
    pub first_token_p99_ms: f64,
    pub first_token_max_ms: f64,
    /// Prompt → the reply's last token (`last: true`).
    pub last_token_p50_ms: f64,
    pub last_token_p95_ms: f64,
    pub last_token_p99_ms: f64,
    pub server_rss_mib: Option<f64>,
    /// Where the turns' time went inside Sara (its `sara_turn_stage_seconds` over the run).
    pub stages: std::collections::BTreeMap<&'static str, super::stages::StageFigures>,
}

pub struct RelayReport {
    pub summary: RelaySummary,
    pub elapsed: Duration,
    pub booked: u64,
    /// Chat completions the model stand-in answered (with `--model-latency-ms`).
    pub model_requests: Option<u64>,
    /// One failed dialog, for a human to read why (a synthetic customer, never a real one).
    pub failure: Option<String>,
}

impl RelayReport {
    pub fn json(&self) -> String {
        serde_json::to_string(&self.summary).expect("the summary always serialises")
    }

    pub fn table(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let mut row = |k: &str, v: String| out.push_str(&format!("{k:<28} {v}\n"));
        row(
            "target",
            "in-process Sara in relay mode, temporary database".into(),
        );
        row("backend", s.backend.into());
        row(
            "understanding",
            match s.model_latency_ms {
                Some(ms) => format!("model stand-in at {ms} ms, every turn"),
                None => "rules".into(),
            },
        );
        row("calls in flight", s.concurrency.to_string());
        row("caller speaks between turns", format!("{} ms", s.pause_ms));
        row(
            "calls started / booked",
            format!("{} / {}", s.calls, self.booked),
        );
        row("errors", s.errors.to_string());
        row("turns", s.turns.to_string());
        row("fillers said", s.fillers.to_string());
        if let Some(requests) = self.model_requests {
            row("model requests", requests.to_string());
        }
        row("elapsed", format!("{:.2} s", self.elapsed.as_secs_f64()));
        row(
            "first token p50 / p95 / p99",
            format!(
                "{:.2} / {:.2} / {:.2} ms (max {:.2})",
                s.first_token_p50_ms,
                s.first_token_p95_ms,
                s.first_token_p99_ms,
                s.first_token_max_ms
            ),
        );
        row(
            "last token p50 / p95 / p99",
            format!(
                "{:.2} / {:.2} / {:.2} ms",
                s.last_token_p50_ms, s.last_token_p95_ms, s.last_token_p99_ms
            ),
        );
        for (stage, f) in &s.stages {
            row(&format!("stage {stage}"), f.to_string());
        }
        row(
            "server RSS",
            match s.server_rss_mib {
                Some(m) => format!("{m:.1} MiB (in-process: the whole bench process)"),
                None => "unknown".into(),
            },
        );
        if let Some(failure) = &self.failure {
            out.push_str(failure);
        }
        out
    }
}

/// The figures of the whole run, shared by the calls in flight.
struct Measures {
    first: Histogram<u64>,
    last: Histogram<u64>,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    booked: AtomicU64,
    failed: AtomicU64,
    turns: AtomicU64,
    fillers: AtomicU64,
}

struct Shared {
    base: String,
    public_url: String,
    client: reqwest::Client,
    wishes: Vec<Wish>,
    next: AtomicUsize,
    counters: Counters,
    measures: Mutex<Measures>,
    failure: Mutex<Option<String>>,
    pause: Duration,
}

fn micros(took: Duration) -> u64 {
    (took.as_micros() as u64).clamp(1, 120_000_000)
}

impl Shared {
    fn record(&self, first: Duration, last: Duration) {
        let mut m = self
            .measures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.first.saturating_record(micros(first));
        m.last.saturating_record(micros(last));
    }

    fn failed(&self, why: String) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        let mut failure = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failure.is_none() {
            *failure = Some(why);
        }
    }
}

/// Runs the relay benchmark: `options.dialogs` calls, `options.concurrency` at once.
pub async fn run(
    mut config: Config,
    options: &BenchOptions,
    callers: Callers,
) -> anyhow::Result<RelayReport> {
    // The model client is built without a TLS provider of its own (see `load::client`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if config.storage.encryption_key.is_none() {
        config.storage.encryption_key = Some(crate::config::Secret::new(
            crate::store::EncryptionKey::generate().to_base64(),
        ));
    }
    let (temp, db_url) = TempDb::create(options.backend, &options.postgres).await?;
    let outcome = run_on(config, options, callers, &db_url).await;
    temp.remove().await;
    outcome
}

async fn run_on(
    config: Config,
    options: &BenchOptions,
    callers: Callers,
    db_url: &str,
) -> anyhow::Result<RelayReport> {
    let model_latency = callers.model_latency;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = bench_config(config, db_url, &base);
    config.voice.mode = VoiceMode::Relay;
    if let Some(idle) = options.idle_timeout {
        config.engine.idle_timeout_secs = idle.as_secs().max(1);
    }
    let business = config.business()?;
    let model = match model_latency {
        Some(latency) => Some(
            ModelStandIn::start(&business, latency)
                .await
                .context("starting the model stand-in")?,
        ),
        None => None,
    };
    let app = match &model {
        Some(model) => {
            config.ai.provider = AiProvider::OpenAi;
            config.ai.routing = AiRouting::Always;
            config.ai.api_base = Some(model.api_base().to_string());
            App::build_with_api_key(config, "sk-bench-stand-in".into()).await
        }
        None => App::build(config).await,
    }
    .context("starting Sara")?;
    let server = super::serve(app, listener);

    let calls = options.dialogs.max(1);
    let concurrency = options.concurrency.clamp(1, calls);
    let shared = Arc::new(Shared {
        base: base.clone(),
        public_url: base,
        client: super::load::client(concurrency),
        wishes: dialog::plan(&business, calls, options.slots),
        next: AtomicUsize::new(0),
        counters: Counters::default(),
        measures: Mutex::new(Measures {
            first: super::load::histogram(),
            last: super::load::histogram(),
        }),
        failure: Mutex::new(None),
        pause: callers.pause,
    });
    anyhow::ensure!(
        !shared.wishes.is_empty(),
        "the business has no bookable slot"
    );
    let before = super::stages::scrape(&shared.client, &shared.base).await;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let shared = shared.clone();
        workers.spawn(async move {
            loop {
                let i = shared.next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    break;
                }
                one_call(&shared, i).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let rss = rss_mib(None);
    let stages = match (
        before,
        super::stages::scrape(&shared.client, &shared.base).await,
    ) {
        (Some(before), Some(after)) => super::stages::table(&before, &after),
        _ => Default::default(),
    };
    server.stop().await?;
    let model_requests = model.as_ref().map(ModelStandIn::requests);
    if let Some(model) = model {
        model.stop().await;
    }

    let c = &shared.counters;
    let m = shared
        .measures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ms = |h: &Histogram<u64>, q: f64| round(h.value_at_quantile(q) as f64 / 1000.0, 3);
    let summary = RelaySummary {
        mode: "relay",
        backend: options.backend.as_str(),
        calls: c.started.load(Ordering::Relaxed),
        concurrency: concurrency as u64,
        turns: c.turns.load(Ordering::Relaxed),
        errors: c.failed.load(Ordering::Relaxed),
        fillers: c.fillers.load(Ordering::Relaxed),
        model_latency_ms: model_latency.map(|l| l.as_millis() as u64),
        pause_ms: callers.pause.as_millis() as u64,
        first_token_p50_ms: ms(&m.first, 0.50),
        first_token_p95_ms: ms(&m.first, 0.95),
        first_token_p99_ms: ms(&m.first, 0.99),
        first_token_max_ms: round(m.first.max() as f64 / 1000.0, 3),
        last_token_p50_ms: ms(&m.last, 0.50),
        last_token_p95_ms: ms(&m.last, 0.95),
        last_token_p99_ms: ms(&m.last, 0.99),
        server_rss_mib: rss.map(|r| round(r, 1)),
        stages,
    };
    let failure = shared
        .failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(RelayReport {
        summary,
        elapsed,
        booked: c.booked.load(Ordering::Relaxed),
        model_requests,
        failure,
    })
}

/// One call, start to booking; a failure is counted with the first one's story kept.
async fn one_call(shared: &Shared, i: usize) {
    shared.counters.started.fetch_add(1, Ordering::Relaxed);
    let wish = &shared.wishes[i % shared.wishes.len()];
    let mut customer = Customer::new(i, wish);
    match converse(shared, i, &mut customer).await {
        Ok(()) => {
            shared.counters.booked.fetch_add(1, Ordering::Relaxed);
        }
        Err(why) => shared.failed(format!("call {i}: {why}\n{}", dialog::show(&customer))),
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn converse(shared: &Shared, i: usize, customer: &mut Customer) -> Result<(), String> {
    let call = format!("CA{:032x}", 0xbe0c_0000_0000_u128 + i as u128);
    let url = call_start(shared, &call, &customer.phone).await?;
    let signature = TwilioSignature::new(BENCH_TOKEN).sign(&url, &[]);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("relay url {url}: {e}"))?;
    request.headers_mut().insert(
        "x-twilio-signature",
        signature
            .parse()
            .map_err(|e| format!("signature header: {e}"))?,
    );
    // Without TCP_NODELAY the first prompt, sent right behind `setup`, waited for the
    // server's delayed ACK of `setup` (~40 ms): a delay of this client, not of Sara.
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    send(
        &mut socket,
        json!({
            "type": "setup",
            "sessionId": format!("VX{:032x}", i),
            "accountSid": "AC00000000000000000000000000000000",
            "callSid": call,
            "from": customer.phone,
            "to": "+15550100000",
            "direction": "inbound",
            "callType": "PSTN",
            "callStatus": "RINGING",
            "customParameters": {}
        }),
    )
    .await?;
    let mut words = customer.start();
    let mut turns = 0;
    let outcome = loop {
        if !shared.pause.is_zero() {
            // The caller listens to what Sara said (the welcome greeting first), then speaks.
            tokio::time::sleep(speaking(shared.pause, i, turns)).await;
        }
        let reply = turn(shared, &mut socket, &words).await?;
        turns += 1;
        match customer.react(&reply) {
            Step::Send(next) => words = next,
            Step::Booked => break Ok(()),
            Step::Stuck => break Err("Sara said something the customer cannot go on from".into()),
        }
    };
    let _ = socket.close(None).await;
    outcome
}

/// How long call `call` speaks before its `turn`th prompt: `pause` ± 50 %, spread evenly
/// over calls and turns (a fixed pause would keep the calls that started together in step,
/// so every prompt would come in a burst of all the calls at once).
fn speaking(pause: Duration, call: usize, turn: usize) -> Duration {
    let spread = (call
        .wrapping_mul(7_919)
        .wrapping_add(turn.wrapping_mul(104_729)))
        % 1_000;
    pause.mul_f64(0.5 + spread as f64 / 1_000.0)
}

/// The call start in relay mode: the `ws://` URL of the `<ConversationRelay>` it answers.
async fn call_start(shared: &Shared, call: &str, from: &str) -> Result<String, String> {
    let params = vec![
        (
            "AccountSid".to_string(),
            "AC00000000000000000000000000000000".to_string(),
        ),
        ("CallSid".to_string(), call.to_string()),
        ("From".to_string(), from.to_string()),
        ("To".to_string(), "+15550100000".to_string()),
        ("CallStatus".to_string(), "ringing".to_string()),
    ];
    let signed_url = format!("{}/webhook/voice", shared.public_url);
    let signature = TwilioSignature::new(BENCH_TOKEN).sign(&signed_url, &params);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let response = shared
        .client
        .post(format!("{}/webhook/voice", shared.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("call start: {e}"))?;
    let status = response.status();
    let xml = response
        .text()
        .await
        .map_err(|e| format!("call start: {e}"))?;
    if !status.is_success() {
        return Err(format!("call start answered {status}"));
    }
    relay_url(&xml).ok_or_else(|| format!("no <ConversationRelay url> in {xml}"))
}

/// The `url` attribute of `<ConversationRelay>` in a TwiML document.
fn relay_url(xml: &str) -> Option<String> {
    let element = &xml[xml.find("<ConversationRelay")?..];
    let start = element.find(" url=\"")? + " url=\"".len();
    let raw = &element[start..start + element[start..].find('"')?];
    quick_xml::escape::unescape(raw)
        .ok()
        .map(|u| u.into_owned())
}

async fn send(socket: &mut Socket, message: Value) -> Result<(), String> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// One utterance and Sara's reply to it (its text, fillers left out), with the times to
/// its first and last token recorded.
async fn turn(shared: &Shared, socket: &mut Socket, words: &str) -> Result<String, String> {
    send(
        socket,
        json!({"type": "prompt", "voicePrompt": words, "lang": "en-US", "last": true}),
    )
    .await?;
    let asked = Instant::now();
    shared.counters.turns.fetch_add(1, Ordering::Relaxed);
    let mut first: Option<Duration> = None;
    let mut said = String::new();
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .map_err(|_| format!("no answer within {} s to {words:?}", PATIENCE.as_secs()))?
            .ok_or("the session closed")?
            .map_err(|e| format!("receive: {e}"))?;
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return Err("the session closed".into()),
            _ => continue,
        };
        let message: Value =
            serde_json::from_str(&text).map_err(|e| format!("unreadable message: {e}"))?;
        match message["type"].as_str() {
            Some("text") => {
                first.get_or_insert_with(|| asked.elapsed());
                said.push_str(message["token"].as_str().unwrap_or_default());
                if message["last"] != true {
                    continue;
                }
                if said == FILLER || said == APOLOGY {
                    // Said while the answer is on its way: the caller heard something, and
                    // the reply follows.
                    shared.counters.fillers.fetch_add(1, Ordering::Relaxed);
                    said.clear();
                    continue;
                }
                let last = asked.elapsed();
                shared.record(first.unwrap_or(last), last);
                return Ok(said);
            }
            Some("end") => return Err(format!("the session ended: {message}")),
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_speak_for_half_to_one_and_a_half_times_the_pause_not_in_step() {
        let pause = Duration::from_millis(2_000);
        let times: Vec<Duration> = (0..200).map(|call| speaking(pause, call, 1)).collect();
        assert!(times.iter().all(|t| *t >= pause / 2 && *t < pause * 3 / 2));
        let distinct: std::collections::HashSet<_> = times.iter().collect();
        assert!(distinct.len() > 150, "{} distinct", distinct.len());
        assert_ne!(speaking(pause, 3, 1), speaking(pause, 3, 2));
    }

    #[test]
    fn the_relay_url_is_read_from_the_twiml() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect action="x"><ConversationRelay url="ws://127.0.0.1:1/webhook/voice/relay?call=CA1&amp;caller=verified" welcomeGreeting="Hi"/></Connect></Response>"#;
        assert_eq!(
            relay_url(xml).as_deref(),
            Some("ws://127.0.0.1:1/webhook/voice/relay?call=CA1&caller=verified")
        );
        assert_eq!(relay_url("<Response><Say>hi</Say></Response>"), None);
    }
}
