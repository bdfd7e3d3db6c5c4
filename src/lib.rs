//! Sara, the AI receptionist: the service around the `sara-actors` engine.
//!
//! - [`app`] builds the application (config → store → ports → engine) and serves it.
//! - [`http`] is the axum front door: webhooks, health, metrics, admin.
//! - [`channels`] holds the providers' wire formats (Twilio signatures and TwiML).
//! - [`ai`] the rule NLU and the knowledge base; [`calendar`] the local calendar;
//!   [`store`] the sqlx repositories (SQLite, PostgreSQL); [`cache`] processed-webhook
//!   replies, rate limits and per-conversation leases (in process or Redis).
//! - [`config`] reads `config.toml` and `SARA_*` variables; [`cli`] the commands; [`eval`]
//!   scores the NLU on a dialog corpus; [`bench`] is the load generator behind `sara bench`.

pub mod ai;
pub mod app;
pub mod bench;
pub mod cache;
pub mod calendar;
pub mod channels;
pub mod cli;
pub mod config;
pub mod eval;
pub mod http;
pub mod store;
pub mod telemetry;
