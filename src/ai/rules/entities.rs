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
/// "tomorrow 3pm Amy Wu": two or three capitalised words right after a clock time, closing
/// the message.
static NAME_AFTER_TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i:\d\s*(?:am|pm|a\.m\.|p\.m\.)|\d:\d\d|noon)\s+(\p{Lu}\p{Ll}+(?:\s+\p{Lu}\p{Ll}+){1,2})\s*[.!]?\s*$",
    )
});
/// "its jake ross", "im sam ortiz": a short message that is only a lead and a name, typed in
/// lower case.
static NAME_LOOSE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\s*(?:hi|hey|hello)?[\s,]*(?:it's|its|it is|this is|i'm|im|i am|name'?s|me,?)\s+([\p{L}][\p{L}'-]+(?:\s+[\p{L}][\p{L}'-]+){1,2})\s*[.!]?\s*$",
    )
});
/// "…, name Ahmed Khan", "name: kate moss": the bare word "name" opening a clause.
static NAME_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:^|[,.;:!?]\s*|\s[-–—]+\s*|\band\s+)name\s*:?\s+([\p{L}][\p{L}'-]*(?:\s+[\p{L}][\p{L}'-]*){0,3})",
    )
});
/// Where a loosely placed name may start: behind "it's", "this is", "for", or a break
/// ("…at 4pm, its jake ross", "… for mark twain thx", "… - susan lee").
static NAME_POINT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\b(?:it's|its|this is|i'm|im|i am|for)\s+|[.?!,;\n]\s*|\s[-–—~]+\s*")
});
/// Two or three words closing the message, in any case, maybe signed off with a "thx".
static NAME_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^([\p{L}][\p{L}'-]+(?:\s+[\p{L}][\p{L}'-]+){1,2}?)(?:[\s,]+(?:thx|thanks|thank you|ty|pls|please|cheers|ta|x+))?\s*[.!]*\s*$",
    )
});
/// A name spelled out as a recognizer writes it: three or more single letters apart ("J A K
/// E"), maybe a second spelled word after a comma or full stop ("J A K E, R O S S").
static SPELLED: LazyLock<Regex> =
    LazyLock::new(|| re(r"(^|[\s,:;])(\p{L}(?:\s+\p{L}\b){2,}(?:[,.]?\s+\p{L}(?:\s+\p{L}\b)+)*)"));
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

/// Everyday words a lower-case name never holds: with [`COMMON`] and [`NOT_NAMES`], what
/// a loosely placed name ("for mark twain", "- susan lee") is checked against.
const EVERYDAY: &[&str] = &[
    "and",
    "or",
    "but",
    "if",
    "so",
    "is",
    "are",
    "was",
    "were",
    "be",
    "am",
    "do",
    "does",
    "did",
    "have",
    "has",
    "had",
    "can",
    "could",
    "will",
    "would",
    "should",
    "may",
    "might",
    "must",
    "shall",
    "i",
    "you",
    "he",
    "she",
    "we",
    "they",
    "him",
    "her",
    "them",
    "us",
    "my",
    "your",
    "his",
    "their",
    "our",
    "its",
    "it's",
    "what",
    "where",
    "when",
    "how",
    "why",
    "who",
    "which",
    "there",
    "here",
    "any",
    "anything",
    "something",
    "nothing",
    "some",
    "one",
    "two",
    "next",
    "last",
    "this",
    "that",
    "these",
    "those",
    "of",
    "with",
    "from",
    "by",
    "up",
    "down",
    "out",
    "off",
    "over",
    "after",
    "before",
    "later",
    "earlier",
    "soon",
    "sooner",
    "asap",
    "instead",
    "too",
    "also",
    "just",
    "only",
    "then",
    "than",
    "maybe",
    "call",
    "come",
    "go",
    "get",
    "got",
    "see",
    "make",
    "take",
    "want",
    "need",
    "like",
    "book",
    "move",
    "change",
    "cancel",
    "keep",
    "parking",
    "park",
    "price",
    "prices",
    "insurance",
    "hours",
    "open",
    "lunch",
    "noon",
    "midday",
    "night",
    "day",
    "days",
    "weekend",
    "mins",
    "minutes",
    "hour",
    "hours",
    "o'clock",
    "half",
    "quarter",
    "past",
    "ish",
    "around",
    "about",
    "please",
    "thanks",
    "thx",
    "cheers",
    "ta",
    "bye",
    "goodbye",
    "later",
    "lovely",
    "wonderful",
    "brilliant",
    "cool",
    "awesome",
    "yes",
    "yeah",
    "yep",
    "no",
    "nope",
    "nah",
    "ok",
    "okay",
    "sure",
    "fine",
    "well",
    "oh",
    "wait",
    "actually",
    "sorry",
    "nvm",
    "never",
    "mind",
    "teeth",
    "tooth",
    "clean",
    "check",
    "checkup",
    "visit",
    "session",
    "ill",
    "i'll",
    "id",
    "i'd",
    "im",
    "dont",
    "don't",
    "cant",
    "can't",
    "wont",
    "won't",
    "poss",
    "possible",
    "if",
    "works",
    "work",
    "good",
    "great",
    "thing",
    "first",
    "second",
    "third",
    "earliest",
    "latest",
    "whichever",
    "either",
    "both",
    "son",
    "daughter",
    "wife",
    "husband",
    "kid",
    "kids",
    "child",
    "mum",
    "mom",
    "dad",
];

/// Whether a lower-case word is an everyday word, not a name.
fn everyday(lower: &str) -> bool {
    EVERYDAY.contains(&lower) || COMMON.contains(&lower) || NOT_NAMES.contains(&lower)
}

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

/// The caller's name, title-cased when typed in lower case. Spelled letters are read as the
/// words they spell ("my name is J A K E" → "Jake").
pub(super) fn name(original: &str, expecting: Option<Slot>, services: &[String]) -> Option<String> {
    let joined = joined_letters(original);
    let original = joined.as_ref();
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
    if let Some(c) = NAME_AFTER_TIME.captures(original)
        && !c[1]
            .split_whitespace()
            .any(|w| super::datetime::names_a_day(&w.to_lowercase()) || everyday(&w.to_lowercase()))
        && let Some(n) = loose_name(&c[1], services, false)
    {
        return Some(n);
    }
    if let Some(c) = NAME_LABEL.captures(original)
        && let Some(n) = clean_name(&c[1], true)
    {
        return Some(n);
    }
    for point in NAME_POINT.find_iter(original) {
        if let Some(c) = NAME_TAIL.captures(&original[point.end()..])
            // After a full stop a capital is the sentence's, not a name's ("Thanks! See ya").
            && let Some(n) = loose_name(&c[1], services, point.as_str().contains(['.', '?', '!']))
        {
            return Some(n);
        }
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
        // "yes, and is there parking?" answers something else.
        if rest.split_whitespace().count() <= 4 && !rest.contains(['@', '?']) {
            return clean_name(rest, true);
        }
    }
    None
}

/// A whole message that is two or three words and nothing but a name ("maya chen", "Jo
/// Park thx"): none of them an everyday word, a service, a day or a number.
pub(super) fn bare_name(original: &str, services: &[String]) -> Option<String> {
    let c = NAME_TAIL.captures(original.trim())?;
    loose_name(&c[1], services, true)
}

/// Each run of spelled letters as one word ("J A K E, R O S S" → "Jake Ross"; one run of
/// letters is one word: where a caller spelled two names in one breath, the spell-back is
/// where they hear it and correct it).
fn joined_letters(text: &str) -> std::borrow::Cow<'_, str> {
    SPELLED.replace_all(text, |c: &regex::Captures| {
        let word = c[2]
            .split([',', '.'])
            .map(|run| {
                let word: String = run.split_whitespace().collect::<String>().to_lowercase();
                title(&word)
            })
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        format!("{}{word}", &c[1])
    })
}

/// Two or three words placed loosely (no "my name is"): a name only when none of them is an
/// everyday word, a service, a day or a number, whatever the case they are typed in.
fn loose_name(raw: &str, services: &[String], sentence_start: bool) -> Option<String> {
    let words: Vec<&str> = raw.split_whitespace().collect();
    if !(2..=3).contains(&words.len())
        || words.iter().enumerate().any(|(i, w)| {
            let lower = w.to_lowercase();
            if i == 0 && sentence_start && everyday(&lower) {
                return true;
            }
            // "for Jin Park": a capitalised word may be an everyday one ("Park", "Long").
            let capitalised =
                w.starts_with(char::is_uppercase) && !NOT_NAMES.contains(&lower.as_str());
            (!capitalised && everyday(&lower)) || looks_like_service(&lower, services)
        })
    {
        return None;
    }
    clean_name(raw, true).filter(|n| n.split_whitespace().count() == words.len())
}

/// A word that is (or is a typo of) a word of a configured service: "cleening" is no surname.
fn looks_like_service(lower: &str, services: &[String]) -> bool {
    services
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_lowercase)
        .chain(["appointment".to_string()])
        .any(|s| {
            lower.chars().count() >= 4
                && lower.chars().next() == s.chars().next()
                && (s.starts_with(lower) || edit_distance(lower, &s) <= 2)
        })
}

/// Keeps the leading name-like words; `None` when the first word is not a name.
fn clean_name(raw: &str, any_case: bool) -> Option<String> {
    let mut words = Vec::new();
    for word in raw.split_whitespace() {
        let w = word.trim_matches(|c: char| !c.is_alphabetic());
        let lower = w.to_lowercase();
        if w.is_empty()
            || NOT_NAMES.contains(&lower.as_str())
            || (!w.starts_with(char::is_uppercase)
                && if words.is_empty() {
                    everyday(&lower)
                } else {
                    COMMON.contains(&lower.as_str())
                })
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
