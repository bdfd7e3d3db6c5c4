//! The dialogue policy: a pure function from (state, understanding, context) to the next
//! state, the reply and at most one effect for the engine to run. No I/O, no clock, no
//! randomness: everything it needs arrives in [`TurnContext`].
//!
//! The shape of a turn: a hand-over keeps text channels quiet; a request for a human always
//! wins; a stale form is dropped; then the message either answers what Sara proposed last,
//! starts or continues a form (book, reschedule, cancel — see [`form`]), or is small talk.
//! A known FAQ answer is said first and the unfinished form resumes with a short reminder.

mod form;
mod speech;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::availability::BusyList;
use crate::business::Business;
use crate::model::{Booking, BookingId, BookingStatus, Channel, Phone};
use crate::ports::CalendarError;
use crate::reminders::{self, ReminderAnswer};
use crate::understanding::{Act, DayPart, Slot, Understanding};

/// Everything the policy may know about the world for one turn.
#[derive(Clone, Debug)]
pub struct TurnContext<'a> {
    /// The message's time.
    pub now: DateTime<Utc>,
    pub business: &'a Business,
    pub phone: &'a Phone,
    pub channel: Channel,
    /// What holds time in the calendar: bookings (with their service and staff member, so
    /// the availability rules place buffers, staff and resources) and blocks.
    pub busy: &'a BusyList,
    /// This caller's upcoming, not cancelled bookings, soonest first.
    pub bookings: &'a [Booking],
    /// A fresh id the policy may use for a new booking form (it cannot make its own).
    pub fresh_id: Uuid,
    /// Whether staff are alerted when a customer asks for a person on a text channel; when
    /// not, Sara gives the business number instead of promising a reply.
    pub staff_alerts: bool,
}

/// What a form is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormKind {
    Book,
    Reschedule,
    Cancel,
}

/// An unfinished book / reschedule / cancel request and what is known of it so far.
/// Serialized with short names: many of these live in the store at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Form {
    #[serde(rename = "k")]
    pub kind: FormKind,
    /// Taken from `TurnContext::fresh_id` when the form starts; a booking made by this form
    /// carries it, so a retried "yes" writes the same booking again.
    pub id: Uuid,
    /// Canonical service name (for reschedule/cancel: the chosen booking's service).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Wanted local date and time in the business time zone.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub time: Option<NaiveTime>,
    /// A vague time ("afternoon"); cleared when an exact time arrives.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub day_part: Option<DayPart>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Which of the caller's bookings is moved or cancelled.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<BookingId>,
    /// Start times last offered, in the order they were read out ("the second one").
    #[serde(rename = "o", default, skip_serializing_if = "Vec::is_empty")]
    pub offers: Vec<DateTime<Utc>>,
    /// Times the caller turned down ("anything later?"): never offered again in this form.
    #[serde(rename = "v", default, skip_serializing_if = "Vec::is_empty")]
    pub avoid: Vec<DateTime<Utc>>,
    /// "The earliest you have": offer the first free times rather than ask for a day.
    #[serde(rename = "x", default, skip_serializing_if = "std::ops::Not::not")]
    pub earliest: bool,
    /// What Sara asked last; `Confirmation` means a confirmation is pending.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<Slot>,
    /// The last turn that touched the form, for expiry.
    #[serde(rename = "u")]
    pub touched: DateTime<Utc>,
    /// The staff member the caller asked for ("with Anna"): offers stay with them.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
    /// The name was heard on a call (a recognizer's guess, not typed) and the caller has not
    /// yet said yes to it spelled back: it is spelled back before the booking is confirmed.
    #[serde(rename = "hn", default, skip_serializing_if = "std::ops::Not::not")]
    pub name_unchecked: bool,
    /// The same for the email address.
    #[serde(rename = "he", default, skip_serializing_if = "std::ops::Not::not")]
    pub email_unchecked: bool,
    /// Sara spelled this back and waits for "is that right?" (`asked` is `Confirmation`).
    #[serde(rename = "sp", default, skip_serializing_if = "Option::is_none")]
    pub spelling: Option<Detail>,
}

/// A detail of a booking that is spelled back on a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    Name,
    Email,
}

impl Form {
    /// A new form; `name` is the caller's name when they already gave it.
    fn new(kind: FormKind, ctx: &TurnContext, name: Option<String>) -> Form {
        Form {
            kind,
            id: ctx.fresh_id,
            service: None,
            date: None,
            time: None,
            day_part: None,
            name,
            email: None,
            booking: None,
            offers: Vec::new(),
            avoid: Vec::new(),
            earliest: false,
            asked: None,
            touched: ctx.now,
            staff: None,
            name_unchecked: false,
            email_unchecked: false,
            spelling: None,
        }
    }

    fn expired(&self, ctx: &TurnContext) -> bool {
        ctx.now - self.touched > Duration::minutes(i64::from(ctx.business.form_expiry_minutes))
    }
}

/// A yes/no question Sara asked outside a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proposal {
    /// "Shall I pass your question to the team?"
    Handover,
    /// "Would you like to book another time?"
    Book,
}

/// The dialogue state of one conversation: what is being done and what is known so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DialogueState {
    /// The unfinished request, if any.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Form>,
    /// A yes/no question Sara asked that is not part of a form.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Proposal>,
    /// The caller's name as they last gave it, so a later booking need not ask again.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// That name was heard on a call and not yet spelled back: a booking made under it
    /// spells it back first (see [`Form::name_unchecked`]).
    #[serde(rename = "ch", default, skip_serializing_if = "std::ops::Not::not")]
    pub caller_heard: bool,
    /// A second request of an earlier message, taken up once the current form is done.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<Box<Understanding>>,
    /// That second request's form, ready to confirm: Sara asked about both at once ("Cancel
    /// your cleaning …, and book a whitening …?"), so the next "yes" writes both.
    #[serde(rename = "nf", default, skip_serializing_if = "Option::is_none")]
    pub also: Option<Box<Form>>,
    /// After a hand-over on a text channel Sara stays quiet until then (or until staff hand
    /// the conversation back with [`DialogueState::hand_back`]).
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub handed_over_until: Option<DateTime<Utc>>,
    /// Staff took the conversation over from the console: Sara records each message but
    /// answers none (a call is put through to staff) until staff hand it back. Unlike a
    /// hand-over it does not run out.
    #[serde(rename = "t", default, skip_serializing_if = "std::ops::Not::not")]
    pub taken_over: bool,
}

impl DialogueState {
    /// A new form under the caller's known name (still to be spelled back on a call when it
    /// was heard and never confirmed).
    fn new_form(&self, kind: FormKind, ctx: &TurnContext) -> Form {
        let mut form = Form::new(kind, ctx, self.caller.clone());
        form.name_unchecked = self.caller.is_some() && self.caller_heard;
        form
    }

    /// What Sara asked for last, to help the NLU read a bare answer.
    pub fn expecting(&self) -> Option<Slot> {
        if self.proposal.is_some() {
            return Some(Slot::Confirmation);
        }
        self.form.as_ref().and_then(|f| f.asked)
    }

    /// Whether staff have this conversation at `now` (Sara stays quiet on text).
    pub fn handed_over(&self, now: DateTime<Utc>) -> bool {
        self.handed_over_until.is_some_and(|until| now < until)
    }

    /// Staff give the conversation back to Sara.
    pub fn hand_back(&mut self) {
        self.handed_over_until = None;
        self.taken_over = false;
    }

    /// Staff take the conversation over: Sara stays quiet on it until [`Self::hand_back`].
    pub fn take_over(&mut self) {
        self.taken_over = true;
    }

    /// Whether the customer asked for a person and no one has taken the conversation yet.
    pub fn waiting_for_staff(&self, now: DateTime<Utc>) -> bool {
        self.handed_over(now) && !self.taken_over
    }
}

/// What Sara says back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub text: String,
    /// The choices the reply asks between (WhatsApp buttons; on a relay call the keypad
    /// answers them, 1 for the first); the text already lists them.
    pub options: Vec<String>,
    /// Pass the caller to a human now (voice: dial the staff number).
    pub handover: bool,
    /// The conversation is over (voice: hang up).
    pub end: bool,
    /// Say nothing (text channels while staff have the conversation).
    pub silent: bool,
}

impl Reply {
    fn say(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            ..Reply::default()
        }
    }

    /// What staff wrote to the customer, as the transcript keeps it.
    pub fn staff(text: impl Into<String>) -> Reply {
        Reply::say(text)
    }
}

/// Something the engine must do in the world for this turn to be true.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    Book(Booking),
    Reschedule {
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    Cancel {
        id: BookingId,
    },
    /// The customer confirmed, in answer to a reminder, that they will come; recorded with
    /// the turn (no calendar write).
    Attend {
        id: BookingId,
    },
    Handover,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub state: DialogueState,
    pub reply: Reply,
    pub effect: Option<Effect>,
    /// The act the policy acted on, for the turn log.
    pub intent: Act,
    /// A second write the same "yes" covered, run once `effect` is done.
    pub then: Option<Box<Then>>,
}

/// The second of two writes one confirmation covered (DIALOGS.md 12).
#[derive(Clone, Debug, PartialEq)]
pub struct Then {
    pub effect: Effect,
    /// The state it was decided from (the first write done), to decide again should it fail.
    pub before: DialogueState,
    /// The first write done, in a sentence, said before whatever follows a failed second.
    pub first_done: String,
}

impl Then {
    /// The second write failed (`error`); `ctx.busy` is fresh: the first one's success is
    /// said, then what Sara says of the failure.
    pub fn failed(&self, error: &CalendarError, ctx: &TurnContext) -> Decision {
        let mut decision = effect_failed(&self.before, &self.effect, error, ctx);
        decision.reply.text = format!("{} {}", self.first_done, decision.reply.text);
        decision
    }

    /// The second write is held for a retry (see [`write_deferred`]).
    pub fn deferred(&self, decision: Decision, ctx: &TurnContext) -> Decision {
        let mut decision = write_deferred(
            Decision {
                effect: Some(self.effect.clone()),
                ..decision
            },
            ctx,
        );
        decision.reply.text = format!("{} {}", self.first_done, decision.reply.text);
        decision
    }
}

/// What Sara says to a message without words (a picture, a voice note, a sticker).
pub fn text_only() -> Reply {
    Reply::say("Sorry, I can only read text messages. Could you type it for me?")
}

/// What Sara says when a conversation starts (a call is answered, or "hello").
pub fn greeting(business: &Business, channel: Channel) -> Reply {
    let _ = channel;
    Reply::say(format!(
        "Hi! This is Sara at {}. How can I help?",
        business.name
    ))
}

/// An instant as Sara says it: "Tuesday, December 1 at 3:00 PM" in the business time zone.
pub fn spoken_when(tz: chrono_tz::Tz, at: DateTime<Utc>) -> String {
    speech::when(tz, at)
}

/// The reply to a turn whose processing crashed: the caller is asked to repeat it.
pub fn missed_turn_reply() -> Reply {
    Reply::say("Sorry, I missed that — could you say it once more?")
}

/// The hand-over message for a conversation that keeps failing: a human takes it.
pub fn quarantine_reply(business: &Business) -> Reply {
    Reply {
        text: format!(
            "Sorry, I'm having trouble on my side. I've asked the team at {} to get back to you.",
            business.name
        ),
        handover: true,
        ..Reply::default()
    }
}

/// The reply when the calendar cannot be reached: nothing was changed, try again.
pub fn calendar_unavailable_reply() -> Reply {
    Reply::say(
        "Sorry, I can't reach the calendar just now, so nothing has been changed. \
         Please try again in a minute.",
    )
}

/// One turn of the policy.
pub fn step(state: &DialogueState, understanding: &Understanding, ctx: &TurnContext) -> Decision {
    let u = understanding;
    let mut state = state.clone();
    // A question about two requests holds for the answer to it only.
    let also = state.also.take();
    if state.taken_over {
        // Staff answer this conversation themselves; a caller is put through to them.
        let reply = if ctx.channel.is_text() {
            Reply {
                silent: true,
                ..Reply::default()
            }
        } else {
            Reply {
                text: "Connecting you now.".into(),
                handover: true,
                ..Reply::default()
            }
        };
        return Decision {
            state,
            reply,
            effect: None,
            intent: u.primary().unwrap_or(Act::Inform),
            then: None,
        };
    }
    if let Some(until) = state.handed_over_until {
        if ctx.channel.is_text() && ctx.now < until {
            return Decision {
                state,
                reply: Reply {
                    silent: true,
                    ..Reply::default()
                },
                effect: None,
                intent: u.primary().unwrap_or(Act::Inform),
                then: None,
            };
        }
        state.handed_over_until = None;
    }
    // A hand-over is never refused, whatever else the message says.
    if u.has(Act::Handover) {
        return handover(state, ctx);
    }
    let mut opening = "";
    if state.form.as_ref().is_some_and(|f| f.expired(ctx)) {
        state.form = None;
        state.queued = None;
        opening = "It's been a while, so let's start again. ";
    }
    let answer = u.has(Act::Question).then(|| u.faq_answer.clone()).flatten();
    let mut decision = match act(state.clone(), u, ctx) {
        Some(mut d) => {
            if let Some(answer) = &answer {
                d.reply.text = format!("{answer} {}", d.reply.text);
            }
            d
        }
        None => small_talk(state, u, ctx, answer),
    };
    // The message's second request: started in the same message when the first one
    // starts a form (asked about with it when both are ready to confirm), taken up once that
    // form has done its write (done with it when one "yes" covered both).
    if let Some(then) = u.then.as_ref() {
        if decision.state.form.is_some() && decision.effect.is_none() {
            decision.state.queued = Some(then.clone());
            ask_both(&mut decision, then, ctx);
        }
    } else if decision.state.form.is_none()
        && matches!(
            decision.effect,
            Some(Effect::Book(_) | Effect::Cancel { .. } | Effect::Reschedule { .. })
        )
        && let Some(next) = decision.state.queued.take()
    {
        let mut after = decision.state.clone();
        after.proposal = None;
        if after.caller.is_none() {
            after.caller = decision.effect.as_ref().and_then(|e| effect_name(e, ctx));
        }
        match also {
            Some(second_form) => do_both(&mut decision, after, *second_form, u, ctx),
            None => {
                if let Some(second) = act(after, &next, ctx).filter(|d| d.effect.is_none()) {
                    let done = match decision.effect {
                        Some(Effect::Cancel { .. }) => "It's cancelled.".to_string(),
                        _ => decision.reply.text.clone(),
                    };
                    decision.reply.text = format!("{done} {}", second.reply.text);
                    decision.reply.options = second.reply.options;
                    decision.state = second.state;
                }
            }
        }
    } else if decision.state.form.is_none() && decision.effect.is_none() {
        // The first request was dropped or declined: the second goes with it.
        decision.state.queued = None;
    }
    if !opening.is_empty() {
        decision.reply.text = format!("{opening}{}", decision.reply.text);
    }
    if let Some(form) = decision.state.form.as_ref()
        && let Some(name) = form.name.clone()
    {
        decision.state.caller_heard = form.name_unchecked;
        decision.state.caller = Some(name);
    }
    decision
}

/// The name on the booking a write is about: the cancelled or moved booking's, the new one's.
fn effect_name(effect: &Effect, ctx: &TurnContext) -> Option<String> {
    match effect {
        Effect::Book(b) => b.name.clone(),
        Effect::Cancel { id } | Effect::Reschedule { id, .. } | Effect::Attend { id } => ctx
            .bookings
            .iter()
            .find(|b| b.id == *id)
            .and_then(|b| b.name.clone()),
        Effect::Handover => None,
    }
}

/// The first request of a message waits for a "yes": when its second one, taken up now,
/// would wait for a "yes" too, one question asks about both (DIALOGS.md 12). Otherwise the
/// second stays queued, to be taken up once the first is done.
fn ask_both(decision: &mut Decision, then: &Understanding, ctx: &TurnContext) {
    let Some(first) = decision.state.form.as_ref() else {
        return;
    };
    if first.asked != Some(Slot::Confirmation) || first.spelling.is_some() {
        return;
    }
    let mut after = decision.state.clone();
    after.form = None;
    after.proposal = None;
    after.queued = None;
    let first_name = match first.kind {
        FormKind::Book => first.name.clone(),
        _ => form::chosen_booking(first, ctx).and_then(|b| b.name.clone()),
    };
    if after.caller.is_none() {
        after.caller = first_name.clone();
    }
    // The second form books under an id of its own (a retried "yes" books the same two).
    let second_ctx = TurnContext {
        fresh_id: Uuid::new_v5(&ctx.fresh_id, b"second request"),
        ..ctx.clone()
    };
    let Some(second) = act(after, then, &second_ctx).filter(|d| d.effect.is_none()) else {
        return;
    };
    let Some(second_form) =
        (second.state.form).filter(|f| f.asked == Some(Slot::Confirmation) && f.spelling.is_none())
    else {
        return;
    };
    let Some(text) = form::both_question(first, &second_form, first_name.as_deref(), ctx) else {
        return;
    };
    decision.reply = Reply {
        text,
        options: form::yes_no(),
        ..Reply::default()
    };
    decision.state.also = Some(Box::new(second_form));
}

/// The "yes" to a question about two requests: the first one's write is `decision`'s; the
/// same answer goes to the second form, whose write (when it still can be made) follows as
/// [`Decision::then`], and one sentence says both are done. When the second cannot be made
/// as asked (its time went meanwhile), what Sara says of it follows the first one's done.
fn do_both(
    decision: &mut Decision,
    mut after: DialogueState,
    second_form: Form,
    u: &Understanding,
    ctx: &TurnContext,
) {
    let Some(first) = decision.effect.clone() else {
        return;
    };
    after.form = Some(second_form);
    after.queued = None;
    let before = after.clone();
    let Some(second) = act(after, u, ctx) else {
        return;
    };
    let first_done = form::done_clause(&first, ctx);
    match second.effect {
        Some(effect @ (Effect::Book(_) | Effect::Cancel { .. } | Effect::Reschedule { .. })) => {
            let only_cancels = matches!(
                (&first, &effect),
                (Effect::Cancel { .. }, Effect::Cancel { .. })
            );
            let after = if only_cancels {
                ""
            } else {
                form::after_change(ctx)
            };
            decision.reply.text = format!(
                "Done — {first_done} and {}. {after}",
                form::done_clause(&effect, ctx)
            )
            .trim_end()
            .to_string();
            decision.reply.options = Vec::new();
            decision.state = second.state;
            decision.then = Some(Box::new(Then {
                effect,
                before,
                first_done: format!("{}.", speech::capitalised(&first_done)),
            }));
        }
        _ => {
            decision.reply.text = format!(
                "{}. {}",
                speech::capitalised(&first_done),
                second.reply.text
            );
            decision.reply.options = second.reply.options;
            decision.state = second.state;
        }
    }
}

/// The effect of the decision `step` made from `before` failed; decide again.
/// `ctx.busy` is fresh (it includes whatever took the slot).
pub fn effect_failed(
    before: &DialogueState,
    effect: &Effect,
    error: &CalendarError,
    ctx: &TurnContext,
) -> Decision {
    let intent = match effect {
        Effect::Book(_) => Act::Book,
        Effect::Reschedule { .. } => Act::Reschedule,
        Effect::Cancel { .. } => Act::Cancel,
        Effect::Attend { .. } => Act::Affirm,
        Effect::Handover => Act::Handover,
    };
    let mut state = before.clone();
    state.proposal = None;
    state.also = None;
    let writes_time = matches!(effect, Effect::Book(_) | Effect::Reschedule { .. });
    let outcome = match (error, state.form.take()) {
        (CalendarError::SlotTaken, Some(form)) if writes_time => {
            Some(form::taken_after_all(form, ctx))
        }
        (CalendarError::NotFound, Some(_)) if intent != Act::Book => Some(form::Outcome::reply(
            "I can't find that appointment any more — it may have been changed already. \
                 Anything else I can help with?",
        )),
        _ => None,
    };
    match outcome {
        Some(o) => o.into_decision(state, intent, ctx),
        None => Decision {
            state: before.clone(),
            reply: match effect {
                Effect::Handover => Reply::say(
                    "Sorry, I couldn't reach the team just now. Please try again in a few minutes.",
                ),
                _ => calendar_unavailable_reply(),
            },
            effect: None,
            intent,
            then: None,
        },
    }
}

/// A booking change staff make for the customer from the console's conversation page.
#[derive(Clone, Debug, PartialEq)]
pub enum StaffChange {
    /// A new booking; `id` comes from the page's form, so a form sent twice books once.
    Book {
        id: BookingId,
        service: String,
        date: NaiveDate,
        time: NaiveTime,
        staff: Option<String>,
        /// The customer's name when staff give one (else the name the caller gave Sara).
        name: Option<String>,
    },
    Move {
        booking: BookingId,
        date: NaiveDate,
        time: NaiveTime,
    },
    Cancel {
        booking: BookingId,
    },
}

impl StaffChange {
    /// The turn log's intent of a staff change.
    pub fn intent(&self) -> &'static str {
        match self {
            StaffChange::Book { .. } => "staff_book",
            StaffChange::Move { .. } => "staff_move",
            StaffChange::Cancel { .. } => "staff_cancel",
        }
    }
}

/// What the rules make of a staff change.
#[derive(Clone, Debug, PartialEq)]
pub enum StaffDecision {
    /// The calendar write to run.
    Change { effect: Effect },
    /// Not possible: why, in Sara's words, and the nearest free start times (may be empty).
    Refused {
        reason: String,
        alternatives: Vec<DateTime<Utc>>,
    },
}

/// Decides a staff change by the rules a customer's own request meets (see
/// [`form::for_staff`]).
pub fn staff_change(
    state: &DialogueState,
    change: &StaffChange,
    ctx: &TurnContext,
) -> StaffDecision {
    form::for_staff(state, change, ctx)
}

/// What the customer is told about a change staff made: the booking as it is after it.
pub fn staff_change_message(business: &Business, effect: &Effect, booking: &Booking) -> String {
    let tz = business.timezone;
    let hi = format!(
        "Hi {}, the front desk at {}",
        reminders::first_name(booking),
        business.name
    );
    let with = booking
        .staff
        .as_deref()
        .map(|s| format!(" with {s}"))
        .unwrap_or_default();
    match effect {
        Effect::Cancel { .. } => format!(
            "{hi} cancelled your {}. Reply here if you'd like another time.",
            speech::own_booking(tz, booking)
        ),
        Effect::Reschedule { .. } => format!(
            "{hi} moved your {} to {}{with}. Reply here if you need to change it.",
            speech::service_noun(&booking.service),
            speech::when(tz, booking.start)
        ),
        _ => format!(
            "{hi} booked {}{with} for you. Reply here if you need to change it.",
            speech::booking(tz, booking)
        ),
    }
}

/// The booking `decision` made is held, but the calendar could not be written just now (its
/// write is retried in the background): the form is done as if booked, and the customer hears
/// the truth: not confirmed yet, a text follows once it is. A second request the same "yes"
/// covered is not written on top of a held one: Sara asks about it again.
pub fn write_deferred(mut decision: Decision, ctx: &TurnContext) -> Decision {
    if let Some(Effect::Book(booking)) = &decision.effect {
        let mut text = crate::calendar_jobs::deferred_text(ctx.business, booking);
        if let Some(then) = decision.then.take()
            && let Some(form) = then.before.form.as_ref()
            && let Some(clause) = form::pending_clause(form, booking.name.as_deref(), ctx)
        {
            text = format!("{text} Shall I also {clause}?");
            decision.state = then.before;
        }
        decision.reply = Reply::say(text);
    }
    decision
}

/// What the conversation holds, for the model's prompt: the times offered, the slots of the
/// unfinished request (the caller's name when none is open) and the caller's bookings.
pub fn facts(
    state: &DialogueState,
    bookings: &[Booking],
    tz: chrono_tz::Tz,
) -> crate::understanding::DialogueFacts {
    let local = |at: &DateTime<Utc>| at.with_timezone(&tz).naive_local();
    let form = state.form.as_ref();
    crate::understanding::DialogueFacts {
        offered: form
            .map(|f| f.offers.iter().map(local).collect())
            .unwrap_or_default(),
        request: form.map(|f| {
            match f.kind {
                FormKind::Book => "book",
                FormKind::Reschedule => "reschedule",
                FormKind::Cancel => "cancel",
            }
            .to_string()
        }),
        service: form.and_then(|f| f.service.clone()),
        date: form.and_then(|f| f.date),
        time: form.and_then(|f| f.time),
        name: form
            .and_then(|f| f.name.clone())
            .or_else(|| state.caller.clone()),
        upcoming_bookings: bookings
            .iter()
            .map(|b| crate::understanding::BookingFact {
                service: b.service.clone(),
                start: local(&b.start),
            })
            .collect(),
    }
}

/// The acts that start a form, in the order they appear in the message.
fn form_intent(u: &Understanding) -> Option<(Act, FormKind)> {
    u.acts.iter().find_map(|&a| match a {
        Act::Book => Some((a, FormKind::Book)),
        Act::Reschedule => Some((a, FormKind::Reschedule)),
        Act::Cancel => Some((a, FormKind::Cancel)),
        _ => None,
    })
}

/// Whether the message carries anything a booking form can use.
fn gives_booking_slots(u: &Understanding) -> bool {
    u.service.is_some() || u.date.is_some() || u.time.is_some() || u.day_part.is_some()
}

/// The booking a reminder is about: the customer's nearest upcoming confirmed one.
fn reminded_booking<'c>(ctx: &TurnContext<'c>) -> Option<&'c Booking> {
    ctx.bookings
        .iter()
        .filter(|b| b.status == BookingStatus::Confirmed && b.start > ctx.now)
        .min_by_key(|b| b.start)
}

/// "tomorrow at 2:00 PM", "today at 9:00 AM", "on Friday, March 6 at 2:00 PM".
fn see_you(ctx: &TurnContext, b: &Booking) -> String {
    let tz = ctx.business.timezone;
    let local = b.start.with_timezone(&tz);
    let today = ctx.now.with_timezone(&tz).date_naive();
    let day = local.date_naive();
    let time = speech::clock(local.time());
    if day == today {
        format!("today at {time}")
    } else if Some(day) == today.succ_opt() {
        format!("tomorrow at {time}")
    } else {
        format!("on {}", speech::when(tz, b.start))
    }
}

/// An answer to a reminder, about the customer's nearest upcoming confirmed booking: "C" or
/// "yes, I'll be there" records attendance, "X" / "please cancel it" and "R" / "move it to
/// Friday at 3" start the usual cancel and reschedule forms on that booking. A bare letter
/// while something else is open (a yes/no question, a form) or with no booking to be about
/// means nothing Sara can place, so she asks; a phrase then is left to the usual reading
/// ("yes, I'll be there" while Sara awaits a yes/no is the answer to that question).
fn reminder_answer(
    state: &DialogueState,
    u: &Understanding,
    ctx: &TurnContext,
) -> Option<Decision> {
    let reply = u.reminder?;
    // A phrase the NLU reads as another request (or two) is that request.
    let wanted = match reply.answer {
        ReminderAnswer::Confirm => None,
        ReminderAnswer::Reschedule => Some(FormKind::Reschedule),
        ReminderAnswer::Cancel => Some(FormKind::Cancel),
    };
    if !reply.letter
        && (u.then.is_some() || form_intent(u).is_some_and(|(_, kind)| Some(kind) != wanted))
    {
        return None;
    }
    let open = state.proposal.is_some() || state.form.is_some();
    let target = reminded_booking(ctx).filter(|_| !open);
    let Some(booking) = target else {
        if !reply.letter {
            return None;
        }
        let mut state = state.clone();
        let letter = match reply.answer {
            ReminderAnswer::Confirm => "C",
            ReminderAnswer::Reschedule => "R",
            ReminderAnswer::Cancel => "X",
        };
        let text = if let Some(form) = state.form.as_mut() {
            form.touched = ctx.now;
            format!(
                "Sorry, I'm not sure what \"{letter}\" means here. {}",
                form::reminder(form, ctx)
            )
        } else if state.proposal.is_some() {
            format!("Sorry, I'm not sure what \"{letter}\" means here — is that a yes or a no?")
        } else {
            format!(
                "Sorry, I'm not sure what \"{letter}\" means — I can't find an upcoming \
                 appointment for this number. I can book, move or cancel an appointment, or \
                 answer a question. How can I help?"
            )
        };
        return Some(Decision {
            state,
            reply: Reply::say(text),
            effect: None,
            intent: Act::Inform,
            then: None,
        });
    };
    let mut state = state.clone();
    match reply.answer {
        ReminderAnswer::Confirm => {
            let name = reminders::first_name(booking);
            let thanks = if name == "there" {
                "Thanks".to_string()
            } else {
                format!("Thanks, {name}")
            };
            Some(Decision {
                state,
                reply: Reply::say(format!("{thanks} — see you {}.", see_you(ctx, booking))),
                effect: Some(Effect::Attend { id: booking.id }),
                intent: Act::Affirm,
                then: None,
            })
        }
        ReminderAnswer::Cancel | ReminderAnswer::Reschedule => {
            let (kind, act) = match reply.answer {
                ReminderAnswer::Cancel => (FormKind::Cancel, Act::Cancel),
                _ => (FormKind::Reschedule, Act::Reschedule),
            };
            let mut form = state.new_form(kind, ctx);
            form.booking = Some(booking.id);
            form.service = Some(booking.service.clone());
            let outcome = form::run(form, u, ctx);
            state.queued = None;
            Some(outcome.into_decision(state, act, ctx))
        }
    }
}

/// Handles what the message asks for, or `None` when it is only small talk or a question.
fn act(mut state: DialogueState, u: &Understanding, ctx: &TurnContext) -> Option<Decision> {
    if let Some(decision) = reminder_answer(&state, u, ctx) {
        return Some(decision);
    }
    let intent = form_intent(u);
    let proposal = state.proposal.take();
    if let (Some(p), None) = (proposal, intent) {
        if u.has(Act::Affirm) {
            return Some(match p {
                Proposal::Handover => handover(state, ctx),
                Proposal::Book => {
                    let form = state.new_form(FormKind::Book, ctx);
                    form::run(form, u, ctx).into_decision(state, Act::Affirm, ctx)
                }
            });
        }
        if u.has(Act::Deny) && !gives_booking_slots(u) {
            let text = match &state.form {
                Some(f) => format!("Okay. {}", form::reminder(f, ctx)),
                None => "Okay. Anything else I can help with?".to_string(),
            };
            return Some(Decision {
                state,
                reply: Reply::say(text),
                effect: None,
                intent: Act::Deny,
                then: None,
            });
        }
    }
    if intent.is_none() && u.has(Act::OutOfScope) {
        let offer = if ctx.business.service("Consultation").is_some() {
            "book a consultation"
        } else {
            "book an appointment"
        };
        return Some(Decision {
            state,
            reply: Reply::say(format!(
                "I can't help with that, but I can pass a message to the team or {offer}. \
                 Which would you like?"
            )),
            effect: None,
            intent: Act::OutOfScope,
            then: None,
        });
    }
    // "Push it back 30 minutes", "move it to 3" while a booking is still being made is about
    // that booking, not one already in the calendar.
    let intent = match intent {
        Some((Act::Reschedule, FormKind::Reschedule))
            if state
                .form
                .as_ref()
                .is_some_and(|f| f.kind == FormKind::Book)
                && !u.has(Act::Book) =>
        {
            Some((Act::Reschedule, FormKind::Book))
        }
        // "Same time next week", "an hour later" with nothing open and a booking ahead moves it.
        None if state.form.is_none()
            && !ctx.bookings.is_empty()
            && (u.shift.is_some() || u.same_time || u.next_week) =>
        {
            Some((Act::Reschedule, FormKind::Reschedule))
        }
        other => other,
    };
    if let Some((act, kind)) = intent {
        let form = match state.form.take() {
            Some(f) if f.kind == kind => f,
            _ => state.new_form(kind, ctx),
        };
        return Some(form::run(form, u, ctx).into_decision(state, act, ctx));
    }
    let continuing = [
        Act::Choose,
        Act::Affirm,
        Act::Deny,
        Act::OtherOptions,
        Act::Inform,
    ]
    .into_iter()
    .find(|a| u.has(*a));
    let gives =
        gives_booking_slots(u) || u.choice.is_some() || u.name.is_some() || u.email.is_some();
    // "Do you do whitening? How much is it?" names a service to ask about it, not to book it.
    let asks_about_service = u.has(Act::Question)
        && u.service.is_some()
        && u.date.is_none()
        && u.time.is_none()
        && u.day_part.is_none()
        && u.choice.is_none()
        && u.name.is_none();
    if asks_about_service
        && state
            .form
            .as_ref()
            .is_some_and(|f| f.service.is_some() || f.kind != FormKind::Book)
    {
        // The booking being made keeps its service; the answer and a reminder are said.
        return None;
    }
    if asks_about_service
        && state.form.is_none()
        && let Some(service) = u.service.as_deref().and_then(|s| ctx.business.service(s))
    {
        let mut form = state.new_form(FormKind::Book, ctx);
        form.service = Some(service.name.clone());
        form.asked = Some(Slot::Confirmation);
        let text = match &u.faq_answer {
            Some(_) => format!(
                "Would you like to book {}?",
                speech::with_article(&service.name)
            ),
            None => format!(
                "Yes, we do {} ({} minutes{}). Would you like to book one?",
                speech::service_noun(&service.name),
                service.minutes,
                service
                    .price
                    .as_deref()
                    .map(|p| format!(", {p}"))
                    .unwrap_or_default()
            ),
        };
        state.form = Some(form);
        return Some(Decision {
            state,
            reply: Reply {
                text,
                options: form::yes_no(),
                ..Reply::default()
            },
            effect: None,
            intent: Act::Question,
            then: None,
        });
    }
    if let Some(form) = state.form.take() {
        if continuing.is_some() || gives {
            let act = continuing.unwrap_or(Act::Inform);
            return Some(form::run(form, u, ctx).into_decision(state, act, ctx));
        }
        state.form = Some(form);
        return None;
    }
    // A name with nothing open ("my name is Sam Ortiz") is kept for the booking to come.
    if let Some(name) = u.name.as_ref().filter(|_| !gives_booking_slots(u)) {
        let first = name.split_whitespace().next().unwrap_or(name).to_string();
        state.caller = Some(name.clone());
        state.caller_heard = !ctx.channel.is_text();
        state.proposal = Some(Proposal::Book);
        return Some(Decision {
            state,
            reply: Reply::say(format!(
                "Thanks, {first}! Would you like to book an appointment?"
            )),
            effect: None,
            intent: Act::Inform,
            then: None,
        });
    }
    // A bare date or time with nothing open is someone wanting to book ("Thursday at 3").
    if gives_booking_slots(u) {
        let form = state.new_form(FormKind::Book, ctx);
        return Some(form::run(form, u, ctx).into_decision(
            state,
            continuing.unwrap_or(Act::Inform),
            ctx,
        ));
    }
    None
}

/// Greetings, thanks, goodbyes, questions and messages Sara could not place.
fn small_talk(
    mut state: DialogueState,
    u: &Understanding,
    ctx: &TurnContext,
    answer: Option<String>,
) -> Decision {
    state.proposal = None;
    if let Some(f) = state.form.as_mut() {
        f.touched = ctx.now;
    }
    let reminder = state.form.as_ref().map(|f| form::reminder(f, ctx));
    let decide = |state, text: String, intent| Decision {
        state,
        reply: Reply::say(text),
        effect: None,
        intent,
        then: None,
    };
    if let Some(answer) = answer {
        let text = match reminder {
            Some(r) => format!("{answer} {r}"),
            None => answer,
        };
        return decide(state, text, Act::Question);
    }
    if u.has(Act::Question) {
        state.proposal = Some(Proposal::Handover);
        return decide(
            state,
            "I'm not sure about that one, and I'd rather not guess. \
             Shall I pass your question to the team?"
                .into(),
            Act::Question,
        );
    }
    if u.has(Act::Greet) {
        let hello = greeting(ctx.business, ctx.channel).text;
        let text = match reminder {
            Some(r) => format!("Hi again! {r}"),
            None => hello,
        };
        return decide(state, text, Act::Greet);
    }
    // "Thanks, bye!" closes the conversation politely; with something left unfinished Sara
    // says plainly that nothing was done, and the form waits for the customer's return.
    if u.has(Act::Goodbye) {
        let text = if reminder.is_some() {
            "No problem — nothing is done yet; message me any time to pick up where we left off. \
             Goodbye!"
        } else if u.has(Act::Thanks) {
            "You're welcome — thanks for getting in touch. Goodbye!"
        } else {
            "Thanks for getting in touch — goodbye!"
        };
        let mut d = decide(state, text.into(), Act::Goodbye);
        d.reply.end = true;
        return d;
    }
    if u.has(Act::Thanks) {
        return decide(
            state,
            "You're welcome! Anything else I can help with?".into(),
            Act::Thanks,
        );
    }
    if u.has(Act::Affirm) || u.has(Act::Deny) {
        // A bare "ok" / "no" with nothing open, e.g. after "you're booked".
        return decide(
            state,
            "Okay! Anything else I can help with?".into(),
            u.primary().unwrap_or(Act::Affirm),
        );
    }
    let text = match reminder {
        Some(r) => format!("Sorry, I didn't quite get that. {r}"),
        None => "Sorry, I didn't quite get that. I can book, move or cancel an appointment, \
                 or answer a question. How can I help?"
            .into(),
    };
    decide(state, text, u.primary().unwrap_or(Act::Inform))
}

/// Pass the conversation to a human: voice dials through, text goes quiet for a while.
pub(super) fn handover(mut state: DialogueState, ctx: &TurnContext) -> Decision {
    state.proposal = None;
    let text = if ctx.channel.is_text() && ctx.staff_alerts {
        state.handed_over_until =
            Some(ctx.now + Duration::minutes(i64::from(ctx.business.handover_minutes)));
        format!(
            "I've asked the team to reply to you here; {}.",
            staff_hours(ctx)
        )
    } else if ctx.channel.is_text() {
        // Nobody would be told, so promise nothing: give the number instead.
        let number = ctx
            .business
            .phone
            .as_ref()
            .map_or("the clinic".to_string(), |p| p.as_str().to_string());
        format!(
            "To talk to someone, please call us on {number}; {}.",
            staff_hours(ctx)
        )
    } else {
        "Connecting you now.".to_string()
    };
    Decision {
        state,
        reply: Reply {
            text,
            handover: true,
            ..Reply::default()
        },
        effect: Some(Effect::Handover),
        intent: Act::Handover,
        then: None,
    }
}

/// "they're in until 5:00 PM today" or when they are next in, from the opening hours.
fn staff_hours(ctx: &TurnContext) -> String {
    let tz = ctx.business.timezone;
    let local = ctx.now.with_timezone(&tz);
    let today = local.date_naive();
    let hours = &ctx.business.hours;
    let open_today = |d: NaiveDate| {
        !ctx.business.closures.contains(&d) && !hours.on(chrono::Datelike::weekday(&d)).is_empty()
    };
    if open_today(today)
        && let Some(close) = hours.closes_at(chrono::Datelike::weekday(&today))
        && local.time() < close
    {
        return format!("they're in until {} today", speech::clock(close));
    }
    (1..=14)
        .map(|n| today + Duration::days(n))
        .find(|&d| open_today(d))
        .and_then(|d| {
            let opens = hours.on(chrono::Datelike::weekday(&d)).first()?.0;
            Some(format!(
                "they'll get back to you when they're in next, on {} from {}",
                speech::weekday(d),
                speech::clock(opens)
            ))
        })
        .unwrap_or_else(|| "they'll get back to you as soon as they can".to_string())
}
