//! What the NLU makes of one message: the dialogue acts it performs and the slots it fills.
//! Dates and times are local to the business time zone; the policy turns them into instants.

use chrono::{DateTime, NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// One thing a message does. A message may do several ("yes, and can I park there?").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    Book,
    Reschedule,
    Cancel,
    /// Asks something the knowledge base may answer.
    Question,
    /// Wants a human.
    Handover,
    Greet,
    Goodbye,
    Thanks,
    Affirm,
    Deny,
    /// Gives a slot value (date, time, name, ...).
    Inform,
    /// Picks one of the offered options ("the second one").
    Choose,
    /// Asks for other times than those offered ("anything later?").
    OtherOptions,
    /// Asks for something a receptionist cannot do (prescriptions, diagnoses).
    OutOfScope,
}

impl Act {
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Book => "book",
            Act::Reschedule => "reschedule",
            Act::Cancel => "cancel",
            Act::Question => "question",
            Act::Handover => "handover",
            Act::Greet => "greet",
            Act::Goodbye => "goodbye",
            Act::Thanks => "thanks",
            Act::Affirm => "affirm",
            Act::Deny => "deny",
            Act::Inform => "inform",
            Act::Choose => "choose",
            Act::OtherOptions => "other_options",
            Act::OutOfScope => "out_of_scope",
        }
    }
}

/// A vague time: "tomorrow morning", "after 2", "before noon".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayPart {
    Morning,
    Afternoon,
    Evening,
    After(NaiveTime),
    Before(NaiveTime),
    /// A window inside the day: "around lunch", "late afternoon", "first thing".
    Between(NaiveTime, NaiveTime),
}

impl DayPart {
    /// The local-time window `[from, to)` this part of day covers.
    pub fn window(self) -> (NaiveTime, NaiveTime) {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("valid constant time");
        match self {
            DayPart::Morning => (t(0, 0), t(12, 0)),
            DayPart::Afternoon => (t(12, 0), t(17, 0)),
            DayPart::Evening => (t(17, 0), t(23, 59)),
            DayPart::After(x) => (x, t(23, 59)),
            DayPart::Before(x) => (t(0, 0), x),
            DayPart::Between(a, b) => (a, b),
        }
    }
}

/// A move relative to the time being talked about (the offered, proposed or booked one):
/// "an hour later", "push it back 30 minutes", "a week later", "the day after".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    #[serde(default)]
    pub days: i64,
    #[serde(default)]
    pub minutes: i64,
}

/// Which way the caller wants other times: "anything later?", "anything earlier?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lean {
    Later,
    Earlier,
}

/// A slot the dialogue is waiting for; it helps read bare answers ("3" after "what time?").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    Service,
    Date,
    Time,
    Name,
    Email,
    /// Which of the caller's bookings (reschedule/cancel).
    Booking,
    /// A yes/no confirmation.
    Confirmation,
    /// One of the offered start times.
    Option,
}

/// Which understanding produced a result; recorded in the turn log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NluSource {
    #[default]
    Rules,
    Llm,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Understanding {
    /// Most important first; the policy acts on the first it can use.
    pub acts: Vec<Act>,
    /// Canonical service name from the business list.
    pub service: Option<String>,
    pub date: Option<NaiveDate>,
    pub time: Option<NaiveTime>,
    pub day_part: Option<DayPart>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// 0-based index into the offered options ("the second one" = 1); `usize::MAX` is the
    /// last one offered.
    pub choice: Option<usize>,
    /// "same time": when moving a booking, keep its time of day.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub same_time: bool,
    /// "next week" with no day named: when moving a booking, the same weekday a week later.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub next_week: bool,
    /// A move relative to the time being talked about; applied by the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<Shift>,
    /// "Anything later?" / "anything earlier?": the direction other times are wanted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lean: Option<Lean>,
    /// "The earliest you have", "first thing", "asap": the first free times, searched forward.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earliest: bool,
    /// The message says something about when that the NLU could not read: the policy asks
    /// again rather than keep or guess a time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unclear_when: bool,
    /// A second request in the same message ("cancel Thursday's cleaning and book me a
    /// whitening Monday"), handled once this one is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Box<Understanding>>,
    /// The message answers a reminder ("C", "yes, I'll be there", "X", "move it to …"): read
    /// by the engine from the text whatever the NLU, since the words are the reminder's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder: Option<crate::reminders::ReminderReply>,
    /// A configured staff member the caller asked for ("with Anna"), as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
    /// The knowledge base's answer when the message asks a question it knows.
    pub faq_answer: Option<String>,
    /// 0..=1, how sure the NLU is; the hybrid router asks the model below a threshold.
    pub confidence: f32,
    pub source: NluSource,
}

impl Understanding {
    pub fn has(&self, act: Act) -> bool {
        self.acts.contains(&act)
    }

    pub fn primary(&self) -> Option<Act> {
        self.acts.first().copied()
    }
}

/// What the NLU may know about the conversation around the message.
#[derive(Clone, Debug)]
pub struct NluContext {
    /// The message's own time in the business time zone: "tomorrow" is relative to this.
    pub now: DateTime<Tz>,
    /// Service names the business offers.
    pub services: Vec<String>,
    /// What Sara asked for last, if anything.
    pub expecting: Option<Slot>,
    /// What Sara said just before the message, when known.
    pub prompt: Option<String>,
}
