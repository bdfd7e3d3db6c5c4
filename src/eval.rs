//! The NLU evaluation: replays a JSON-lines dialog corpus through an NLU and scores its acts,
//! dates and times (format in `../shared/eval/README.md`).
//!
//! Scoring: a turn's act is right when the NLU's first act is one of the listed acts
//! (`Choose` counts as `inform`); turns with `"score": false` are replayed but not scored;
//! turns with no listed acts score only their slots. Slots are the date and the time:
//! a predicted slot is right when equal to the gold one, a predicted slot the turn does not
//! list counts against precision.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use sara_actors::ports::Nlu;
use sara_actors::understanding::{Act, NluContext, NluSource, Slot, Understanding};
use serde::{Deserialize, Serialize};

/// The corpus metrics; serialised exactly as the `sara eval` contract says.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalSummary {
    pub dialogs: usize,
    /// User turns replayed (scored or not).
    pub turns: usize,
    pub act_accuracy: f64,
    pub date_accuracy: f64,
    pub time_accuracy: f64,
    pub slot_precision: f64,
    pub slot_recall: f64,
    pub slot_f1: f64,
    pub llm_share: f64,
}

impl EvalSummary {
    /// A short table for people, then the JSON object as the last stdout line for scripts.
    pub fn print(&self) {
        println!("dialogs         {}", self.dialogs);
        println!("turns           {}", self.turns);
        println!("act accuracy    {:.4}", self.act_accuracy);
        println!("date accuracy   {:.4}", self.date_accuracy);
        println!("time accuracy   {:.4}", self.time_accuracy);
        println!("slot precision  {:.4}", self.slot_precision);
        println!("slot recall     {:.4}", self.slot_recall);
        println!("slot f1         {:.4}", self.slot_f1);
        println!("llm share       {:.4}", self.llm_share);
        println!(
            "{}",
            serde_json::to_string(self).expect("a struct of numbers always serialises")
        );
    }
}

#[derive(Debug, Deserialize)]
struct Dialog {
    id: String,
    now: NaiveDateTime,
    timezone: Tz,
    turns: Vec<Turn>,
}

#[derive(Debug, Deserialize)]
struct Turn {
    user: String,
    #[serde(default)]
    acts: Vec<String>,
    #[serde(default)]
    slots: BTreeMap<String, String>,
    #[serde(default = "yes")]
    score: bool,
    /// What the receptionist said just before the turn.
    #[serde(default)]
    prompt: Option<String>,
    /// What that line asked for; `Some(None)` when the corpus says it asked for nothing,
    /// `None` when the corpus gives no context at all.
    #[serde(default, deserialize_with = "present")]
    expecting: Option<Option<String>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`, by `default`).
fn present<'de, D>(d: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(d).map(Some)
}

/// The corpus's name of what a line asked for, as the NLU's slot.
fn slot_named(name: &str) -> Option<Slot> {
    Some(match name {
        "service" => Slot::Service,
        "date" => Slot::Date,
        "time" => Slot::Time,
        "name" => Slot::Name,
        "email" => Slot::Email,
        "confirmation" => Slot::Confirmation,
        "option" => Slot::Option,
        "booking" => Slot::Booking,
        _ => return None,
    })
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize)]
struct Prediction<'a> {
    id: &'a str,
    turn: usize,
    act: Option<&'static str>,
    date: Option<String>,
    time: Option<String>,
    llm: bool,
}

/// Running counts behind the summary.
#[derive(Debug, Default)]
struct Tally {
    act_total: usize,
    act_right: usize,
    date_total: usize,
    date_right: usize,
    time_total: usize,
    time_right: usize,
    predicted_slots: usize,
    right_slots: usize,
    gold_slots: usize,
    /// Scored turns, and those of them the model answered (`llm_share`).
    scored_turns: usize,
    llm_turns: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// The act name the corpus uses for an NLU act.
fn corpus_act(act: Act) -> &'static str {
    match act {
        Act::Choose => "inform",
        other => other.as_str(),
    }
}

/// A simple guess of what Sara just asked, from the last user turn: after a booking request
/// without a time, a bare number is most likely a time.
fn expecting_after(u: &Understanding) -> Option<Slot> {
    if u.has(Act::Book) && u.time.is_none() {
        Some(Slot::Time)
    } else {
        None
    }
}

/// Replays `corpus` through `nlu`; with `predictions`, writes one JSON line per user turn.
pub async fn run(
    corpus: &Path,
    predictions: Option<&Path>,
    nlu: &dyn Nlu,
    services: Vec<String>,
) -> anyhow::Result<EvalSummary> {
    let file = std::fs::File::open(corpus)
        .with_context(|| format!("opening corpus {}", corpus.display()))?;
    let mut out = match predictions {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("creating predictions {}", path.display()))?,
        )),
        None => None,
    };
    let mut tally = Tally::default();
    let mut summary = EvalSummary::default();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.context("reading corpus")?;
        if line.trim().is_empty() {
            continue;
        }
        let dialog: Dialog = serde_json::from_str(&line)
            .with_context(|| format!("corpus line {} is not a dialog", number + 1))?;
        summary.dialogs += 1;
        let now = dialog
            .timezone
            .from_local_datetime(&dialog.now)
            .earliest()
            .with_context(|| format!("dialog {}: `now` does not exist in its zone", dialog.id))?;
        let mut guessed = None;
        for (index, turn) in dialog.turns.iter().enumerate() {
            // The corpus's own context when it gives one, as a live conversation would;
            // otherwise a guess from the previous turn.
            let expecting = match &turn.expecting {
                Some(named) => named.as_deref().and_then(slot_named),
                None => guessed,
            };
            let ctx = NluContext {
                now,
                services: services.clone(),
                expecting,
                prompt: turn.prompt.clone(),
                facts: Default::default(),
            };
            // A failing NLU is scored as understanding nothing.
            let u = nlu.understand(&turn.user, &ctx).await.unwrap_or_default();
            guessed = expecting_after(&u);
            summary.turns += 1;
            let llm = u.source == NluSource::Llm;
            let date = u.date.map(|d| d.format("%Y-%m-%d").to_string());
            let time = u.time.map(|t| t.format("%H:%M").to_string());
            if let Some(out) = out.as_mut() {
                let p = Prediction {
                    id: &dialog.id,
                    turn: index,
                    act: u.primary().map(corpus_act),
                    date: date.clone(),
                    time: time.clone(),
                    llm,
                };
                serde_json::to_writer(&mut *out, &p).context("writing a prediction")?;
                out.write_all(b"\n").context("writing a prediction")?;
            }
            if turn.score {
                tally.scored_turns += 1;
                tally.llm_turns += usize::from(llm);
                score_turn(&mut tally, turn, &u, date, time);
            }
        }
    }
    if let Some(mut out) = out {
        out.flush().context("writing predictions")?;
    }
    summary.act_accuracy = ratio(tally.act_right, tally.act_total);
    summary.date_accuracy = ratio(tally.date_right, tally.date_total);
    summary.time_accuracy = ratio(tally.time_right, tally.time_total);
    summary.slot_precision = ratio(tally.right_slots, tally.predicted_slots);
    summary.slot_recall = ratio(tally.right_slots, tally.gold_slots);
    let (p, r) = (summary.slot_precision, summary.slot_recall);
    summary.slot_f1 = if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    };
    // The share of scored turns the model answered (a fallback to the rules is not one).
    summary.llm_share = if tally.scored_turns == 0 {
        0.0
    } else {
        tally.llm_turns as f64 / tally.scored_turns as f64
    };
    Ok(summary)
}

fn score_turn(
    tally: &mut Tally,
    turn: &Turn,
    u: &Understanding,
    date: Option<String>,
    time: Option<String>,
) {
    if !turn.acts.is_empty() {
        tally.act_total += 1;
        let first = u.primary().map(corpus_act);
        if first.is_some_and(|a| turn.acts.iter().any(|g| g == a)) {
            tally.act_right += 1;
        }
    }
    let gold_date = turn
        .slots
        .get("date")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let gold_time = turn
        .slots
        .get("time")
        .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok());
    for (gold, predicted, total, right) in [
        (
            gold_date.map(|d| d.format("%Y-%m-%d").to_string()),
            date,
            &mut tally.date_total,
            &mut tally.date_right,
        ),
        (
            gold_time.map(|t| t.format("%H:%M").to_string()),
            time,
            &mut tally.time_total,
            &mut tally.time_right,
        ),
    ] {
        if gold.is_some() {
            *total += 1;
            tally.gold_slots += 1;
        }
        if predicted.is_some() {
            tally.predicted_slots += 1;
        }
        if gold.is_some() && gold == predicted {
            *right += 1;
            tally.right_slots += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::RuleNlu;

    fn corpus() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sgd-dev.jsonl")
    }

    #[test]
    fn the_summary_has_exactly_the_contract_keys() {
        let json = serde_json::to_value(EvalSummary::default()).expect("serialises");
        let mut keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "act_accuracy",
                "date_accuracy",
                "dialogs",
                "llm_share",
                "slot_f1",
                "slot_precision",
                "slot_recall",
                "time_accuracy",
                "turns"
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_corpus_is_an_error_not_a_panic() {
        let nlu = RuleNlu::new(vec![]);
        let result = run(Path::new("/nonexistent/corpus.jsonl"), None, &nlu, vec![]).await;
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn rule_nlu_meets_the_bar_on_the_sgd_dev_corpus() {
        let nlu = RuleNlu::new(vec![]);
        let dir = tempfile::tempdir().expect("temp dir");
        let predictions = dir.path().join("predictions.jsonl");
        let s = run(&corpus(), Some(&predictions), &nlu, vec![])
            .await
            .expect("eval runs");
        println!("{}", serde_json::to_string(&s).expect("serialises"));
        assert_eq!(s.dialogs, 148);
        assert_eq!(s.turns, 1672);
        let lines = std::fs::read_to_string(&predictions).expect("predictions written");
        assert_eq!(lines.lines().count(), 1672);
        let first: serde_json::Value =
            serde_json::from_str(lines.lines().next().expect("a first line")).expect("json");
        let keys: Vec<&str> = first
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 6);
        for key in ["id", "turn", "act", "date", "time", "llm"] {
            assert!(keys.contains(&key), "prediction lacks {key}");
        }
        assert_eq!(first["turn"], 0);
        assert_eq!(first["llm"], false);
        assert!(s.act_accuracy >= 0.97, "act accuracy {}", s.act_accuracy);
        assert!(s.slot_f1 >= 0.97, "slot f1 {}", s.slot_f1);
        assert!(s.date_accuracy >= 0.97, "date accuracy {}", s.date_accuracy);
        assert!(s.time_accuracy >= 0.97, "time accuracy {}", s.time_accuracy);
        assert_eq!(s.llm_share, 0.0);
    }

    /// Sara's own corpora (tests/data/sara-*.jsonl, README there): the long tail the SGD
    /// dialogs lack. Thresholds are what the rules reach; they only go up.
    #[tokio::test]
    async fn rule_nlu_meets_the_bar_on_sara_corpora() {
        let services: Vec<String> = ["Consultation", "Cleaning", "Whitening"]
            .map(String::from)
            .to_vec();
        let nlu = RuleNlu::new(services.clone());
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let bars = [
            ("words", 1.0, 1.0),
            ("corrections", 1.0, 1.0),
            ("reschedule", 1.0, 1.0),
            ("cancel", 1.0, 1.0),
            ("handover", 1.0, 1.0),
            ("faq", 1.0, 1.0),
            ("multi", 1.0, 1.0),
            ("texting", 1.0, 1.0),
            ("phrasings", 1.0, 0.98),
        ];
        for (name, act_bar, f1_bar) in bars {
            let path = dir.join(format!("sara-{name}.jsonl"));
            let s = run(&path, None, &nlu, services.clone())
                .await
                .expect("eval runs");
            println!("{name}: {}", serde_json::to_string(&s).expect("serialises"));
            assert!(s.dialogs >= 4, "{name}: {} dialogs", s.dialogs);
            assert!(s.act_accuracy >= act_bar, "{name}: act {}", s.act_accuracy);
            assert!(s.slot_f1 >= f1_bar, "{name}: slot f1 {}", s.slot_f1);
            assert_eq!(s.llm_share, 0.0);
        }
    }

    #[tokio::test]
    async fn the_corpus_context_reaches_the_nlu() {
        // An NLU that reports what it was given, as an act: affirm when it saw the prompt.
        struct Echo;
        impl Nlu for Echo {
            fn understand<'a>(
                &'a self,
                _text: &'a str,
                ctx: &'a NluContext,
            ) -> sara_actors::ports::BoxFuture<
                'a,
                Result<Understanding, sara_actors::ports::NluError>,
            > {
                let act = match (&ctx.prompt, ctx.expecting) {
                    (Some(p), Some(Slot::Confirmation)) if p.contains("Shall I") => Act::Affirm,
                    (None, None) => Act::Greet,
                    _ => Act::Deny,
                };
                Box::pin(async move {
                    Ok(Understanding {
                        acts: vec![act],
                        ..Understanding::default()
                    })
                })
            }
            fn name(&self) -> &'static str {
                "echo"
            }
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let corpus = dir.path().join("c.jsonl");
        std::fs::write(
            &corpus,
            r#"{"id":"x","now":"2026-03-05T10:00:00","timezone":"UTC","turns":[{"user":"hi","acts":["greet"]},{"user":"great, thanks","acts":["affirm"],"prompt":"Shall I book it?","expecting":"confirmation"}]}"#,
        )
        .expect("written");
        let s = run(&corpus, None, &Echo, vec![]).await.expect("eval runs");
        assert_eq!(s.act_accuracy, 1.0);
    }
}
