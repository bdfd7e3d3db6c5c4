//! Black-box tests over HTTP, signing webhooks as Twilio does. Each test gets its own
//! temporary SQLite database (removed afterwards) and a Sara on port 0: built in this process
//! with a test clock (`helpers::spawn_app`: sms, voice, admin), or the real `sara` binary
//! (`helpers::Sara::start`) where the CLI contract, kill -9 or several instances matter.

mod admin;
mod answers;
mod browser;
mod console;
mod conversations;
mod delivery;
mod dialogs;
mod email;
mod faults;
mod google;
mod helpers;
mod hostile;
mod limits;
mod openai;
mod openapi;
mod operations;
mod opt_outs;
mod privacy;
mod production;
mod relay;
mod reminders;
mod robustness;
mod rules;
mod sms;
mod spans;
mod supervision;
mod voice;
mod whatsapp;
