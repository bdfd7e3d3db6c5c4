//! The channels' wire formats: signature checks and reply documents for each provider.

pub mod email;
pub mod twilio;
pub mod whatsapp;
