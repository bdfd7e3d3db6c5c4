//! Driving the load: Twilio-signed `POST /webhook/sms` requests from one shared, pooled
//! HTTP client, either closed loop (C dialogs in flight, each sending its next message as
//! soon as the reply arrives) or open loop (turns start at a fixed rate whatever the
//! latency, so a slow server shows up as latency, not as a lower request rate). While it
//! runs, a sampler takes one [`Sample`] per interval (the soak's timeline).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::dialog::{Customer, Step, Wish};
use super::stages::StageFigures;
use super::timeline::{Sample, Sampling};
use crate::channels::twilio::TwilioSignature;

/// Where the turns go.
#[derive(Clone)]
pub struct Target {
    /// `http://host:port`, where requests are sent.
    pub base: String,
    /// The public URL the server checks signatures against (usually `base`).
    pub public_url: String,
    pub auth_token: String,
}

/// What one load run measured.
pub struct LoadResult {
    pub turns: u64,
    /// Requests that failed (transport error or a non-200 status).
    pub failed_turns: u64,
    pub dialogs_started: u64,
    pub dialogs_booked: u64,
    /// Dialogs that ended without a booking (Sara said something the customer could not
    /// continue from, or a turn failed).
    pub dialogs_failed: u64,
    /// Open loop only: arrivals that found no conversation ready to send.
    pub missed_arrivals: u64,
    /// The most requests that were in flight at once.
    pub peak_in_flight: u64,
    pub elapsed: Duration,
    /// Turn latency in microseconds.
    pub latency: Histogram<u64>,
    /// One sample per interval (empty when the run was not sampled).
    pub timeline: Vec<Sample>,
    /// Where the server's turns spent their time (empty when its `/metrics` was not read).
    pub stages: BTreeMap<&'static str, StageFigures>,
}

impl LoadResult {
    pub fn turns_per_s(&self) -> f64 {
        self.turns as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn errors(&self) -> u64 {
        self.failed_turns + self.dialogs_failed
    }

    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds are valid")
}

/// A client that keeps one connection per dialog in flight.
pub fn client(concurrency: usize) -> reqwest::Client {
    // reqwest is built without a TLS provider of its own; `main` installs ring, and so must
    // a library caller (a test) before the first client. A second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a plain HTTP client always builds")
}

#[derive(Default)]
struct Counters {
    turns: AtomicU64,
    failed_turns: AtomicU64,
    started: AtomicU64,
    booked: AtomicU64,
    failed: AtomicU64,
    missed: AtomicU64,
    peak: AtomicU64,
    sid: AtomicU64,
}

/// The whole run's latencies and those of the current sampling interval, under one lock so
/// that a turn is in both or in neither.
struct Latencies {
    run: Histogram<u64>,
    interval: Histogram<u64>,
}

struct Shared {
    client: reqwest::Client,
    target: Target,
    counters: Counters,
    latency: Mutex<Latencies>,
}

impl Shared {
    fn new(client: reqwest::Client, target: Target) -> Arc<Shared> {
        Arc::new(Shared {
            client,
            target,
            counters: Counters::default(),
            latency: Mutex::new(Latencies {
                run: histogram(),
                interval: histogram(),
            }),
        })
    }

    fn record(&self, took: Duration) {
        let micros = (took.as_micros() as u64).clamp(1, 120_000_000);
        let mut latency = self.latency.lock().expect("histogram lock poisoned");
        latency.run.saturating_record(micros);
        latency.interval.saturating_record(micros);
    }

    fn errors(&self) -> u64 {
        self.counters.failed_turns.load(Ordering::Relaxed)
            + self.counters.failed.load(Ordering::Relaxed)
    }

    /// Ends the current interval: its histogram is swapped for a fresh one.
    fn take_interval(&self) -> Histogram<u64> {
        let fresh = histogram();
        let mut latency = self.latency.lock().expect("histogram lock poisoned");
        std::mem::replace(&mut latency.interval, fresh)
    }

    /// Sends one signed message and returns Sara's reply text; `None` when the request
    /// failed (counted).
    async fn send(&self, phone: &str, text: &str) -> Option<String> {
        let sid = self.counters.sid.fetch_add(1, Ordering::Relaxed);
        let params = vec![
            ("AccountSid".to_string(), "ACbench".to_string()),
            ("MessageSid".to_string(), format!("SMbe0c{sid:028x}")),
            ("From".to_string(), phone.to_string()),
            ("To".to_string(), "+15550100000".to_string()),
            ("Body".to_string(), text.to_string()),
        ];
        let url = format!(
            "{}/webhook/sms",
            self.target.public_url.trim_end_matches('/')
        );
        let signature = TwilioSignature::new(&self.target.auth_token).sign(&url, &params);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let result = self
            .client
            .post(format!("{}/webhook/sms", self.target.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(body)
            .send()
            .await;
        self.counters.turns.fetch_add(1, Ordering::Relaxed);
        let reply = match result {
            Ok(response) if response.status().is_success() => response.text().await.ok(),
            _ => None,
        };
        if reply.is_none() {
            self.counters.failed_turns.fetch_add(1, Ordering::Relaxed);
        }
        reply.map(|xml| message_text(&xml))
    }

    fn finish(self: Arc<Self>, elapsed: Duration, timeline: Vec<Sample>) -> LoadResult {
        let c = &self.counters;
        let latency = self
            .latency
            .lock()
            .expect("histogram lock poisoned")
            .run
            .clone();
        LoadResult {
            turns: c.turns.load(Ordering::Relaxed),
            failed_turns: c.failed_turns.load(Ordering::Relaxed),
            dialogs_started: c.started.load(Ordering::Relaxed),
            dialogs_booked: c.booked.load(Ordering::Relaxed),
            dialogs_failed: c.failed.load(Ordering::Relaxed),
            missed_arrivals: c.missed.load(Ordering::Relaxed),
            peak_in_flight: c.peak.load(Ordering::Relaxed),
            elapsed,
            latency,
            timeline,
            stages: BTreeMap::new(),
        }
    }
}

/// The sampler of one run: stop it with [`Sampler::finish`] once the load is over.
struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Samples `shared` every `sampling.every` from `started` until stopped; `None` samples
    /// nothing (the bare-route run).
    fn start(
        shared: &Arc<Shared>,
        started: Instant,
        sampling: Option<Sampling>,
    ) -> Option<Sampler> {
        let sampling = sampling?;
        let shared = shared.clone();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let every = sampling.every.max(Duration::from_millis(100));
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut sink = super::timeline::CsvSink::create(sampling.csv.as_deref()).await;
            let mut tick = tokio::time::interval_at(started + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = (started, 0u64);
            loop {
                let end = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut stopped => true,
                };
                let sample = take_sample(&shared, started, &mut last, &sampling).await;
                // The last, partial interval only when something happened in it and it is
                // at least half an interval long (a few turns over a few milliseconds would
                // be noise in the plot and the trend); the run's totals still count them.
                let worth_a_row = (sample.turns > 0 || sample.errors > 0)
                    && (samples.is_empty() || sample.length_s >= every.as_secs_f64() / 2.0);
                if !end || worth_a_row {
                    if sampling.progress {
                        eprintln!("{}", super::timeline::progress_line(&sample));
                    }
                    sink.push(&sample).await;
                    samples.push(sample);
                }
                if end {
                    return samples;
                }
            }
        });
        Some(Sampler { stop, task })
    }

    async fn finish(sampler: Option<Sampler>) -> Vec<Sample> {
        let Some(sampler) = sampler else {
            return Vec::new();
        };
        let _ = sampler.stop.send(());
        sampler.task.await.unwrap_or_default()
    }
}

/// One interval: the turns that finished since `last` (their own histogram), the errors
/// since then and the server's RSS now.
async fn take_sample(
    shared: &Shared,
    started: Instant,
    last: &mut (Instant, u64),
    sampling: &Sampling,
) -> Sample {
    let now = Instant::now();
    let interval = shared.take_interval();
    let errors = shared.errors();
    let length = now.duration_since(last.0).as_secs_f64().max(1e-9);
    let error_delta = errors.saturating_sub(last.1);
    *last = (now, errors);
    let (rss_mib, live) = sampling.probe.read().await;
    let ms = |q: f64| interval.value_at_quantile(q) as f64 / 1000.0;
    let turns = interval.len();
    Sample {
        elapsed_s: now.duration_since(started).as_secs_f64(),
        length_s: length,
        turns,
        turns_per_s: turns as f64 / length,
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
        max_ms: interval.max() as f64 / 1000.0,
        errors: error_delta,
        rss_mib,
        live,
    }
}

/// The text of the `<Message>` verbs of a TwiML reply, unescaped.
pub fn message_text(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Message>") {
        let after = &rest[start + "<Message>".len()..];
        let Some(end) = after.find("</Message>") else {
            break;
        };
        let raw = &after[..end];
        match quick_xml::escape::unescape(raw) {
            Ok(text) => out.push_str(&text),
            Err(_) => out.push_str(raw),
        }
        rest = &after[end..];
    }
    out
}

/// How the dialogs proceed.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Sara's answers steer the customer (the real benchmark).
    Converse,
    /// The six scripted messages are sent whatever comes back (for the bare route, which
    /// answers nothing useful).
    Replay,
}

/// Runs one dialog to its end, one turn after the other.
async fn dialog(shared: &Shared, index: usize, wish: &Wish, mode: Mode) {
    shared.counters.started.fetch_add(1, Ordering::Relaxed);
    let mut customer = Customer::new(index, wish);
    let mut message = customer.start();
    let mut replayed = 0;
    loop {
        let started = Instant::now();
        let reply = shared.send(&customer.phone, &message).await;
        shared.record(started.elapsed());
        let Some(reply) = reply else {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let step = match mode {
            Mode::Converse => customer.react(&reply),
            Mode::Replay => {
                replayed += 1;
                if replayed >= 6 {
                    Step::Booked
                } else {
                    customer.react("")
                }
            }
        };
        match step {
            Step::Send(next) => message = next,
            Step::Booked => {
                shared.counters.booked.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Step::Stuck => {
                if std::env::var_os("SARA_BENCH_SHOW_FAILURES").is_some() {
                    eprint!("{}", super::dialog::show(&customer));
                }
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// C dialogs in flight until all are done or `duration` has passed (dialogs already
/// started then still finish).
pub async fn closed_loop(
    client: reqwest::Client,
    target: Target,
    wishes: Arc<Vec<Wish>>,
    concurrency: usize,
    duration: Option<Duration>,
    mode: Mode,
    sampling: Option<Sampling>,
) -> LoadResult {
    let shared = Shared::new(client, target);
    shared
        .counters
        .peak
        .store(concurrency.max(1) as u64, Ordering::Relaxed);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let sampler = Sampler::start(&shared, started, sampling);
    let deadline = duration.map(|d| started + d);
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (shared, next, wishes) = (shared.clone(), next.clone(), wishes.clone());
        workers.spawn(async move {
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(wish) = wishes.get(index) else { break };
                dialog(&shared, index, wish, mode).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let timeline = Sampler::finish(sampler).await;
    shared.finish(elapsed, timeline)
}

/// Turns start at `rate` per second across many conversations. A conversation's next
/// message becomes ready when its reply arrives; each arrival takes the next ready
/// conversation or starts a new dialog. Latency is measured from the arrival's scheduled
/// time, so a server that falls behind cannot hide it (no coordinated omission).
///
/// `soak`: new dialogs keep starting until `duration` is over (there must be one), cycling
/// through `wishes` with a new customer (phone) each time, and every customer cancels the
/// booking again once made, so the calendar never fills however long the run (see
/// [`Customer::cancelling`]). Otherwise each wish is one dialog.
pub async fn open_loop(
    client: reqwest::Client,
    target: Target,
    wishes: Arc<Vec<Wish>>,
    rate: f64,
    duration: Option<Duration>,
    soak: bool,
    sampling: Option<Sampling>,
) -> LoadResult {
    let shared = Shared::new(client, target);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<(Customer, String)>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    // Without a deadline or anything to cycle through, a soak would never end.
    let soak = soak && duration.is_some() && !wishes.is_empty();
    let started = Instant::now();
    let sampler = Sampler::start(&shared, started, sampling);
    let mut next_dialog = 0usize;
    let mut sent: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = JoinSet::new();
    loop {
        tick.tick().await;
        let now = Instant::now();
        if duration.is_some_and(|d| now.duration_since(started) >= d) {
            break;
        }
        let all_started = !soak && next_dialog >= wishes.len();
        if all_started && in_flight.load(Ordering::Acquire) == 0 && ready_rx.is_empty() {
            break;
        }
        let due = (now.duration_since(started).as_secs_f64() * rate) as u64;
        while sent < due {
            let scheduled = started + Duration::from_secs_f64(sent as f64 / rate);
            sent += 1;
            let (customer, message) = match ready_rx.try_recv() {
                Ok(ready) => ready,
                Err(_) if soak || next_dialog < wishes.len() => {
                    let wish = &wishes[next_dialog % wishes.len()];
                    let mut customer = Customer::new(next_dialog, wish);
                    if soak {
                        customer = customer.cancelling();
                    }
                    next_dialog += 1;
                    shared.counters.started.fetch_add(1, Ordering::Relaxed);
                    let first = customer.start();
                    (customer, first)
                }
                Err(_) => {
                    shared.counters.missed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let now_in_flight = in_flight.fetch_add(1, Ordering::AcqRel) + 1;
            shared
                .counters
                .peak
                .fetch_max(now_in_flight as u64, Ordering::Relaxed);
            let (shared, ready_tx, in_flight) =
                (shared.clone(), ready_tx.clone(), in_flight.clone());
            tasks.spawn(async move {
                let mut customer = customer;
                let reply = shared.send(&customer.phone, &message).await;
                shared.record(scheduled.elapsed());
                match reply.map(|r| customer.react(&r)) {
                    None | Some(Step::Stuck) => {
                        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Step::Booked) => {
                        shared.counters.booked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Step::Send(next)) => {
                        let _ = ready_tx.send((customer, next));
                    }
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
            });
        }
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let timeline = Sampler::finish(sampler).await;
    shared.finish(elapsed, timeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_message_out_of_twiml() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Done &#8212; you&apos;re booked &amp; set</Message></Response>";
        assert_eq!(message_text(xml), "Done — you're booked & set");
        assert_eq!(
            message_text("<?xml version=\"1.0\"?><Response></Response>"),
            ""
        );
    }
}
