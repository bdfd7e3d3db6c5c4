//! The `sara` command: a thin CLI over the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    /// Replay a JSON-lines dialog corpus through the NLU and score it.
    Eval {
        path: PathBuf,
        #[arg(long)]
        predictions: Option<PathBuf>,
    },
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
        Command::Chat { phone } => {
            sara::telemetry::init(true);
            sara::cli::chat(config, &phone).await
        }
        Command::Eval { path, predictions } => {
            sara::cli::eval(config, &path, predictions.as_deref()).await
        }
    }
}
