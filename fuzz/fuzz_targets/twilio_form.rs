//! Twilio's SMS and Voice webhooks after the signature check: any form body (any bytes, any
//! `?n=` gather counter) gives an inbound message or a 400, never a panic, and what reaches
//! the engine is bounded: a normalised phone number, at most 1,600 characters of text and a
//! short provider id.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use sara::http::sms::sms_inbound;
use sara::http::voice::gather_inbound;
use sara::http::webhook::form_params;
use sara_actors::engine::Inbound;

fn check(inbound: &Inbound) {
    let phone = inbound.phone.as_str();
    assert!(phone.starts_with('+'), "{phone}");
    assert!(phone[1..].bytes().all(|b| b.is_ascii_digit()), "{phone}");
    assert!((9..=16).contains(&phone.len()), "{phone}");
    assert!(inbound.text.chars().count() <= 1600);
    if let Some(id) = &inbound.provider_id {
        assert!(id.chars().count() <= 64 + 1 + 10, "{id}");
    }
}

fuzz_target!(|data: &[u8]| {
    // The first four bytes are the gather counter (the `n` of `?n=`), the rest the body.
    let (n, body) = match data.split_first_chunk::<4>() {
        Some((n, body)) => (u32::from_le_bytes(*n), body),
        None => (1, data),
    };
    let params = form_params(body);
    let at = Utc
        .timestamp_opt(1_764_547_200, 0)
        .single()
        .expect("fixed instant");
    if let Ok(inbound) = sms_inbound(&params, at) {
        check(&inbound);
    }
    if let Ok(Some(inbound)) = gather_inbound(&params, n, at) {
        assert!(!inbound.text.trim().is_empty());
        check(&inbound);
    }
});
