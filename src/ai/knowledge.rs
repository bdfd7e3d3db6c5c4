//! The knowledge base: a BM25 ranker over the business FAQ plus entries derived from the
//! business itself (opening hours, services and prices), with a floor below which Sara says
//! she does not know rather than guess.

use std::collections::{HashMap, HashSet};

use chrono::Weekday;
use sara_actors::business::{Business, Faq};

/// BM25 term-frequency saturation.
const K1: f64 = 1.2;
/// BM25 length normalisation.
const B: f64 = 0.75;
/// The lowest score an answer needs; tuned so one shared content word is enough when it is
/// specific to one entry, while words found everywhere are not.
const MIN_SCORE: f64 = 0.9;

/// One answerable entry: the words it is found by and the answer given.
#[derive(Clone, Debug)]
struct Entry {
    terms: Vec<String>,
    answer: String,
}

/// Answers caller questions from the FAQ; `None` when nothing matches well enough.
#[derive(Clone, Debug)]
pub struct KnowledgeBase {
    entries: Vec<Entry>,
    /// Inverse document frequency per term.
    idf: HashMap<String, f64>,
    average_len: f64,
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "do", "does", "did", "you", "your",
    "yours", "i", "me", "my", "we", "our", "us", "it", "its", "it's", "of", "to", "in", "on", "at",
    "for", "and", "or", "can", "could", "would", "will", "shall", "should", "may", "might",
    "please", "what", "whats", "what's", "how", "when", "which", "who", "why", "there", "any",
    "have", "has", "had", "that", "this", "these", "those", "with", "about", "get", "tell", "know",
    "want", "like", "need", "hi", "hello", "hey", "thanks", "thank", "so", "just", "if", "from",
    "by", "im", "i'm", "id", "i'd", "some", "much", "many", "also", "here", "them", "they",
    "their", "he", "she", "his", "her", "am", "not", "no", "yes", "ok", "okay",
];

/// Folds a word onto the term its entry is indexed by ("parking" → "park", "cost" → "price").
fn canonical(word: &str) -> String {
    let stemmed = stem(word);
    let mapped = match stemmed.as_str() {
        "park" | "car" | "garag" | "lot" => "park",
        "cost" | "price" | "fee" | "charg" | "charge" | "expens" | "cheap" | "rate" | "pay"
        | "dollar" => "price",
        "where" | "address" | "locat" | "direction" | "find" | "street" => "address",
        "open" | "hour" | "clos" | "close" | "weekend" | "saturday" | "sunday" => "hours",
        "cancel" | "cancell" | "cancellat" => "cancel",
        "servic" | "service" | "offer" | "treatment" | "provid" => "service",
        other => other,
    };
    mapped.to_string()
}

fn stem(word: &str) -> String {
    for suffix in ["ations", "ation", "ings", "ing", "ies", "es", "ed", "s"] {
        if let Some(s) = word.strip_suffix(suffix)
            && s.chars().count() >= 3
        {
            return s.to_string();
        }
    }
    word.to_string()
}

/// Lower-cased content terms of a text; "how much" becomes the price term.
fn terms(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace("how much", " price ");
    let mut out: Vec<String> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
        .map(canonical)
        .collect();
    // "where" is a stop word for ranking except as the address cue.
    if lower
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w == "where")
        && !out.iter().any(|t| t == "park")
    {
        out.push("address".into());
    }
    out
}

fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

impl KnowledgeBase {
    /// Indexes the FAQ (question counted twice: it is how callers ask) plus what the business
    /// data answers on its own.
    pub fn new(faq: &[Faq], business: &Business) -> Self {
        let mut entries: Vec<Entry> = faq
            .iter()
            .map(|f| {
                let mut t = terms(&f.question);
                t.extend(terms(&f.question));
                t.extend(terms(&f.answer));
                Entry {
                    terms: t,
                    answer: f.answer.clone(),
                }
            })
            .collect();
        let has = |entries: &[Entry], term: &str| {
            entries
                .iter()
                .any(|e| e.terms.iter().filter(|t| *t == term).count() >= 2)
        };
        if !has(&entries, "hours") {
            let days: Vec<String> = [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ]
            .into_iter()
            .map(|d| {
                let ranges = business.hours.on(d);
                if ranges.is_empty() {
                    format!("{} closed", day_name(d))
                } else {
                    let r: Vec<String> = ranges
                        .iter()
                        .map(|(a, b)| format!("{}–{}", a.format("%H:%M"), b.format("%H:%M")))
                        .collect();
                    format!("{} {}", day_name(d), r.join(", "))
                }
            })
            .collect();
            entries.push(Entry {
                terms: terms("What are your opening hours? When are you open? When do you close? open hours hours"),
                answer: format!("Our hours: {}.", days.join("; ")),
            });
        }
        if !business.services.is_empty() {
            let list: Vec<String> = business
                .services
                .iter()
                .map(|s| match &s.price {
                    Some(p) => format!("{} ({} min, {})", s.name, s.minutes, p),
                    None => format!("{} ({} min)", s.name, s.minutes),
                })
                .collect();
            let mut t =
                terms("What services do you offer? What treatments do you do? services service");
            if !has(&entries, "price") && business.services.iter().any(|s| s.price.is_some()) {
                t.extend(terms("How much does it cost? prices price"));
            }
            for s in &business.services {
                t.extend(terms(&s.name));
            }
            entries.push(Entry {
                terms: t,
                answer: format!("We offer {}.", list.join(", ")),
            });
        }
        let n = entries.len() as f64;
        let mut df: HashMap<String, usize> = HashMap::new();
        for e in &entries {
            let unique: HashSet<&String> = e.terms.iter().collect();
            for t in unique {
                *df.entry(t.clone()).or_default() += 1;
            }
        }
        let idf = df
            .into_iter()
            .map(|(t, d)| {
                let d = d as f64;
                (t, ((n - d + 0.5) / (d + 0.5) + 1.0).ln())
            })
            .collect();
        let average_len = if entries.is_empty() {
            1.0
        } else {
            entries.iter().map(|e| e.terms.len()).sum::<usize>() as f64 / n
        };
        KnowledgeBase {
            entries,
            idf,
            average_len,
        }
    }

    /// BM25 score of every entry for `question`, best first.
    fn ranked(&self, question: &str) -> Vec<(f64, usize)> {
        let query: HashSet<String> = terms(&question.chars().take(1_000).collect::<String>())
            .into_iter()
            .collect();
        let mut scores: Vec<(f64, usize)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let len = e.terms.len() as f64;
                let score = query
                    .iter()
                    .filter_map(|q| {
                        let tf = e.terms.iter().filter(|t| *t == q).count() as f64;
                        let idf = self.idf.get(q)?;
                        (tf > 0.0).then(|| {
                            idf * tf * (K1 + 1.0)
                                / (tf + K1 * (1.0 - B + B * len / self.average_len))
                        })
                    })
                    .sum::<f64>();
                (score, i)
            })
            .collect();
        scores.sort_by(|a, b| b.0.total_cmp(&a.0));
        scores
    }
}

impl KnowledgeBase {
    /// The entry that answers one question, when it scores above the floor.
    fn best(&self, question: &str) -> Option<usize> {
        let best = *self.ranked(question).first()?;
        (best.0 >= MIN_SCORE).then_some(best.1)
    }
}

/// The parts of a message that may each ask something: "where are you and is there
/// parking?" is two questions.
fn clauses(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut parts = Vec::new();
    for sentence in lower.split(['?', '!', ';', '\n']) {
        let mut rest = sentence;
        loop {
            let cut = [" and ", " also ", " plus ", ", "]
                .iter()
                .filter_map(|sep| rest.find(sep).map(|i| (i, sep.len())))
                .filter(|&(i, len)| starts_question(&rest[i + len..]))
                .min();
            match cut {
                Some((i, len)) => {
                    parts.push(rest[..i].to_string());
                    rest = &rest[i + len..];
                }
                None => {
                    parts.push(rest.to_string());
                    break;
                }
            }
        }
    }
    parts.retain(|p| !p.trim().is_empty());
    parts
}

/// Whether a clause opens like a question of its own.
fn starts_question(clause: &str) -> bool {
    let first: Vec<&str> = clause.split_whitespace().take(2).collect();
    matches!(
        first.first().copied().unwrap_or(""),
        "where"
            | "what"
            | "what's"
            | "whats"
            | "how"
            | "when"
            | "which"
            | "who"
            | "is"
            | "are"
            | "do"
            | "does"
            | "can"
            | "could"
            | "may"
            | "will"
            | "would"
    ) && !matches!(first.get(1).copied(), Some("i" | "we") if clause.contains("book"))
}

/// Whether a clause asks to book or change an appointment rather than about the business:
/// "any openings on Friday?", "do you have a consultation Wednesday?".
fn about_booking(clause: &str) -> bool {
    let words: Vec<&str> = clause
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
    let booking = has(&[
        "book",
        "booking",
        "schedule",
        "appointment",
        "appointments",
        "reserve",
        "openings",
        "opening",
        "available",
        "availability",
        "slot",
        "slots",
        "free",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "tomorrow",
        "today",
        "tonight",
    ]);
    let asks_facts = clause.contains("how much")
        || clause.contains("opening hours")
        || has(&[
            "price", "prices", "cost", "costs", "park", "parking", "where", "address", "policy",
            "open", "close", "closed", "closing", "hours", "fee", "fees", "charge",
        ]);
    booking && !asks_facts
}

impl sara_actors::ports::KnowledgeBase for KnowledgeBase {
    /// Every question in the message that an entry answers, in order, each answer once.
    fn answer(&self, question: &str) -> Option<String> {
        let parts = clauses(question);
        let mut found: Vec<usize> = Vec::new();
        if parts.len() > 1 {
            for part in parts.iter().filter(|p| !about_booking(p)) {
                if let Some(i) = self.best(part)
                    && !found.contains(&i)
                {
                    found.push(i);
                }
            }
        }
        if found.is_empty() {
            found.extend(
                self.best(question)
                    .filter(|_| !about_booking(&question.to_lowercase())),
            );
        }
        if found.is_empty() {
            return None;
        }
        let answers: Vec<&str> = found
            .iter()
            .map(|&i| self.entries[i].answer.as_str())
            .collect();
        Some(answers.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sara_actors::ports::KnowledgeBase as _;

    fn kb() -> KnowledgeBase {
        let b = Business::example();
        KnowledgeBase::new(&b.faq, &b)
    }

    #[test]
    fn answers_questions_worded_unlike_the_faq() {
        let kb = kb();
        let cases = [
            ("where do I park?", "parking"),
            ("Is there parking nearby", "parking"),
            ("can i park my car there", "parking"),
            ("what's your address", "Harbor Street"),
            ("where are you located?", "Harbor Street"),
            ("how much is a cleaning?", "$90"),
            ("what do you charge", "$60"),
            ("what are your prices", "$250"),
            ("what time do you open on saturday", "10:00"),
            ("are you open on sunday?", "Sunday closed"),
            ("what's your cancellation policy", "24 hours"),
            ("what happens if I cancel late", "24 hours"),
            ("what services do you offer", "Whitening"),
        ];
        for (q, expected) in cases {
            let a = kb.answer(q);
            assert!(
                a.as_deref().is_some_and(|a| a.contains(expected)),
                "{q:?} → {a:?}, expected something with {expected:?}"
            );
        }
    }

    #[test]
    fn says_nothing_when_it_does_not_know() {
        let kb = kb();
        for q in [
            "can you refill my prescription",
            "what's the weather",
            "who won the game last night",
            "",
            "   ",
            "the",
            "do you like pizza",
            "is the doctor married",
        ] {
            assert_eq!(kb.answer(q), None, "{q:?}");
        }
    }

    #[test]
    fn an_empty_faq_still_answers_from_the_business() {
        let b = Business::example();
        let kb = KnowledgeBase::new(&[], &b);
        assert!(
            kb.answer("when are you open")
                .is_some_and(|a| a.contains("Monday"))
        );
        assert_eq!(kb.answer("where can I park"), None);
    }

    #[test]
    fn two_questions_get_two_answers_and_booking_asks_get_none() {
        let kb = kb();
        let both = kb
            .answer("where are you and is there parking?")
            .expect("answers");
        assert!(
            both.contains("Harbor Street") && both.contains("parking"),
            "{both}"
        );
        let both = kb
            .answer("How much is a whitening? Also, what time do you close on saturday")
            .expect("answers");
        assert!(both.contains("$") && both.contains("10:00"), "{both}");
        let one = kb
            .answer("can I book a cleaning and where do I park?")
            .expect("answers");
        assert!(one.contains("parking") && !one.contains("$"), "{one}");
        for q in [
            "any openings on friday?",
            "do you have a consultation Wednesday?",
            "can I book an appointment for friday",
        ] {
            assert_eq!(kb.answer(q), None, "{q:?}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let kb = kb();
        let long = "parking ".repeat(10_000);
        for q in ["\u{0}\u{ffff}💥", "ÅÄÖ 東京 مرحبا", long.as_str(), "'''"] {
            let _ = kb.answer(q);
        }
        assert!(kb.answer(&long).is_some());
    }
}
