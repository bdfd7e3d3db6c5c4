//! Sara, the AI receptionist: the service around the `sara-actors` engine (actors/), which
//! holds the conversation actors, the dialogue policy and the ports implemented here.
//!
//! - [`app`] builds the application (config → store → ports → engine) and serves it on a
//!   bound listener.
//! - [`http`] is the axum front door, one module per channel: `sms`, `voice`, `whatsapp`
//!   (verify the signature, then [`http::webhook::answer`]: rate limit → processed-webhook
//!   cache → engine), `health` (`/health`, `/ready`, `/metrics`), `admin` and `dashboard`
//!   behind [`http::auth::AdminAuth`], and [`http::ApiError`], the one error type.
//! - [`channels`] holds the providers' wire formats: Twilio signatures and TwiML, WhatsApp
//!   signatures, webhook JSON and the Graph API client, email with an .ics invite.
//! - [`ai`]: the rule NLU, the OpenAI NLU with hybrid routing and a circuit breaker, the FAQ
//!   knowledge base. [`calendar`]: the local calendar (the bookings table) and Google Calendar.
//! - [`store`]: the sqlx repositories (SQLite, PostgreSQL) with personal data encrypted at
//!   rest; [`cache`]: processed-webhook replies, rate limits and per-conversation leases (in
//!   process or Redis).
//! - [`config`] reads `config.toml` and `SARA_*` variables into typed settings (secrets in
//!   [`config::Secret`]); [`cli`] the commands; [`eval`] scores the NLU on a dialog corpus;
//!   [`telemetry`] the log format; [`heap`] gives memory back after a busy spell; [`privacy`] forgets
//!   a caller on request; `bench` (cargo feature `bench`, on by default) is the load
//!   generator behind `sara bench`.
//!
//! No unsafe code: denied everywhere except for the one audited `malloc_trim` call in
//! [`heap`], which gives freed memory back to the OS after conversations are passivated.

#![deny(unsafe_code)]

pub mod ai;
pub mod app;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cache;
pub mod calendar;
pub mod channels;
pub mod cli;
pub mod config;
pub mod eval;
pub mod heap;
pub mod http;
pub mod privacy;
pub mod store;
pub mod telemetry;
