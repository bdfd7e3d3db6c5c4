//! Sara, the AI receptionist: the service around the `sara-actors` engine.

pub mod ai;
pub mod calendar;
pub mod channels;
pub mod eval;
pub mod http;
pub mod store;
