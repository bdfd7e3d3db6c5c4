//! Structured logs with `tracing`: JSON when `SARA_LOG_FORMAT=json`, readable text otherwise.
//! Log lines never carry a phone number, name or message body. [`metrics`] describes every
//! metric Sara exports.

pub mod metrics;

use tracing_subscriber::EnvFilter;

/// `quiet` keeps the terminal for the conversation (`sara chat`): warnings only, on stderr.
pub fn init(quiet: bool) {
    let default = if quiet {
        "warn"
    } else {
        "info,sqlx=warn,tower_http=warn"
    };
    let filter = EnvFilter::try_from_env("SARA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("SARA_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
