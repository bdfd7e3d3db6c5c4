//! `sara bench --restart N`: restart time with the reload from the database. Sara is built
//! as `serve` builds it (`App::build`: the real store on a throw-away SQLite file or
//! PostgreSQL database, the rule NLU, the local calendar, in-process leases); one
//! conversation holds a half-filled booking, committed; then N times: `inject_panic`, and the
//! time until the next turn is answered by the replacement actor — which starts empty and
//! reads the conversation back from the store on that turn, then commits the turn. The same
//! turn on the live actor, N times, is measured first as the baseline.
//!
//! The criterion bench `engine/restart_after_panic` (crate `sara-actors`) measures the same
//! on the in-memory store, i.e. without the reload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use sara_actors::engine::{Engine, Inbound, TurnError};
use sara_actors::model::{Channel, Phone};
use sara_actors::ports::ConversationStore;
use serde::Serialize;

use super::{Backend, TempDb, bench_config, dialog, round};
use crate::app::App;
use crate::config::Config;

/// What `--restart N` measured (the last stdout line).
#[derive(Clone, Debug, Serialize)]
pub struct RestartReport {
    pub mode: &'static str,
    pub backend: &'static str,
    pub restarts: u64,
    /// From `inject_panic` until the replacement answered a turn (reload + turn + commit).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Turns that reached the failing actor and came back `Interrupted` (then sent again).
    pub interrupted_turns: u64,
    /// The same turn on the live actor (no panic, no reload): the baseline.
    pub live_turn_p50_ms: f64,
    pub live_turn_p99_ms: f64,
    pub live_turn_max_ms: f64,
    /// The half-filled booking (service and day) was still in the stored state at the end.
    pub form_survived: bool,
}

/// The message every measured turn sends: an FAQ question, which leaves the booking form
/// half-filled, so each restart reloads the same state.
const QUESTION: &str = "do you have parking?";

fn inbound(phone: &Phone, text: &str) -> Inbound {
    Inbound {
        phone: phone.clone(),
        channel: Channel::Sms,
        text: text.to_string(),
        provider_id: None,
        at: Utc::now(),
    }
}

/// Runs `count` restarts on a throw-away database of `backend`.
pub async fn run(
    config: Config,
    count: usize,
    backend: Backend,
    postgres: &str,
) -> anyhow::Result<RestartReport> {
    let mut config = config;
    if config.storage.encryption_key.is_none() {
        config.storage.encryption_key = Some(crate::config::Secret::new(
            crate::store::EncryptionKey::generate().to_base64(),
        ));
    }
    let (temp, db_url) = TempDb::create(backend, postgres).await?;
    let outcome = run_on(config, count, backend, &db_url).await;
    temp.remove().await;
    outcome
}

async fn run_on(
    config: Config,
    count: usize,
    backend: Backend,
    db_url: &str,
) -> anyhow::Result<RestartReport> {
    let mut config = bench_config(config, db_url, "http://127.0.0.1:0");
    // Injected panics must not end in quarantine.
    config.engine.max_failures = u32::MAX;
    let business = config.business()?;
    let wish = dialog::plan(&business, 1, None)
        .into_iter()
        .next()
        .context("the business has no bookable slot")?;
    let app = App::build(config).await.context("starting Sara")?;
    let engine = app.engine.clone();
    let phone = Phone::parse("+15559000000").context("the bench phone parses")?;
    let opening = format!(
        "I'd like to book a {} on {}",
        wish.service.to_lowercase(),
        wish.date.format("%B %-d, %Y")
    );
    engine
        .turn(inbound(&phone, &opening))
        .await
        .context("the half-filled booking")?;

    let mut live = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        engine
            .turn(inbound(&phone, QUESTION))
            .await
            .context("a turn on the live conversation")?;
        live.push(started.elapsed());
    }

    let quiet = QuietInjectedPanics::install();
    let mut restarts = Vec::with_capacity(count);
    let mut interrupted = 0u64;
    let mut failure = None;
    for _ in 0..count {
        match one_restart(&engine, &phone).await {
            Ok((took, retries)) => {
                restarts.push(took);
                interrupted += retries;
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    drop(quiet);

    let stored = app
        .db
        .load(&phone)
        .await
        .context("reading the state back")?;
    let form_survived = stored.is_some_and(|s| {
        s.state.contains(&wish.service) && s.state.contains(&wish.date.to_string())
    });
    app.engine.shutdown().await;
    app.db.close().await;
    if let Some(error) = failure {
        return Err(error);
    }
    let (p50, p99, max, mean) = quantiles(&mut restarts);
    let (live_p50, live_p99, live_max, _) = quantiles(&mut live);
    Ok(RestartReport {
        mode: "restart",
        backend: backend.as_str(),
        restarts: restarts.len() as u64,
        p50_ms: p50,
        p99_ms: p99,
        max_ms: max,
        mean_ms: mean,
        interrupted_turns: interrupted,
        live_turn_p50_ms: live_p50,
        live_turn_p99_ms: live_p99,
        live_turn_max_ms: live_max,
        form_survived,
    })
}

/// From `inject_panic` until a turn is answered by the replacement actor; also how many
/// turns came back `Interrupted` on the way.
async fn one_restart(engine: &Engine, phone: &Phone) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    anyhow::ensure!(engine.inject_panic(phone.clone()), "the supervisor is gone");
    let mut retries = 0;
    loop {
        match engine.turn(inbound(phone, QUESTION)).await {
            Ok(_) => return Ok((started.elapsed(), retries)),
            // The turn reached the failing actor (or the supervisor had not yet heard that it
            // failed, so it is sent straight back); the replacement takes a later one. A
            // restart that never comes is an error, not an endless loop.
            Err(TurnError::Interrupted) if started.elapsed() < Duration::from_secs(10) => {
                retries += 1
            }
            Err(error) => anyhow::bail!("turn after a restart: {error}"),
        }
    }
}

/// p50, p99, max and mean in milliseconds (0 when empty).
fn quantiles(samples: &mut [Duration]) -> (f64, f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    samples.sort();
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0, 3);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    (
        ms(at(0.50)),
        ms(at(0.99)),
        ms(samples[samples.len() - 1]),
        ms(mean),
    )
}

type Hook = Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync>;

/// While alive, the injected panics print nothing (each would otherwise print a message and,
/// with `RUST_BACKTRACE` set, a symbolised backtrace, which alone costs milliseconds and is
/// not what is measured); every other panic still reaches the previous hook.
struct QuietInjectedPanics {
    previous: Hook,
}

impl QuietInjectedPanics {
    fn install() -> QuietInjectedPanics {
        let previous: Hook = Arc::from(std::panic::take_hook());
        let inner = previous.clone();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str));
            if message.is_some_and(|m| m.starts_with("fault injection")) {
                return;
            }
            inner(info)
        }));
        QuietInjectedPanics { previous }
    }
}

impl Drop for QuietInjectedPanics {
    fn drop(&mut self) {
        let previous = self.previous.clone();
        std::panic::set_hook(Box::new(move |info| previous(info)));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[tokio::test]
    async fn five_restarts_reload_the_half_filled_booking_from_sqlite() {
        let config = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
            .expect("the repository config loads");
        let report = run(config, 5, Backend::Sqlite, super::super::DEFAULT_POSTGRES)
            .await
            .expect("restarts measured");
        assert_eq!(report.restarts, 5);
        assert!(report.form_survived, "{report:?}");
        assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
    }
}
