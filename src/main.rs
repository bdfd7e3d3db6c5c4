//! The `sara` command: a thin CLI over the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Heap-profiled builds only (`--features dhat-heap`): every allocation goes through DHAT,
/// which `sara bench` starts and stops around what it measures.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static HEAP_PROFILER: dhat::Alloc = dhat::Alloc;

#[derive(Parser)]
#[command(name = "sara", version, about = "Sara, the AI receptionist")]
struct Cli {
    /// Config file (default ./config.toml).
    #[arg(
        long,
        global = true,
        env = "SARA_CONFIG",
        default_value = "config.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Talk to the receptionist in the terminal, through the same engine and store.
    Chat {
        #[arg(long, default_value = "+15550001111")]
        phone: String,
    },
    /// Erase a caller's personal data everywhere (conversation, turns, messages, cache),
    /// keeping their bookings as anonymous time blocks; recorded in the privacy audit.
    Forget {
        /// The caller's number, E.164 (+15551234567).
        phone: String,
    },
    /// Replay a JSON-lines dialog corpus through the NLU and score it.
    Eval {
        path: PathBuf,
        #[arg(long)]
        predictions: Option<PathBuf>,
    },
    /// Load generator: simulated customers book through signed SMS webhooks; the last
    /// stdout line is a JSON summary.
    #[cfg(feature = "bench")]
    Bench(Box<BenchArgs>),
}

#[cfg(feature = "bench")]
#[derive(clap::Args)]
struct BenchArgs {
    /// `sms`: customers text (signed SMS webhooks). `relay`: customers call, as Twilio
    /// ConversationRelay sessions over WebSockets (--concurrency calls at once); the summary
    /// then reports prompt → first and last text token.
    #[arg(long, value_enum, default_value = "sms")]
    mode: sara::bench::BenchMode,
    /// Relay mode: understanding goes to a local OpenAI-compatible model stand-in that
    /// answers every turn after this many milliseconds (default: the rules alone).
    #[arg(long)]
    model_latency_ms: Option<u64>,
    /// Relay mode: how long each caller speaks between hearing a reply and the next prompt
    /// (default 0: the next prompt at once).
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Customers, each a whole booking dialog (at least six turns).
    #[arg(long, default_value_t = 5000)]
    dialogs: usize,
    /// Closed loop: dialogs in flight.
    #[arg(long, default_value_t = 256, conflicts_with = "rate")]
    concurrency: usize,
    /// Open loop: turns started per second, across many conversations.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop starting new dialogs after this long: seconds (`90`) or with a unit (`90s`,
    /// `30m`, `1h`, `1h30m`). With --rate it is a soak: dialogs keep starting (cycling
    /// through --dialogs slots, each customer cancelling the booking again) until it is over.
    #[arg(long, value_parser = sara::bench::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Length of one timeline interval in seconds: RSS and the latency of the turns that
    /// finished in it are sampled and printed to stderr at its end.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Write the timeline (one row per interval, appended as each is taken) to this CSV file.
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Draw RSS and p99 per interval against minutes into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: sara::bench::Backend,
    /// Load a running Sara instead of starting one in this process (its Twilio token comes
    /// from the config / SARA_TWILIO__AUTH_TOKEN).
    #[arg(long)]
    url: Option<String>,
    /// With --url: the server's pid, to report its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// PostgreSQL server where a fresh benchmark database is created and dropped.
    #[arg(long, default_value = sara::bench::DEFAULT_POSTGRES)]
    postgres: String,
    /// Skip the bare-route yardstick.
    #[arg(long)]
    no_limit: bool,
    /// Spread the customers over only this many distinct slots, so that they compete.
    #[arg(long)]
    slots: Option<usize>,
    /// Memory mode: activate this many conversations (half-filled bookings) and report RSS.
    #[arg(long)]
    memory: Option<usize>,
    /// Conversation idle timeout of the in-process Sara, in seconds. Memory mode (default
    /// 60): longer than the activation takes, or the first ones leave before the last
    /// arrive. Load runs (default: the config's): a soak reaches its steady number of live
    /// conversations after one idle timeout.
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Restart mode: this many times, make a conversation with a half-filled booking panic
    /// and time until the replacement answers (reloading it from the database).
    #[arg(long, conflicts_with = "memory")]
    restart: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let config = sara::config::Config::load(&cli.config)
        .with_context(|| format!("loading {}", cli.config.display()))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            sara::telemetry::init(false);
            sara::cli::serve(config).await
        }
        Command::Migrate => {
            sara::telemetry::init(false);
            sara::cli::migrate(config).await
        }
        Command::Forget { phone } => {
            sara::telemetry::init(true);
            sara::cli::forget(config, &phone).await
        }
        Command::Chat { phone } => {
            sara::telemetry::init(true);
            sara::cli::chat(config, &phone).await
        }
        Command::Eval { path, predictions } => {
            sara::cli::eval(config, &path, predictions.as_deref()).await
        }
        #[cfg(feature = "bench")]
        Command::Bench(args) => {
            // Restart mode: every restart logs a warning, and printing a thousand of them is
            // not what is measured (SARA_LOG still turns logging on).
            if args.restart.is_none() || std::env::var_os("SARA_LOG").is_some() {
                sara::telemetry::init(true);
            }
            if let Some(count) = args.memory {
                let idle = std::time::Duration::from_secs(args.idle_secs.unwrap_or(60));
                return sara::cli::bench_memory(config, count, idle, args.backend, &args.postgres)
                    .await;
            }
            if let Some(count) = args.restart {
                return sara::cli::bench_restart(config, count, args.backend, &args.postgres).await;
            }
            let options = sara::bench::BenchOptions {
                dialogs: args.dialogs,
                concurrency: args.concurrency,
                rate: args.rate,
                duration: args.duration,
                backend: args.backend,
                url: args.url,
                server_pid: args.server_pid,
                postgres: args.postgres,
                skip_limit: args.no_limit,
                slots: args.slots,
                sample_every: std::time::Duration::from_secs(args.sample_secs.max(1)),
                progress: true,
                timeline_csv: args.timeline.clone(),
                idle_timeout: args.idle_secs.map(std::time::Duration::from_secs),
            };
            if args.mode == sara::bench::BenchMode::Relay {
                anyhow::ensure!(
                    options.rate.is_none() && options.url.is_none() && args.timeline.is_none(),
                    "--mode relay is a closed loop against an in-process Sara: \
                     --rate, --url and --timeline are for --mode sms"
                );
                let callers = sara::bench::relay::Callers {
                    model_latency: args.model_latency_ms.map(std::time::Duration::from_millis),
                    pause: std::time::Duration::from_millis(args.pause_ms),
                };
                return sara::cli::bench_relay(config, options, callers).await;
            }
            anyhow::ensure!(
                args.model_latency_ms.is_none() && args.pause_ms == 0,
                "--model-latency-ms and --pause-ms are for --mode relay"
            );
            sara::cli::bench(config, options, args.timeline, args.plot).await
        }
    }
}
