//! `sara bench`: the load generator. It simulates customers holding whole booking dialogs
//! through Twilio-signed `POST /webhook/sms` requests, against a Sara it starts itself in
//! this process on a throw-away database (SQLite file or a fresh PostgreSQL database), or
//! against a running one (`--url`). In the same run it measures the same load against a bare
//! route doing one transaction per request ([`limit`]), the yardstick for group commit.
//! `--memory K` instead measures the RSS cost of K live conversations and their release
//! after passivation; `--restart N` the time a conversation takes to answer again after its
//! actor panicked, reloading its state from the database ([`restart`]). An open-loop run
//! with a duration is a soak: it samples RSS and latency per interval ([`timeline`]).

pub mod dialog;
pub mod heap_profile;
pub mod limit;
pub mod load;
pub mod relay;
pub mod restart;
pub mod stages;
pub mod timeline;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use sara_actors::engine::Inbound;
use sara_actors::model::{Channel, Phone};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Config;
use dialog::Wish;
use load::{LoadResult, Mode, Target};
use timeline::{Probe, Sampling};

/// Where PostgreSQL benchmark databases are created (and dropped afterwards).
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// The Twilio token the in-process Sara is given (it never leaves the process).
const BENCH_TOKEN: &str = "bench-auth-token";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What the simulated customers use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BenchMode {
    /// Twilio-signed SMS webhooks ([`load`]).
    #[default]
    Sms,
    /// Twilio ConversationRelay calls over WebSockets ([`relay`]).
    Relay,
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub dialogs: usize,
    /// Closed loop with this many dialogs in flight (used when `rate` is `None`).
    pub concurrency: usize,
    /// Open loop: turns started per second.
    pub rate: Option<f64>,
    /// Stop starting dialogs after this long.
    pub duration: Option<Duration>,
    pub backend: Backend,
    /// A running Sara to load instead of starting one.
    pub url: Option<String>,
    /// The external server's pid, for its RSS.
    pub server_pid: Option<u32>,
    /// Server for the PostgreSQL backend (a fresh database is created there).
    pub postgres: String,
    /// Skip the bare-route yardstick (its fields are then null).
    pub skip_limit: bool,
    /// Use only this many distinct slots, so that customers compete for them and take
    /// the alternatives Sara offers.
    pub slots: Option<usize>,
    /// Length of one timeline interval (RSS and latency are sampled at its end).
    pub sample_every: Duration,
    /// Print each timeline sample to stderr while running.
    pub progress: bool,
    /// Append each timeline sample to this CSV file as it is taken, so a long soak that is
    /// stopped early still leaves its rows.
    pub timeline_csv: Option<std::path::PathBuf>,
    /// The in-process Sara's conversation idle timeout instead of the config's (a soak
    /// reaches its steady number of live conversations after one idle timeout).
    pub idle_timeout: Option<Duration>,
}

impl BenchOptions {
    /// An open-loop run with a duration keeps starting dialogs until the duration is over.
    pub fn is_soak(&self) -> bool {
        self.rate.is_some() && self.duration.is_some()
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            dialogs: 5000,
            concurrency: 256,
            rate: None,
            duration: None,
            backend: Backend::Sqlite,
            url: None,
            server_pid: None,
            postgres: DEFAULT_POSTGRES.into(),
            skip_limit: false,
            slots: None,
            sample_every: Duration::from_secs(10),
            progress: true,
            timeline_csv: None,
            idle_timeout: None,
        }
    }
}

/// Parses a duration: plain seconds (`90`, `2.5`) or numbers with units `ms`, `s`, `m`/`min`,
/// `h`, also combined (`30m`, `1h30m`, `1.5h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration (e.g. 90, 90s, 30m, 1h, 1h30m)");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match rest[..unit_len].trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// The last line of `sara bench`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub backend: &'static str,
    pub dialogs: u64,
    /// Closed loop: dialogs in flight. Open loop: the most turns that were in flight at once.
    pub concurrency: u64,
    pub turns: u64,
    pub errors: u64,
    pub turns_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub server_rss_mib: Option<f64>,
    pub limit_turns_per_s: Option<f64>,
    pub ratio: Option<f64>,
    /// Per stage of a turn (`front`, `queue`, ..., `commit`): turns, mean, p50 and p99 in ms.
    pub stages: BTreeMap<&'static str, stages::StageFigures>,
}

pub struct Report {
    pub summary: Summary,
    pub options: BenchOptions,
    pub load: LoadResult,
    pub limit: Option<LoadResult>,
    /// Where the RSS figure comes from.
    pub rss_source: String,
    pub dialogs_booked: u64,
    /// The in-process Sara's conversation idle timeout.
    pub idle_timeout_s: Option<u64>,
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

impl Report {
    pub fn json(&self) -> String {
        serde_json::to_string(&self.summary).expect("the summary always serialises")
    }

    /// The title of the timeline plot: what ran, and for how long.
    pub fn plot_title(&self) -> String {
        let rate = match self.options.rate {
            Some(rate) => format!("open loop {rate} turns/s"),
            None => format!("closed loop, {} in flight", self.options.concurrency),
        };
        format!(
            "sara bench ({}, {rate}, {:.1} min): RSS and p99 per {:.0} s interval",
            self.summary.backend,
            self.load.elapsed.as_secs_f64() / 60.0,
            self.options.sample_every.as_secs_f64()
        )
    }

    /// The human-readable table printed before the JSON line.
    pub fn table(&self) -> String {
        let s = &self.summary;
        let o = &self.options;
        let l = &self.load;
        let mode = match o.rate {
            Some(rate) if o.is_soak() => format!(
                "open loop, {rate} turns/s, soak: dialogs keep starting for {:.0} s, each booking cancelled again",
                o.duration.unwrap_or_default().as_secs_f64()
            ),
            Some(rate) => format!("open loop, {rate} turns/s"),
            None => format!("closed loop, {} dialogs in flight", o.concurrency),
        };
        let target = o
            .url
            .clone()
            .unwrap_or_else(|| "in-process Sara on a temporary database".into());
        let mut out = String::new();
        let mut row = |k: &str, v: String| out.push_str(&format!("{k:<28} {v}\n"));
        row("target", target);
        row("backend", s.backend.into());
        row("mode", mode);
        row(
            "dialogs started / booked",
            format!("{} / {}", l.dialogs_started, l.dialogs_booked),
        );
        row("dialogs without a booking", l.dialogs_failed.to_string());
        row("failed requests", l.failed_turns.to_string());
        if o.rate.is_some() {
            row("arrivals with nothing ready", l.missed_arrivals.to_string());
        }
        row("turns", s.turns.to_string());
        row("elapsed", format!("{:.2} s", l.elapsed.as_secs_f64()));
        row("throughput", format!("{:.0} turns/s", s.turns_per_s));
        row(
            "latency p50 / p90 / p99",
            format!("{:.2} / {:.2} / {:.2} ms", s.p50_ms, s.p90_ms, s.p99_ms),
        );
        row("latency max", format!("{:.2} ms", s.max_ms));
        row(
            "server RSS",
            match s.server_rss_mib {
                Some(m) => format!("{m:.1} MiB ({})", self.rss_source),
                None => format!("unknown ({})", self.rss_source),
            },
        );
        if let Some(idle) = self.idle_timeout_s {
            row("conversation idle timeout", format!("{idle} s"));
        }
        let timeline = &l.timeline;
        if !timeline.is_empty() {
            row(
                "timeline",
                format!(
                    "{} intervals of {:.0} s",
                    timeline.len(),
                    o.sample_every.as_secs_f64()
                ),
            );
        }
        if let Some(t) = timeline::trend(timeline) {
            row(
                "RSS first → last interval",
                format!("{:.1} → {:.1} MiB", t.rss_first_mib, t.rss_last_mib),
            );
            row(
                "RSS first 10 % → last 10 %",
                format!(
                    "{:.1} → {:.1} MiB ({:+.1} MiB; max {:.1})",
                    t.rss_first_tenth_mib,
                    t.rss_last_tenth_mib,
                    t.rss_last_tenth_mib - t.rss_first_tenth_mib,
                    t.rss_max_mib
                ),
            );
            row(
                "RSS slope, second half",
                format!("{:+.2} MiB/min", t.rss_slope_second_half_mib_per_min),
            );
        }
        if let (Some(worst), Some(median)) = (
            timeline::worst_p99(timeline),
            timeline::median_p99(timeline),
        ) {
            row(
                "interval p99 median / worst",
                format!(
                    "{median:.2} / {:.2} ms (worst in the interval ending at {:.1} min)",
                    worst.p99_ms,
                    worst.elapsed_s / 60.0
                ),
            );
        }
        match (&self.limit, s.ratio) {
            (Some(limit), Some(ratio)) => {
                row(
                    "bare route (1 tx/request)",
                    format!(
                        "{:.0} req/s, p99 {:.2} ms, {} failed",
                        limit.turns_per_s(),
                        limit.ms(0.99),
                        limit.failed_turns
                    ),
                );
                row("ratio", format!("{ratio:.2}"));
            }
            _ => row("bare route", "not measured".into()),
        }
        for (stage, f) in &s.stages {
            row(&format!("stage {stage}"), f.to_string());
        }
        out
    }
}

/// Reads `VmRSS` of a process (`self` or a pid) in MiB.
pub fn rss_mib(pid: Option<u32>) -> Option<f64> {
    crate::heap::status_kib(pid, "VmRSS").map(|kib| kib as f64 / 1024.0)
}

/// A throw-away database for one run, removed on [`TempDb::remove`].
enum TempDb {
    Sqlite(std::path::PathBuf),
    Postgres { admin: String, name: String },
}

impl TempDb {
    async fn create(backend: Backend, postgres: &str) -> anyhow::Result<(TempDb, String)> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("sara-bench-{tag}"));
                std::fs::create_dir_all(&dir).context("creating the temporary directory")?;
                let url = format!("sqlite://{}", dir.join("bench.db").display());
                Ok((TempDb::Sqlite(dir), url))
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let base = postgres.trim_end_matches('/');
                let admin = format!("{base}/postgres");
                let name = format!("sara_bench_{}", &tag[..12]);
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .with_context(|| format!("connecting to {base}"))?;
                // The name is ours (a fixed prefix and hex digits), not outside input.
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .context("creating the benchmark database")?;
                let _ = conn.close().await;
                let url = format!("{base}/{name}");
                Ok((TempDb::Postgres { admin, name }, url))
            }
        }
    }

    async fn remove(self) {
        match self {
            TempDb::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TempDb::Postgres { admin, name } => {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(drop))
                        .execute(&mut conn)
                        .await
                    {
                        eprintln!("could not drop the benchmark database {name}: {error}");
                    }
                    let _ = conn.close().await;
                }
            }
        }
    }
}

/// The in-process Sara: its business opens every day 07:00–21:00 and books ten years ahead
/// so that thousands of customers find distinct slots; everything else is the config's.
pub fn bench_config(mut config: Config, database_url: &str, public_url: &str) -> Config {
    config.storage.database_url = crate::config::Secret::new(database_url);
    config.server.public_url = public_url.to_string();
    config.twilio.auth_token = Some(crate::config::Secret::new(BENCH_TOKEN));
    for day in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
        config
            .business
            .hours
            .insert(day.to_string(), "07:00-21:00".to_string());
    }
    config.business.horizon_days = 3650;
    config.business.min_notice_minutes = 0;
    config.business.closures.clear();
    // A load generator's customers book again and again; per-customer limits are not what
    // it measures.
    config.business.max_bookings_per_day = 0;
    config.business.max_upcoming_bookings = 0;
    config.business.cancel_notice_minutes = 0;
    config
}

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("server task")?
    }
}

async fn start_sara(config: Config, listener: TcpListener) -> anyhow::Result<(Server, App)> {
    let app = App::build(config).await.context("starting Sara")?;
    Ok((serve(app.clone(), listener), app))
}

/// Serves `app` on `listener` until [`Server::stop`].
fn serve(app: App, listener: TcpListener) -> Server {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .map_err(anyhow::Error::from)
    });
    Server { stop, task }
}

/// Runs the benchmark described by `options`.
pub async fn run(mut config: Config, options: BenchOptions) -> anyhow::Result<Report> {
    // The bench's database is thrown away afterwards, so a throwaway key is the right one
    // (PostgreSQL refuses to start without a key).
    if config.storage.encryption_key.is_none() {
        config.storage.encryption_key = Some(crate::config::Secret::new(
            crate::store::EncryptionKey::generate().to_base64(),
        ));
    }
    let concurrency = options.concurrency.max(1);
    let client = load::client(concurrency.max(256));
    let (temp, db_url) = TempDb::create(options.backend, &options.postgres).await?;
    let outcome = run_on(config, &options, &client, &db_url).await;
    temp.remove().await;
    let (load, limit, rss, rss_source, idle_timeout_s) = outcome?;
    let summary = Summary {
        backend: options.backend.as_str(),
        dialogs: load.dialogs_started,
        concurrency: load.peak_in_flight,
        turns: load.turns,
        errors: load.errors(),
        turns_per_s: round(load.turns_per_s(), 1),
        p50_ms: round(load.ms(0.50), 3),
        p90_ms: round(load.ms(0.90), 3),
        p99_ms: round(load.ms(0.99), 3),
        max_ms: round(load.max_ms(), 3),
        server_rss_mib: rss.map(|r| round(r, 1)),
        limit_turns_per_s: limit.as_ref().map(|l| round(l.turns_per_s(), 1)),
        ratio: limit
            .as_ref()
            .map(|l| round(load.turns_per_s() / l.turns_per_s().max(1e-9), 3)),
        stages: load.stages.clone(),
    };
    Ok(Report {
        summary,
        dialogs_booked: load.dialogs_booked,
        options,
        load,
        limit,
        rss_source,
        idle_timeout_s,
    })
}

type Measured = (
    LoadResult,
    Option<LoadResult>,
    Option<f64>,
    String,
    Option<u64>,
);

async fn run_on(
    config: Config,
    options: &BenchOptions,
    client: &reqwest::Client,
    db_url: &str,
) -> anyhow::Result<Measured> {
    let concurrency = options.concurrency.max(1);
    // The yardstick's pool gets the same `[storage]` settings as Sara's.
    let storage = config.storage.clone();
    let (load, rss, rss_source, idle_timeout_s) = match &options.url {
        Some(url) => {
            let token = config
                .twilio
                .auth_token
                .as_ref()
                .map(|t| t.expose().to_string())
                .context("--url needs the server's Twilio token (SARA_TWILIO__AUTH_TOKEN)")?;
            let business = config.business()?;
            let wishes = Arc::new(dialog::plan(&business, options.dialogs, options.slots));
            let target = Target {
                base: url.trim_end_matches('/').to_string(),
                public_url: url.trim_end_matches('/').to_string(),
                auth_token: token,
            };
            let probe = match options.server_pid {
                Some(pid) => Probe::Pid(pid),
                None => Probe::Nothing,
            };
            let load = drive(client, target, wishes, options, Mode::Converse, probe).await;
            let (rss, source) = match options.server_pid {
                Some(pid) => (rss_mib(Some(pid)), format!("VmRSS of pid {pid}")),
                None => (None, "external server; pass --server-pid".to_string()),
            };
            (load, rss, source, None)
        }
        None => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let base = format!("http://{}", listener.local_addr()?);
            let mut config = bench_config(config, db_url, &base);
            if let Some(idle) = options.idle_timeout {
                config.engine.idle_timeout_secs = idle.as_secs().max(1);
            }
            let idle_timeout_s = config.engine.idle_timeout_secs;
            let business = config.business()?;
            let wishes = Arc::new(dialog::plan(&business, options.dialogs, options.slots));
            let (server, app) = start_sara(config, listener).await?;
            let target = Target {
                base: base.clone(),
                public_url: base,
                auth_token: BENCH_TOKEN.to_string(),
            };
            let probe = Probe::InProcess(app.engine.clone());
            let profile = heap_profile::start();
            let load = drive(client, target, wishes, options, Mode::Converse, probe).await;
            profile.finish();
            let rss = rss_mib(None);
            server.stop().await?;
            (
                load,
                rss,
                "in-process: VmRSS of the whole bench process, load generator included".to_string(),
                Some(idle_timeout_s),
            )
        }
    };
    let limit = if options.skip_limit {
        None
    } else {
        // The same dialogs' messages, the same concurrency (256 for an open-loop run), the
        // same number of requests, against the bare route on the same backend.
        let storage = crate::config::StorageConfig {
            database_url: crate::config::Secret::new(db_url),
            ..storage
        };
        let pool = crate::store::open_pool(&storage).await?;
        limit::prepare(&pool).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(limit::serve(pool.clone(), listener, async {
            let _ = stopped.await;
        }));
        let replay = (load.turns as usize).div_ceil(6).max(1);
        let wishes: Vec<Wish> = (0..replay)
            .map(|_| Wish {
                service: "Cleaning".into(),
                date: Utc::now().date_naive(),
                hour: 10,
            })
            .collect();
        let target = Target {
            base: base.clone(),
            public_url: base,
            auth_token: BENCH_TOKEN.to_string(),
        };
        // After an open-loop run (a soak may last half an hour) a minute of the bare route
        // is plenty for its rate.
        let duration = match options.rate {
            Some(_) => options.duration.map(|d| d.min(Duration::from_secs(60))),
            None => options.duration,
        };
        let result = load::closed_loop(
            client.clone(),
            target,
            Arc::new(wishes),
            if options.rate.is_some() {
                256
            } else {
                concurrency
            },
            duration,
            Mode::Replay,
            None,
        )
        .await;
        let _ = stop.send(());
        let _ = task.await;
        pool.close().await;
        Some(result)
    };
    Ok((load, limit, rss, rss_source, idle_timeout_s))
}

async fn drive(
    client: &reqwest::Client,
    target: Target,
    wishes: Arc<Vec<Wish>>,
    options: &BenchOptions,
    mode: Mode,
    probe: Probe,
) -> LoadResult {
    let sampling = Some(Sampling {
        every: options.sample_every,
        probe,
        progress: options.progress,
        csv: options.timeline_csv.clone(),
    });
    let base = target.base.clone();
    let before = stages::scrape(client, &base).await;
    let mut load = match options.rate {
        Some(rate) => {
            load::open_loop(
                client.clone(),
                target,
                wishes,
                rate,
                options.duration,
                options.is_soak(),
                sampling,
            )
            .await
        }
        None => {
            load::closed_loop(
                client.clone(),
                target,
                wishes,
                options.concurrency,
                options.duration,
                mode,
                sampling,
            )
            .await
        }
    };
    if let (Some(before), Some(after)) = (before, stages::scrape(client, &base).await) {
        load.stages = stages::table(&before, &after);
    }
    load
}

/// What `--memory K` measured.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryReport {
    pub mode: &'static str,
    pub backend: &'static str,
    pub conversations: u64,
    pub live: u64,
    pub failed_turns: u64,
    pub rss_base_mib: f64,
    pub rss_live_mib: f64,
    pub kib_per_live_conversation: f64,
    pub idle_timeout_s: u64,
    pub live_after_passivation: u64,
    pub rss_after_passivation_mib: f64,
    /// After asking the allocator once more to give freed memory back to the OS (the server's
    /// heap upkeep, [`crate::heap`], already did after the fall in live conversations, so
    /// this is about the same as `rss_after_passivation_mib`).
    pub rss_after_trim_mib: Option<f64>,
    pub passivation_released_mib: f64,
    /// The same number of new conversations activated after passivation: RSS barely grows
    /// when the memory the passivated ones freed is reused.
    pub rss_after_reactivation_mib: f64,
}

/// Activates `count` conversations, each with a half-filled booking (service and day given,
/// time still open), straight through the engine (no HTTP, so the figure is the engine's),
/// then waits for the idle timeout to passivate them.
pub async fn memory(
    config: Config,
    count: usize,
    idle: Duration,
    backend: Backend,
    postgres: &str,
) -> anyhow::Result<MemoryReport> {
    let (temp, db_url) = TempDb::create(backend, postgres).await?;
    let outcome = memory_on(config, count, idle, backend, &db_url).await;
    temp.remove().await;
    outcome
}

async fn memory_on(
    config: Config,
    count: usize,
    idle: Duration,
    backend: Backend,
    db_url: &str,
) -> anyhow::Result<MemoryReport> {
    let mut config = bench_config(config, db_url, "http://127.0.0.1:0");
    config.engine.idle_timeout_secs = idle.as_secs().max(1);
    let business = config.business()?;
    let wishes = Arc::new(dialog::plan(&business, count, None));
    let app = App::build(config).await.context("starting Sara")?;
    let engine = app.engine.clone();
    // Warm up: the first turns fill caches (NLU regexes, SQLite pages, pools) that are not
    // per conversation.
    let warm: Vec<Wish> = wishes.iter().take(64).cloned().collect();
    let _ = activate(&engine, &warm, 1_000_000_000).await;
    let rss_base = rss_mib(None).unwrap_or(0.0);
    // Profiled builds: the peak is the live conversations', the end what passivation left.
    let profile = heap_profile::start();
    let failed = activate(&engine, &wishes, 0).await;
    let live = engine.stats().await.live_conversations as u64;
    let rss_live = rss_mib(None).unwrap_or(0.0);
    // The server's heap upkeep, checking every second instead of every minute: what the
    // passivated conversations free is given back as it would be in production.
    let upkeep = tokio::spawn(crate::heap::run(engine.clone(), Duration::from_secs(1)));
    // Passivation: wait for the sweep (it runs every quarter of the idle timeout).
    let deadline = tokio::time::Instant::now() + idle * 3 + Duration::from_secs(30);
    let mut live_after = live;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        live_after = engine.stats().await.live_conversations as u64;
        if live_after == 0 {
            break;
        }
    }
    // Actors stop asynchronously after the sweep; give their memory a moment to be freed
    // and the upkeep two checks to see the fall.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    upkeep.abort();
    profile.finish();
    let rss_after = rss_mib(None).unwrap_or(0.0);
    let rss_trimmed = if crate::heap::trim() {
        rss_mib(None)
    } else {
        None
    };
    let _ = activate(&engine, &wishes, 3_000_000).await;
    let rss_again = rss_mib(None).unwrap_or(0.0);
    app.engine.shutdown().await;
    app.db.close().await;
    let conversations = count as u64;
    Ok(MemoryReport {
        mode: "memory",
        backend: backend.as_str(),
        conversations,
        live,
        failed_turns: failed,
        rss_base_mib: round(rss_base, 1),
        rss_live_mib: round(rss_live, 1),
        kib_per_live_conversation: round((rss_live - rss_base) * 1024.0 / (live.max(1) as f64), 2),
        idle_timeout_s: idle.as_secs(),
        live_after_passivation: live_after,
        rss_after_passivation_mib: round(rss_after, 1),
        rss_after_trim_mib: rss_trimmed.map(|r| round(r, 1)),
        passivation_released_mib: round(rss_live - rss_after, 1),
        rss_after_reactivation_mib: round(rss_again, 1),
    })
}

/// One half-filled booking per wish, 256 at a time; returns how many turns failed.
/// `offset` shifts the phone numbers so warm-up conversations are not counted later.
async fn activate(engine: &sara_actors::engine::Engine, wishes: &[Wish], offset: usize) -> u64 {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let wishes: Arc<Vec<Wish>> = Arc::new(wishes.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..256 {
        let (engine, wishes, next, failed) =
            (engine.clone(), wishes.clone(), next.clone(), failed.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(wish) = wishes.get(i) else { break };
                let customer = dialog::Customer::new(i + offset, wish);
                let Some(phone) = Phone::parse(&customer.phone) else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let text = format!(
                    "I'd like to book a {} on {}",
                    wish.service.to_lowercase(),
                    wish.date.format("%B %-d, %Y")
                );
                let inbound = Inbound {
                    phone,
                    channel: Channel::Sms,
                    text,
                    provider_id: None,
                    at: Utc::now(),
                };
                if engine.turn(inbound).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    failed.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests;
