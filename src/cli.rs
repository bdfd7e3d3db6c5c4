//! The commands behind `sara serve | migrate | chat | eval | bench`.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use chrono::Utc;
use sara_actors::dialogue;
use sara_actors::engine::Inbound;
use sara_actors::model::{Channel, Phone};

use crate::app::{App, shutdown_signal};
use crate::config::{Config, Secret};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.server.bind.clone();
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let app = App::build(config).await.context("starting Sara")?;
    let addr = listener.local_addr()?;
    println!("sara listening on http://{addr}");
    std::io::stdout().flush()?;
    app.serve(listener, shutdown_signal()).await?;
    Ok(())
}

pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let db = crate::store::Database::connect(
        config.storage.database_url.expose(),
        config.storage.encryption_key.as_ref().map(Secret::expose),
    )
    .await?;
    db.migrate().await?;
    println!("migrations applied ({})", db.backend());
    Ok(())
}

/// `sara forget PHONE`: erases a caller's personal data (see [`crate::privacy`]) and prints
/// what went, as JSON.
pub async fn forget(config: Config, phone: &str) -> anyhow::Result<()> {
    let phone = Phone::parse(phone).context("the phone must be a number like +15551234567")?;
    let db = crate::store::Database::connect_with(&config.storage).await?;
    db.migrate().await?;
    let cache = crate::cache::Cache::from_config(&config, db.cache_sealer())?;
    let forgotten = crate::privacy::forget_caller(&db, &cache, None, &phone, Utc::now()).await?;
    println!("{}", serde_json::to_string(&forgotten)?);
    db.close().await;
    Ok(())
}

/// A conversation in the terminal: each line is one turn through the same engine and store
/// as the webhooks use.
pub async fn chat(config: Config, phone: &str) -> anyhow::Result<()> {
    let phone = Phone::parse(phone).context("--phone must be a phone number like +15550001111")?;
    let app = App::build(config).await.context("starting Sara")?;
    let business = app.engine.business().clone();
    println!(
        "Talking to Sara at {} as {} (empty line or Ctrl-D to leave).",
        business.name,
        phone.as_str()
    );
    println!(
        "Sara: {}",
        dialogue::greeting(&business, Channel::Chat).text
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("You: ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        if line.trim().is_empty() {
            break;
        }
        let inbound = Inbound {
            phone: phone.clone(),
            channel: Channel::Chat,
            text: line,
            provider_id: None,
            at: Utc::now(),
        };
        let reply = crate::http::webhook::caller_reply(app.engine.turn(inbound).await)
            .map(|r| r.text)
            .unwrap_or_else(|e| format!("(Sara is unavailable: {})", e.detail()));
        if !reply.is_empty() {
            println!("Sara: {reply}");
        }
    }
    app.engine.shutdown().await;
    Ok(())
}

pub async fn eval(config: Config, path: &Path, predictions: Option<&Path>) -> anyhow::Result<()> {
    let business = config.business()?;
    let services: Vec<String> = business.services.iter().map(|s| s.name.clone()).collect();
    let ports = crate::ai::configured(&config.ai, &business, std::env::var("OPENAI_API_KEY").ok())?;
    // The chat deadline and the rules fallback, as a chat turn gets them.
    let nlu = crate::ai::Guarded {
        primary: ports.primary,
        fallback: ports.fallback,
        deadline: std::time::Duration::from_millis(config.ai.chat_deadline_ms),
    };
    let summary = crate::eval::run(path, predictions, &nlu, services).await?;
    summary.print();
    Ok(())
}

/// `sara bench`: a human table, then the summary as the last stdout line (one JSON object).
/// The timeline goes to `timeline` (CSV) and `plot` (SVG) when given.
#[cfg(feature = "bench")]
pub async fn bench(
    config: Config,
    options: crate::bench::BenchOptions,
    timeline: Option<std::path::PathBuf>,
    plot: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let report = crate::bench::run(config, options).await?;
    write_timeline(&report, timeline.as_deref(), plot.as_deref())?;
    print!("{}", report.table());
    println!("{}", report.json());
    Ok(())
}

/// `sara bench --mode relay`: simulated ConversationRelay calls; a human table, then the
/// summary as the last stdout line (one JSON object).
#[cfg(feature = "bench")]
pub async fn bench_relay(
    config: Config,
    options: crate::bench::BenchOptions,
    callers: crate::bench::relay::Callers,
) -> anyhow::Result<()> {
    let report = crate::bench::relay::run(config, &options, callers).await?;
    print!("{}", report.table());
    println!("{}", report.json());
    Ok(())
}

/// Writes the run's timeline as CSV and/or SVG.
#[cfg(feature = "bench")]
pub fn write_timeline(
    report: &crate::bench::Report,
    csv: Option<&Path>,
    svg: Option<&Path>,
) -> anyhow::Result<()> {
    use crate::bench::timeline;
    let samples = &report.load.timeline;
    if let Some(path) = csv {
        std::fs::write(path, timeline::csv(samples))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = svg {
        std::fs::write(path, timeline::svg(samples, &report.plot_title()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `sara bench --restart N`: restart time with the reload from the database.
#[cfg(feature = "bench")]
pub async fn bench_restart(
    config: Config,
    count: usize,
    backend: crate::bench::Backend,
    postgres: &str,
) -> anyhow::Result<()> {
    let r = crate::bench::restart::run(config, count, backend, postgres).await?;
    println!("{:<34} {}", "backend", r.backend);
    println!(
        "{:<34} {} ({} turns interrupted and sent again)",
        "restarts", r.restarts, r.interrupted_turns
    );
    println!(
        "{:<34} p50 {:.3} / p99 {:.3} / max {:.3} ms (mean {:.3})",
        "panic → replacement answers", r.p50_ms, r.p99_ms, r.max_ms, r.mean_ms
    );
    println!(
        "{:<34} p50 {:.3} / p99 {:.3} / max {:.3} ms",
        "same turn, live actor", r.live_turn_p50_ms, r.live_turn_p99_ms, r.live_turn_max_ms
    );
    println!(
        "{:<34} {}",
        "half-filled booking survived",
        if r.form_survived { "yes" } else { "NO" }
    );
    println!("(in process, no HTTP: the turn reloads the state from the store and commits)");
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

/// `sara bench --memory K`: RSS per live conversation and after passivation.
#[cfg(feature = "bench")]
pub async fn bench_memory(
    config: Config,
    count: usize,
    idle: std::time::Duration,
    backend: crate::bench::Backend,
    postgres: &str,
) -> anyhow::Result<()> {
    let r = crate::bench::memory(config, count, idle, backend, postgres).await?;
    println!("{:<34} {}", "backend", r.backend);
    println!(
        "{:<34} {} ({} live, {} failed turns)",
        "conversations activated", r.conversations, r.live, r.failed_turns
    );
    println!("{:<34} {:.1} MiB", "RSS before", r.rss_base_mib);
    println!("{:<34} {:.1} MiB", "RSS with them live", r.rss_live_mib);
    println!(
        "{:<34} {:.2} KiB",
        "per live conversation", r.kib_per_live_conversation
    );
    println!("{:<34} {} s", "idle timeout", r.idle_timeout_s);
    println!(
        "{:<34} {} live, RSS {:.1} MiB (released {:.1} MiB)",
        "after passivation and heap upkeep",
        r.live_after_passivation,
        r.rss_after_passivation_mib,
        r.passivation_released_mib
    );
    if let Some(trimmed) = r.rss_after_trim_mib {
        println!("{:<34} {:.1} MiB", "after one more malloc_trim", trimmed);
    }
    println!(
        "{:<34} {:.1} MiB",
        "after as many new activations", r.rss_after_reactivation_mib
    );
    println!("(in-process: VmRSS of the whole process; turns go straight to the engine, no HTTP)");
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
