//! The channels' wire formats: signature checks and reply documents for each provider.

#[cfg(test)]
pub(crate) mod conformance;
pub mod email;
pub mod twilio;
pub mod twilio_rest;
pub mod whatsapp;
