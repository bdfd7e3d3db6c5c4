//! Black-box tests: each test starts the real `sara` binary on port 0 with its own temporary
//! SQLite database and talks HTTP to it, signing webhooks as Twilio does.

mod delivery;
mod email;
mod faults;
mod google;
mod helpers;
mod hostile;
mod limits;
mod openai;
mod privacy;
mod production;
mod robustness;
mod sms;
mod supervision;
mod voice;
mod whatsapp;
