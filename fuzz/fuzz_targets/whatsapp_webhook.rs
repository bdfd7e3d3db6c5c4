//! The WhatsApp Cloud API webhook body, after the signature check: any bytes give a parsed
//! webhook or a JSON error, never a panic; reading each message (what was said, its own
//! time, the sender's number) as the handler does never panics either.
#![no_main]

use chrono::{Duration, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use sara::channels::whatsapp::WhatsAppWebhook;
use sara::http::webhook::clip;
use sara_actors::model::Phone;

fuzz_target!(|data: &[u8]| {
    let Ok(hook) = serde_json::from_slice::<WhatsAppWebhook>(data) else {
        return;
    };
    for status in hook.statuses() {
        let _ = (status.id.len(), status.status.len());
    }
    let now = Utc
        .timestamp_opt(1_764_547_200, 0)
        .single()
        .expect("fixed instant");
    for message in hook.messages() {
        let _ = Phone::parse(&message.from);
        if let Some(text) = message.said() {
            assert!(clip(text).chars().count() <= 1600);
        }
        let at = message
            .sent_at()
            .filter(|t| *t <= now + Duration::minutes(5))
            .unwrap_or(now);
        assert!(at <= now + Duration::minutes(5));
        let _: String = message.id.chars().take(128).collect();
    }
});
