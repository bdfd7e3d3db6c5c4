//! The simulated customer: a booking dialog of at least six turns (ask, date and time, the
//! name, an FAQ question, a correction, "yes") that reacts to what Sara answers, so a slot
//! someone else took still ends in a booking through one of the alternatives Sara offers.
//! In a soak ([`Customer::cancelling`]) the customer then cancels it again (two more turns),
//! so the calendar holds a bounded number of bookings however long the run.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Timelike, Utc};
use sara_actors::business::Business;

/// Most turns one dialog may take before it counts as an error (a dialog that loops).
pub const MAX_TURNS: usize = 14;

const FIRST: [&str; 16] = [
    "Sam", "Maria", "Jo", "Alex", "Priya", "Tom", "Lena", "Omar", "Grace", "Diego", "Hana",
    "Victor", "Nina", "Paul", "Rosa", "Ken",
];
const LAST: [&str; 16] = [
    "Ortiz", "Lopez", "Park", "Smith", "Patel", "Brown", "Fischer", "Haddad", "Kim", "Garcia",
    "Sato", "Novak", "Rossi", "Walker", "Silva", "Young",
];
/// FAQ questions the rule NLU reads as questions only ("what is your cancellation policy?"
/// is read as wanting to cancel, which drops the booking in progress).
const QUESTIONS: [&str; 3] = [
    "do you have parking?",
    "where are you?",
    "do you take insurance?",
];

/// The appointment one customer wants.
#[derive(Clone, Debug, PartialEq)]
pub struct Wish {
    pub service: String,
    pub date: NaiveDate,
    /// The time finally wanted (on the hour); the first message asks for half past.
    pub hour: u32,
}

/// Distinct appointment wishes spread over the bookable days, hours and services, so that
/// most customers get the slot they ask for. Each wish owns the hour starting at `hour`
/// (every service is at most an hour long); the first ask at half past must fit too.
/// `slots` limits the distinct slots used (customers then compete for them).
pub fn plan(business: &Business, count: usize, slots: Option<usize>) -> Vec<Wish> {
    let today = Utc::now().with_timezone(&business.timezone).date_naive();
    let longest = business
        .services
        .iter()
        .map(|s| s.minutes)
        .max()
        .unwrap_or(60);
    let mut free: Vec<(NaiveDate, u32)> = Vec::new();
    // From the day after tomorrow: the minimum notice never gets in the way.
    for offset in 2..i64::from(business.horizon_days) {
        let date = today + Duration::days(offset);
        if business.closures.contains(&date) {
            continue;
        }
        for &(open, close) in business.hours.on(date.weekday()) {
            let mut hour = if open.minute() == 0 {
                open.hour()
            } else {
                open.hour() + 1
            };
            while let Some(start) = NaiveTime::from_hms_opt(hour, 0, 0) {
                let end = start + Duration::minutes(i64::from(longest.max(60)) + 30);
                if end > close || end < start {
                    break;
                }
                free.push((date, hour));
                hour += 1;
            }
        }
    }
    if free.is_empty() || business.services.is_empty() {
        return Vec::new();
    }
    // Hour first, then day: neighbouring customers ask for different days.
    free.sort_by_key(|(d, h)| (*h, *d));
    if let Some(slots) = slots {
        free.truncate(slots.max(1));
    }
    (0..count)
        .map(|i| {
            let (date, hour) = free[i % free.len()];
            Wish {
                service: business.services[i % business.services.len()].name.clone(),
                date,
                hour,
            }
        })
        .collect()
}

/// "2:30pm".
fn clock(hour: u32, minute: u32) -> String {
    let (h12, meridiem) = match hour {
        0 => (12, "am"),
        1..=11 => (hour, "am"),
        12 => (12, "pm"),
        _ => (hour - 12, "pm"),
    };
    if minute == 0 {
        format!("{h12}{meridiem}")
    } else {
        format!("{h12}:{minute:02}{meridiem}")
    }
}

/// One customer's dialog in progress.
pub struct Customer {
    pub phone: String,
    script: Vec<String>,
    next: usize,
    name: String,
    pub turns: usize,
    pub booked: bool,
    /// (sent, answered) so far, for `--show-failures`.
    pub transcript: Vec<(String, String)>,
    last_sent: String,
    /// Cancel the booking once made (soak runs).
    cancel_after: bool,
}

/// What the customer does after a reply.
#[derive(Debug, PartialEq)]
pub enum Step {
    Send(String),
    /// The dialog reached its end: booked (and, for a cancelling customer, cancelled again).
    Booked,
    /// Sara said something the customer cannot continue from.
    Stuck,
}

impl Customer {
    pub fn new(index: usize, wish: &Wish) -> Customer {
        let name = format!(
            "{} {}",
            FIRST[index % FIRST.len()],
            LAST[(index / FIRST.len()) % LAST.len()]
        );
        let date = format!(
            "{} {}, {}",
            wish.date.format("%B"),
            wish.date.day(),
            wish.date.year()
        );
        let script = vec![
            format!("Hi, I'd like to book a {}", wish.service.to_lowercase()),
            format!("{date} at {}", clock(wish.hour, 30)),
            // The name before the correction: while Sara waits for a name, the rule NLU
            // reads "actually make it 2pm" as the name "Actually Make".
            format!("my name is {name}"),
            QUESTIONS[index % QUESTIONS.len()].to_string(),
            format!("actually make it {}", clock(wish.hour, 0)),
            "yes please".to_string(),
        ];
        Customer {
            phone: format!("+1555{:07}", 2_000_000 + (index % 7_000_000)),
            script,
            next: 0,
            name,
            turns: 0,
            booked: false,
            transcript: Vec::new(),
            last_sent: String::new(),
            cancel_after: false,
        }
    }

    /// This customer cancels the booking right after making it, and the dialog ends when
    /// Sara says it is cancelled: a run of any length then never fills the calendar (and the
    /// calendar actor's in-memory view of upcoming bookings stays small), so RSS over a soak
    /// shows the process, not the growing number of bookings.
    pub fn cancelling(mut self) -> Customer {
        self.cancel_after = true;
        self
    }

    /// The first message.
    pub fn start(&mut self) -> String {
        self.next = 1;
        self.turns = 1;
        self.last_sent = self.script[0].clone();
        self.last_sent.clone()
    }

    /// Reads Sara's reply to the last message and decides the next one.
    pub fn react(&mut self, reply: &str) -> Step {
        self.transcript
            .push((std::mem::take(&mut self.last_sent), reply.to_string()));
        let r = reply.to_lowercase();
        if self.booked {
            // Cancelling (only customers made with `cancelling` get here).
            if r.contains("it's cancelled") {
                return Step::Booked;
            }
            if self.turns >= MAX_TURNS + 2 || !r.contains("cancel your") {
                return Step::Stuck;
            }
            return self.say("yes".to_string());
        }
        if r.contains("you're booked") {
            self.booked = true;
            if self.cancel_after {
                return self.say("please cancel my appointment".to_string());
            }
            return Step::Booked;
        }
        if self.turns >= MAX_TURNS {
            return Step::Stuck;
        }
        let next = if self.next + 1 < self.script.len() {
            // The scripted middle of the dialog goes on whatever Sara asked.
            self.next += 1;
            self.script[self.next - 1].clone()
        } else if r.contains("which one")
            || r.contains("which suits you")
            || r.contains("suits you:")
            || r.contains("i can do")
        {
            // The wanted time was taken: take the first alternative offered.
            "the first one".to_string()
        } else if r.contains("what name") || r.contains("your name") {
            format!("my name is {}", self.name)
        } else if r.contains("shall i") || r.contains("confirm") || r.contains("is that right") {
            // A confirmation, or on a call the name spelled back.
            self.next = self.script.len();
            "yes please".to_string()
        } else {
            return Step::Stuck;
        };
        self.say(next)
    }

    fn say(&mut self, next: String) -> Step {
        self.turns += 1;
        self.last_sent = next.clone();
        Step::Send(next)
    }
}

/// The synthetic dialog, for a human reading why it failed (never a real customer's).
pub fn show(customer: &Customer) -> String {
    let mut out = format!("dialog of {} ended without a booking:\n", customer.phone);
    for (sent, answer) in &customer.transcript {
        out.push_str(&format!("  C: {sent}\n  S: {answer}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_distinct_open_slots() {
        let business = Business::example();
        let wishes = plan(&business, 100, None);
        assert_eq!(wishes.len(), 100);
        let mut seen: Vec<(NaiveDate, u32)> = wishes.iter().map(|w| (w.date, w.hour)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 100, "the first wishes do not share a slot");
        assert!(wishes.iter().all(|w| (9..=15).contains(&w.hour)));
    }

    #[test]
    fn a_dialog_has_a_correction_and_a_question_before_the_yes() {
        let wish = Wish {
            service: "Cleaning".into(),
            date: NaiveDate::from_ymd_opt(2027, 3, 9).expect("valid"),
            hour: 14,
        };
        let mut c = Customer::new(0, &wish);
        assert_eq!(c.start(), "Hi, I'd like to book a cleaning");
        let sent: Vec<Step> = (0..5).map(|_| c.react("Shall I confirm it?")).collect();
        let expected = [
            "March 9, 2027 at 2:30pm",
            "my name is Sam Ortiz",
            "do you have parking?",
            "actually make it 2pm",
            "yes please",
        ];
        assert_eq!(sent, Vec::from(expected.map(|m| Step::Send(m.to_string()))));
        assert_eq!(
            c.react("Which one — 3:00 PM or 4:00 PM on Tuesday, March 9?"),
            Step::Send("the first one".into())
        );
        assert_eq!(c.react("Done — you're booked for a cleaning"), Step::Booked);
        assert!(c.booked);
    }

    #[test]
    fn a_cancelling_customer_cancels_the_booking_and_ends_when_it_is_cancelled() {
        let wish = Wish {
            service: "Cleaning".into(),
            date: NaiveDate::from_ymd_opt(2027, 3, 9).expect("valid"),
            hour: 14,
        };
        let mut c = Customer::new(0, &wish).cancelling();
        c.start();
        for _ in 0..5 {
            c.react("Shall I confirm it?");
        }
        assert_eq!(
            c.react("Done — you're booked for a cleaning"),
            Step::Send("please cancel my appointment".into())
        );
        assert_eq!(
            c.react("Cancel your cleaning on Tuesday, March 9 at 2:00 PM? Please cancel at least 24 hours ahead."),
            Step::Send("yes".into())
        );
        assert_eq!(
            c.react("It's cancelled. Would you like to book another time?"),
            Step::Booked
        );
        let mut stuck = Customer::new(1, &wish).cancelling();
        stuck.start();
        stuck.react("Done — you're booked for a cleaning");
        assert_eq!(stuck.react("Sorry, I didn't quite get that."), Step::Stuck);
    }
}
