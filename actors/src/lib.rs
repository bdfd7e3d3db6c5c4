//! Sara's conversation engine.
//!
//! A map of the crate:
//! - [`model`] — the nouns every layer shares: phone numbers, channels, bookings.
//! - [`business`] — the business a receptionist works for: hours, services, rules, FAQ.
//! - [`understanding`] — what the NLU makes of one message (acts and slots).
//! - [`availability`] — pure opening-hours arithmetic: which start times are free.
//! - [`dialogue`] — the pure dialogue policy: `step(state, understanding, context)`.
//! - [`ports`] — the traits the engine needs from the outside world (NLU, calendar, store).
//! - [`outbound`] — one outbound message, the channel sender port, retry backoff and the
//!   delivery reports providers send back.
//! - [`calendar_jobs`] — a mirrored calendar's background work (Google): the retried write of
//!   a held booking, the sync of staff's changes, and what the customer is told.
//! - [`reminders`] — when a booking's reminders are due (offsets, quiet hours, DST) and what
//!   they say.
//! - [`retention`] — how long message text is kept, and when the job that redacts it runs.
//! - `memory` — in-memory store and calendar for tests and benchmarks (feature `test-support`).
//! - [`engine`] — the ractor actors: one conversation actor per phone under a supervisor,
//!   the AI and calendar actors, and the turn writer that group-commits turns.
//!
//! Nothing here speaks HTTP or SQL; the `sara` crate implements the ports.

pub mod availability;
pub mod business;
pub mod calendar_jobs;
pub mod dialogue;
pub mod engine;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod model;
pub mod outbound;
pub mod ports;
pub mod reminders;
pub mod retention;
pub mod understanding;
