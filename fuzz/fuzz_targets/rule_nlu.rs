//! The rule NLU: any UTF-8 text, any message time (a Unix timestamp chrono can represent, in
//! any IANA time zone) and any expected slot give an understanding, never a panic or a hang
//! (libFuzzer's `-timeout` catches a loop); the answer is deterministic, its confidence is in
//! 0..=1, a service it names is one of the business's, and the date, time and part of day it
//! reports are real calendar values (whole minutes, no leap seconds).
//!
//! Input: 8 bytes message time (i64 LE Unix seconds, folded into chrono's range; a top
//! byte of 0x7f / 0x80 counts up to 2^24 s back from the range's end / on from its start),
//! 2 bytes time zone index, 1 byte expected slot, 1 byte service list, then the message as
//! UTF-8. `fuzz/seeds.py` writes seeds in this layout.
#![no_main]

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use chrono_tz::TZ_VARIANTS;
use libfuzzer_sys::fuzz_target;
use sara::ai::RuleNlu;
use sara_actors::understanding::{DayPart, NluContext, Slot};

const SLOTS: [Slot; 8] = [
    Slot::Service,
    Slot::Date,
    Slot::Time,
    Slot::Name,
    Slot::Email,
    Slot::Booking,
    Slot::Confirmation,
    Slot::Option,
];

const SERVICES: [&[&str]; 3] = [
    &[],
    &["Haircut", "Beard trim", "Colour"],
    &["Cleaning", "Teeth whitening", "Check-up", "Root canal"],
];

fn check_time(t: NaiveTime) {
    assert!(t.nanosecond() < 1_000_000_000, "leap second {t}");
    assert_eq!(t.second(), 0, "{t}");
}

fuzz_target!(|data: &[u8]| {
    let Some((header, text)) = data.split_first_chunk::<12>() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    // Any 8 bytes are a time chrono can represent: in range as they are, else folded into it.
    let raw = i64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    // The top byte 0x7f / 0x80 means "this many seconds from the end / the start of the
    // range", where calendar arithmetic overflows; the seeds' real times are untouched.
    let secs = match raw.to_le_bytes()[7] {
        0x7f => max - (raw & 0xff_ffff),
        0x80 => min + (raw & 0xff_ffff),
        _ if (min..=max).contains(&raw) => raw,
        _ => min + raw.rem_euclid(max - min + 1),
    };
    let Some(at) = DateTime::from_timestamp(secs, 0) else {
        return;
    };
    let zone = u16::from_le_bytes([header[8], header[9]]) as usize;
    let tz = TZ_VARIANTS[zone % TZ_VARIANTS.len()];
    let expecting = match header[10] as usize {
        0 => None,
        i => Some(SLOTS[(i - 1) % SLOTS.len()]),
    };
    let services: Vec<String> = SERVICES[header[11] as usize % SERVICES.len()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ctx = NluContext {
        now: at.with_timezone(&tz),
        services: services.clone(),
        expecting,
    };
    let nlu = RuleNlu::new(Vec::new());
    let u = nlu.understand(text, &ctx);

    assert!((0.0..=1.0).contains(&u.confidence), "{}", u.confidence);
    if let Some(date) = u.date {
        assert_eq!(
            NaiveDate::from_ymd_opt(date.year(), date.month(), date.day()),
            Some(date)
        );
    }
    if let Some(time) = u.time {
        check_time(time);
    }
    if let Some(DayPart::After(t) | DayPart::Before(t)) = u.day_part {
        check_time(t);
    }
    if let Some(service) = &u.service {
        assert!(services.contains(service), "{service:?} is not a service");
    }
    // Same input, same understanding.
    assert_eq!(u, nlu.understand(text, &ctx));
});
