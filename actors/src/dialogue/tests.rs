//! Table tests: the conversations of DIALOGS.md, turn by turn, plus the edge cases.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use uuid::Uuid;

use super::*;
use crate::availability::local_instant;
use crate::business::Business;
use crate::model::{Booking, BookingStatus, Channel, Interval, Phone};
use crate::ports::CalendarError;
use crate::understanding::{Act, DayPart, Slot, Understanding};

// ---- building understandings by hand -------------------------------------------------

fn says(acts: &[Act]) -> Understanding {
    Understanding {
        acts: acts.to_vec(),
        confidence: 1.0,
        ..Understanding::default()
    }
}

trait Fill {
    fn service(self, s: &str) -> Self;
    fn on(self, m: u32, d: u32) -> Self;
    fn at(self, h: u32, m: u32) -> Self;
    fn part(self, p: DayPart) -> Self;
    fn name(self, n: &str) -> Self;
    fn choice(self, i: usize) -> Self;
    fn faq(self, a: &str) -> Self;
}

impl Fill for Understanding {
    fn service(mut self, s: &str) -> Self {
        self.service = Some(s.into());
        self
    }
    fn on(mut self, m: u32, d: u32) -> Self {
        self.date = Some(date(m, d));
        self
    }
    fn at(mut self, h: u32, m: u32) -> Self {
        self.time = Some(hm(h, m));
        self
    }
    fn part(mut self, p: DayPart) -> Self {
        self.day_part = Some(p);
        self
    }
    fn name(mut self, n: &str) -> Self {
        self.name = Some(n.into());
        self
    }
    fn choice(mut self, i: usize) -> Self {
        self.choice = Some(i);
        self
    }
    fn faq(mut self, a: &str) -> Self {
        self.faq_answer = Some(a.into());
        self
    }
}

fn date(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).expect("test date")
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("test time")
}

/// A local time at the clinic, as an instant.
fn local(m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    local_instant(chrono_tz::America::New_York, date(m, d), hm(h, min)).expect("exists")
}

fn busy(m: u32, d: u32, from: (u32, u32), to: (u32, u32)) -> Interval {
    Interval {
        start: local(m, d, from.0, from.1),
        end: local(m, d, to.0, to.1),
    }
}

// ---- a conversation harness ----------------------------------------------------------

/// The pretend calendar's busy list: blocks pushed by tests, bookings made by effects.
#[derive(Default)]
struct Blocks {
    list: crate::availability::BusyList,
}

impl Blocks {
    fn push(&mut self, i: Interval) {
        self.list.insert_many([crate::availability::Busy::block(i)]);
    }

    fn booked(&mut self, b: &Booking) {
        self.list.insert_many([crate::availability::Busy::of(b)]);
    }

    fn clear(&mut self) {
        self.list = crate::availability::BusyList::default();
    }
}

/// One conversation against a pretend calendar: bookings written by effects become busy.
struct Conversation {
    business: Business,
    phone: Phone,
    channel: Channel,
    now: DateTime<Utc>,
    state: DialogueState,
    busy: Blocks,
    bookings: Vec<Booking>,
    turns: u128,
    /// Whether a hand-over reaches staff (an alert channel is configured).
    staff_alerts: bool,
}

impl Conversation {
    /// Thursday, March 5 2026, 10:00 at the clinic.
    fn new(channel: Channel) -> Conversation {
        Conversation {
            business: Business::example(),
            phone: Phone::parse("+15550001111").expect("valid"),
            channel,
            now: local(3, 5, 10, 0),
            state: DialogueState::default(),
            busy: Blocks::default(),
            bookings: Vec::new(),
            turns: 0,
            staff_alerts: true,
        }
    }

    fn ctx(&self) -> TurnContext<'_> {
        TurnContext {
            now: self.now,
            business: &self.business,
            phone: &self.phone,
            channel: self.channel,
            busy: &self.busy.list,
            bookings: &self.bookings,
            fresh_id: Uuid::from_u128(1000 + self.turns),
            staff_alerts: self.staff_alerts,
        }
    }

    fn say(&mut self, u: Understanding) -> Decision {
        self.turns += 1;
        let d = step(&self.state, &u, &self.ctx());
        assert_no_placeholders(&d.reply.text);
        self.state = d.state.clone();
        let second = d.then.as_ref().map(|t| &t.effect);
        for effect in d.effect.iter().chain(second) {
            match effect {
                Effect::Book(b) => {
                    self.busy.booked(b);
                    self.bookings.push(b.clone());
                }
                Effect::Cancel { id } => self.bookings.retain(|b| b.id != *id),
                _ => {}
            }
        }
        d
    }

    fn add_booking(&mut self, service: &str, start: DateTime<Utc>, minutes: i64) -> Uuid {
        let id = Uuid::from_u128(500 + self.bookings.len() as u128);
        let end = start + chrono::Duration::minutes(minutes);
        let booking = Booking {
            id,
            phone: self.phone.clone(),
            name: Some("Pat".into()),
            email: None,
            service: service.into(),
            start,
            end,
            status: BookingStatus::Confirmed,
            sequence: 0,
            staff: None,
            event_id: None,
        };
        self.busy.booked(&booking);
        self.bookings.push(booking);
        id
    }
}

fn assert_no_placeholders(text: &str) {
    for bad in ["{", "}", "  ", "None", "Some("] {
        assert!(!text.contains(bad), "reply {text:?} contains {bad:?}");
    }
}

#[track_caller]
fn says_all(d: &Decision, parts: &[&str]) {
    for p in parts {
        assert!(
            d.reply.text.contains(p),
            "reply {:?} should contain {p:?}",
            d.reply.text
        );
    }
}

// ---- DIALOGS.md ----------------------------------------------------------------------

#[test]
fn dialog_1_everything_at_once_is_confirmed_then_booked() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(
        says(&[Act::Greet, Act::Book, Act::Inform])
            .service("Cleaning")
            .on(3, 6)
            .at(14, 0)
            .name("Maria Lopez"),
    );
    assert_eq!(
        d.reply.text,
        "I can book a cleaning for Maria Lopez on Friday, March 6 at 2:00 PM. Shall I confirm it?"
    );
    assert_eq!(d.effect, None, "nothing is written before the confirmation");
    assert_eq!(d.intent, Act::Book);
    assert_eq!(c.state.expecting(), Some(Slot::Confirmation));
    let form_id = c.state.form.as_ref().expect("form").id;

    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(
        d.reply.text,
        "Done — you're booked for a cleaning on Friday, March 6 at 2:00 PM. Reply here if you need to change it."
    );
    let Some(Effect::Book(b)) = d.effect else {
        panic!("expected a booking, got {:?}", d.effect)
    };
    assert_eq!(b.id, form_id, "the booking carries the form id");
    assert_eq!(b.service, "Cleaning");
    assert_eq!(b.name.as_deref(), Some("Maria Lopez"));
    assert_eq!(b.start, local(3, 6, 14, 0));
    assert_eq!(b.end, local(3, 6, 14, 45));
    assert_eq!(b.status, BookingStatus::Confirmed);
    assert_eq!(d.intent, Act::Affirm);
    assert_eq!(c.state.form, None);
}

#[test]
fn dialog_2_bits_out_of_order_with_a_correction() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Greet]));
    assert_eq!(
        d.reply.text,
        "Hi! This is Sara at Harbor Street Clinic. How can I help?"
    );
    assert_eq!(d.intent, Act::Greet);

    let d = c.say(says(&[Act::Book]));
    says_all(
        &d,
        &["which service", "Consultation, Cleaning and Whitening"],
    );
    assert_eq!(c.state.expecting(), Some(Slot::Service));
    assert_eq!(d.reply.options, ["Consultation", "Cleaning", "Whitening"]);

    // A date and time although Sara asked for the service.
    let d = c.say(says(&[Act::Inform]).on(3, 10).at(10, 0));
    says_all(
        &d,
        &["Tuesday, March 10 at 10:00 AM works", "Which service"],
    );
    assert_eq!(c.state.expecting(), Some(Slot::Service));

    let d = c.say(says(&[Act::Inform]).service("Cleaning").name("Sam Ortiz"));
    says_all(
        &d,
        &[
            "a cleaning for Sam Ortiz on Tuesday, March 10 at 10:00 AM",
            "confirm",
        ],
    );
    assert_eq!(c.state.expecting(), Some(Slot::Confirmation));

    // "actually make it 10:30": the correction is re-checked before it is offered.
    let before = c.state.clone();
    c.busy.push(busy(3, 10, (10, 45), (11, 30)));
    let d = c.say(says(&[Act::Inform]).at(10, 30));
    assert!(d.effect.is_none());
    says_all(&d, &["10:30 AM on Tuesday is taken", "Which suits you?"]);
    c.busy.clear();
    c.state = before;
    let d = c.say(says(&[Act::Inform]).at(10, 30));
    assert_eq!(
        d.reply.text,
        "Tuesday, March 10 at 10:30 AM is free. Shall I book the cleaning then?"
    );

    let d = c.say(says(&[Act::Affirm]));
    let Some(Effect::Book(b)) = d.effect.clone() else {
        panic!("expected a booking")
    };
    assert_eq!(b.start, local(3, 10, 10, 30));
    assert_eq!(b.name.as_deref(), Some("Sam Ortiz"));
    says_all(&d, &["you're booked", "Tuesday, March 10 at 10:30 AM"]);
}

#[test]
fn dialog_3_a_taken_time_offers_the_nearest_and_accepts_a_choice() {
    let mut c = Conversation::new(Channel::WhatsApp);
    c.busy.push(busy(3, 9, (9, 0), (9, 30)));
    let d = c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 9)
            .at(9, 0)
            .name("Jo Park"),
    );
    assert_eq!(
        d.reply.text,
        "9:00 AM on Monday is taken. I can do 9:30 AM, 9:45 AM or 10:00 AM on Monday, March 9. Which suits you?"
    );
    assert_eq!(d.reply.options, ["9:30 AM", "9:45 AM", "10:00 AM"]);
    assert_eq!(c.state.expecting(), Some(Slot::Option));

    let d = c.say(says(&[Act::Choose]).choice(1));
    assert_eq!(
        d.reply.text,
        "I can book a consultation for Jo Park on Monday, March 9 at 9:45 AM. Shall I confirm it?"
    );
    assert_eq!(d.intent, Act::Choose);
}

#[test]
fn dialog_3_offers_accept_a_time_a_yes_and_move_the_window() {
    let start = || {
        let mut c = Conversation::new(Channel::Sms);
        c.busy.push(busy(3, 9, (9, 0), (9, 30)));
        c.say(
            says(&[Act::Book])
                .service("Consultation")
                .on(3, 9)
                .at(9, 0)
                .name("Jo Park"),
        );
        c
    };
    // "10" / "10am" picks the offer at 10:00.
    let mut c = start();
    let d = c.say(says(&[Act::Inform]).at(10, 0));
    says_all(&d, &["Monday, March 9 at 10:00 AM. Shall I confirm"]);
    // "yes" with three offers asks which one.
    let mut c = start();
    let d = c.say(says(&[Act::Affirm]));
    says_all(&d, &["Which one"]);
    assert_eq!(c.state.expecting(), Some(Slot::Option));
    // "anything later?" moves past the last offer.
    let mut c = start();
    let d = c.say(says(&[Act::OtherOptions]));
    says_all(&d, &["10:15 AM, 10:30 AM or 10:45 AM on Monday, March 9"]);
    let d = c.say(says(&[Act::Choose]).choice(2));
    says_all(&d, &["Monday, March 9 at 10:45 AM"]);
    // "what about Wednesday?" offers Wednesday around the wanted time.
    let mut c = start();
    let d = c.say(says(&[Act::Inform]).on(3, 11));
    says_all(&d, &["9:00 AM, 9:15 AM or 9:30 AM on Wednesday, March 11"]);
    // A single offer is taken with a plain "yes".
    let mut c = Conversation::new(Channel::Sms);
    c.busy.push(busy(3, 7, (10, 0), (13, 30)));
    let d = c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 7)
            .at(10, 0)
            .name("Jo"),
    );
    says_all(
        &d,
        &["I can do 1:30 PM on Saturday, March 7, or 9:00 AM or 9:15 AM on Monday, March 9."],
    );
    // Saturday closes at 14:00: one slot there, then Monday.
    let mut c = Conversation::new(Channel::Sms);
    c.busy.push(busy(3, 7, (10, 0), (13, 30)));
    c.business.horizon_days = 2;
    let d = c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 7)
            .at(10, 0)
            .name("Jo"),
    );
    says_all(&d, &["I can do 1:30 PM on Saturday, March 7."]);
    let d = c.say(says(&[Act::Affirm]));
    says_all(&d, &["Saturday, March 7 at 1:30 PM. Shall I confirm it?"]);
}

#[test]
fn dialog_4_a_question_in_the_middle_resumes_the_booking() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Book]).service("Whitening").on(3, 6));
    assert_eq!(
        d.reply.text,
        "What time on Friday, March 6 works for your whitening?"
    );
    assert_eq!(c.state.expecting(), Some(Slot::Time));

    let d =
        c.say(says(&[Act::Question]).faq("Yes — free parking behind the building on Dock Lane."));
    assert_eq!(
        d.reply.text,
        "Yes — free parking behind the building on Dock Lane. Now, what time on Friday works for your whitening?"
    );
    assert_eq!(d.intent, Act::Question);
    assert_eq!(
        c.state.expecting(),
        Some(Slot::Time),
        "the form is still open"
    );

    let d = c.say(says(&[Act::Inform]).at(15, 0).name("Ana"));
    says_all(&d, &["a whitening for Ana on Friday, March 6 at 3:00 PM"]);
}

#[test]
fn dialog_4_an_unknown_question_is_offered_to_staff() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Question]));
    says_all(&d, &["not sure", "pass your question to the team"]);
    assert_eq!(c.state.expecting(), Some(Slot::Confirmation));
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(d.effect, Some(Effect::Handover));
    assert!(d.reply.handover);
    // Declining the offer just moves on.
    let mut c = Conversation::new(Channel::Sms);
    c.say(says(&[Act::Question]));
    let d = c.say(says(&[Act::Deny]));
    assert_eq!(d.effect, None);
    says_all(&d, &["Anything else"]);
}

#[test]
fn dialog_5_reschedule_with_two_bookings_asks_which_then_moves_after_confirmation() {
    let mut c = Conversation::new(Channel::Sms);
    let cleaning = c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    c.add_booking("Consultation", local(3, 16, 9, 0), 30);
    let d = c.say(says(&[Act::Reschedule]));
    assert_eq!(
        d.reply.text,
        "You have two upcoming: a cleaning on Friday, March 6 at 2:00 PM and a consultation on Monday, March 16 at 9:00 AM. Which one?"
    );
    assert_eq!(c.state.expecting(), Some(Slot::Booking));

    let d = c.say(says(&[Act::Inform]).service("Cleaning").on(3, 13).at(14, 0));
    assert_eq!(
        d.reply.text,
        "Friday, March 13 at 2:00 PM is free. Move your cleaning there?"
    );
    assert_eq!(
        d.effect, None,
        "the old slot stays until the new one is confirmed"
    );

    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(
        d.reply.text,
        "Moved — your cleaning is now on Friday, March 13 at 2:00 PM."
    );
    assert_eq!(
        d.effect,
        Some(Effect::Reschedule {
            id: cleaning,
            start: local(3, 13, 14, 0),
            end: local(3, 13, 14, 45),
        })
    );
    assert_eq!(d.intent, Act::Affirm);
}

#[test]
fn dialog_5_one_booking_is_not_asked_about_and_none_offers_to_book() {
    let mut c = Conversation::new(Channel::Sms);
    c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    let d = c.say(says(&[Act::Reschedule]));
    assert_eq!(
        d.reply.text,
        "When would you like to move your cleaning on Friday, March 6 at 2:00 PM to?"
    );
    // Moving it 15 minutes later overlaps its own old time, which does not block it.
    let d = c.say(says(&[Act::Inform]).on(3, 6).at(14, 15));
    says_all(
        &d,
        &["Friday, March 6 at 2:15 PM is free. Move your cleaning there?"],
    );

    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Reschedule]));
    says_all(&d, &["can't find an upcoming appointment", "book one"]);
    assert_eq!(c.state.form, None);
    let d = c.say(says(&[Act::Affirm]));
    says_all(&d, &["which service"]);
    assert_eq!(c.state.form.as_ref().map(|f| f.kind), Some(FormKind::Book));
}

#[test]
fn dialog_6_cancel_is_confirmed_and_mentions_the_policy() {
    let mut c = Conversation::new(Channel::Sms);
    let cleaning = c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    c.add_booking("Consultation", local(3, 16, 9, 0), 30);
    let d = c.say(says(&[Act::Cancel]).on(3, 6));
    assert_eq!(
        d.reply.text,
        "Cancel your cleaning on Friday, March 6 at 2:00 PM? Please cancel at least 24 hours ahead; late cancellations may be charged $25."
    );
    assert_eq!(d.effect, None);
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(d.effect, Some(Effect::Cancel { id: cleaning }));
    assert_eq!(
        d.reply.text,
        "It's cancelled. Would you like to book another time?"
    );
    assert_eq!(c.state.expecting(), Some(Slot::Confirmation));

    // Saying no keeps the booking.
    let mut c = Conversation::new(Channel::Sms);
    c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    c.say(says(&[Act::Cancel]));
    let d = c.say(says(&[Act::Deny]));
    assert_eq!(d.effect, None);
    says_all(&d, &["kept"]);
}

#[test]
fn dialog_7_hand_over_dials_on_voice_and_goes_quiet_on_text() {
    let mut c = Conversation::new(Channel::Voice);
    let d = c.say(says(&[Act::Handover]));
    assert_eq!(d.reply.text, "Connecting you now.");
    assert!(d.reply.handover);
    assert_eq!(d.effect, Some(Effect::Handover));
    assert_eq!(
        c.state.handed_over_until, None,
        "a call is transferred, not silenced"
    );

    let mut c = Conversation::new(Channel::WhatsApp);
    let d = c.say(says(&[Act::Handover]));
    assert_eq!(
        d.reply.text,
        "I've asked the team to reply to you here; they're in until 5:00 PM today."
    );
    assert_eq!(d.effect, Some(Effect::Handover));
    assert!(c.state.handed_over(c.now));
    // Staff have the conversation: Sara says nothing, whatever arrives.
    c.now += chrono::Duration::hours(3);
    let d = c.say(says(&[Act::Book]).service("Cleaning"));
    assert!(d.reply.silent);
    assert_eq!(d.effect, None);
    // After handover_minutes Sara answers again.
    c.now += chrono::Duration::hours(22);
    let d = c.say(says(&[Act::Greet]));
    assert!(!d.reply.silent);
    // Staff may hand back earlier.
    let mut c = Conversation::new(Channel::Sms);
    c.say(says(&[Act::Handover]));
    c.state.hand_back();
    let d = c.say(says(&[Act::Greet]));
    assert!(!d.reply.silent);
    // Out of hours the message says when they are next in.
    let mut c = Conversation::new(Channel::Sms);
    c.now = local(3, 7, 15, 0);
    let d = c.say(says(&[Act::Handover]));
    says_all(
        &d,
        &["they'll get back to you when they're in next, on Monday from 9:00 AM"],
    );
}

#[test]
fn dialog_8_the_form_survives_days_and_day_parts_offer_times() {
    let mut c = Conversation::new(Channel::WhatsApp);
    c.now = local(3, 9, 10, 0); // Monday
    let d = c.say(says(&[Act::Book]).service("Consultation"));
    assert_eq!(d.reply.text, "Happy to. Which day suits you?");
    c.now = local(3, 11, 18, 0); // Wednesday evening
    let d = c.say(says(&[Act::Inform]).on(3, 13).part(DayPart::Afternoon));
    assert_eq!(
        d.reply.text,
        "I can do 1:00 PM, 2:45 PM or 4:30 PM on Friday, March 13. Which suits you?"
    );
    assert_eq!(c.state.expecting(), Some(Slot::Option));
}

#[test]
fn dialog_8_an_expired_form_starts_over_politely() {
    let mut c = Conversation::new(Channel::WhatsApp);
    c.say(says(&[Act::Book]).service("Consultation"));
    c.now += chrono::Duration::days(8);
    let d = c.say(says(&[Act::Inform]).at(15, 0));
    assert!(
        d.reply
            .text
            .starts_with("It's been a while, so let's start again."),
        "{}",
        d.reply.text
    );
    let form = c.state.form.as_ref().expect("a new form");
    assert_eq!(form.service, None, "the old service is forgotten");
    assert_ne!(form.id, Uuid::from_u128(1001), "a new form id");
}

#[test]
fn dialog_9_out_of_scope_offers_a_message_or_a_consultation() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::OutOfScope]));
    assert_eq!(
        d.reply.text,
        "I can't help with that, but I can pass a message to the team or book a consultation. Which would you like?"
    );
    assert_eq!(d.effect, None);
    assert_eq!(d.intent, Act::OutOfScope);
}

#[test]
fn dialog_10_after_a_crash_the_repeated_message_is_handled_from_committed_state() {
    assert_eq!(
        missed_turn_reply().text,
        "Sorry, I missed that — could you say it once more?"
    );
    let mut c = Conversation::new(Channel::Sms);
    // The crashed turn was never committed: the state is what it was before.
    let d = c.say(says(&[Act::Inform]).on(3, 12).at(15, 0));
    says_all(&d, &["Thursday, March 12 at 3:00 PM"]);
    assert_eq!(c.state.form.as_ref().map(|f| f.kind), Some(FormKind::Book));
}

// ---- further rules ---------------------------------------------------------------------

#[test]
fn a_retried_yes_writes_the_same_booking() {
    let mut c = Conversation::new(Channel::Sms);
    c.say(
        says(&[Act::Book])
            .service("Cleaning")
            .on(3, 6)
            .at(14, 0)
            .name("Maria"),
    );
    let before = c.state.clone();
    let first = step(&before, &says(&[Act::Affirm]), &c.ctx());
    c.turns += 7; // a later attempt gets another fresh id from the engine
    let again = step(&before, &says(&[Act::Affirm]), &c.ctx());
    let (Some(Effect::Book(a)), Some(Effect::Book(b))) = (first.effect, again.effect) else {
        panic!("both attempts book");
    };
    assert_eq!(a.id, b.id);
    assert_eq!(a, b);
}

#[test]
fn a_slot_taken_at_write_time_offers_alternatives() {
    let mut c = Conversation::new(Channel::Sms);
    c.say(
        says(&[Act::Book])
            .service("Cleaning")
            .on(3, 6)
            .at(14, 0)
            .name("Maria"),
    );
    let before = c.state.clone();
    let d = step(&before, &says(&[Act::Affirm]), &c.ctx());
    let effect = d.effect.expect("a booking");
    // Someone else took 14:00 meanwhile.
    c.busy.push(busy(3, 6, (14, 0), (14, 45)));
    let d = effect_failed(&before, &effect, &CalendarError::SlotTaken, &c.ctx());
    assert_eq!(
        d.reply.text,
        "Sorry, 2:00 PM on Friday was just taken. I can do 1:00 PM, 1:15 PM or 2:45 PM on Friday, March 6. Which suits you?"
    );
    assert_eq!(d.effect, None);
    assert_eq!(d.state.expecting(), Some(Slot::Option));
    assert_eq!(d.intent, Act::Book);
    // The retried form keeps its id.
    assert_eq!(
        d.state.form.as_ref().map(|f| f.id),
        before.form.as_ref().map(|f| f.id)
    );

    // The policy also re-checks a confirmation against the fresh busy list.
    let d = step(&before, &says(&[Act::Affirm]), &c.ctx());
    assert_eq!(d.effect, None);
    says_all(&d, &["Sorry, 2:00 PM on Friday is taken."]);
}

#[test]
fn a_calendar_outage_keeps_the_state_so_yes_can_be_retried() {
    let mut c = Conversation::new(Channel::Sms);
    c.say(
        says(&[Act::Book])
            .service("Cleaning")
            .on(3, 6)
            .at(14, 0)
            .name("Maria"),
    );
    let before = c.state.clone();
    let d = step(&before, &says(&[Act::Affirm]), &c.ctx());
    let effect = d.effect.expect("a booking");
    let d = effect_failed(
        &before,
        &effect,
        &CalendarError::Unavailable("down".into()),
        &c.ctx(),
    );
    assert_eq!(d.state, before);
    assert_eq!(d.reply, calendar_unavailable_reply());
    assert_eq!(d.state.expecting(), Some(Slot::Confirmation));
}

#[test]
fn a_booking_after_the_spring_forward_uses_daylight_time() {
    let mut c = Conversation::new(Channel::Sms);
    c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 9)
            .at(9, 0)
            .name("Jo"),
    );
    let d = c.say(says(&[Act::Affirm]));
    let Some(Effect::Book(b)) = d.effect else {
        panic!("a booking")
    };
    assert_eq!(b.start.to_rfc3339(), "2026-03-09T13:00:00+00:00");
    let d = c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 6)
            .at(9, 0)
            .name("Jo"),
    );
    says_all(&d, &["Friday, March 6 at 9:00 AM"]);
    let d = c.say(says(&[Act::Affirm]));
    let Some(Effect::Book(b)) = d.effect else {
        panic!("a booking")
    };
    assert_eq!(b.start.to_rfc3339(), "2026-03-06T14:00:00+00:00");
}

#[test]
fn a_time_skipped_by_the_clocks_is_never_booked() {
    let mut c = Conversation::new(Channel::Sms);
    c.business.hours.days[6] =
        crate::business::WeeklyHours::parse_day("01:00-05:00").expect("valid");
    let d = c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 8)
            .at(2, 30)
            .name("Jo"),
    );
    says_all(
        &d,
        &[
            "2:30 AM doesn't exist on Sunday, March 8",
            "I can do 3:15 AM, 3:30 AM or 3:45 AM on Sunday, March 8",
        ],
    );
    assert_eq!(d.effect, None);
}

#[test]
fn closed_days_and_past_dates_offer_the_nearest_open_times() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Book]).service("Cleaning").on(3, 8));
    says_all(
        &d,
        &[
            "We're closed on Sunday, March 8.",
            "I can do 9:00 AM, 9:15 AM or 9:30 AM on Monday, March 9",
        ],
    );
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Book]).service("Cleaning").on(3, 2));
    says_all(
        &d,
        &["Monday, March 2 has already passed.", "I can do 1:00 PM"],
    );
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Book]).service("Cleaning").on(3, 5).at(11, 0));
    says_all(
        &d,
        &["11:00 AM on Thursday is too soon — I need to know at least 2 hours ahead."],
    );
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Book]).service("Cleaning").on(9, 1));
    says_all(&d, &["only book up to 60 days ahead"]);
    assert_eq!(c.state.expecting(), Some(Slot::Date));
}

#[test]
fn asking_only_for_what_is_missing_in_order() {
    let mut c = Conversation::new(Channel::Sms);
    c.say(says(&[Act::Book]));
    assert_eq!(c.state.expecting(), Some(Slot::Service));
    c.say(says(&[Act::Inform]).service("Cleaning"));
    assert_eq!(c.state.expecting(), Some(Slot::Date));
    c.say(says(&[Act::Inform]).on(3, 6));
    assert_eq!(c.state.expecting(), Some(Slot::Time));
    let d = c.say(says(&[Act::Inform]).at(9, 0));
    says_all(&d, &["Friday, March 6 at 9:00 AM is free. What name"]);
    assert_eq!(c.state.expecting(), Some(Slot::Name));
    c.say(says(&[Act::Inform]).name("Lee"));
    assert_eq!(c.state.expecting(), Some(Slot::Confirmation));
    // A no at the confirmation books nothing and asks for another time.
    let d = c.say(says(&[Act::Deny]));
    assert_eq!(d.effect, None);
    says_all(&d, &["haven't booked anything"]);
}

#[test]
fn greetings_thanks_and_goodbyes() {
    let b = Business::example();
    assert_eq!(
        greeting(&b, Channel::Voice).text,
        "Hi! This is Sara at Harbor Street Clinic. How can I help?"
    );
    let mut c = Conversation::new(Channel::Voice);
    let d = c.say(says(&[Act::Thanks]));
    says_all(&d, &["You're welcome"]);
    let d = c.say(says(&[Act::Goodbye]));
    assert!(d.reply.end);
    assert!(quarantine_reply(&b).handover);
    // Voice replies keep their choices: a relay call answers them with the keypad.
    let d = c.say(says(&[Act::Book]));
    assert_eq!(d.reply.options, ["Consultation", "Cleaning", "Whitening"]);
}

#[test]
fn a_half_filled_form_serializes_small_and_round_trips() {
    let mut c = Conversation::new(Channel::Sms);
    c.busy.push(busy(3, 9, (9, 0), (9, 30)));
    c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 9)
            .at(9, 0)
            .name("Jo Park"),
    );
    let json = serde_json::to_string(&c.state).expect("serializes");
    assert!(json.len() < 600, "{} bytes: {json}", json.len());
    let back: DialogueState = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, c.state);
    assert_eq!(
        serde_json::to_string(&DialogueState::default()).expect("ok"),
        "{}"
    );
}

#[test]
fn which_booking_can_be_picked_by_position_or_date() {
    let start = || {
        let mut c = Conversation::new(Channel::WhatsApp);
        c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
        let second = c.add_booking("Consultation", local(3, 16, 9, 0), 30);
        let d = c.say(says(&[Act::Cancel]));
        assert_eq!(
            d.reply.options,
            ["Cleaning Fri Mar 6", "Consultation Mon Mar 16"]
        );
        (c, second)
    };
    let (mut c, second) = start();
    let d = c.say(says(&[Act::Choose]).choice(1));
    says_all(
        &d,
        &["Cancel your consultation on Monday, March 16 at 9:00 AM?"],
    );
    assert_eq!(c.state.form.as_ref().and_then(|f| f.booking), Some(second));
    let (mut c, second) = start();
    c.say(says(&[Act::Inform]).on(3, 16));
    assert_eq!(c.state.form.as_ref().and_then(|f| f.booking), Some(second));
    // A reschedule asked "which one?" reads a bare date as the booking, then asks when.
    let mut c = Conversation::new(Channel::Sms);
    c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    c.add_booking("Consultation", local(3, 16, 9, 0), 30);
    c.say(says(&[Act::Reschedule]));
    let d = c.say(says(&[Act::Inform]).on(3, 6));
    assert_eq!(
        d.reply.text,
        "When would you like to move your cleaning on Friday, March 6 at 2:00 PM to?"
    );
    let d = c.say(says(&[Act::Inform]).on(3, 6).at(16, 0));
    says_all(
        &d,
        &["Friday, March 6 at 4:00 PM is free. Move your cleaning there?"],
    );
}

#[test]
fn a_bare_yes_with_nothing_open_is_harmless() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(d.effect, None);
    assert_eq!(c.state, DialogueState::default());
    says_all(&d, &["Anything else"]);
}

#[test]
fn a_declined_reschedule_or_missing_booking_changes_nothing() {
    let mut c = Conversation::new(Channel::Sms);
    let id = c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    c.say(says(&[Act::Reschedule]).on(3, 13).at(14, 0));
    assert_eq!(c.state.expecting(), Some(Slot::Confirmation));
    let before = c.state.clone();
    let effect = Effect::Reschedule {
        id,
        start: local(3, 13, 14, 0),
        end: local(3, 13, 14, 45),
    };
    let d = effect_failed(&before, &effect, &CalendarError::NotFound, &c.ctx());
    assert_eq!(d.state.form, None);
    says_all(&d, &["can't find that appointment"]);
    let d = c.say(says(&[Act::Deny]));
    assert_eq!(d.effect, None);
    says_all(&d, &["haven't moved anything"]);
}

#[test]
fn a_name_given_before_anything_else_is_kept_for_the_booking() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Inform]).name("Sam Ortiz"));
    says_all(&d, &["Sam", "book"]);
    let d = c.say(says(&[Act::Inform]).on(3, 10).at(10, 0));
    assert!(!d.reply.text.contains("name"), "{}", d.reply.text);
    let d = c.say(says(&[Act::Inform]).service("Cleaning"));
    says_all(
        &d,
        &["a cleaning for Sam Ortiz on Tuesday, March 10 at 10:00 AM"],
    );
    assert_eq!(c.state.expecting(), Some(Slot::Confirmation));
}

#[test]
fn moving_a_booking_to_next_week_same_time_reads_both_against_the_booking() {
    let mut c = Conversation::new(Channel::Sms);
    c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    c.add_booking("Consultation", local(3, 16, 9, 0), 30);
    c.say(says(&[Act::Reschedule]));
    let mut u = says(&[Act::Inform]).service("Cleaning");
    u.same_time = true;
    u.next_week = true;
    let d = c.say(u);
    assert_eq!(
        d.reply.text,
        "Friday, March 13 at 2:00 PM is free. Move your cleaning there?"
    );
}

#[test]
fn moving_a_booking_to_a_bare_new_time_keeps_its_day() {
    let mut c = Conversation::new(Channel::Sms);
    c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    c.say(says(&[Act::Reschedule]));
    let d = c.say(says(&[Act::Inform]).at(16, 0));
    says_all(
        &d,
        &["Friday, March 6 at 4:00 PM is free. Move your cleaning there?"],
    );
}

#[test]
fn without_a_staff_alert_a_text_hand_over_gives_the_number_and_promises_nothing() {
    let mut c = Conversation::new(Channel::Sms);
    c.staff_alerts = false;
    let d = c.say(says(&[Act::Handover]));
    assert_eq!(
        d.reply.text,
        "To talk to someone, please call us on +15550100000; they're in until 5:00 PM today."
    );
    assert!(
        !c.state.handed_over(c.now),
        "nobody would answer, so Sara keeps answering"
    );
}

#[test]
fn a_booking_written_before_a_crash_does_not_block_its_own_confirmation() {
    let mut c = Conversation::new(Channel::Sms);
    c.say(
        says(&[Act::Book, Act::Inform])
            .service("Cleaning")
            .on(3, 6)
            .at(14, 0)
            .name("Maria Lopez"),
    );
    let before = c.state.clone();
    let d = c.say(says(&[Act::Affirm]));
    let Some(Effect::Book(written)) = d.effect else {
        panic!("expected a booking, got {:?}", d.effect)
    };
    // The calendar kept the booking (the harness's busy list holds it, with its id) but the
    // turn was lost: the caller says yes again.
    c.state = before;
    c.bookings.push(written.clone());
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(
        d.effect,
        Some(Effect::Book(written)),
        "the same booking again"
    );
    says_all(&d, &["you're booked"]);
}

// ---- shifts, later/earlier, earliest, unread times, two requests, closing -------------

/// A cleaning for Sam on Tuesday, March 10 at 10:00, waiting for the yes.
fn proposed() -> Conversation {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(
        says(&[Act::Book])
            .service("Cleaning")
            .on(3, 10)
            .at(10, 0)
            .name("Sam Ortiz"),
    );
    says_all(&d, &["Tuesday, March 10 at 10:00 AM. Shall I confirm"]);
    c
}

#[test]
fn an_hour_later_moves_the_proposed_time_and_a_week_later_keeps_the_time() {
    use crate::understanding::Shift;
    let mut c = proposed();
    let mut u = says(&[Act::Inform]);
    u.shift = Some(Shift {
        days: 0,
        minutes: 60,
    });
    let d = c.say(u);
    says_all(&d, &["Tuesday, March 10 at 11:00 AM", "book"]);
    assert_eq!(d.effect, None);
    let mut u = says(&[Act::Inform]);
    u.shift = Some(Shift {
        days: 7,
        minutes: 0,
    });
    let d = c.say(u);
    says_all(&d, &["Tuesday, March 17 at 11:00 AM"]);
    let d = c.say(says(&[Act::Affirm]));
    assert!(matches!(d.effect, Some(Effect::Book(ref b)) if b.start == local(3, 17, 11, 0)));
}

#[test]
fn anything_later_never_offers_the_declined_time_again() {
    use crate::understanding::Lean;
    let mut c = proposed();
    let mut u = says(&[Act::OtherOptions]);
    u.lean = Some(Lean::Later);
    let d = c.say(u);
    assert!(!d.reply.text.contains("10:00 AM"), "{}", d.reply.text);
    says_all(&d, &["10:15 AM"]);
    let mut u = says(&[Act::OtherOptions]);
    u.lean = Some(Lean::Earlier);
    let mut c = proposed();
    let d = c.say(u);
    says_all(&d, &["9:15 AM, 9:30 AM or 9:45 AM"]);
    // Offers declined with "later?" move past the last one.
    let mut u = says(&[Act::OtherOptions]);
    u.lean = Some(Lean::Later);
    let d = c.say(u);
    says_all(&d, &["10:15 AM, 10:30 AM or 10:45 AM"]);
}

#[test]
fn after_11_offers_the_first_times_after_it() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(
        says(&[Act::Book])
            .service("Cleaning")
            .on(3, 6)
            .part(DayPart::After(hm(11, 0))),
    );
    says_all(&d, &["11:15 AM"]);
}

#[test]
fn the_earliest_you_have_searches_forward_from_now() {
    let mut c = Conversation::new(Channel::Sms);
    c.busy.push(busy(3, 5, (10, 0), (17, 0)));
    let mut u = says(&[Act::Book]).service("Whitening");
    u.earliest = true;
    let d = c.say(u);
    says_all(&d, &["9:00 AM, 9:15 AM or 9:30 AM on Friday, March 6"]);
}

#[test]
fn an_unread_time_is_asked_again_never_kept() {
    let mut c = proposed();
    let mut u = says(&[Act::Inform]);
    u.unclear_when = true;
    let d = c.say(u);
    says_all(&d, &["didn't catch the time", "Tuesday, March 10"]);
    assert_eq!(c.state.expecting(), Some(Slot::Time));
    // A "yes" now books nothing: there is no time to book.
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(d.effect, None);
}

/// "Cancel my cleaning on Friday and put me down for a whitening Monday at 11 instead".
fn cancel_then_book(c: &mut Conversation) -> Decision {
    c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    let book = says(&[Act::Book, Act::Inform])
        .service("Whitening")
        .on(3, 9)
        .at(11, 0);
    let mut u = says(&[Act::Cancel, Act::Inform])
        .service("Cleaning")
        .on(3, 6);
    u.then = Some(Box::new(book));
    c.say(u)
}

#[test]
fn dialog_12_one_confirmation_covers_both_requests_of_a_message() {
    let mut c = Conversation::new(Channel::Sms);
    let d = cancel_then_book(&mut c);
    assert_eq!(d.effect, None);
    assert!(d.reply.text.starts_with(
        "Cancel your cleaning on Friday, March 6 at 2:00 PM, and book a whitening on \
         Monday, March 9 at 11:00 AM?"
    ));
    let d = c.say(says(&[Act::Affirm]));
    assert!(matches!(d.effect, Some(Effect::Cancel { .. })));
    let then = d.then.as_ref().expect("the booking follows the cancel");
    assert!(
        matches!(&then.effect, Effect::Book(b) if b.service == "Whitening"
            && b.start == local(3, 9, 11, 0) && b.name.as_deref() == Some("Pat"))
    );
    assert_eq!(
        d.reply.text,
        "Done — the cleaning is cancelled and you're booked for a whitening on Monday, \
         March 9 at 11:00 AM. Reply here if you need to change it."
    );
    assert!(c.state.form.is_none() && c.state.queued.is_none() && c.state.also.is_none());
    assert_eq!(c.bookings.len(), 1);
}

#[test]
fn dialog_12_a_no_to_both_writes_nothing_and_forgets_the_second() {
    let mut c = Conversation::new(Channel::Sms);
    cancel_then_book(&mut c);
    let d = c.say(says(&[Act::Deny]));
    assert_eq!(d.effect, None);
    assert!(d.then.is_none());
    assert!(c.state.queued.is_none() && c.state.also.is_none());
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(d.effect, None);
}

#[test]
fn dialog_12_a_second_time_gone_meanwhile_is_offered_again_after_the_first_is_done() {
    let mut c = Conversation::new(Channel::Sms);
    cancel_then_book(&mut c);
    // Someone else takes Monday at 11 before the customer answers.
    c.busy.push(busy(3, 9, (11, 0), (12, 0)));
    let d = c.say(says(&[Act::Affirm]));
    assert!(matches!(d.effect, Some(Effect::Cancel { .. })));
    assert!(d.then.is_none());
    assert!(d.reply.text.starts_with("The cleaning is cancelled. "));
    says_all(&d, &["11:00 AM"]);
    assert!(!d.reply.text.contains("booked for"));
}

#[test]
fn dialog_12_a_second_write_refused_by_the_calendar_says_the_first_is_done() {
    let mut c = Conversation::new(Channel::Sms);
    cancel_then_book(&mut c);
    let d = c.say(says(&[Act::Affirm]));
    let then = d.then.expect("a second write");
    c.busy.push(busy(3, 9, (11, 0), (12, 0)));
    let again = then.failed(&CalendarError::SlotTaken, &c.ctx());
    assert_eq!(again.effect, None);
    assert!(
        again
            .reply
            .text
            .starts_with("The cleaning is cancelled. Sorry")
    );
    assert_eq!(
        again.state.form.as_ref().map(|f| f.kind),
        Some(FormKind::Book)
    );
}

#[test]
fn dialog_12_two_bookings_in_one_message_are_two_bookings_under_one_yes() {
    let mut c = Conversation::new(Channel::Sms);
    let second = says(&[Act::Book, Act::Inform])
        .service("Whitening")
        .on(3, 10)
        .at(14, 0);
    let mut u = says(&[Act::Book, Act::Inform])
        .service("Cleaning")
        .on(3, 9)
        .at(10, 0)
        .name("Jo Park");
    u.then = Some(Box::new(second));
    let d = c.say(u);
    assert!(d.reply.text.starts_with(
        "Book a cleaning for Jo Park on Monday, March 9 at 10:00 AM, and book a whitening on \
         Tuesday, March 10 at 2:00 PM?"
    ));
    let d = c.say(says(&[Act::Affirm]));
    let (Some(Effect::Book(one)), Some(Effect::Book(two))) =
        (&d.effect, d.then.as_ref().map(|t| &t.effect))
    else {
        panic!("two bookings: {d:?}");
    };
    assert_ne!(one.id, two.id, "each booking has its own id");
    assert_eq!(two.name.as_deref(), Some("Jo Park"));
    says_all(
        &d,
        &[
            "Done — you're booked for a cleaning",
            "and you're booked for a whitening",
        ],
    );
}

#[test]
fn dialog_12_a_second_request_still_missing_a_detail_waits_for_the_first() {
    let mut c = Conversation::new(Channel::Sms);
    c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    let book = says(&[Act::Book, Act::Inform]).service("Whitening");
    let mut u = says(&[Act::Cancel, Act::Inform])
        .service("Cleaning")
        .on(3, 6);
    u.then = Some(Box::new(book));
    let d = c.say(u);
    says_all(&d, &["Cancel your cleaning on Friday, March 6 at 2:00 PM?"]);
    assert!(c.state.also.is_none() && c.state.queued.is_some());
    let d = c.say(says(&[Act::Affirm]));
    assert!(matches!(d.effect, Some(Effect::Cancel { .. })));
    assert!(d.then.is_none());
    says_all(&d, &["It's cancelled.", "Which day"]);
}

#[test]
fn thanks_bye_closes_politely() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Thanks, Act::Goodbye]));
    says_all(&d, &["Goodbye", "welcome"]);
    assert!(d.reply.end);
}

#[test]
fn thanks_bye_with_a_booking_half_made_says_nothing_was_done_and_keeps_the_form() {
    let mut c = Conversation::new(Channel::Sms);
    c.say(says(&[Act::Book]).service("Cleaning"));
    let d = c.say(says(&[Act::Thanks, Act::Goodbye]));
    says_all(&d, &["nothing is done yet", "Goodbye"]);
    assert!(d.reply.end);
    assert!(d.effect.is_none());
    assert!(c.state.expecting().is_some(), "the form waits");
}

#[test]
fn dialog_11_none_of_those_after_11_never_repeats_an_offer() {
    let mut c = Conversation::new(Channel::Sms);
    c.busy.push(busy(3, 6, (9, 0), (11, 0)));
    c.busy.push(busy(3, 6, (11, 15), (11, 30)));
    let d = c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 6)
            .at(11, 0),
    );
    says_all(&d, &["11:00 AM on Friday is taken"]);
    let offered = c.state.form.as_ref().expect("form").offers.clone();
    assert!(!offered.is_empty());
    let d =
        c.say(says(&[Act::Deny, Act::OtherOptions, Act::Inform]).part(DayPart::After(hm(11, 0))));
    let now_offered = c.state.form.as_ref().expect("form").offers.clone();
    assert!(!now_offered.is_empty(), "{}", d.reply.text);
    assert!(
        now_offered.iter().all(|o| !offered.contains(o)),
        "{}",
        d.reply.text
    );
}

#[test]
fn push_it_back_30_minutes_moves_the_booking_from_its_own_time() {
    use crate::understanding::Shift;
    let mut c = Conversation::new(Channel::Sms);
    c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    let mut u = says(&[Act::Inform, Act::Reschedule]);
    u.shift = Some(Shift {
        days: 0,
        minutes: 30,
    });
    let d = c.say(u);
    says_all(
        &d,
        &["Friday, March 6 at 2:30 PM is free. Move your cleaning there?"],
    );
    let d = c.say(says(&[Act::Affirm]));
    assert!(
        matches!(d.effect, Some(Effect::Reschedule { start, .. }) if start == local(3, 6, 14, 30))
    );
}

// ---- answers to a reminder (DIALOGS.md 13) ---------------------------------------------

/// What the engine makes of a message's words beside the NLU's acts.
fn answering(text: &str, u: Understanding) -> Understanding {
    Understanding {
        reminder: crate::reminders::ReminderReply::read(text),
        ..u
    }
}

/// Maria's cleaning tomorrow (Friday) at 2:00 PM and a consultation later: the reminder is
/// about the nearest.
fn reminded() -> (Conversation, Uuid) {
    let mut c = Conversation::new(Channel::Sms);
    let later = c.add_booking("Consultation", local(3, 16, 9, 0), 30);
    let cleaning = c.add_booking("Cleaning", local(3, 6, 14, 0), 45);
    c.bookings
        .iter_mut()
        .for_each(|b| b.name = Some("Maria Lopez".into()));
    assert_ne!(later, cleaning);
    (c, cleaning)
}

#[test]
fn dialog_13_c_confirms_attendance_of_the_nearest_booking() {
    for text in [
        "C",
        "c.",
        "Yes, I'll be there",
        "yes I will be there!",
        "see you then",
    ] {
        let (mut c, cleaning) = reminded();
        let d = c.say(answering(text, says(&[Act::Affirm])));
        assert_eq!(
            d.reply.text, "Thanks, Maria — see you tomorrow at 2:00 PM.",
            "{text:?}"
        );
        assert_eq!(d.effect, Some(Effect::Attend { id: cleaning }), "{text:?}");
        assert_eq!(d.state.form, None);
    }
}

#[test]
fn dialog_13_x_and_please_cancel_it_confirm_before_cancelling_the_nearest() {
    for (text, acts) in [("X", vec![]), ("please cancel it", vec![Act::Cancel])] {
        let (mut c, cleaning) = reminded();
        let d = c.say(answering(text, says(&acts)));
        assert_eq!(d.effect, None, "{text:?}: nothing before the confirmation");
        says_all(&d, &["Cancel your cleaning on Friday, March 6 at 2:00 PM?"]);
        let d = c.say(says(&[Act::Affirm]));
        assert_eq!(d.effect, Some(Effect::Cancel { id: cleaning }), "{text:?}");
    }
}

#[test]
fn dialog_13_r_and_move_it_run_the_reschedule_of_the_nearest() {
    let (mut c, cleaning) = reminded();
    let d = c.say(answering("R", says(&[])));
    assert_eq!(d.effect, None);
    let form = d.state.form.as_ref().expect("a reschedule form");
    assert_eq!(
        (form.kind, form.booking),
        (FormKind::Reschedule, Some(cleaning))
    );
    let (mut c, cleaning) = reminded();
    let d = c.say(answering(
        "move it to Monday at 3",
        says(&[Act::Inform, Act::Reschedule]).on(3, 9).at(15, 0),
    ));
    says_all(
        &d,
        &["Monday, March 9 at 3:00 PM", "Move your cleaning there?"],
    );
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(
        d.effect,
        Some(Effect::Reschedule {
            id: cleaning,
            start: local(3, 9, 15, 0),
            end: local(3, 9, 15, 45)
        })
    );
    let (mut c, _) = reminded();
    let d = c.say(answering(
        "can we do Monday instead",
        says(&[Act::Inform]).on(3, 9),
    ));
    assert_eq!(
        d.state.form.as_ref().map(|f| f.kind),
        Some(FormKind::Reschedule),
        "{:?}",
        d.reply.text
    );
}

#[test]
fn a_bare_letter_without_a_booking_or_inside_a_form_is_asked_about() {
    // No upcoming booking: Sara asks what it means.
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(answering("C", says(&[])));
    assert_eq!(d.effect, None);
    says_all(
        &d,
        &[
            "not sure what \"C\" means",
            "can't find an upcoming appointment",
        ],
    );
    // A cancelled booking is not one a reminder is about.
    let (mut c, cleaning) = reminded();
    c.bookings
        .iter_mut()
        .for_each(|b| b.status = BookingStatus::Cancelled);
    let d = c.say(answering("X", says(&[])));
    assert_eq!(d.effect, None);
    assert_eq!(d.state.form, None, "no cancel form for {cleaning}");
    // In the middle of a booking form: the form is kept and resumed.
    let (mut c, _) = reminded();
    c.say(says(&[Act::Book]).service("Whitening"));
    let before = c.state.form.clone().expect("booking form");
    let d = c.say(answering("X", says(&[])));
    assert_eq!(d.effect, None);
    says_all(
        &d,
        &["not sure what \"X\" means here", "which day suits you"],
    );
    let after = d.state.form.expect("form kept");
    assert_eq!((after.kind, after.service), (before.kind, before.service));
    // While Sara awaits a yes/no, a bare letter is not a yes.
    let (mut c, _) = reminded();
    c.say(says(&[Act::Cancel]).on(3, 16));
    let d = c.say(answering("C", says(&[])));
    assert_eq!(d.effect, None);
    says_all(&d, &["not sure what \"C\" means here"]);
}

#[test]
fn yes_while_sara_awaits_a_yes_no_still_answers_that_question() {
    // Cancelling the consultation; "yes, I'll be there" is the yes to that question, not an
    // attendance of the nearest booking.
    let (mut c, _) = reminded();
    let d = c.say(says(&[Act::Cancel]).on(3, 16));
    says_all(&d, &["Cancel your consultation"]);
    let consultation = c
        .state
        .form
        .as_ref()
        .and_then(|f| f.booking)
        .expect("chosen");
    let d = c.say(answering("yes, I'll be there", says(&[Act::Affirm])));
    assert_eq!(d.effect, Some(Effect::Cancel { id: consultation }));
}

// ---- staff, limits per customer, late changes ------------------------------------------

fn with_staff(mut c: Conversation) -> Conversation {
    let h = |s: &str| crate::business::WeeklyHours::parse_day(s).expect("valid");
    let mut anna = crate::business::WeeklyHours::default();
    anna.days[0] = h("09:00-12:00");
    c.business.staff = vec![
        crate::business::Staff {
            name: "Anna".into(),
            services: Some(vec!["Cleaning".into()]),
            hours: Some(anna),
        },
        crate::business::Staff {
            name: "Ben".into(),
            services: None,
            hours: None,
        },
    ];
    c
}

fn booked(d: &Decision) -> Booking {
    match &d.effect {
        Some(Effect::Book(b)) => b.clone(),
        other => panic!("expected a booking, got {other:?}: {}", d.reply.text),
    }
}

#[test]
fn with_anna_is_a_constraint_and_a_time_she_is_out_gets_her_times() {
    let mut c = with_staff(Conversation::new(Channel::Sms));
    let mut u = says(&[Act::Book, Act::Inform])
        .service("Cleaning")
        .on(3, 9)
        .at(14, 0)
        .name("Maria Lopez");
    u.staff = Some("Anna".into());
    let d = c.say(u);
    assert!(
        d.reply.text.contains("Anna isn't in at 2:00 PM on Monday"),
        "{}",
        d.reply.text
    );
    let offers = c.state.form.as_ref().expect("form kept").offers.clone();
    assert!(!offers.is_empty());
    for o in &offers {
        let local = o.with_timezone(&chrono_tz::America::New_York);
        assert_eq!(local.date_naive(), date(3, 9), "Anna works Mondays only");
        assert!(local.time() < hm(12, 0), "{local}");
    }
    c.say(says(&[Act::Choose]).choice(0));
    let d = c.say(says(&[Act::Affirm]));
    let b = booked(&d);
    assert_eq!(b.staff.as_deref(), Some("Anna"));
    assert_eq!(b.start, offers[0]);
}

#[test]
fn without_a_name_any_capable_staff_member_is_booked() {
    let mut c = with_staff(Conversation::new(Channel::Sms));
    c.say(
        says(&[Act::Book, Act::Inform])
            .service("Cleaning")
            .on(3, 9)
            .at(14, 0)
            .name("Maria Lopez"),
    );
    let b = booked(&c.say(says(&[Act::Affirm])));
    assert_eq!(
        b.staff.as_deref(),
        Some("Ben"),
        "Anna is out in the afternoon"
    );
    // A second caller at Monday 10:00 twice: Anna first, then Ben beside her.
    let mut c = with_staff(Conversation::new(Channel::Sms));
    c.business.max_bookings_per_day = 0;
    let mut with = Vec::new();
    for _ in 0..3 {
        c.state = DialogueState::default();
        let d = c.say(
            says(&[Act::Book, Act::Inform])
                .service("Cleaning")
                .on(3, 9)
                .at(10, 0)
                .name("Maria Lopez"),
        );
        if d.reply.text.contains("taken") {
            with.push("taken".to_string());
            continue;
        }
        with.push(
            booked(&c.say(says(&[Act::Affirm])))
                .staff
                .unwrap_or_default(),
        );
    }
    assert_eq!(with, ["Anna", "Ben", "taken"]);
}

#[test]
fn bookings_per_day_and_upcoming_are_limited_per_customer() {
    let mut c = Conversation::new(Channel::Sms);
    c.business.max_bookings_per_day = 1;
    c.add_booking("Cleaning", local(3, 6, 10, 0), 45);
    let d = c.say(
        says(&[Act::Book, Act::Inform])
            .service("Consultation")
            .on(3, 6)
            .at(14, 0)
            .name("Maria Lopez"),
    );
    assert!(
        d.reply
            .text
            .contains("You already have one booking on Friday"),
        "{}",
        d.reply.text
    );
    assert_eq!(d.effect, None);
    // Another day is fine.
    c.say(says(&[Act::Inform]).on(3, 9).at(14, 0));
    assert_eq!(
        booked(&c.say(says(&[Act::Affirm]))).start,
        local(3, 9, 14, 0)
    );

    let mut c = Conversation::new(Channel::Sms);
    c.business.max_upcoming_bookings = 2;
    c.add_booking("Cleaning", local(3, 6, 10, 0), 45);
    c.add_booking("Cleaning", local(3, 10, 10, 0), 45);
    let d = c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 12)
            .at(9, 0),
    );
    assert!(
        d.reply
            .text
            .contains("You already have two bookings coming up"),
        "{}",
        d.reply.text
    );
    assert_eq!(d.effect, None);
    assert!(c.state.form.is_none());
}

#[test]
fn a_cancel_or_move_later_than_the_notice_goes_to_staff() {
    let mut c = Conversation::new(Channel::Sms);
    c.business.cancel_notice_minutes = 1440;
    // Tomorrow 9:00 is 23 hours away.
    c.add_booking("Cleaning", local(3, 6, 9, 0), 45);
    let d = c.say(says(&[Act::Cancel]));
    assert_eq!(d.effect, Some(Effect::Handover));
    assert!(
        d.reply
            .text
            .contains("less than 24 hours away, so I can't cancel it myself"),
        "{}",
        d.reply.text
    );
    // (After a hand-over Sara stays quiet on text; a fresh conversation asks to move it.)
    c.state = DialogueState::default();
    let d = c.say(says(&[Act::Reschedule]));
    assert_eq!(d.effect, Some(Effect::Handover), "{}", d.reply.text);
    assert!(
        d.reply.text.contains("so I can't move it myself"),
        "{}",
        d.reply.text
    );

    // Three days ahead Sara cancels as usual (after asking).
    let mut c = Conversation::new(Channel::Sms);
    c.business.cancel_notice_minutes = 1440;
    c.add_booking("Cleaning", local(3, 9, 9, 0), 45);
    let d = c.say(says(&[Act::Cancel]));
    assert_eq!(d.effect, None);
    assert!(d.reply.text.starts_with("Cancel your"), "{}", d.reply.text);
}

// ---- staff changes from the console --------------------------------------------------

impl Conversation {
    fn staff(&self, change: &StaffChange) -> StaffDecision {
        staff_change(&self.state, change, &self.ctx())
    }
}

fn staff_book(service: &str, m: u32, d: u32, h: u32, min: u32) -> StaffChange {
    StaffChange::Book {
        id: Uuid::from_u128(77),
        service: service.into(),
        date: date(m, d),
        time: hm(h, min),
        staff: None,
        name: Some("Jo Park".into()),
    }
}

#[test]
fn staff_book_a_free_time_for_the_customer_with_the_name_they_give() {
    let c = Conversation::new(Channel::Sms);
    let StaffDecision::Change {
        effect: Effect::Book(b),
    } = c.staff(&staff_book("cleaning", 3, 6, 14, 0))
    else {
        panic!("a free time is booked");
    };
    assert_eq!(
        b.id,
        Uuid::from_u128(77),
        "the page's key is the booking's id"
    );
    assert_eq!(b.service, "Cleaning", "the configured name");
    assert_eq!((b.start, b.end), (local(3, 6, 14, 0), local(3, 6, 14, 45)));
    assert_eq!(b.name.as_deref(), Some("Jo Park"));
    assert_eq!(b.status, BookingStatus::Confirmed);
    assert_eq!(
        staff_change_message(&c.business, &Effect::Book(b.clone()), &b),
        "Hi Jo, the front desk at Harbor Street Clinic booked a cleaning on Friday, March 6 at \
         2:00 PM for you. Reply here if you need to change it."
    );
}

#[test]
fn a_staff_booking_of_a_taken_or_closed_time_is_refused_with_the_reason_and_free_times() {
    let mut c = Conversation::new(Channel::Sms);
    c.busy.push(busy(3, 9, (9, 0), (9, 30)));
    let StaffDecision::Refused {
        reason,
        alternatives,
    } = c.staff(&staff_book("Consultation", 3, 9, 9, 0))
    else {
        panic!("a taken time is refused");
    };
    assert!(reason.contains("9:00 AM on Monday is taken"), "{reason}");
    assert!(!reason.ends_with('?'), "staff get no question: {reason}");
    assert_eq!(alternatives.len(), 3, "{alternatives:?}");
    assert!(
        alternatives.contains(&local(3, 9, 9, 30)),
        "{alternatives:?}"
    );

    let StaffDecision::Refused {
        reason,
        alternatives,
    } = c.staff(&staff_book("Consultation", 3, 8, 10, 0))
    else {
        panic!("a closed day is refused");
    };
    assert!(reason.contains("closed on Sunday, March 8"), "{reason}");
    assert!(
        !alternatives.is_empty(),
        "the nearest open times are offered"
    );

    let StaffDecision::Refused { reason, .. } = c.staff(&staff_book("Massage", 3, 9, 10, 0)) else {
        panic!("an unknown service is refused");
    };
    assert_eq!(reason, "There is no such service.");
}

#[test]
fn staff_bookings_meet_the_customers_limits() {
    let mut c = Conversation::new(Channel::Sms);
    c.business.max_bookings_per_day = 1;
    c.add_booking("Cleaning", local(3, 9, 9, 0), 45);
    let StaffDecision::Refused { reason, .. } = c.staff(&staff_book("Consultation", 3, 9, 14, 0))
    else {
        panic!("a second booking that day is over the limit");
    };
    assert!(
        reason.contains("one booking on Monday, March 9"),
        "{reason}"
    );
}

#[test]
fn staff_move_and_cancel_a_booking_even_inside_the_cancel_notice() {
    let mut c = Conversation::new(Channel::Sms);
    c.business.cancel_notice_minutes = 1440;
    let id = c.add_booking("Cleaning", local(3, 5, 15, 0), 45);
    let moved = c.staff(&StaffChange::Move {
        booking: id,
        date: date(3, 6),
        time: hm(11, 0),
    });
    assert_eq!(
        moved,
        StaffDecision::Change {
            effect: Effect::Reschedule {
                id,
                start: local(3, 6, 11, 0),
                end: local(3, 6, 11, 45),
            }
        }
    );
    assert_eq!(
        c.staff(&StaffChange::Cancel { booking: id }),
        StaffDecision::Change {
            effect: Effect::Cancel { id }
        }
    );
    let gone = c.staff(&StaffChange::Cancel {
        booking: Uuid::from_u128(9),
    });
    assert!(matches!(gone, StaffDecision::Refused { .. }), "{gone:?}");
}

#[test]
fn a_name_and_email_heard_on_a_call_are_spelled_back_before_the_booking_and_a_no_corrects_them() {
    let mut c = Conversation::new(Channel::Voice);
    let mut u = says(&[Act::Book])
        .service("Cleaning")
        .on(3, 6)
        .at(14, 0)
        .name("Jake Ross");
    u.email = Some("jake.ross@mail.com".into());
    let d = c.say(u);
    assert_eq!(d.reply.text, "That's J-A-K-E R-O-S-S, is that right?");
    assert_eq!(d.reply.options, ["Yes", "No"]);
    assert_eq!(c.state.expecting(), Some(Slot::Confirmation));
    assert_eq!(d.effect, None);

    // No: Sara asks for it letter by letter and reads the spelled answer back as a name.
    let d = c.say(says(&[Act::Deny]));
    assert_eq!(
        d.reply.text,
        "Sorry about that. Could you spell your name for me, letter by letter?"
    );
    assert_eq!(c.state.expecting(), Some(Slot::Name));
    let d = c.say(says(&[Act::Inform]).name("J-A-K-E R-O-S-E"));
    assert_eq!(d.reply.text, "That's J-A-K-E R-O-S-E, is that right?");
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(
        d.reply.text,
        "And your email is J-A-K-E dot R-O-S-S at M-A-I-L dot C-O-M, is that right?"
    );
    let d = c.say(says(&[Act::Affirm]));
    assert_eq!(d.effect, None, "nothing is booked before the confirmation");
    says_all(
        &d,
        &[
            "Jake Rose",
            "Friday, March 6 at 2:00 PM",
            "Shall I confirm it?",
        ],
    );
    let d = c.say(says(&[Act::Affirm]));
    match d.effect {
        Some(Effect::Book(b)) => {
            assert_eq!(b.name.as_deref(), Some("Jake Rose"));
            assert_eq!(b.email.as_deref(), Some("jake.ross@mail.com"));
        }
        other => panic!("booked: {other:?}"),
    }

    // A question in the middle: the reminder repeats the spelling question.
    let mut c = Conversation::new(Channel::Voice);
    c.say(
        says(&[Act::Book])
            .service("Cleaning")
            .on(3, 6)
            .at(15, 0)
            .name("Jo Park"),
    );
    let d = c.say(says(&[Act::Question]).faq("Free parking on Dock Lane."));
    assert_eq!(
        d.reply.text,
        "Free parking on Dock Lane. Now, that's J-O P-A-R-K, is that right?"
    );
    // "Yes, and it's Jo Parks" with the confirmation pending: the new name is spelled first.
    let d = c.say(says(&[Act::Affirm]));
    says_all(&d, &["Shall I confirm it?"]);
    let d = c.say(says(&[Act::Affirm, Act::Inform]).name("Jo Parks"));
    assert_eq!(d.effect, None);
    assert_eq!(d.reply.text, "That's J-O P-A-R-K-S, is that right?");

    // On text what is typed is exact: no spelling back.
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(
        says(&[Act::Book])
            .service("Cleaning")
            .on(3, 6)
            .at(14, 0)
            .name("Jake Ross"),
    );
    says_all(&d, &["Jake Ross", "Shall I confirm it?"]);
    assert!(!d.reply.text.contains("J-A-K-E"), "{}", d.reply.text);
}

#[test]
fn a_name_heard_before_any_booking_is_spelled_back_once_and_not_again_for_the_next() {
    let mut c = Conversation::new(Channel::Voice);
    let d = c.say(says(&[Act::Inform]).name("Jake Ross"));
    says_all(&d, &["Thanks, Jake!"]);
    let d = c.say(says(&[Act::Book]).service("Cleaning").on(3, 6).at(14, 0));
    assert_eq!(d.reply.text, "That's J-A-K-E R-O-S-S, is that right?");
    c.say(says(&[Act::Affirm]));
    let d = c.say(says(&[Act::Affirm]));
    assert!(matches!(d.effect, Some(Effect::Book(_))), "{d:?}");
    // A second booking on the same call is under the name already confirmed.
    let d = c.say(
        says(&[Act::Book])
            .service("Consultation")
            .on(3, 9)
            .at(10, 0),
    );
    says_all(&d, &["Jake Ross", "Shall I confirm it?"]);
}

#[test]
fn a_part_of_the_day_with_no_day_offers_the_first_day_with_such_times() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(
        says(&[Act::Book, Act::Inform])
            .service("Whitening")
            .part(DayPart::Afternoon),
    );
    says_all(&d, &["PM on Thursday, March 5"]);
    assert_eq!(c.state.expecting(), Some(Slot::Option));
    // The afternoon of today is full: the next day with a free afternoon is offered.
    let mut c = Conversation::new(Channel::Sms);
    c.busy.push(busy(3, 5, (12, 0), (18, 0)));
    let d = c.say(
        says(&[Act::Book, Act::Inform])
            .service("Whitening")
            .part(DayPart::Afternoon),
    );
    says_all(&d, &["PM on Friday, March 6"]);
}

#[test]
fn a_time_with_no_day_is_kept_and_the_day_asked_for_it() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Book]).service("Cleaning").at(16, 0));
    assert_eq!(d.reply.text, "Sure — which day would you like at 4:00 PM?");
    let d = c.say(says(&[Act::Inform]).on(3, 9));
    says_all(&d, &["Monday, March 9 at 4:00 PM is free"]);
}

#[test]
fn next_week_with_no_day_is_its_first_open_day() {
    let mut c = Conversation::new(Channel::Sms);
    let mut u = says(&[Act::Book]).service("Cleaning");
    u.next_week = true;
    let d = c.say(u);
    says_all(&d, &["Monday, March 9"]);
    let mut u = says(&[Act::Book])
        .service("Whitening")
        .part(DayPart::Afternoon);
    u.next_week = true;
    let d = Conversation::new(Channel::Sms).say(u);
    says_all(&d, &["PM on Monday, March 9"]);
}

#[test]
fn a_name_given_while_sara_asked_the_time_is_heard_and_the_question_stands() {
    let mut c = Conversation::new(Channel::Sms);
    let d = c.say(says(&[Act::Book]).service("Cleaning").on(3, 9));
    assert_eq!(c.state.expecting(), Some(Slot::Time), "{}", d.reply.text);
    let d = c.say(says(&[Act::Inform]).name("Maya Chen"));
    assert!(
        d.reply
            .text
            .starts_with("Thanks, Maya Chen. What time on Monday, March 9"),
        "{}",
        d.reply.text
    );
    let d = c.say(says(&[Act::Inform]).at(14, 0));
    says_all(
        &d,
        &["I can book a cleaning for Maya Chen on Monday, March 9 at 2:00 PM"],
    );
}

#[test]
fn a_question_about_a_service_is_answered_and_booking_it_offered_not_assumed() {
    let mut c = Conversation::new(Channel::Sms);
    let mut u = says(&[Act::Question, Act::Inform]).service("Whitening");
    u.faq_answer = Some("A whitening is $250.".into());
    let d = c.say(u);
    assert_eq!(
        d.reply.text,
        "A whitening is $250. Would you like to book a whitening?"
    );
    assert_eq!(d.effect, None);
    let d = c.say(says(&[Act::Affirm]));
    says_all(&d, &["Which day"]);
    let d = c.say(says(&[Act::Inform]).on(3, 9).at(10, 0).name("Pat Lee"));
    says_all(
        &d,
        &["I can book a whitening for Pat Lee on Monday, March 9 at 10:00 AM"],
    );
    // No answer known: what the service is, and the offer.
    let d = Conversation::new(Channel::Sms).say(says(&[Act::Question]).service("Cleaning"));
    assert!(
        d.reply.text.starts_with("Yes, we do cleaning ("),
        "{}",
        d.reply.text
    );
    assert!(d.reply.text.ends_with("Would you like to book one?"));
    // A no books nothing.
    let mut c = Conversation::new(Channel::Sms);
    c.say(says(&[Act::Question]).service("Cleaning"));
    let d = c.say(says(&[Act::Deny]));
    assert_eq!(d.effect, None);
    assert!(c.state.form.is_none());
}

#[test]
fn a_price_question_while_booking_keeps_the_service_being_booked() {
    let mut c = Conversation::new(Channel::Sms);
    c.say(says(&[Act::Book]).service("Cleaning").on(3, 9));
    let mut u = says(&[Act::Question, Act::Inform]).service("Whitening");
    u.faq_answer = Some("A whitening is $250.".into());
    let d = c.say(u);
    assert!(
        d.reply.text.starts_with("A whitening is $250."),
        "{}",
        d.reply.text
    );
    assert_eq!(
        c.state.form.as_ref().and_then(|f| f.service.as_deref()),
        Some("Cleaning")
    );
}

#[test]
fn moving_a_booking_to_the_afternoon_keeps_its_day() {
    let mut c = Conversation::new(Channel::Sms);
    c.add_booking("Cleaning", local(3, 9, 10, 0), 45);
    let d = c.say(says(&[Act::Reschedule]).part(DayPart::Afternoon));
    says_all(&d, &["PM on Monday, March 9"]);
}
