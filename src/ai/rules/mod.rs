//! The rule NLU: keyword and pattern understanding of a message, with no model and no I/O.
//!
//! Act order (the policy acts on the first it can use; the eval scores the first):
//! hand-over, out of scope, cancel, choose, inform (a date/time/name/email was given),
//! reschedule, other options, book, question, deny, affirm, thanks, goodbye, greet.
//! A message that gives a date or time therefore leads with `Inform` and carries `Book` /
//! `Reschedule` after it: the policy should check `has(Act::Book)` rather than only `primary()`.

mod acts;
mod datetime;
mod entities;
#[cfg(test)]
mod tests;

use chrono::{DateTime, NaiveDate, Offset};
use chrono_tz::Tz;
use sara_actors::ports::{BoxFuture, Nlu, NluError};
use sara_actors::understanding::{Act, NluContext, NluSource, Slot, Understanding};

/// Only this many characters of a message are read: a longer message is cut, never refused.
const MAX_CHARS: usize = 2_000;

/// Keyword and pattern understanding, tuned for appointment booking.
#[derive(Clone, Debug)]
pub struct RuleNlu {
    services: Vec<String>,
}

impl RuleNlu {
    /// `services` are the business's service names as they should be reported.
    pub fn new(services: Vec<String>) -> RuleNlu {
        RuleNlu { services }
    }

    /// Understands one message. Never panics; reads at most the first 2,000 characters.
    /// A message making two requests ("cancel Thursday's cleaning and book me a whitening
    /// Monday") is read as the first, with the second in `then`.
    pub fn understand(&self, text: &str, ctx: &NluContext) -> Understanding {
        let original: String = text.chars().take(MAX_CHARS).collect();
        if let Some(at) = second_request(&original) {
            let (head, tail) = original.split_at(at);
            let first = self.understand_one(head, ctx);
            let second = self.understand_one(tail, ctx);
            let starts = |u: &Understanding| {
                u.acts
                    .iter()
                    .find(|a| matches!(a, Act::Book | Act::Cancel | Act::Reschedule))
                    .copied()
            };
            // "Cancel my whitening and rebook it for Friday" is one move.
            if starts(&first) == Some(Act::Cancel) && starts(&second) == Some(Act::Reschedule) {
                let mut moved = second;
                moved.service = moved.service.or(first.service);
                moved.confidence = moved.confidence.min(first.confidence);
                return moved;
            }
            if let (Some(a), Some(b)) = (starts(&first), starts(&second))
                && a != b
            {
                let mut first = first;
                first.confidence = first.confidence.min(second.confidence);
                first.then = Some(Box::new(second));
                return first;
            }
        }
        self.understand_one(&original, ctx)
    }

    fn understand_one(&self, text: &str, ctx: &NluContext) -> Understanding {
        let original = text.to_string();
        let norm = normalise(&original);
        let services = if self.services.is_empty() {
            &ctx.services
        } else {
            &self.services
        };

        let mut moment = datetime::extract(
            &entities::without_greeting(&norm),
            local_date(&ctx.now),
            ctx.expecting,
        );
        // Something about when went unread: the reading may be wrong, so say nothing about
        // when rather than something wrong; the policy asks again, the router asks the model.
        if moment.unclear {
            moment.time = None;
            moment.day_part = None;
            moment.shift = None;
            if moment.unclear_day {
                moment.date = None;
            }
        }
        let service = entities::service(&norm, services);
        let email = entities::email(&original);
        // A message giving a date or time is not a bare name ("actually make it 2pm").
        let gives_moment = moment.unclear
            || moment.earliest
            || moment.date.is_some()
            || moment.time.is_some()
            || moment.day_part.is_some()
            || moment.shift.is_some();
        let name_expected = ctx.expecting.filter(|_| !gives_moment);
        let mut name = entities::name(&original, name_expected, services);
        // A bare name while the request still lacks one: "Maya Chen" when Sara asked the time.
        if name.is_none()
            && name_expected.is_some_and(|slot| slot != Slot::Confirmation)
            && ctx.facts.request.is_some()
            && ctx.facts.name.is_none()
        {
            name = entities::bare_name(&original, services);
        }
        let choice = entities::choice(&norm, ctx.expecting);

        let cues = acts::Cues {
            informs: gives_moment || name.is_some() || email.is_some(),
            service: service.is_some(),
            choice: choice.is_some(),
            // "Sooner if possible" while times are offered or proposed asks for others.
            lean: moment.lean.is_some()
                && matches!(
                    ctx.expecting,
                    Some(Slot::Option | Slot::Confirmation | Slot::Time)
                ),
            confirming: ctx.expecting == Some(Slot::Confirmation)
                || (ctx.expecting.is_none() && ctx.prompt.as_deref().is_some_and(asks_yes_no)),
        };
        // A name is not a keyword: "Jo Park" asks nothing about parking.
        // Only a name written as one (capitalised) is set aside: a lower-case answer read as
        // a name because a name was asked for may still be a request.
        let written_as_name = |n: &str| {
            n.split_whitespace().all(|w| {
                original
                    .split_whitespace()
                    .any(|o| o.trim_matches(|c: char| !c.is_alphanumeric()) == w)
            })
        };
        let acts_text = match &name {
            Some(n) if written_as_name(n) => without_words(&norm, &n.to_lowercase()),
            _ => norm.clone(),
        };
        let mut acts = acts::detect(&acts_text, cues);
        // "When do you close today?": the day belongs to the question, not to a booking.
        let faq_only = acts.contains(&Act::Question)
            && !acts.iter().any(|a| {
                matches!(
                    a,
                    Act::Book | Act::Reschedule | Act::Cancel | Act::Choose | Act::OtherOptions
                )
            })
            && name.is_none()
            && email.is_none()
            && service.is_none()
            && acts::names_faq_topic(&acts_text);
        if faq_only {
            acts.retain(|a| *a != Act::Inform);
            moment = datetime::Moment::default();
        }
        if let Some(act) = ctx.prompt.as_deref().and_then(|p| reply_keyword(p, &norm)) {
            acts.retain(|a| *a != act);
            acts.insert(0, act);
        }
        // Keywords read short messages well; a long one likely says more than they catch.
        let long = norm.split_whitespace().count() > 30;
        let confidence = match acts.first() {
            _ if moment.unclear => 0.4,
            None => 0.2,
            Some(Act::Inform) if moment.weak_time && moment.date.is_none() => 0.6,
            Some(_) if long => 0.6,
            Some(_) => 0.85,
        };
        Understanding {
            staff: None,
            acts,
            service,
            date: moment.date,
            time: moment.time,
            day_part: moment.day_part,
            name,
            email,
            choice,
            same_time: has_phrase(&norm, "same time"),
            next_week: moment.date.is_none()
                && moment.shift.is_none()
                && has_phrase(&norm, "next week"),
            shift: moment.shift,
            lean: moment.lean,
            earliest: moment.earliest,
            unclear_when: moment.unclear,
            then: None,
            reminder: None,
            faq_answer: None,
            confidence,
            source: NluSource::Rules,
        }
    }
}

impl Nlu for RuleNlu {
    fn understand<'a>(
        &'a self,
        text: &'a str,
        ctx: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>> {
        let understanding = RuleNlu::understand(self, text, ctx);
        Box::pin(async move { Ok(understanding) })
    }

    fn name(&self) -> &'static str {
        "rules"
    }

    fn answers_at_once(&self) -> bool {
        true
    }
}

/// The local date of `now`. `DateTime::date_naive` panics when the local time falls outside
/// chrono's range (the first or last hours of it, with a time zone offset); the UTC date is
/// used there instead.
fn local_date(now: &DateTime<Tz>) -> NaiveDate {
    let utc = now.naive_utc();
    utc.checked_add_offset(now.offset().fix())
        .unwrap_or(utc)
        .date()
}

/// Where a second request starts: "… and book me a whitening Monday", "…, then cancel …".
fn second_request(text: &str) -> Option<usize> {
    static JOIN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)(?:,|\.|;|\band\b|\bthen\b|\balso\b)\s*(?:then\s+|also\s+|instead\s+|please\s+|can you\s+|could you\s+|i'?d like to\s+|i want to\s+|i need to\s+)*(?:book|re-?book|put me|schedule|make (?:me )?an?|get me|set me up|sign me up|i'?d like an?|i want an?|i need an?|re-?schedule|move|cancel|change)\b",
        )
        .expect("built-in pattern is valid")
    });
    JOIN.find_iter(text)
        .map(|m| m.start())
        .find(|&i| i > 0 && text[..i].split_whitespace().count() >= 2)
}

/// "Reply C to confirm, R to change it or X to cancel": the act a one-word answer picks
/// from the keywords Sara's line offered.
fn reply_keyword(prompt: &str, norm: &str) -> Option<Act> {
    let word = norm.trim().trim_matches(|c: char| !c.is_alphanumeric());
    if word.is_empty() || word.contains(char::is_whitespace) || word.chars().count() > 8 {
        return None;
    }
    let p = prompt.to_lowercase();
    let at = p.find("reply ")?;
    let offered = &p[at + "reply ".len()..];
    for option in offered.split([',', ';']).flat_map(|s| s.split(" or ")) {
        let option = option.trim();
        let (key, rest) = option.split_once(' ')?;
        if key.trim_matches(|c: char| !c.is_alphanumeric()) != word {
            continue;
        }
        let verb = rest.trim_start_matches("to ").trim();
        return Some(if verb.starts_with("confirm") || verb.starts_with("keep") {
            Act::Affirm
        } else if verb.starts_with("cancel") {
            Act::Cancel
        } else if ["change", "move", "reschedule", "rebook"]
            .iter()
            .any(|v| verb.starts_with(v))
        {
            Act::Reschedule
        } else {
            continue;
        });
    }
    None
}

/// Whether Sara's line asks a yes/no question about one thing ("Shall I book it?").
fn asks_yes_no(prompt: &str) -> bool {
    let p = prompt.to_lowercase();
    let last = p
        .rsplit(['.', '!'])
        .find(|s| !s.trim().is_empty())
        .unwrap_or(&p);
    last.trim_end().ends_with('?')
        && [
            "shall i",
            "should i",
            "would you like",
            "do you want",
            "want me to",
            "is that",
            "does that",
            "can i go ahead",
            "confirm",
            "is this",
            "okay?",
            "ok?",
            "right?",
        ]
        .iter()
        .any(|k| last.contains(k))
}

/// `norm` with each word of `words` blanked where it stands alone.
fn without_words(norm: &str, words: &str) -> String {
    let mut out = norm.to_string();
    for w in words.split_whitespace() {
        let mut from = 0;
        while let Some(i) = out[from..].find(w).map(|i| i + from) {
            let end = i + w.len();
            let before = out[..i].chars().next_back();
            let after = out[end..].chars().next();
            if !before.is_some_and(char::is_alphanumeric)
                && !after.is_some_and(char::is_alphanumeric)
            {
                out.replace_range(i..end, &" ".repeat(w.len()));
            }
            from = end;
        }
    }
    out
}

/// Whether `phrase` occurs in `norm` as whole words.
fn has_phrase(norm: &str, phrase: &str) -> bool {
    norm.match_indices(phrase).any(|(i, _)| {
        let before = norm[..i].chars().next_back();
        let after = norm[i + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Lower case, straight quotes, common typos fixed, number words as digits.
fn normalise(text: &str) -> String {
    let lower: String = text
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '`' | '´' => '\'',
            '\u{201C}' | '\u{201D}' => '"',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect();
    let lower = lower
        .replace("o\"clock", "o'clock")
        .replace("o clock", "o'clock");
    // "4ish", "10:30ish": the time, roughly.
    static ISH: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(\d)\s?-?ish\b").expect("built-in pattern is valid")
    });
    let lower = ISH.replace_all(&lower, "$1").into_owned();
    let tokens = split_keep(&lower);
    let words: Vec<&str> = tokens
        .iter()
        .map(|t| {
            if t.chars().next().is_some_and(char::is_alphabetic) {
                fix_typo(t)
            } else {
                t
            }
        })
        .collect();
    let mut out = String::with_capacity(lower.len() + 8);
    let mut previous = "";
    let alphabetic = |w: &str| w.chars().next().is_some_and(char::is_alphabetic);
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        if !alphabetic(word) {
            out.push_str(word);
            i += 1;
            continue;
        }
        let next = words[i + 1..]
            .iter()
            .find(|w| alphabetic(w))
            .copied()
            .unwrap_or("");
        // "forty-five", "twenty five": one number; "twenty-first" stays an ordinal.
        let joined = words.get(i + 1).is_some_and(|s| *s == "-" || *s == " ");
        if let (Some(tens), true) = (tens_word(word), joined)
            && let Some(unit) = words.get(i + 2).and_then(|w| unit_word(w))
        {
            out.push_str(&(tens + unit).to_string());
            previous = word;
            i += 3;
            continue;
        }
        // "nine oh five": the minutes of a spoken time.
        if matches!(word, "oh" | "o")
            && out.trim_end().ends_with(|c: char| c.is_ascii_digit())
            && words.get(i + 1) == Some(&" ")
            && let Some(unit) = words.get(i + 2).and_then(|w| unit_word(w))
        {
            out.push_str(&format!("0{unit}"));
            previous = word;
            i += 3;
            continue;
        }
        let number = number_word(word).filter(|_| match word {
            "one" => is_number_one(previous, next),
            // "thirty-first", "twenty second" are days of the month.
            "twenty" | "thirty" => !is_ordinal_word(next),
            _ => true,
        });
        match number {
            Some(n) => out.push_str(n),
            None => out.push_str(word),
        }
        previous = word;
        i += 1;
    }
    out
}

fn tens_word(word: &str) -> Option<u32> {
    Some(match word {
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        _ => return None,
    })
}

fn unit_word(word: &str) -> Option<u32> {
    Some(match word {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    })
}

fn is_ordinal_word(word: &str) -> bool {
    matches!(
        word,
        "first"
            | "second"
            | "third"
            | "fourth"
            | "fifth"
            | "sixth"
            | "seventh"
            | "eighth"
            | "ninth"
    )
}

/// "one" is the number only next to time words or after a preposition of time; "that one",
/// "need one", "look for one" are pronouns.
fn is_number_one(previous: &str, next: &str) -> bool {
    if matches!(
        next,
        "pm" | "am"
            | "o'clock"
            | "oclock"
            | "thirty"
            | "fifteen"
            | "forty"
            | "fifty"
            | "twenty"
            | "oh"
            | "in"
    ) {
        return true;
    }
    !matches!(
        previous,
        // "2nd one", "the 3rd one".
        "st" | "nd"
            | "rd"
            | "th"
            | "that"
            | "this"
            | "the"
            | "another"
            | "any"
            | "a"
            | "each"
            | "which"
            | "no"
            | "need"
            | "want"
            | "book"
            | "get"
            | "make"
            | "schedule"
            | "have"
            | "second"
            | "first"
            | "third"
            | "last"
            | "other"
            | "earlier"
            | "later"
            | "next"
            | "every"
            | "some"
            | "new"
            | "set"
            | "one"
            | "for"
            | "like"
            | "find"
            | "pick"
            | "choose"
            | "take"
    )
}

/// Splits into alternating runs of word characters (letters, apostrophes) and the rest.
fn split_keep(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_word: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let w = c.is_alphabetic() || c == '\'';
        if in_word.is_some_and(|prev| prev != w) {
            parts.push(&text[start..i]);
            start = i;
        }
        in_word = Some(w);
    }
    if start < text.len() {
        parts.push(&text[start..]);
    }
    parts
}

fn fix_typo(word: &str) -> &str {
    match word {
        "tmrw" | "tmr" | "tmrow" | "tomorow" | "tommorow" | "tommorrow" | "tomorrw" | "tomrrow"
        | "tomoro" | "tomorro" | "tommorw" | "tomm" => "tomorrow",
        "tdy" | "todya" => "today",
        "thrusday" | "thursay" | "thurday" | "thurs" | "thur" | "thu" => "thursday",
        "wendesday" | "wednsday" | "wensday" | "wedensday" | "wednesdy" | "weds" | "wed" => {
            "wednesday"
        }
        "tues" | "tue" | "tuseday" | "teusday" => "tuesday",
        "munday" | "mon" => "monday",
        "firday" | "fri" | "fryday" => "friday",
        "saturady" | "satuday" | "saterday" => "saturday",
        "sundy" => "sunday",
        "teh" | "hte" => "the",
        "apointment" | "appintment" | "appoinment" | "appt" | "appointmnet" | "appontment" => {
            "appointment"
        }
        "pls" | "plz" => "please",
        "thx" | "thanx" | "thnx" | "ty" => "thanks",
        "u" => "you",
        _ => word,
    }
}

fn number_word(word: &str) -> Option<&'static str> {
    Some(match word {
        "one" => "1",
        "two" => "2",
        "three" => "3",
        "four" => "4",
        "five" => "5",
        "six" => "6",
        "seven" => "7",
        "eight" => "8",
        "nine" => "9",
        "ten" => "10",
        "eleven" => "11",
        "twelve" => "12",
        "thirteen" => "13",
        "fourteen" => "14",
        "sixteen" => "16",
        "seventeen" => "17",
        "eighteen" => "18",
        "nineteen" => "19",
        // Minutes after an hour word: "five thirty pm", "ten forty".
        "fifteen" => "15",
        "twenty" => "20",
        "thirty" => "30",
        "forty" | "fourty" => "40",
        "fifty" => "50",
        _ => return None,
    })
}
