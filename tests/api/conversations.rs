//! The realistic conversations of `tests/data/sara-conversations.jsonl`, each replayed over
//! signed SMS against a fresh in-process Sara: every reply is checked for what it must and must
//! not say, and the confirmed bookings at the end must be exactly the ones the customer meant.
//! A booking nobody asked for (or at another time) is counted apart: there must be none.
//!
//! The file names days by placeholders, so no conversation depends on the day it runs:
//! `{d1}`/`{d2}` are weekday names ("wednesday") of two open weekdays two to six days ahead
//! (`{Day1}`/`{Day2}` capitalised), each with its next week open too; `{D3}`/`{D3uk}` an open
//! weekday more than a week ahead as "Dec 9" / "9th December".

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc, Weekday};
use sara_actors::availability::Availability;
use serde::Deserialize;

use crate::helpers::{business, phone, spawn_app};

#[derive(Deserialize)]
struct Conversation {
    id: String,
    about: String,
    turns: Vec<Turn>,
    bookings: Vec<Expected>,
}

#[derive(Deserialize)]
struct Turn {
    user: String,
    #[serde(default)]
    has: Vec<String>,
    #[serde(default)]
    lacks: Vec<String>,
    /// Sara stays quiet (a conversation handed to staff).
    #[serde(default)]
    quiet: bool,
}

/// A confirmed booking the conversation must leave: `day` is `d1`, `d2`, `d3` (optionally
/// `+7`) or `any`; `time` is `HH:MM`, `after:HH:MM` or `any`.
#[derive(Deserialize)]
struct Expected {
    service: String,
    day: String,
    time: String,
    name: Option<String>,
}

/// The days the placeholders stand for.
struct Days3 {
    d1: NaiveDate,
    d2: NaiveDate,
    d3: NaiveDate,
}

fn is_open(hours: &Availability, day: NaiveDate) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !hours.opening(day).is_empty()
}

fn days() -> Days3 {
    let hours = Availability::new(business());
    let today = hours.local_date(Utc::now());
    let named: Vec<NaiveDate> = (2..=6)
        .map(|n| today + Days::new(n))
        .filter(|d| is_open(&hours, *d) && is_open(&hours, *d + Days::new(7)))
        .collect();
    assert!(named.len() >= 2, "two open weekdays within the week");
    let d3 = (8..40)
        .map(|n| today + Days::new(n))
        .find(|d| is_open(&hours, *d))
        .expect("an open weekday past next week");
    Days3 {
        d1: named[0],
        d2: named[1],
        d3,
    }
}

/// From `now` to the next 7:00 AM in the business's timezone.
fn until_seven(now: DateTime<Utc>) -> chrono::Duration {
    let tz = business().timezone;
    let local = now.with_timezone(&tz);
    let seven = NaiveTime::from_hms_opt(7, 0, 0).expect("a time");
    let mut day = local.date_naive();
    if local.time() >= seven {
        day = day + Days::new(1);
    }
    let at = day
        .and_time(seven)
        .and_local_timezone(tz)
        .earliest()
        .expect("7 AM exists");
    at.with_timezone(&Utc) - now
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn fill(text: &str, days: &Days3) -> String {
    let weekday = |d: NaiveDate| d.format("%A").to_string();
    text.replace("{d1}", &weekday(days.d1).to_lowercase())
        .replace("{d2}", &weekday(days.d2).to_lowercase())
        .replace("{Day1}", &weekday(days.d1))
        .replace("{Day2}", &weekday(days.d2))
        .replace("{D3}", &days.d3.format("%b %-d").to_string())
        .replace(
            "{D3uk}",
            &format!("{} {}", ordinal(days.d3.day()), days.d3.format("%B")),
        )
}

fn day_of(spec: &str, days: &Days3) -> Option<NaiveDate> {
    let (base, plus) = spec.split_once('+').unwrap_or((spec, "0"));
    let day = match base {
        "d1" => days.d1,
        "d2" => days.d2,
        "d3" => days.d3,
        _ => return None,
    };
    Some(day + Days::new(plus.parse().expect("a whole number of days")))
}

fn matches(expected: &Expected, booking: &serde_json::Value, days: &Days3) -> bool {
    let Some(start) = booking["start"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    else {
        return false;
    };
    let local = start.with_timezone(&business().timezone);
    let day_ok = day_of(&expected.day, days).is_none_or(|d| local.date_naive() == d);
    let time_ok = match expected.time.as_str() {
        "any" => true,
        t => match t.strip_prefix("after:") {
            Some(after) => local.time() > NaiveTime::parse_from_str(after, "%H:%M").expect("HH:MM"),
            None => local.time() == NaiveTime::parse_from_str(t, "%H:%M").expect("HH:MM"),
        },
    };
    let name_ok = expected.name.as_ref().is_none_or(|n| {
        booking["name"]
            .as_str()
            .is_some_and(|b| b.eq_ignore_ascii_case(n))
    });
    booking["service"] == expected.service.as_str() && day_ok && time_ok && name_ok
}

/// How one conversation went: the first thing that went wrong, and whether a confirmed booking
/// was one the customer did not mean.
struct Outcome {
    failure: Option<String>,
    wrong_booking: bool,
}

async fn replay(n: u32, conversation: &Conversation, days: &Days3) -> Outcome {
    let sara = spawn_app().await;
    // Each conversation starts at 7 AM local (the next one), before the day opens: "the
    // earliest you have" is the same answer whatever hour the suite runs.
    if let Some(clock) = &sara.clock {
        clock.advance(until_seven(Utc::now()));
    }
    let me = phone(900 + n);
    let mut failure = None;
    let mut transcript = String::new();
    for turn in &conversation.turns {
        let said = fill(&turn.user, days);
        let reply = sara.text(&me, &said).await;
        transcript.push_str(&format!("   C: {said}\n   S: {reply}\n"));
        let low = reply.to_lowercase();
        let missing: Vec<String> = turn
            .has
            .iter()
            .map(|h| fill(h, days))
            .filter(|h| !low.contains(&h.to_lowercase()))
            .collect();
        let unwanted: Vec<String> = turn
            .lacks
            .iter()
            .map(|h| fill(h, days))
            .filter(|h| low.contains(&h.to_lowercase()))
            .collect();
        let quiet_wrong = turn.quiet != reply.is_empty();
        if failure.is_none() && (!missing.is_empty() || !unwanted.is_empty() || quiet_wrong) {
            failure = Some(format!(
                "C: {said}\n   S: {reply}\n   missing {missing:?}, unwanted {unwanted:?}{}",
                if quiet_wrong { ", quiet expected" } else { "" }
            ));
        }
    }
    let bookings = sara.bookings().await;
    let live: Vec<&serde_json::Value> = bookings
        .iter()
        .filter(|b| b["status"] == "confirmed")
        .collect();
    let unmeant = live
        .iter()
        .filter(|b| !conversation.bookings.iter().any(|e| matches(e, b, days)))
        .count();
    let missing = conversation
        .bookings
        .iter()
        .filter(|e| !live.iter().any(|b| matches(e, b, days)))
        .count();
    if failure.is_none() && (unmeant > 0 || missing > 0) {
        failure = Some(format!(
            "bookings: {unmeant} not meant, {missing} missing: {live:?}"
        ));
    }
    Outcome {
        failure: failure.map(|f| format!("{f}\n{transcript}")),
        wrong_booking: unmeant > 0,
    }
}

/// Conversations that must go as a good receptionist would; only goes up.
const BAR: usize = 47;

#[tokio::test]
async fn realistic_conversations_go_as_a_receptionist_would() {
    let text = include_str!("../data/sara-conversations.jsonl");
    let conversations: Vec<Conversation> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a conversation"))
        .collect();
    let days = days();
    let mut passed = 0;
    let mut wrong = Vec::new();
    let mut report = String::new();
    for (n, conversation) in conversations.iter().enumerate() {
        let outcome = replay(n as u32, conversation, &days).await;
        match outcome.failure {
            None => passed += 1,
            Some(why) => {
                report.push_str(&format!(
                    "{} ({}):\n   {why}\n",
                    conversation.id, conversation.about
                ));
            }
        }
        if outcome.wrong_booking {
            wrong.push(conversation.id.clone());
        }
    }
    eprintln!(
        "{passed}/{} conversations as a receptionist would; wrong bookings: {wrong:?}\n{report}",
        conversations.len()
    );
    assert!(
        wrong.is_empty(),
        "bookings nobody meant: {wrong:?}\n{report}"
    );
    assert!(
        passed >= BAR,
        "{passed}/{} conversations (bar {BAR}):\n{report}",
        conversations.len()
    );
}
