//! Engine benchmarks, in process, no HTTP: turns through conversation actors on the
//! in-memory ports (`sara_actors::memory`) with the real dialogue policy.
//!
//! The NLU is a tiny fixed one defined here (the rule NLU lives in the `sara` crate): it
//! maps two messages to the understanding the rule NLU would produce, so the policy does
//! its real work (availability check, confirmation, cancel of the form) without parsing.
//!
//! - `engine/turns`: throughput over 256 concurrent conversations.
//! - `engine/live_turn` vs `engine/activate_passivated_turn`: one turn on a live
//!   conversation, and one on a conversation whose state is only in the store (the
//!   difference is the cost of activating it).
//! - `engine/restart_after_panic`: from `inject_panic` until the replacement answers a turn;
//!   its p50/p99 over 2,000 restarts are printed as well. The panic hook is silenced
//!   there so that printing the panic is not what gets measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveTime, Utc, Weekday};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sara_actors::business::Business;
use sara_actors::engine::{Engine, EngineSettings, Inbound, TurnError};
use sara_actors::memory::MemoryStore;
use sara_actors::model::{Channel, Phone};
use sara_actors::ports::{BoxFuture, ConversationStore, Nlu, NluError, TurnCommit, TurnRecord};
use sara_actors::understanding::{Act, NluContext, Understanding};

/// "book" = a cleaning next week at 10:00 for Sam Ortiz; "no" = a refusal.
struct FixedNlu;

impl Nlu for FixedNlu {
    fn understand<'a>(
        &'a self,
        text: &'a str,
        ctx: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>> {
        let u = match text {
            "book" => {
                let mut date = ctx.now.date_naive() + chrono::Duration::days(7);
                while matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
                    date = date.succ_opt().expect("far from the end of time");
                }
                Understanding {
                    acts: vec![Act::Book, Act::Inform],
                    service: Some("Cleaning".into()),
                    date: Some(date),
                    time: NaiveTime::from_hms_opt(10, 0, 0),
                    name: Some("Sam Ortiz".into()),
                    confidence: 0.9,
                    ..Understanding::default()
                }
            }
            "no" => Understanding {
                acts: vec![Act::Deny],
                confidence: 0.9,
                ..Understanding::default()
            },
            _ => Understanding::default(),
        };
        Box::pin(async move { Ok(u) })
    }

    fn name(&self) -> &'static str {
        "fixed"
    }

    /// Like the rule NLU it stands for.
    fn answers_at_once(&self) -> bool {
        true
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn engine(settings: EngineSettings) -> (Engine, Arc<MemoryStore>) {
    let (ports, store) = sara_actors::memory::in_memory_ports(Arc::new(FixedNlu));
    let engine = Engine::start(Business::example(), settings, ports)
        .await
        .expect("engine starts");
    (engine, store)
}

fn phone(i: u64) -> Phone {
    Phone::parse(&format!("+1555{:07}", 1_000_000 + i)).expect("valid phone")
}

fn inbound(phone: Phone, text: &str) -> Inbound {
    Inbound {
        phone,
        channel: Channel::Sms,
        text: text.into(),
        provider_id: None,
        at: Utc::now(),
    }
}

const CONVERSATIONS: u64 = 256;
const TURNS_EACH: u64 = 4;

/// 256 conversations, each "book" / "no" twice, all at once.
async fn round_of_turns(engine: &Engine) {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONVERSATIONS {
        let engine = engine.clone();
        tasks.spawn(async move {
            for t in 0..TURNS_EACH {
                let text = if t % 2 == 0 { "book" } else { "no" };
                engine
                    .turn(inbound(phone(c), text))
                    .await
                    .expect("turn answered");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("turn task");
    }
}

fn turns(c: &mut Criterion) {
    let rt = runtime();
    let (engine, _store) = rt.block_on(engine(EngineSettings::default()));
    // The policy must really be exercised: "book" gets an offer to confirm.
    let offer = rt
        .block_on(engine.turn(inbound(phone(999_999), "book")))
        .expect("turn");
    assert!(offer.text.contains("Shall I"), "{}", offer.text);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(CONVERSATIONS * TURNS_EACH));
    group.sample_size(20);
    group.bench_function("turns", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    round_of_turns(&engine).await;
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(engine.shutdown());
}

/// Stores a half-filled conversation for `phone` as if it had been passivated.
async fn seed(store: &MemoryStore, phone: Phone, state: &str) {
    let commit = TurnCommit {
        phone,
        expected_version: 0,
        owner_epoch: 0,
        state: state.to_string(),
        turn: TurnRecord {
            channel: Channel::Sms,
            provider_id: None,
            text: String::new(),
            reply: sara_actors::dialogue::Reply::default(),
            intent: "book".into(),
            nlu: "fixed".into(),
            understood: "{}".into(),
            at: Utc::now(),
            elapsed_ms: 0,
        },
        outbox: Vec::new(),
        jobs: Vec::new(),
        void_jobs: Vec::new(),
        attendance: Vec::new(),
    };
    store.commit(vec![commit]).await.expect("seeded");
}

fn activation(c: &mut Criterion) {
    let rt = runtime();
    let settings = EngineSettings {
        // Conversations activated by the benchmark leave memory again soon.
        idle_timeout: Duration::from_secs(1),
        ..EngineSettings::default()
    };
    let (engine, store) = rt.block_on(engine(settings));
    let reference = phone(0);
    rt.block_on(engine.turn(inbound(reference.clone(), "book")))
        .expect("turn");
    let state = rt
        .block_on(store.load(&reference))
        .expect("load")
        .expect("stored")
        .state;
    let mut group = c.benchmark_group("engine");
    group.bench_function("live_turn", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for i in 0..iters {
                    let text = if i % 2 == 0 { "no" } else { "book" };
                    engine
                        .turn(inbound(reference.clone(), text))
                        .await
                        .expect("turn");
                }
                started.elapsed()
            })
        })
    });
    let mut next = 1u64;
    group.bench_function("activate_passivated_turn", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let phones: Vec<Phone> = (next..next + iters).map(phone).collect();
                next += iters;
                for p in &phones {
                    seed(&store, p.clone(), &state).await;
                }
                let started = Instant::now();
                for p in phones {
                    engine.turn(inbound(p, "no")).await.expect("turn");
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(engine.shutdown());
}

/// From `inject_panic` until a turn is answered by the replacement actor.
async fn one_restart(engine: &Engine, p: &Phone) -> Duration {
    let started = Instant::now();
    assert!(engine.inject_panic(p.clone()));
    loop {
        match engine.turn(inbound(p.clone(), "no")).await {
            Ok(_) => return started.elapsed(),
            // The turn reached the failing actor; the replacement takes the next one.
            Err(TurnError::Interrupted) => continue,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
}

fn restart(c: &mut Criterion) {
    // Injected panics would otherwise each print a message (and, with RUST_BACKTRACE set, a
    // symbolised backtrace, which alone costs milliseconds) to stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = runtime();
    let settings = EngineSettings {
        // Injected panics must not end in quarantine.
        max_failures: u32::MAX,
        ..EngineSettings::default()
    };
    let (engine, _store) = rt.block_on(engine(settings));
    let p = phone(0);
    rt.block_on(engine.turn(inbound(p.clone(), "book")))
        .expect("turn");
    let mut group = c.benchmark_group("engine");
    group.bench_function("restart_after_panic", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += one_restart(&engine, &p).await;
                }
                total
            })
        })
    });
    group.finish();
    // `cargo test --all-targets` runs this binary once in test mode: skip the long tail run.
    if !std::env::args().any(|a| a == "--bench") {
        rt.block_on(engine.shutdown());
        return;
    }
    let mut samples: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::with_capacity(2000);
        for _ in 0..2000 {
            v.push(one_restart(&engine, &p).await);
        }
        v
    });
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "engine/restart_after_panic over {} restarts: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    );
    rt.block_on(engine.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = turns, activation, restart
}
criterion_main!(benches);
