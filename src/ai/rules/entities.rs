//! Non-time slots in a message: service, caller name, email address and option choice.

use std::sync::LazyLock;

use regex::Regex;
use sara_actors::understanding::Slot;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in pattern is valid")
}

static GREETING: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^\s*(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|greetings|howdy)\b[\s,.!]*")
});
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}"));
/// "my name is Sam Ortiz": the lead phrase is enough, case of the name does not matter.
static NAME_STRONG: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:my name is|my name's|name is|name's|call me|the name is)\s+([\p{L}][\p{L}'-]*(?:\s+[\p{L}][\p{L}'-]*){0,3})",
    )
});
/// "it's Maria Lopez", "this is Jo Park", "I'm Sam": the name must be capitalised.
static NAME_WEAK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i:\b(?:it's|its|it is|this is|i'm|i am|im)\s+)(\p{Lu}[\p{L}'-]*(?:\s+\p{Lu}[\p{L}'-]*){0,3})",
    )
});
/// "Can I come in Monday at 9? Jo Park": two or three capitalised words closing the message
/// after a sentence break.
static NAME_TRAILING: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?:[.?!,;\n]|\s[-–—~]+)\s*(\p{Lu}\p{Ll}+(?:[\s-]+\p{Lu}\p{Ll}+){1,2})\s*[.!]?\s*$")
});
/// "its jake ross", "im sam ortiz": a short message that is only a lead and a name, typed in
/// lower case.
static NAME_LOOSE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\s*(?:hi|hey|hello)?[\s,]*(?:it's|its|it is|this is|i'm|im|i am|name'?s|me,?)\s+([\p{L}][\p{L}'-]+(?:\s+[\p{L}][\p{L}'-]+){1,2})\s*[.!]?\s*$",
    )
});
static LEAD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\s*(?:my name is|my name's|name is|name's|it's|it is|this is|i'm|i am|sure|yes|yeah|ok|okay)[\s,:]+",
    )
});
static CHOICE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:(?:\boption|\bnumber|\bchoice|#)\s*(\d{1,2})\b|\b(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th)\s+(?:one|option|choice|slot|time|opening|appointment)|(?:the\s+)?(earliest|latest|last) one)\b",
    )
});
static CHOICE_ALONE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^\s*(?:the\s+)?(first|second|third|fourth|fifth|1st|2nd|3rd|4th|5th)(?:\s+(?:one|please))?\s*[.!]?\s*$",
    )
});

/// Everyday words that a lower-case "its …" message may hold instead of a name.
const COMMON: &[&str] = &[
    "booked",
    "cancelled",
    "canceled",
    "fine",
    "okay",
    "ok",
    "late",
    "early",
    "too",
    "very",
    "not",
    "no",
    "about",
    "for",
    "my",
    "your",
    "the",
    "a",
    "an",
    "at",
    "on",
    "in",
    "to",
    "and",
    "or",
    "is",
    "be",
    "been",
    "going",
    "gonna",
    "fine",
    "good",
    "great",
    "perfect",
    "me",
    "again",
    "still",
    "now",
    "then",
    "there",
    "here",
    "that",
    "this",
    "it",
    "done",
    "all",
    "set",
    "sorted",
    "working",
    "closed",
    "open",
    "busy",
    "free",
    "available",
    "cleaning",
    "whitening",
    "consultation",
    "appointment",
    "time",
    "today",
    "tomorrow",
    "tonight",
    "morning",
    "afternoon",
    "evening",
    "week",
    "pm",
    "am",
    "please",
    "thanks",
    "thank",
    "you",
    "ready",
    "urgent",
    "important",
    "raining",
    "snowing",
    "hot",
    "cold",
    "weird",
    "confusing",
];

/// Words that follow "it's" / "I'm" but are not names.
const NOT_NAMES: &[&str] = &[
    "i",
    "a",
    "an",
    "the",
    "not",
    "no",
    "yes",
    "ok",
    "okay",
    "fine",
    "good",
    "great",
    "perfect",
    "correct",
    "right",
    "sure",
    "free",
    "available",
    "busy",
    "looking",
    "interested",
    "calling",
    "sorry",
    "here",
    "just",
    "also",
    "still",
    "booked",
    "done",
    "all",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "today",
    "tomorrow",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "that",
    "this",
    "it",
    "me",
    "hoping",
    "trying",
    "wondering",
    "thinking",
    "going",
    "new",
    "late",
    "running",
    "on",
    "in",
    "at",
    "for",
    "urgent",
    "about",
    "thanks",
    "thank",
    "hi",
    "hello",
    "hey",
    "so",
    "very",
    "really",
    "confused",
    "unable",
];

/// The message with a leading greeting removed ("good morning" is not a part of day).
pub(super) fn without_greeting(norm: &str) -> String {
    GREETING.replace(norm, "").into_owned()
}

pub(super) fn email(original: &str) -> Option<String> {
    EMAIL.find(original).map(|m| m.as_str().to_lowercase())
}

/// The caller's name, title-cased when typed in lower case.
pub(super) fn name(original: &str, expecting: Option<Slot>) -> Option<String> {
    if let Some(c) = NAME_STRONG.captures(original) {
        return clean_name(&c[1], true);
    }
    if let Some(c) = NAME_WEAK.captures(original)
        && let Some(n) = clean_name(&c[1], false)
    {
        return Some(n);
    }
    if let Some(c) = NAME_TRAILING.captures(original)
        && let Some(n) = clean_name(&c[1], false)
        && n.split_whitespace().count() >= 2
    {
        return Some(n);
    }
    if let Some(c) = NAME_LOOSE.captures(original)
        && let Some(n) = clean_name(&c[1], true)
        && n.split_whitespace().count() >= 2
        && !n
            .split_whitespace()
            .any(|w| COMMON.contains(&w.to_lowercase().as_str()))
    {
        return Some(n);
    }
    if expecting == Some(Slot::Name) {
        let rest = LEAD.replace(original, "");
        let rest = rest.trim().trim_end_matches(['.', '!', ',']);
        if rest.split_whitespace().count() <= 4 && !rest.contains('@') {
            return clean_name(rest, true);
        }
    }
    None
}

/// Keeps the leading name-like words; `None` when the first word is not a name.
fn clean_name(raw: &str, any_case: bool) -> Option<String> {
    let mut words = Vec::new();
    for word in raw.split_whitespace() {
        let w = word.trim_matches(|c: char| !c.is_alphabetic());
        let lower = w.to_lowercase();
        if w.is_empty()
            || NOT_NAMES.contains(&lower.as_str())
            || !w
                .chars()
                .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
            || (!any_case && !w.chars().next().is_some_and(char::is_uppercase))
        {
            break;
        }
        words.push(title(w));
        if word.ends_with([',', '.', '!', '?']) {
            break;
        }
    }
    if words.is_empty() {
        None
    } else {
        Some(words.join(" "))
    }
}

fn title(word: &str) -> String {
    if word.chars().any(char::is_uppercase) {
        return word.to_string();
    }
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The canonical service name the message mentions, matched loosely ("clean", "teeth
/// whitening", "consult").
pub(super) fn service(norm: &str, services: &[String]) -> Option<String> {
    let words: Vec<&str> = norm
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    services
        .iter()
        .find(|name| {
            let lower = name.to_lowercase();
            if lower.is_empty() {
                return false;
            }
            let phrase = lower.split_whitespace().collect::<Vec<_>>().join(" ");
            if contains_phrase(&words, &phrase) {
                return true;
            }
            // Any long enough word of the service name, by its stem.
            lower.split_whitespace().any(|part| {
                let stem = stem(part);
                stem.chars().count() >= 4 && words.iter().any(|w| stem_matches(w, &stem))
            })
        })
        .or_else(|| {
            // Typed in a hurry: "cleening", "whitning", "consultaion" — a word within a
            // small edit distance of a configured name's word, same first letter.
            services.iter().find(|name| {
                name.to_lowercase().split_whitespace().any(|part| {
                    let n = part.chars().count();
                    n >= 5
                        && words.iter().any(|w| {
                            let allowed = if n >= 9 { 2 } else { 1 };
                            w.chars().next() == part.chars().next()
                                && w.chars().count() >= 5
                                && w.chars().count().abs_diff(n) <= allowed
                                && edit_distance(w, part) <= allowed
                        })
                })
            })
        })
        .cloned()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

fn contains_phrase(words: &[&str], phrase: &str) -> bool {
    let target: Vec<&str> = phrase.split(' ').collect();
    !target.is_empty() && words.windows(target.len()).any(|w| w == target.as_slice())
}

fn stem(word: &str) -> String {
    for suffix in ["ations", "ation", "ings", "ing", "ments", "ment", "es", "s"] {
        if let Some(s) = word.strip_suffix(suffix)
            && s.chars().count() >= 4
        {
            return s.to_string();
        }
    }
    word.to_string()
}

fn stem_matches(word: &str, stem: &str) -> bool {
    word.starts_with(stem) && word.chars().count() <= stem.chars().count() + 6
}

/// 0-based pick among offered options: "the second one", "option 2", "first".
pub(super) fn choice(norm: &str, expecting: Option<Slot>) -> Option<usize> {
    let ordinal = |w: &str| -> Option<usize> {
        Some(match w {
            "first" | "1st" => 0,
            "second" | "2nd" => 1,
            "third" | "3rd" => 2,
            "fourth" | "4th" => 3,
            "fifth" | "5th" => 4,
            _ => return None,
        })
    };
    if let Some(c) = CHOICE.captures(norm) {
        if let Some(n) = c.get(1) {
            return n
                .as_str()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .map(|n| n - 1);
        }
        if let Some(w) = c.get(2) {
            return ordinal(w.as_str());
        }
        if let Some(w) = c.get(3) {
            // The earliest offered option is the first; "last" needs the option count.
            // "The last one" is counted from the end: `usize::MAX` is the last offered.
            return Some(if w.as_str() == "earliest" {
                0
            } else {
                usize::MAX
            });
        }
    }
    if let Some(c) = CHOICE_ALONE.captures(norm) {
        return ordinal(&c[1]);
    }
    if expecting == Some(Slot::Option) {
        let t = norm.trim().trim_end_matches(['.', '!']);
        if let Some(w) = t.strip_prefix("the ") {
            return ordinal(w.trim_end_matches(" one"));
        }
    }
    None
}
