//! Dates, times and parts of day in a message, relative to "today" in the business time zone.
//!
//! Input is the normalised text (lower case, typos fixed, number words as digits). Dates are
//! naive local dates, so every rule is calendar arithmetic and DST days need nothing special.
//!
//! Conventions (documented for the policy and for callers):
//! - "Tuesday", "this Tuesday", "on Tuesday", "coming Tuesday": the next Tuesday after today
//!   (today excluded: a caller who means today says "today").
//! - "next Tuesday", "Tuesday next week": the Tuesday of the following Monday-first week.
//! - "Tuesday this week": that day of the current week if not past, else the next one.
//! - "a week from Tuesday": next Tuesday (as above) plus 7 days.
//! - "Dec 3" / "12/3" (US month/day) without a year: this year unless already past, then next.
//! - "the 7th": this month when the 7th is today or later, else next month.
//! - A bare hour without am/pm: 1–7 is afternoon, 8–11 morning, 12 noon.

use std::sync::LazyLock;

use chrono::{Datelike, Days, Months, NaiveDate, NaiveTime, Weekday};
use regex::Regex;
use sara_actors::understanding::{DayPart, Lean, Shift, Slot};

/// What the message says about when.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Moment {
    pub date: Option<NaiveDate>,
    pub time: Option<NaiveTime>,
    pub day_part: Option<DayPart>,
    /// True when the time came only from a bare number (weak evidence).
    pub weak_time: bool,
    /// "An hour later", "a week later": relative to the time being talked about.
    pub shift: Option<Shift>,
    /// "Anything later / earlier?"
    pub lean: Option<Lean>,
    /// "The earliest you have", "first thing".
    pub earliest: bool,
    /// Something about when was left unread (a number, "half", "quarter", a second day):
    /// the reading above may be wrong, so it must not be acted on with confidence.
    pub unclear: bool,
    /// What was left unread is about the day (a second weekday), not the time.
    pub unclear_day: bool,
}

const WEEKDAY: &str = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday";
const MONTH: &str = r"january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec";
const ORDINAL_WORD: &str = r"first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty[- ]first|twenty[- ]second|twenty[- ]third|twenty[- ]fourth|twenty[- ]fifth|twenty[- ]sixth|twenty[- ]seventh|twenty[- ]eighth|twenty[- ]ninth|thirtieth|thirty[- ]first";

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in pattern is valid")
}

static NEGATED: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b(?:all|al|enough|it|everything|that's it|done)(?: for)? (?:today|now|tonight)\b|\b(?:not|instead of|rather than|other than|except|(?:can't|cannot|can not|couldn't|won't) (?:do|make|come|manage|go))\s+(?:at\s+|on\s+|the\s+)?(?:\d{{1,2}}(?::\d{{2}})?(?:\s*(?:am|pm))?|noon|today|tomorrow|(?:{WEEKDAY})|\d{{1,2}}(?:st|nd|rd|th))\b|\bfrom\s+(?:\d{{1,2}}(?::\d{{2}})?(?:\s*(?:am|pm))?|today|tomorrow|(?:this |next )?(?:{WEEKDAY}))\s+to\b"
    ))
});
static DAY_AFTER_TOMORROW: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:the\s+)?day after tomorrow\b"));
static WEEK_FROM: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b(?:a|one|1) week (?:from|after) (today|tomorrow|(?:this |next )?(?:{WEEKDAY}))\b|\b(?:a|one|1) week (?:from )?today\b"
    ))
});
static IN_N: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\bin (a|an|one|\d{1,2}) (days?|weeks?)\b|\b(a|an|one|\d{1,2}) (days?|weeks?) from (?:now|today)\b",
    )
});
static TOMORROW: LazyLock<Regex> = LazyLock::new(|| re(r"\btomorrow\b"));
static TODAY: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b"));
static WEEKDAY_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b(?:(next week(?: on)?|this week(?: on)?|next|this|the coming|coming|on)\s+)?({WEEKDAY})(?:\s+(next week|this week|after next))?\b"
    ))
});
static MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b({MONTH})\.?\s+(?:the\s+)?(\d{{1,2}}|{ORDINAL_WORD})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?"
    ))
});
static DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b(\d{{1,2}}(?:st|nd|rd|th)?|{ORDINAL_WORD})\s+(?:of\s+)?({MONTH})\b(?:,?\s+(\d{{4}})\b)?"
    ))
});
static DAY_OF_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b(\d{{1,2}}(?:st|nd|rd|th)?|{ORDINAL_WORD})\s+of\s+(?:this|the|next|the next|the following)\s*(month)\b"
    ))
});
static NEXT_MONTH: LazyLock<Regex> =
    LazyLock::new(|| re(r"of\s+(?:next|the next|the following)\s*month$"));
static ORDINAL_DAY: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b(?:the\s+)?(\d{{1,2}})(st|nd|rd|th)\b|\b(?:on|for|by|until|till) the ({ORDINAL_WORD})\b"
    ))
});
static NUMERIC_DATE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?\b"));
static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{4})-(\d{2})-(\d{2})\b"));

/// "half past 4", "quarter to 5", "quarter past 10".
static FRACTION_TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(half past|half after|(?:a )?quarter (?:past|after)|(?:a )?quarter (?:to|till|til|of|before))\s+(\d{1,2})\b",
    )
});
/// "3:30", "4.30", "15:00", optionally with am/pm.
static CLOCK_TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(\d{1,2})[:.](\d{2})(?:\s*(am|pm|a\.m\.?|p\.m\.?))?"));
/// "3pm", "3 pm", "3 o'clock", "4 30 pm".
static HOUR_MERIDIEM: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(\d{1,2})(?:\s+(\d{2}))?\s*(am|pm|a\.m\.?|p\.m\.?|o'?clock)(?:\b|$)"));
/// "1630", "0900" after a preposition.
static MILITARY: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:^\s*|\b(?:at|for|around|by|to)\s+|@\s*)([01]\d|2[0-3])([0-5]\d)\b"));
/// "at 3", "around 4", "evening 5", "3 in the afternoon".
static PREP_HOUR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:\b(?:at|around|about|for|to|try|say|morning|afternoon|evening|make it|made it|how about|what about|maybe|perhaps|instead|rather|or|do|change it to|move it to|switch to|change to|prefer|like)\s+|@\s*)(\d{1,2})\b",
    )
});
static HOUR_IN_PART: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(\d{1,2})\s+(?:in the (?:morning|afternoon|evening)|at night|tonight)")
});
static NOON: LazyLock<Regex> = LazyLock::new(|| re(r"\b(noon|midday|midnight)\b"));
static AFTER_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(after|past|later than|no earlier than|before|earlier than|by|until|till|no later than)\s+(noon|midday|lunch ?(?:time)?|work|\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm|a\.m\.?|p\.m\.?)?)",
    )
});
static PART: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(morning|afternoon|evening|tonight|night)\b"));
/// "20 to 4", "10 past 3", "5 after 2", "25 minutes to 6" (number words are digits by now).
static MINUTES_PAST: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(\d{1,2})\s+(?:minutes?\s+|mins?\s+)?(past|after|to|till|til|before|of)\s+(\d{1,2})\b")
});
/// British "half 3" = 3:30 (not "half an hour", not "half past").
static HALF_HOUR: LazyLock<Regex> = LazyLock::new(|| re(r"\bhalf\s+(\d{1,2})\b"));
/// "10 45", "9 05": an hour and its minutes, spoken.
static SPOKEN: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{1,2})\s+(\d{2})\b"));
/// "an hour later", "30 minutes earlier", "a week later", "2 days after".
static SHIFT_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(an?|one|half an?|a half|a couple of|couple of|a few|\d{1,3})\s+(minutes?|mins?|hours?|hrs?|days?|weeks?)\s+(later|earlier|sooner|after|before|on|back|forward)\b",
    )
});
/// "push it back 30 minutes", "bring it forward an hour", "move it later by a day".
static SHIFT_VERB: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:push|move|bump|shift|put|bring|make)\s+(?:it|that|this|me|things|the (?:appointment|booking|time)|my (?:appointment|booking))?\s*(back|forward|later|earlier|up)\s+(?:by\s+)?(an?|one|half an?|a half|a couple of|couple of|\d{1,3})\s+(minutes?|mins?|hours?|hrs?|days?|weeks?)\b",
    )
});
/// "the day after", "the following week", "the week after": relative to the day discussed.
static SHIFT_DAY: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(?:the )?(day after|day before|following day|next day|week after|following week)\b")
});
/// "later", "earlier" asked of the offered times: "anything later?", "something earlier".
static LEAN: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(later|earlier|sooner|after that|before that)\b"));
/// "the earliest you have", "first available", "as soon as possible", "first thing".
static EARLIEST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:earliest|soonest|first (?:available|free|opening|slot|appointment|thing)|next (?:available|free|opening)|as soon as (?:possible|you can)|asap|first thing)\b",
    )
});
/// Named windows inside the day.
static WINDOW: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:(?:around|about|at|over|for|during)\s+)?(?:(early|late|mid)[- ]?(morning|afternoon|evening)|lunch ?(?:time|hour)?|end of the day|close of business|first thing(?: in the morning)?)\b",
    )
});
/// Words after a number that make it a quantity, not a time.
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^\s*(?:people|persons?|of us|kids|children|adults|guests|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|dollars?|bucks|times|visits|appointments?|sessions?|teeth|%|percent|x\b)",
    )
});

/// Finds the date, time and part of day in `text` (normalised), relative to `today`.
pub(crate) fn extract(text: &str, today: NaiveDate, expecting: Option<Slot>) -> Moment {
    // "from 2 to 4": only the "from 2" part is blanked, "to 4" stays readable.
    let masked = NEGATED.replace_all(text, |c: &regex::Captures| {
        let whole = &c[0];
        match whole.strip_suffix("to") {
            Some(head) if whole.starts_with("from") => format!("{}to", " ".repeat(head.len())),
            _ => " ".repeat(whole.len()),
        }
    });
    let mut work = masked.into_owned();
    let shift = find_shift(&mut work);
    let earliest = EARLIEST.is_match(&work);
    let date = find_date(&mut work, today);
    let (time, day_part, weak_time) = find_time(&mut work, expecting);
    let lean = LEAN.captures(&work).and_then(|c| {
        let whole = c.get(0).expect("group 0 always matches");
        // "see you later", "later today", "later this week" are not about the offered times.
        let before = work[..whole.start()].trim_end();
        let after = next_word(&work, whole.end());
        if [
            "see you",
            "talk",
            "speak",
            "call",
            "catch you",
            "chat",
            "text",
        ]
        .iter()
        .any(|w| before.ends_with(w))
            || matches!(after, "today" | "tonight" | "this" | "in" | "on" | "next")
        {
            return None;
        }
        match &c[1] {
            "later" | "after that" => Some(Lean::Later),
            "earlier" | "sooner" | "before that" => Some(Lean::Earlier),
            _ => None,
        }
    });
    let (unclear_time, unclear_day) = unread_when(&work, date);
    Moment {
        date,
        time,
        day_part,
        weak_time,
        shift,
        lean,
        earliest,
        unclear: unclear_time || unclear_day,
        unclear_day,
    }
}

/// A count in words or digits: "an", "half an", "a couple of", "30".
fn count_of(word: &str) -> Option<f64> {
    Some(match word {
        "a" | "an" | "one" => 1.0,
        "half an" | "half a" | "a half" => 0.5,
        "a couple of" | "couple of" => 2.0,
        "a few" => 3.0,
        n => n.parse::<f64>().ok()?,
    })
}

/// A span in minutes and days for a count and a unit.
fn span_of(count: f64, unit: &str) -> Shift {
    if unit.starts_with('d') {
        Shift {
            days: count as i64,
            minutes: 0,
        }
    } else if unit.starts_with('w') {
        Shift {
            days: (count * 7.0) as i64,
            minutes: 0,
        }
    } else if unit.starts_with('h') {
        Shift {
            days: 0,
            minutes: (count * 60.0) as i64,
        }
    } else {
        Shift {
            days: 0,
            minutes: count as i64,
        }
    }
}

fn negated(shift: Shift) -> Shift {
    Shift {
        days: -shift.days,
        minutes: -shift.minutes,
    }
}

/// The first word after `end`.
fn next_word(work: &str, end: usize) -> &str {
    work[end..]
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .find(|w| !w.is_empty())
        .unwrap_or("")
}

/// Words that make "a week after …" a date of its own, not a move of the one discussed.
pub(super) fn names_a_day(word: &str) -> bool {
    matches!(word, "today" | "tomorrow" | "this" | "next" | "the")
        || weekday_of(word).is_some()
        || month_of(word).is_some_and(|_| word.len() >= 3)
        || word.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Moves relative to the time being talked about; their numbers are consumed so they are not
/// read as clock times.
fn find_shift(work: &mut String) -> Option<Shift> {
    if let Some(c) = SHIFT_VERB.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        if let Some(n) = count_of(&c[2]) {
            let span = span_of(n, &c[3]);
            let shift = match &c[1] {
                "back" | "later" => span,
                _ => negated(span),
            };
            consume(work, whole.start(), whole.end());
            return Some(shift);
        }
    }
    for c in SHIFT_AFTER.captures_iter(&work.clone()) {
        let whole = c.get(0).expect("group 0 always matches");
        let direction = &c[3];
        if matches!(direction, "after" | "before") && names_a_day(next_word(work, whole.end())) {
            continue;
        }
        let Some(n) = count_of(&c[1]) else { continue };
        let span = span_of(n, &c[2]);
        let shift = match direction {
            "later" | "after" | "back" => span,
            _ => negated(span),
        };
        consume(work, whole.start(), whole.end());
        return Some(shift);
    }
    if let Some(c) = SHIFT_DAY.captures(&work.clone()) {
        let whole = c.get(0).expect("group 0 always matches");
        let after = next_word(work, whole.end());
        let after_next = after == "next";
        if !names_a_day(after) || after_next {
            let days = match &c[1] {
                "day before" => -1,
                "day after" | "following day" | "next day" => 1,
                _ if after_next => 14,
                _ => 7,
            };
            let end = if after_next {
                whole.end() + work[whole.end()..].find("next").map_or(0, |i| i + 4)
            } else {
                whole.end()
            };
            consume(work, whole.start(), end);
            return Some(Shift { days, minutes: 0 });
        }
    }
    None
}

/// Whether what is left of the message after every date and time pattern took its part
/// still speaks of when: (a number that is not a count, money or an option, or a clock word;
/// a second day name when a date was read).
fn unread_when(work: &str, date: Option<NaiveDate>) -> (bool, bool) {
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d{1,4}\b"));
    static CLOCK_WORD: LazyLock<Regex> = LazyLock::new(|| {
        re(&format!(
            r"\b(?:half|quarter|o'?clock|noon|midnight)\b|\b(?:{WEEKDAY})\b"
        ))
    });
    let (mut time, mut day_unread) = (false, false);
    for m in NUMBER.find_iter(work) {
        let before = work[..m.start()].trim_end();
        let raw_before = work[..m.start()].chars().next_back();
        let after = work[m.end()..].chars().next();
        if raw_before.is_some_and(|c| "$£€#-/+@.:".contains(c))
            || after.is_some_and(|c| "-/%@$".contains(c) || c.is_alphabetic())
            || QUANTITY.is_match(&work[m.end()..])
            // "one" is often a pronoun the normaliser could not tell from the number.
            || m.as_str() == "1"
            || [
                "option", "number", "no", "choice", "room", "suite", "apt", "unit", "of",
                "me", "us", "party", "group",
            ]
            .iter()
            .any(|w| before.ends_with(w))
        {
            continue;
        }
        time = true;
    }
    for m in CLOCK_WORD.find_iter(work) {
        let w = m.as_str();
        if let Some(day) = weekday_of(w) {
            // "Monday the 16th" names one day twice; "Monday or Tuesday" names two.
            day_unread |= date.is_some_and(|d| d.weekday() != day);
            continue;
        }
        // "half an hour", "a quarter of the price" are not clock times.
        let next = next_word(work, m.end());
        time |= !(matches!(w, "half" | "quarter")
            && matches!(next, "an" | "a" | "the" | "of" | "price"));
    }
    (time, day_unread)
}

/// Blanks a span so later patterns do not read it again.
fn consume(work: &mut String, start: usize, end: usize) {
    work.replace_range(start..end, &" ".repeat(end - start));
}

fn weekday_of(name: &str) -> Option<Weekday> {
    Some(match name {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn month_of(name: &str) -> Option<u32> {
    let m = match name.get(..3)? {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    Some(m)
}

/// "7th", "7", "seventh", "twenty-first" → 7 / 21.
fn day_number(token: &str) -> Option<u32> {
    let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        return digits.parse().ok().filter(|d| (1..=31).contains(d));
    }
    let words = [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
        "twentieth",
    ];
    let t = token.replace('-', " ");
    if let Some(i) = words.iter().position(|w| *w == t) {
        return Some(i as u32 + 1);
    }
    if let Some(rest) = t.strip_prefix("twenty ") {
        return words
            .iter()
            .position(|w| *w == rest)
            .filter(|&i| i < 9)
            .map(|i| i as u32 + 21);
    }
    match t.as_str() {
        "thirtieth" => Some(30),
        "thirty first" => Some(31),
        _ => None,
    }
}

/// The next `day` strictly after `today`.
fn next_weekday(today: NaiveDate, day: Weekday) -> NaiveDate {
    let ahead =
        (7 + day.num_days_from_monday() as i64 - today.weekday().num_days_from_monday() as i64) % 7;
    let ahead = if ahead == 0 { 7 } else { ahead };
    add_days(today, ahead as u64)
}

/// `day` in the Monday-first week after the current one.
fn weekday_next_week(today: NaiveDate, day: Weekday) -> NaiveDate {
    let monday = sub_days(today, today.weekday().num_days_from_monday() as u64);
    add_days(monday, 7 + day.num_days_from_monday() as u64)
}

fn add_days(date: NaiveDate, n: u64) -> NaiveDate {
    date.checked_add_days(Days::new(n)).unwrap_or(date)
}

/// Like [`add_days`], backwards: `NaiveDate - Days` panics in the first days of chrono's range.
fn sub_days(date: NaiveDate, n: u64) -> NaiveDate {
    date.checked_sub_days(Days::new(n)).unwrap_or(date)
}

/// Month/day without a year: this year unless already past, then next year.
fn upcoming(today: NaiveDate, month: u32, day: u32, year: Option<i32>) -> Option<NaiveDate> {
    if let Some(y) = year {
        return NaiveDate::from_ymd_opt(y, month, day);
    }
    match NaiveDate::from_ymd_opt(today.year(), month, day) {
        Some(d) if d >= today => Some(d),
        _ => NaiveDate::from_ymd_opt(today.year() + 1, month, day),
    }
}

/// Day of a month offset from the current one (0 = this month).
fn day_in_month(today: NaiveDate, offset: u32, day: u32) -> Option<NaiveDate> {
    let first = today.with_day(1)?.checked_add_months(Months::new(offset))?;
    first.with_day(day)
}

/// "the 7th": this month if not past, else the next month that has that day.
fn ordinal_day(today: NaiveDate, day: u32) -> Option<NaiveDate> {
    (0..3)
        .filter_map(|offset| day_in_month(today, offset, day))
        .find(|d| *d >= today)
}

fn year_of(text: Option<regex::Match>) -> Option<i32> {
    let y: i32 = text?.as_str().parse().ok()?;
    Some(if y < 100 { 2000 + y } else { y })
}

fn find_date(work: &mut String, today: NaiveDate) -> Option<NaiveDate> {
    if let Some(m) = DAY_AFTER_TOMORROW.find(work) {
        consume(work, m.start(), m.end());
        return Some(add_days(today, 2));
    }
    if let Some(c) = WEEK_FROM.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        let base = match c.get(1).map(|m| m.as_str()) {
            None | Some("today") => Some(today),
            Some("tomorrow") => Some(add_days(today, 1)),
            Some(day) => {
                let next = day.starts_with("next ");
                let name = day.trim_start_matches("this ").trim_start_matches("next ");
                weekday_of(name).map(|w| {
                    if next {
                        weekday_next_week(today, w)
                    } else {
                        next_weekday(today, w)
                    }
                })
            }
        };
        consume(work, whole.start(), whole.end());
        return base.map(|d| add_days(d, 7));
    }
    if let Some(c) = IN_N.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        let count = c.get(1).or(c.get(3)).map_or("", |m| m.as_str());
        let unit = c.get(2).or(c.get(4)).map_or("", |m| m.as_str());
        let n: u64 = match count {
            "a" | "an" | "one" => 1,
            n => n.parse().unwrap_or(0),
        };
        let days = if unit.starts_with("week") { n * 7 } else { n };
        consume(work, whole.start(), whole.end());
        return Some(add_days(today, days));
    }
    if let Some(m) = TOMORROW.find(work) {
        consume(work, m.start(), m.end());
        return Some(add_days(today, 1));
    }
    if let Some(c) = ISO_DATE.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        let (y, mo, d) = (c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?);
        consume(work, whole.start(), whole.end());
        return NaiveDate::from_ymd_opt(y, mo, d);
    }
    if let Some(c) = MONTH_DAY.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        if let (Some(month), Some(day)) = (month_of(&c[1]), day_number(&c[2])) {
            // The month needs a day number right after it, so the verb in "may I come" is
            // not May.
            let date = upcoming(today, month, day, year_of(c.get(3)));
            consume(work, whole.start(), whole.end());
            if date.is_some() {
                return date;
            }
        }
    }
    if let Some(c) = DAY_MONTH.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        if let (Some(day), Some(month)) = (day_number(&c[1]), month_of(&c[2])) {
            let date = upcoming(today, month, day, year_of(c.get(3)));
            consume(work, whole.start(), whole.end());
            if date.is_some() {
                return date;
            }
        }
    }
    if let Some(c) = DAY_OF_MONTH.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        if let Some(day) = day_number(&c[1]) {
            let offset = if NEXT_MONTH.is_match(whole.as_str()) {
                1
            } else {
                0
            };
            consume(work, whole.start(), whole.end());
            return day_in_month(today, offset, day);
        }
    }
    if let Some(c) = NUMERIC_DATE.captures(&work.clone()) {
        let whole = c.get(0).expect("group 0 always matches");
        let free_before = !work[..whole.start()].ends_with(['$', '/', '-', '.']);
        let free_after = !work[whole.end()..].starts_with(['/', '-', '%']);
        if free_before && free_after {
            let (mo, d): (u32, u32) = (c[1].parse().ok()?, c[2].parse().ok()?);
            // US month/day; "25/12" cannot be that, so it is read day/month.
            let (mo, d) = if mo > 12 && d <= 12 { (d, mo) } else { (mo, d) };
            if (1..=12).contains(&mo) && (1..=31).contains(&d) {
                consume(work, whole.start(), whole.end());
                return upcoming(today, mo, d, year_of(c.get(3)));
            }
        }
    }
    for c in ORDINAL_DAY.captures_iter(&work.clone()) {
        let whole = c.get(0).expect("group 0 always matches");
        let day = match (c.get(1), c.get(3)) {
            (Some(n), _) => day_number(n.as_str()),
            (None, Some(w)) => {
                // "on the first one" picks an option, it is not a date.
                let rest = &work[whole.end()..];
                if rest.trim_start().starts_with("one") || rest.trim_start().starts_with("option") {
                    None
                } else {
                    day_number(w.as_str())
                }
            }
            _ => None,
        };
        let Some(day) = day else { continue };
        // "2nd floor", "1st time", "3rd option" are not dates.
        let rest = work[whole.end()..].trim_start();
        if [
            "floor",
            "time",
            "one",
            "option",
            "choice",
            "slot",
            "visit",
            "appointment",
            "person",
            "street",
            "st",
            "avenue",
            "ave",
            "road",
            "rd",
            "place",
            "grade",
            "birthday",
            "anniversary",
        ]
        .iter()
        .any(|w| rest.starts_with(w))
        {
            continue;
        }
        consume(work, whole.start(), whole.end());
        return ordinal_day(today, day);
    }
    // Weekdays and "today" come last: an explicit calendar date in the same message is
    // more specific ("Monday the 16th").
    if let Some(c) = WEEKDAY_RE.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        let day = weekday_of(&c[2])?;
        let before = c.get(1).map(|m| m.as_str());
        let after = c.get(3).map(|m| m.as_str());
        let date = match (before, after) {
            (_, Some("after next")) => add_days(weekday_next_week(today, day), 7),
            (Some(b), _) if b.starts_with("next") => weekday_next_week(today, day),
            (_, Some("next week")) => weekday_next_week(today, day),
            (Some("this week" | "this week on"), _) | (_, Some("this week")) => {
                let monday = sub_days(today, today.weekday().num_days_from_monday() as u64);
                let d = add_days(monday, day.num_days_from_monday() as u64);
                if d >= today {
                    d
                } else {
                    next_weekday(today, day)
                }
            }
            _ => next_weekday(today, day),
        };
        consume(work, whole.start(), whole.end());
        return Some(date);
    }
    if let Some(m) = TODAY.find(work) {
        // "this morning" is today; the part of day is read again by the time pass.
        let is_today_word = matches!(m.as_str(), "today" | "tonight");
        if is_today_word {
            consume(work, m.start(), m.end());
        }
        return Some(today);
    }
    None
}

fn meridiem_of(s: Option<&str>) -> Option<bool> {
    let s = s?;
    if s.starts_with('a') {
        Some(false)
    } else if s.starts_with('p') {
        Some(true)
    } else {
        None
    }
}

/// The part of day written right around a time: "morning 10:30", "5 in the evening".
fn adjacent_part(work: &str, start: usize, end: usize) -> Option<bool> {
    let after = work.get(end..).unwrap_or("");
    let after = after.trim_start();
    let before = &work[..start];
    let before = before.trim_end();
    let pm_after = [
        "in the afternoon",
        "in the evening",
        "at night",
        "tonight",
        "this afternoon",
        "this evening",
        "afternoon",
        "evening",
    ];
    let am_after = ["in the morning", "this morning", "morning"];
    if pm_after.iter().any(|p| after.starts_with(p)) {
        return Some(true);
    }
    if am_after.iter().any(|p| after.starts_with(p)) {
        return Some(false);
    }
    if before.ends_with("afternoon") || before.ends_with("evening") || before.ends_with("tonight") {
        return Some(true);
    }
    if before.ends_with("morning") {
        return Some(false);
    }
    None
}

/// Applies am/pm or, without one, the business-hours reading of a bare hour.
fn to_time(hour: u32, minute: u32, pm: Option<bool>) -> Option<NaiveTime> {
    if minute >= 60 {
        return None;
    }
    let hour = match pm {
        Some(true) if (1..12).contains(&hour) => hour + 12,
        Some(true) if hour == 12 => 12,
        Some(false) if hour == 12 => 0,
        Some(_) if hour > 12 => hour,
        Some(false) => hour,
        None if (1..=7).contains(&hour) => hour + 12,
        None => hour,
        Some(true) => return None,
    };
    NaiveTime::from_hms_opt(hour, minute, 0)
}

/// True when the digits at `start..end` stand alone: not money, not part of a longer number.
fn free_number(work: &str, start: usize, end: usize) -> bool {
    let before = work[..start].chars().next_back();
    let after = work[end..].chars().next();
    let bad_before = matches!(before, Some(c) if c.is_ascii_digit() || "$£€#-/+".contains(c));
    let bad_after = matches!(after, Some(c) if c.is_ascii_digit() || "-/%".contains(c))
        || work[end..].starts_with(".0")
        || QUANTITY.is_match(&work[end..]);
    !bad_before && !bad_after
}

fn find_time(
    work: &mut String,
    expecting: Option<Slot>,
) -> (Option<NaiveTime>, Option<DayPart>, bool) {
    let mut day_part = None;
    // Global part of day: "tomorrow afternoon at 3" reads 3 as 15:00.
    let global_pm = PART.captures(work).map(|c| !c[1].starts_with("morning"));
    let mut found: Option<NaiveTime> = None;

    // "20 to 4", "10 past 3", "5 after 2": read before "after 2" can be taken for a bound.
    for c in MINUTES_PAST.captures_iter(&work.clone()) {
        let whole = c.get(0).expect("group 0 always matches");
        let (m, h): (u32, u32) = (c[1].parse().unwrap_or(99), c[3].parse().unwrap_or(99));
        let said_minutes = whole.as_str().contains("min");
        // A bare pair like "2 to 4" is a range; minutes people say this way are these.
        if !(said_minutes && (1..60).contains(&m) || matches!(m, 5 | 10 | 20 | 25))
            || !(1..=12).contains(&h)
            || !free_number(work, c.get(3).expect("group 3").start(), whole.end())
            || ["from", "between", "open", "opened", "hours"]
                .iter()
                .any(|w| work[..whole.start()].trim_end().ends_with(w))
        {
            continue;
        }
        let to = matches!(&c[2], "to" | "till" | "til" | "before" | "of");
        let (hour, minute) = if to {
            (if h == 1 { 12 } else { h - 1 }, 60 - m)
        } else {
            (h, m)
        };
        let pm = adjacent_part(work, whole.start(), whole.end()).or(global_meridiem(h, global_pm));
        let pm = if hour == 12 && pm.is_none() {
            Some(true)
        } else {
            pm
        };
        if let Some(t) = to_time(hour, minute, pm) {
            found = Some(t);
            consume(work, whole.start(), whole.end());
            break;
        }
    }
    // British "half 3" is 3:30.
    if found.is_none() {
        for c in HALF_HOUR.captures_iter(&work.clone()) {
            let whole = c.get(0).expect("group 0 always matches");
            let h: u32 = c[1].parse().unwrap_or(99);
            let num = c.get(1).expect("group 1");
            if !(1..=12).contains(&h) || !free_number(work, num.start(), num.end()) {
                continue;
            }
            let pm =
                adjacent_part(work, whole.start(), whole.end()).or(global_meridiem(h, global_pm));
            if let Some(t) = to_time(h, 30, pm) {
                found = Some(t);
                consume(work, whole.start(), whole.end());
                break;
            }
        }
    }

    if let Some(c) = AFTER_BEFORE.captures(work) {
        let whole = c.get(0).expect("group 0 always matches");
        let after = matches!(&c[1], "after" | "past" | "later than" | "no earlier than");
        let bound = match &c[2] {
            // Before lunch is the morning; after lunch starts an hour later.
            w if w.starts_with("lunch") => {
                NaiveTime::from_hms_opt(if after { 13 } else { 12 }, 0, 0)
            }
            "work" => NaiveTime::from_hms_opt(if after { 17 } else { 9 }, 0, 0),
            w => parse_loose_time(w, global_pm),
        };
        if let Some(t) = bound {
            // "past 4" inside "half past 4" is not a bound; that pattern ran first below.
            let in_fraction = work[..whole.start()].trim_end().ends_with("half")
                || work[..whole.start()].trim_end().ends_with("quarter");
            // "after 2 days", "in the past 2 weeks" are spans, not clock bounds.
            let quantity = QUANTITY.is_match(&work[whole.end()..]);
            if !in_fraction && !quantity {
                day_part = Some(if after {
                    DayPart::After(t)
                } else {
                    DayPart::Before(t)
                });
                consume(work, whole.start(), whole.end());
            }
        }
    }

    if day_part.is_none()
        && let Some(c) = WINDOW.captures(work)
    {
        let whole = c.get(0).expect("group 0 always matches");
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("valid constant time");
        let part = match (c.get(1).map(|m| m.as_str()), c.get(2).map(|m| m.as_str())) {
            (Some("early"), Some("morning")) => DayPart::Between(t(0, 0), t(10, 0)),
            (Some("mid"), Some("morning")) => DayPart::Between(t(9, 30), t(11, 30)),
            (Some(_), Some("morning")) => DayPart::Between(t(10, 0), t(12, 0)),
            (Some("early"), Some("afternoon")) => DayPart::Between(t(12, 0), t(15, 0)),
            (Some("mid"), Some("afternoon")) => DayPart::Between(t(13, 30), t(16, 0)),
            (Some(_), Some("afternoon")) => DayPart::Between(t(15, 0), t(18, 0)),
            (Some("early"), Some(_)) => DayPart::Between(t(17, 0), t(19, 0)),
            (Some(_), Some(_)) => DayPart::Between(t(19, 0), t(23, 59)),
            _ if whole.as_str().contains("lunch") => DayPart::Between(t(11, 30), t(14, 0)),
            _ if whole.as_str().contains("first thing") => DayPart::Morning,
            _ => DayPart::After(t(16, 0)),
        };
        day_part = Some(part);
        consume(work, whole.start(), whole.end());
    }

    let mut weak = false;
    if found.is_none()
        && let Some(c) = FRACTION_TIME.captures(work)
    {
        let whole = c.get(0).expect("group 0 always matches");
        let hour: u32 = c[2].parse().unwrap_or(99);
        let (h, m) = match &c[1] {
            "half past" | "half after" => (hour, 30),
            s if s.ends_with("past") || s.ends_with("after") => (hour, 15),
            _ => (
                if hour == 1 {
                    12
                } else {
                    hour.saturating_sub(1)
                },
                45,
            ),
        };
        let pm = adjacent_part(work, whole.start(), whole.end()).or(global_meridiem(h, global_pm));
        // "quarter to 1" is 12:45, which is pm; keep the hour of the spoken number for am/pm.
        let pm = if h == 12 && pm.is_none() {
            Some(true)
        } else {
            pm
        };
        found = if (1..=12).contains(&hour) {
            to_time(h, m, pm)
        } else {
            None
        };
        if found.is_some() {
            consume(work, whole.start(), whole.end());
        }
    }
    if found.is_none() {
        for c in CLOCK_TIME.captures_iter(&work.clone()) {
            let whole = c.get(0).expect("group 0 always matches");
            let h_m = c.get(1).expect("group 1 always matches");
            let minutes_end = c.get(2).expect("group 2 always matches").end();
            let before = work[..h_m.start()].chars().next_back();
            let after = work[minutes_end..].chars().next();
            if matches!(before, Some(c) if c.is_ascii_digit() || "$£€#-/.".contains(c))
                || after.is_some_and(|c| c.is_ascii_digit())
                || QUANTITY.is_match(&work[minutes_end..])
            {
                continue;
            }
            if work[whole.end()..].starts_with(['.', ':'])
                && work[whole.end()..]
                    .chars()
                    .nth(1)
                    .is_some_and(|c| c.is_ascii_digit())
            {
                continue;
            }
            let (h, m): (u32, u32) = (c[1].parse().unwrap_or(99), c[2].parse().unwrap_or(99));
            let pm = meridiem_of(c.get(3).map(|m| m.as_str()))
                .or_else(|| adjacent_part(work, whole.start(), whole.end()))
                .or(global_meridiem(h, global_pm));
            // "07:30" with a leading zero is 24-hour notation: no afternoon reading.
            let pm = if c[1].len() == 2 && c[1].starts_with('0') {
                pm.or(Some(false))
            } else {
                pm
            };
            if let Some(t) = to_time(h, m, pm) {
                found = Some(t);
                consume(work, whole.start(), whole.end());
                break;
            }
        }
    }
    if found.is_none() {
        for c in HOUR_MERIDIEM.captures_iter(&work.clone()) {
            let whole = c.get(0).expect("group 0 always matches");
            let num = c.get(1).expect("group 1 always matches");
            let before = work[..num.start()].chars().next_back();
            if matches!(before, Some(c) if c.is_ascii_digit() || "$£€#-/.".contains(c)) {
                continue;
            }
            let h: u32 = c[1].parse().unwrap_or(99);
            let m: u32 = c
                .get(2)
                .map(|m| m.as_str().parse().unwrap_or(99))
                .unwrap_or(0);
            let pm = meridiem_of(Some(&c[3]))
                .or_else(|| adjacent_part(work, whole.start(), whole.end()))
                .or(global_meridiem(h, global_pm));
            if (h <= 12 || c[3].starts_with('o'))
                && let Some(t) = to_time(h, m, pm)
            {
                found = Some(t);
                consume(work, whole.start(), whole.end());
                break;
            }
        }
    }
    if found.is_none() {
        // "10 45", "9 05" (spoken "ten forty-five", "nine oh five").
        for c in SPOKEN.captures_iter(&work.clone()) {
            let whole = c.get(0).expect("group 0 always matches");
            let (h, m): (u32, u32) = (c[1].parse().unwrap_or(99), c[2].parse().unwrap_or(99));
            let hour = c.get(1).expect("group 1");
            let before = work[..hour.start()].chars().next_back();
            if !(1..=12).contains(&h)
                || m >= 60
                || m % 5 != 0
                || matches!(before, Some(c) if c.is_ascii_digit() || "$£€#-/.:".contains(c))
                || !free_number(work, c.get(2).expect("group 2").start(), whole.end())
            {
                continue;
            }
            let pm =
                adjacent_part(work, whole.start(), whole.end()).or(global_meridiem(h, global_pm));
            if let Some(t) = to_time(h, m, pm) {
                found = Some(t);
                consume(work, whole.start(), whole.end());
                break;
            }
        }
    }
    if found.is_none()
        && let Some(m) = NOON.find(work)
    {
        found = NaiveTime::from_hms_opt(if m.as_str() == "midnight" { 0 } else { 12 }, 0, 0);
        consume(work, m.start(), m.end());
    }
    if found.is_none()
        && let Some(c) = MILITARY.captures(work)
    {
        let whole = c.get(0).expect("group 0 always matches");
        // "at 1234 Main St" is an address: a 24-hour time is followed by nothing or a
        // word that goes with times.
        let next_word = work[whole.end()..]
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap_or("");
        let time_like = next_word.is_empty()
            || [
                "on", "tomorrow", "today", "tonight", "please", "hours", "hrs", "then", "instead",
                "or", "and", "for", "the", "this", "next", "if", "would", "works", "is", "thanks",
                "thank",
            ]
            .contains(&next_word)
            || weekday_of(next_word).is_some();
        if time_like && free_number(work, c.get(1).expect("group 1").start(), whole.end()) {
            // Already 24-hour: no am/pm reading.
            let (h, m): (u32, u32) = (c[1].parse().unwrap_or(99), c[2].parse().unwrap_or(99));
            found = NaiveTime::from_hms_opt(h, m, 0);
            consume(work, whole.start(), whole.end());
        }
    }
    if found.is_none() {
        for c in HOUR_IN_PART.captures_iter(&work.clone()) {
            let num = c.get(1).expect("group 1 always matches");
            if !free_number(work, num.start(), num.end()) {
                continue;
            }
            let h: u32 = num.as_str().parse().unwrap_or(99);
            let pm = adjacent_part(work, num.start(), num.end());
            if (1..=12).contains(&h) {
                found = to_time(h, 0, pm);
                consume(work, num.start(), num.end());
                break;
            }
        }
    }
    if found.is_none() {
        for c in PREP_HOUR.captures_iter(&work.clone()) {
            let num = c.get(1).expect("group 1 always matches");
            if !free_number(work, num.start(), num.end()) {
                continue;
            }
            let h: u32 = num.as_str().parse().unwrap_or(99);
            let pm = adjacent_part(work, num.start(), num.end()).or(global_meridiem(h, global_pm));
            let prep = &c[0][..c[0].len() - num.len()].trim();
            // "for 3" is a time when a time is expected or when nothing follows the number
            // that could make it a count ("for 3 please", "for 3?").
            let next_word = work[num.end()..]
                .split(|c: char| !c.is_alphanumeric())
                .find(|w| !w.is_empty())
                .unwrap_or("");
            let closes = next_word.is_empty()
                || [
                    "please", "then", "instead", "tomorrow", "today", "on", "this", "next",
                ]
                .contains(&next_word)
                || weekday_of(next_word).is_some();
            if matches!(*prep, "for" | "to" | "like" | "do" | "or")
                && !matches!(expecting, Some(Slot::Time | Slot::Option))
                && !closes
            {
                continue;
            }
            if (1..=12).contains(&h) || (*prep == "at" && h < 24) {
                found = to_time(h, 0, pm);
                if found.is_some() {
                    weak = true;
                    consume(work, num.start(), num.end());
                    break;
                }
            }
        }
    }
    if found.is_none() {
        // A message that is only a number: "3", "3?", "maybe 4", "1 is fine", "4 works". Sara
        // never numbers the times she offers, so the number is a clock hour, not a pick.
        let mut trimmed = work
            .trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .trim_start_matches("maybe ")
            .trim_start_matches("how about ")
            .trim_start_matches("what about ")
            .trim();
        for accepting in [
            " is fine",
            " is good",
            " is ok",
            " is okay",
            " is great",
            " is perfect",
            " works",
            " please",
        ] {
            trimmed = trimmed.strip_suffix(accepting).unwrap_or(trimmed).trim();
        }
        if let Ok(h) = trimmed.parse::<u32>() {
            if (1..=12).contains(&h)
                && (expecting.is_none()
                    || matches!(expecting, Some(Slot::Time | Slot::Option | Slot::Date)))
                && expecting != Some(Slot::Date)
            {
                found = to_time(h, 0, global_meridiem(h, global_pm));
                weak = true;
            } else if trimmed.len() == 4 && matches!(expecting, Some(Slot::Time | Slot::Option)) {
                found = NaiveTime::from_hms_opt(h / 100, h % 100, 0);
            }
            if found.is_some() {
                let len = work.len();
                consume(work, 0, len);
            }
        }
    }
    if day_part.is_none()
        && found.is_none()
        && let Some(c) = PART.captures(work)
    {
        day_part = Some(match &c[1] {
            "morning" => DayPart::Morning,
            "afternoon" => DayPart::Afternoon,
            _ => DayPart::Evening,
        });
    }
    (found, day_part, weak)
}

/// The am/pm a part of day named elsewhere in the message gives an hour: "afternoon" makes any
/// hour before 12 pm, but "morning" only claims 5–11 ("this morning I called, can I come at
/// 3" still means 3 pm).
fn global_meridiem(hour: u32, global_pm: Option<bool>) -> Option<bool> {
    match global_pm {
        Some(true) if hour < 12 => Some(true),
        Some(false) if (5..=11).contains(&hour) => Some(false),
        _ => None,
    }
}

/// "2", "2pm", "2:30", "noon" as a bound for "after"/"before".
fn parse_loose_time(s: &str, global_pm: Option<bool>) -> Option<NaiveTime> {
    let s = s.trim();
    if s == "noon" || s == "midday" {
        return NaiveTime::from_hms_opt(12, 0, 0);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let h: u32 = s[..digits_end].parse().ok()?;
    let rest = &s[digits_end..];
    let (m, rest) = match rest.strip_prefix([':', '.']) {
        Some(r) => {
            let m_end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (r[..m_end].parse().ok()?, &r[m_end..])
        }
        None => (0, rest),
    };
    let pm = meridiem_of(Some(rest.trim())).or(global_meridiem(h, global_pm));
    if h > 23 {
        return None;
    }
    to_time(h, m, pm)
}
