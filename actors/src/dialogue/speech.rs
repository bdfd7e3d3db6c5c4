//! How Sara reads dates, times, services and lists aloud, in the business time zone.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::business::Business;
use crate::model::Booking;
use crate::understanding::DayPart;

/// "2:00 PM".
pub(crate) fn clock(t: NaiveTime) -> String {
    t.format("%-I:%M %p").to_string()
}

/// "Friday, March 6".
pub(crate) fn day(d: NaiveDate) -> String {
    d.format("%A, %B %-d").to_string()
}

/// "Friday".
pub(crate) fn weekday(d: NaiveDate) -> String {
    d.format("%A").to_string()
}

/// "Friday, March 6 at 2:00 PM" for an instant, in the business time zone.
pub(crate) fn when(tz: Tz, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    format!("{} at {}", day(local.date_naive()), clock(local.time()))
}

/// "a, b or c" (or "a, b and c").
pub(crate) fn list(items: &[String], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

/// "cleaning" from "Cleaning": services are common nouns in a sentence.
pub(crate) fn service_noun(service: &str) -> String {
    service.to_lowercase()
}

/// "a cleaning", "an eye test".
pub(crate) fn with_article(service: &str) -> String {
    let noun = service_noun(service);
    let article = match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    };
    format!("{article} {noun}")
}

/// "We offer Consultation, Cleaning and Whitening."
pub(crate) fn services_line(business: &Business) -> String {
    let names: Vec<String> = business.services.iter().map(|s| s.name.clone()).collect();
    format!("We offer {}.", list(&names, "and"))
}

/// "a cleaning on Friday, March 6 at 2:00 PM".
pub(crate) fn booking(tz: Tz, b: &Booking) -> String {
    format!("{} on {}", with_article(&b.service), when(tz, b.start))
}

/// "two" for a count of bookings.
pub(crate) fn count(n: usize) -> String {
    const WORDS: [&str; 11] = [
        "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    WORDS
        .get(n)
        .map_or_else(|| n.to_string(), |w| (*w).to_string())
}

/// "9:30 AM, 9:45 AM or 10:00 AM on Monday, March 9"; offers on several days are grouped by
/// day: "1:30 PM on Saturday, March 7, or 9:00 AM or 9:15 AM on Monday, March 9".
pub(crate) fn offers(tz: Tz, offers: &[DateTime<Utc>]) -> String {
    let mut groups: Vec<(NaiveDate, Vec<String>)> = Vec::new();
    for &o in offers {
        let local = o.with_timezone(&tz);
        let time = clock(local.time());
        match groups.last_mut() {
            Some((d, times)) if *d == local.date_naive() => times.push(time),
            _ => groups.push((local.date_naive(), vec![time])),
        }
    }
    groups
        .iter()
        .map(|(d, times)| format!("{} on {}", list(times, "or"), day(*d)))
        .collect::<Vec<_>>()
        .join(", or ")
}

/// "cleaning on Friday, March 6 at 2:00 PM", after "your".
pub(crate) fn own_booking(tz: Tz, b: &Booking) -> String {
    format!("{} on {}", service_noun(&b.service), when(tz, b.start))
}

/// Short button labels for offers: "9:30 AM", or "Mon 9:30 AM" when the days differ.
pub(crate) fn offer_buttons(tz: Tz, offers: &[DateTime<Utc>]) -> Vec<String> {
    let same_day = offers
        .windows(2)
        .all(|w| w[0].with_timezone(&tz).date_naive() == w[1].with_timezone(&tz).date_naive());
    offers
        .iter()
        .map(|&o| {
            let local = o.with_timezone(&tz);
            if same_day {
                clock(local.time())
            } else {
                format!("{} {}", local.format("%a"), clock(local.time()))
            }
        })
        .collect()
}

/// "afternoon", "after 2:00 PM".
pub(crate) fn day_part(part: DayPart) -> String {
    match part {
        DayPart::Morning => "morning".into(),
        DayPart::Afternoon => "afternoon".into(),
        DayPart::Evening => "evening".into(),
        DayPart::After(t) => format!("after {}", clock(t)),
        DayPart::Before(t) => format!("before {}", clock(t)),
        DayPart::Between(a, b) => format!("between {} and {}", clock(a), clock(b)),
    }
}

/// "2 hours" / "90 minutes" of notice.
pub(crate) fn duration(minutes: u32) -> String {
    match minutes {
        60 => "an hour".into(),
        m if m % 60 == 0 => format!("{} hours", m / 60),
        m => format!("{m} minutes"),
    }
}

/// A name or email read out letter by letter, as on a call: "J-A-K-E R-O-S-S",
/// "J-O dot P-A-R-K at M-A-I-L dot C-O-M". Anything but letters and digits is said as a word.
pub(crate) fn spelled(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut letters: Vec<String> = Vec::new();
    let flush = |letters: &mut Vec<String>, words: &mut Vec<String>| {
        if !letters.is_empty() {
            words.push(letters.join("-"));
            letters.clear();
        }
    };
    for c in text.trim().chars() {
        if c.is_alphanumeric() {
            letters.push(c.to_uppercase().collect());
            continue;
        }
        flush(&mut letters, &mut words);
        let said = match c {
            '@' => "at",
            '.' => "dot",
            '-' => "dash",
            '_' => "underscore",
            '+' => "plus",
            '\'' => "apostrophe",
            _ => continue,
        };
        words.push(said.to_string());
    }
    flush(&mut letters, &mut words);
    words.join(" ")
}

/// A name as the recognizer wrote a spelled answer ("J-A-K-E R-O-S-S", "j.a.k.e") back as
/// the name ("Jake Ross"); any other word is kept as it is.
pub(crate) fn unspelled(name: &str) -> String {
    name.split_whitespace()
        .map(|word| {
            let parts: Vec<&str> = word.split(['-', '.']).filter(|p| !p.is_empty()).collect();
            let letters = parts.len() > 1 && parts.iter().all(|p| p.chars().count() == 1);
            if !letters {
                return word.to_string();
            }
            let joined: String = parts.concat().to_lowercase();
            let mut chars = joined.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// "Cancel your …" from "cancel your …", to start a sentence.
pub(crate) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_with_weekday_and_month() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let t = NaiveTime::from_hms_opt(15, 0, 0).unwrap();
        assert_eq!(
            format!("{} at {}", day(d), clock(t)),
            "Tuesday, December 1 at 3:00 PM"
        );
        assert_eq!(
            clock(NaiveTime::from_hms_opt(12, 0, 0).unwrap()),
            "12:00 PM"
        );
        assert_eq!(clock(NaiveTime::from_hms_opt(9, 30, 0).unwrap()), "9:30 AM");
    }

    #[test]
    fn lists_read_naturally() {
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(list(&items(&["a"]), "or"), "a");
        assert_eq!(list(&items(&["a", "b"]), "or"), "a or b");
        assert_eq!(list(&items(&["a", "b", "c"]), "and"), "a, b and c");
        assert_eq!(with_article("Eye test"), "an eye test");
        assert_eq!(with_article("Cleaning"), "a cleaning");
    }

    #[test]
    fn names_and_emails_are_spelled_letter_by_letter_and_spelled_answers_read_back() {
        assert_eq!(spelled("Jake Ross"), "J-A-K-E R-O-S-S");
        assert_eq!(spelled("O'Neil"), "O apostrophe N-E-I-L");
        assert_eq!(
            spelled("jo.park99@mail.com"),
            "J-O dot P-A-R-K-9-9 at M-A-I-L dot C-O-M"
        );
        assert_eq!(unspelled("J-A-K-E R-O-S-E"), "Jake Rose");
        assert_eq!(unspelled("j.a.k.e Ross"), "Jake Ross");
        assert_eq!(unspelled("Mary-Jane Ross"), "Mary-Jane Ross");
        assert_eq!(unspelled("Jo Park"), "Jo Park");
    }
}
