//! The booking, reschedule and cancel forms: fill what a message gives, check availability,
//! offer the nearest free times, ask only for what is missing, and confirm before any write.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

use super::speech;
use super::{
    Decision, Detail, DialogueState, Effect, Form, FormKind, Proposal, Reply, TurnContext,
};
use crate::availability::{Availability, Unavailable, Want, local_instant};
use crate::model::{Booking, BookingId, BookingStatus};
use crate::understanding::{Act, DayPart, Lean, Slot, Understanding};

/// How many alternative start times Sara reads out at once.
const OFFERS: usize = 3;

/// What one turn did to a form.
pub(super) struct Outcome {
    /// The form to keep; `None` when it is finished or dropped.
    pub form: Option<Form>,
    pub reply: Reply,
    pub effect: Option<Effect>,
    pub proposal: Option<Proposal>,
    /// The request goes to staff (a hand-over), after this sentence.
    pub to_staff: Option<String>,
}

impl Outcome {
    /// The form is over; just say something.
    pub fn reply(text: impl Into<String>) -> Outcome {
        Outcome {
            form: None,
            reply: Reply::say(text),
            effect: None,
            proposal: None,
            to_staff: None,
        }
    }

    /// The form is over and a person takes it from here; `why` is said first.
    fn to_staff(why: String) -> Outcome {
        Outcome {
            to_staff: Some(why),
            ..Outcome::reply("")
        }
    }

    /// Keep the form, having asked for `slot`.
    fn ask(mut form: Form, slot: Slot, text: impl Into<String>) -> Outcome {
        form.asked = Some(slot);
        Outcome {
            form: Some(form),
            reply: Reply::say(text),
            effect: None,
            proposal: None,
            to_staff: None,
        }
    }

    fn with_options(mut self, options: Vec<String>) -> Outcome {
        self.reply.options = options;
        self
    }

    pub fn into_decision(
        self,
        mut state: DialogueState,
        intent: Act,
        ctx: &TurnContext,
    ) -> Decision {
        if let Some(why) = self.to_staff {
            state.form = None;
            let mut decision = super::handover(state, ctx);
            decision.reply.text = format!("{why} {}", decision.reply.text);
            return decision;
        }
        state.form = self.form;
        state.proposal = self.proposal;
        Decision {
            state,
            reply: self.reply,
            effect: self.effect,
            intent,
            then: None,
        }
    }
}

/// Runs one turn of a form (new or continuing).
pub(super) fn run(mut form: Form, u: &Understanding, ctx: &TurnContext) -> Outcome {
    form.touched = ctx.now;
    if form.kind == FormKind::Book
        && let Some(staff) = &u.staff
        && form.staff.as_ref() != Some(staff)
    {
        // "With Anna": only Anna's times from now on; what was offered may not be hers.
        form.staff = Some(staff.clone());
        form.offers.clear();
    }
    let changes_when = u.date.is_some()
        || u.time.is_some()
        || u.day_part.is_some()
        || u.shift.is_some()
        || u.earliest
        || u.unclear_when;
    let changes_service = form.kind == FormKind::Book && u.service.is_some();
    if let Some(detail) = form.spelling.take() {
        // "Is that right?" after a spelled-back name or email. Anything else the message
        // says (a corrected name, another day) is read as usual, and what is still unchecked
        // is spelled back again before the booking is confirmed.
        form.asked = None;
        let corrects = u.name.is_some() || u.email.is_some();
        if !changes_when && !changes_service && !corrects {
            if u.has(Act::Affirm) {
                match detail {
                    Detail::Name => form.name_unchecked = false,
                    Detail::Email => form.email_unchecked = false,
                }
                return advance(form, ctx, false, false);
            }
            if u.has(Act::Deny) {
                let (slot, what) = match detail {
                    Detail::Name => (Slot::Name, "your name"),
                    Detail::Email => (Slot::Email, "your email address"),
                };
                return Outcome::ask(
                    form,
                    slot,
                    format!("Sorry about that. Could you spell {what} for me, letter by letter?"),
                );
            }
        }
    }
    let asked = form.asked;
    // "No — anything later?" turns the proposed time down and asks for others.
    let wants_others = u.has(Act::OtherOptions)
        || (u.lean.is_some() && (u.has(Act::Deny) || matches!(asked, Some(Slot::Option))));

    if asked == Some(Slot::Confirmation) && !changes_when && !changes_service {
        if u.has(Act::Affirm) && !wants_others {
            take_details(&mut form, u, ctx);
            return finish(form, ctx);
        }
        if u.has(Act::Deny) && !wants_others {
            return declined(form, ctx);
        }
    }
    // A time Sara could not read is never kept or guessed: ask again.
    let about_booking = form.kind == FormKind::Book || form.booking.is_some();
    if u.unclear_when && u.time.is_none() && about_booking {
        if let Some(d) = u.date {
            form.date = Some(d);
        }
        if form.kind == FormKind::Book
            && let Some(s) = u.service.as_deref().and_then(|s| ctx.business.service(s))
        {
            form.service = Some(s.name.clone());
        }
        take_details(&mut form, u, ctx);
        return unclear_time(form, ctx);
    }

    // The slots that describe the wanted time, once those naming a booking are set aside.
    let mut wanted = u.clone();
    if form.kind != FormKind::Book && form.booking.is_none() {
        if let Some(question) = select_booking(&mut form, u, ctx) {
            return question;
        }
        if let Some(late) = too_late_to_change(&form, ctx) {
            return late;
        }
        if form.kind == FormKind::Cancel {
            return confirm_cancel(form, ctx);
        }
        // Asked "which one?", a bare date named the booking, not the new day.
        if asked == Some(Slot::Booking) && u.service.is_none() {
            wanted.date = None;
        }
    } else if form.kind != FormKind::Book && chosen_booking(&form, ctx).is_none() {
        return Outcome::reply(
            "I can't find that appointment any more — it may have been changed already. \
             Anything else I can help with?",
        );
    } else if let Some(late) = too_late_to_change(&form, ctx) {
        return late;
    }
    if form.kind == FormKind::Cancel {
        if u.has(Act::Deny) {
            return declined(form, ctx);
        }
        return confirm_cancel(form, ctx);
    }

    // "An hour later", "a week later", "the day after": from the time being talked about.
    if let Some(shift) = u.shift.filter(|_| u.date.is_none() && u.time.is_none()) {
        let tz = ctx.business.timezone;
        let booked = chosen_booking(&form, ctx)
            .filter(|_| form.kind == FormKind::Reschedule)
            .map(|b| b.start.with_timezone(&tz).naive_local());
        let offered = form
            .offers
            .first()
            .map(|o| o.with_timezone(&tz).naive_local());
        let base_date = form
            .date
            .or(booked.map(|b| b.date()))
            .or(offered.map(|o| o.date()))
            .unwrap_or_else(|| Availability::new(ctx.business).local_date(ctx.now));
        let base_time = form
            .time
            .or(booked.map(|b| b.time()))
            .or(offered.map(|o| o.time()));
        let moved = |t: NaiveTime| {
            NaiveDateTime::new(base_date, t)
                .checked_add_signed(Duration::days(shift.days) + Duration::minutes(shift.minutes))
        };
        match base_time.and_then(moved) {
            Some(at) => {
                wanted.date = Some(at.date());
                wanted.time = Some(at.time());
            }
            None if shift.minutes == 0 => {
                wanted.date = base_date.checked_add_signed(Duration::days(shift.days));
            }
            // "An hour later" with no time to be later than.
            None => return unclear_time(form, ctx),
        }
        if let Some(o) = form
            .date
            .zip(form.time)
            .and_then(|(d, t)| local_instant(tz, d, t))
        {
            form.avoid.push(o);
        }
    }

    // Moving a booking: "same time", "next week" and a bare new time are read against it.
    if form.kind == FormKind::Reschedule
        && let Some(b) = chosen_booking(&form, ctx)
    {
        let local = b.start.with_timezone(&ctx.business.timezone);
        if wanted.same_time && wanted.time.is_none() && wanted.day_part.is_none() {
            wanted.time = Some(local.time());
        }
        if wanted.next_week && wanted.date.is_none() {
            wanted.date = local.date_naive().checked_add_days(chrono::Days::new(7));
        }
        if wanted.time.is_some() && wanted.date.is_none() && form.date.is_none() {
            wanted.date = Some(local.date_naive());
        }
    }
    let u = &wanted;
    let changes_when = u.date.is_some() || u.time.is_some() || u.day_part.is_some();
    if asked == Some(Slot::Option)
        && !form.offers.is_empty()
        && let Some(outcome) = answer_offer(&mut form, u, ctx)
    {
        return outcome;
    }

    let gives = changes_when || u.service.is_some() || u.name.is_some() || u.email.is_some();
    if u.has(Act::Deny) && !gives {
        return Outcome::reply(match form.kind {
            FormKind::Book => "Alright — I haven't booked anything. Anything else I can help with?",
            _ => "Alright — I've left your appointment as it is. Anything else I can help with?",
        });
    }

    // "What about Wednesday?" while times are on offer moves the window to that day.
    let moves_window =
        asked == Some(Slot::Option) && u.date.is_some() && u.time.is_none() && u.day_part.is_none();
    let mut note = String::new();
    if form.kind == FormKind::Book
        && let Some(name) = &u.service
    {
        match ctx.business.service(name) {
            Some(s) => form.service = Some(s.name.clone()),
            None => note = "Sorry, that's not a service we offer. ".into(),
        }
    }
    if let Some(d) = u.date {
        form.date = Some(d);
    } else if u.next_week && form.kind == FormKind::Book && form.date.is_none() {
        // "Any availability next week?": its first open day, in the part of the day asked.
        form.date = next_week_day(ctx);
    }
    if let Some(t) = u.time {
        form.time = Some(t);
        form.day_part = None;
    } else if let Some(p) = u.day_part {
        form.day_part = Some(p);
        form.time = None;
    }
    // A name given while Sara asked for something else is heard, and the question stands.
    let named_unasked = form.kind == FormKind::Book
        && form.name.is_none()
        && asked != Some(Slot::Name)
        && !changes_when
        && u.service.is_none();
    take_details(&mut form, u, ctx);
    if named_unasked
        && note.is_empty()
        && let Some(name) = &form.name
    {
        note = format!("Thanks, {name}. ");
    }
    if u.earliest && u.time.is_none() {
        form.earliest = true;
        form.time = None;
    } else if u.time.is_some() || u.date.is_some() {
        form.earliest = false;
    }
    if changes_when {
        // Offers turned down for another window ("none of those, anything after 11?") are
        // not offered again.
        if wants_others || u.has(Act::Deny) {
            let declined = std::mem::take(&mut form.offers);
            form.avoid.extend(declined);
        }
        form.offers.clear();
    }
    // The proposed time turned down with "later?" / "earlier?": offer past it, never it.
    if wants_others
        && !changes_when
        && let (Some(d), Some(t)) = (form.date, form.time)
        && let Some(declined) = local_instant(ctx.business.timezone, d, t)
    {
        form.avoid.push(declined);
        form.time = None;
        let want = want_for(&form, ctx);
        let busy = ctx.busy;
        let av = Availability::new(ctx.business);
        let n = OFFERS + form.avoid.len();
        let mut others = match u.lean {
            Some(Lean::Earlier) => av.before(declined, &want, busy, ctx.now, n),
            Some(Lean::Later) => av.after(declined, &want, busy, ctx.now, n),
            None => av.nearest(declined, &want, busy, ctx.now, n),
        };
        others.retain(|o| !form.avoid.contains(o));
        if u.lean == Some(Lean::Earlier) {
            others.drain(..others.len().saturating_sub(OFFERS));
        }
        return offer(form, ctx, note, others);
    }
    let want_options = moves_window || u.has(Act::OtherOptions);
    let mut outcome = advance(form, ctx, want_options, asked == Some(Slot::Confirmation));
    if !note.is_empty() {
        outcome.reply.text = format!("{note}{}", outcome.reply.text);
    }
    outcome
}

/// Keeps the name and email the message gives; on a call they are the recognizer's reading
/// of what was said, to be spelled back before the booking (see [`spell_back`]).
fn take_details(form: &mut Form, u: &Understanding, ctx: &TurnContext) {
    if form.kind != FormKind::Book {
        return;
    }
    let heard = !ctx.channel.is_text();
    if let Some(n) = &u.name {
        form.name = Some(if heard {
            speech::unspelled(n)
        } else {
            n.clone()
        });
        form.name_unchecked = heard;
    }
    if let Some(e) = &u.email {
        form.email = Some(e.clone());
        form.email_unchecked = heard;
    }
}

/// On a call, a name or email heard and not yet confirmed is spelled back first ("That's
/// J-A-K-E R-O-S-S, is that right?"); `None` when there is nothing left to check. A "no"
/// asks for it letter by letter; a text channel never gets here (what is typed is exact).
fn spell_back(form: &mut Form, ctx: &TurnContext) -> Option<String> {
    if form.kind != FormKind::Book || ctx.channel.is_text() {
        return None;
    }
    let text = match (&form.name, &form.email) {
        (Some(name), _) if form.name_unchecked => {
            form.spelling = Some(Detail::Name);
            format!("That's {}, is that right?", speech::spelled(name))
        }
        (_, Some(email)) if form.email_unchecked => {
            form.spelling = Some(Detail::Email);
            format!(
                "And your email is {}, is that right?",
                speech::spelled(email)
            )
        }
        _ => return None,
    };
    form.asked = Some(Slot::Confirmation);
    Some(text)
}

/// The caller said no to the confirmation.
fn declined(mut form: Form, ctx: &TurnContext) -> Outcome {
    match form.kind {
        FormKind::Cancel => {
            let kept = chosen_booking(&form, ctx)
                .map(|b| format!(" your {}", speech::own_booking(ctx.business.timezone, b)))
                .unwrap_or_default();
            Outcome::reply(format!(
                "Okay, I've kept{kept}. Anything else I can help with?"
            ))
        }
        // "Would you like to book one?" — "no": nothing was being proposed but the booking.
        FormKind::Book if form.date.is_none() && form.time.is_none() => {
            Outcome::reply("No problem. Anything else I can help with?")
        }
        FormKind::Book | FormKind::Reschedule => {
            form.time = None;
            form.day_part = None;
            form.offers.clear();
            let what = if form.kind == FormKind::Book {
                "I haven't booked anything"
            } else {
                "I haven't moved anything"
            };
            Outcome::ask(
                form,
                Slot::Time,
                format!("No problem — {what}. What other day or time would suit you?"),
            )
        }
    }
}

/// Finds which of the caller's bookings a reschedule or cancel is about; returns what to say
/// when that is not clear yet.
fn select_booking(form: &mut Form, u: &Understanding, ctx: &TurnContext) -> Option<Outcome> {
    let tz = ctx.business.timezone;
    let all = ctx.bookings;
    if all.is_empty() {
        let mut o = Outcome::reply(
            "I can't find an upcoming appointment for this number. Would you like to book one?",
        );
        o.proposal = Some(Proposal::Book);
        return Some(o);
    }
    let local_date = |b: &Booking| b.start.with_timezone(&tz).date_naive();
    let chosen: Vec<&Booking> = if all.len() == 1 {
        all.iter().collect()
    } else if let Some(i) = u.choice.filter(|_| form.asked == Some(Slot::Booking)) {
        all.get(i).into_iter().collect()
    } else {
        // For a cancel any date names the booking; for a reschedule a date is the new day
        // unless Sara just asked which booking and nothing else names it.
        let date_selects = form.kind == FormKind::Cancel
            || (form.asked == Some(Slot::Booking) && u.service.is_none());
        all.iter()
            .filter(|b| {
                u.service
                    .as_ref()
                    .is_none_or(|s| b.service.eq_ignore_ascii_case(s))
            })
            .filter(|b| !date_selects || u.date.is_none_or(|d| local_date(b) == d))
            .filter(|b| {
                form.kind != FormKind::Cancel
                    || u.time
                        .is_none_or(|t| b.start.with_timezone(&tz).time() == t)
            })
            .collect()
    };
    if let [one] = chosen.as_slice() {
        form.booking = Some(one.id);
        form.service = Some(one.service.clone());
        return None;
    }
    let listed: Vec<String> = all.iter().map(|b| speech::booking(tz, b)).collect();
    let buttons = all
        .iter()
        .map(|b| {
            let local = b.start.with_timezone(&tz);
            format!("{} {}", b.service, local.format("%a %b %-d"))
        })
        .collect();
    let text = format!(
        "You have {} upcoming: {}. Which one?",
        speech::count(all.len()),
        speech::list(&listed, "and")
    );
    Some(Outcome::ask(form.clone(), Slot::Booking, text).with_options(buttons))
}

/// A cancel or move of a booking that starts sooner than `cancel_notice_minutes` goes to
/// staff rather than through Sara.
fn too_late_to_change(form: &Form, ctx: &TurnContext) -> Option<Outcome> {
    let notice = ctx.business.cancel_notice_minutes;
    let b = chosen_booking(form, ctx)?;
    if form.kind == FormKind::Book
        || notice == 0
        || b.start - ctx.now >= Duration::minutes(i64::from(notice))
    {
        return None;
    }
    let what = if form.kind == FormKind::Cancel {
        "cancel"
    } else {
        "move"
    };
    Some(Outcome::to_staff(format!(
        "Your {} is less than {} away, so I can't {what} it myself — the team handles that.",
        speech::own_booking(ctx.business.timezone, b),
        speech::duration(notice)
    )))
}

/// The customer's limits: upcoming bookings in all (a new booking only) and bookings on the
/// wanted local day (a new one or a move there). Held bookings count, pending or confirmed;
/// the form's own booking (or the one being moved) does not.
fn over_limit(form: &Form, ctx: &TurnContext) -> Option<Outcome> {
    let business = ctx.business;
    let tz = business.timezone;
    let moving = form.booking.filter(|_| form.kind == FormKind::Reschedule);
    let others: Vec<&Booking> = ctx
        .bookings
        .iter()
        .filter(|b| b.id != form.id && Some(b.id) != moving)
        .filter(|b| b.status != BookingStatus::Cancelled && b.end > ctx.now)
        .collect();
    let most = business.max_upcoming_bookings as usize;
    if form.kind == FormKind::Book && most > 0 && others.len() >= most {
        return Some(Outcome::reply(format!(
            "You already have {} coming up, which is as many as we hold for one number. \
             I can move or cancel one of them, or the team can help — just ask.",
            bookings_count(others.len())
        )));
    }
    let per_day = business.max_bookings_per_day as usize;
    let date = form.date?;
    let that_day = others
        .iter()
        .filter(|b| b.start.with_timezone(&tz).date_naive() == date)
        .count();
    if per_day == 0 || that_day < per_day {
        return None;
    }
    let mut form = form.clone();
    form.date = None;
    form.time = None;
    form.day_part = None;
    form.offers.clear();
    let text = format!(
        "You already have {} on {}, which is as many as we book for one number on a day. \
         Which other day would suit you?",
        bookings_count(that_day),
        speech::day(date)
    );
    Some(Outcome::ask(form, Slot::Date, text))
}

/// "one booking", "two bookings".
fn bookings_count(n: usize) -> String {
    match n {
        1 => "one booking".to_string(),
        n => format!("{} bookings", speech::count(n)),
    }
}

pub(super) fn chosen_booking<'c>(form: &Form, ctx: &TurnContext<'c>) -> Option<&'c Booking> {
    let id = form.booking?;
    ctx.bookings.iter().find(|b| b.id == id)
}

fn confirm_cancel(form: Form, ctx: &TurnContext) -> Outcome {
    let Some(b) = chosen_booking(&form, ctx) else {
        return Outcome::reply(
            "I can't find that appointment any more. Anything else I can help with?",
        );
    };
    let mut text = format!(
        "Cancel your {}?",
        speech::own_booking(ctx.business.timezone, b)
    );
    if let Some(policy) = &ctx.business.cancellation_policy {
        text = format!("{text} {policy}");
    }
    Outcome::ask(form, Slot::Confirmation, text).with_options(yes_no())
}

pub(super) fn yes_no() -> Vec<String> {
    vec!["Yes".into(), "No".into()]
}

/// The caller answers a list of offered times: "the second one", "10am", "yes", "later?".
fn answer_offer(form: &mut Form, u: &Understanding, ctx: &TurnContext) -> Option<Outcome> {
    let tz = ctx.business.timezone;
    let local = |o: &DateTime<Utc>| o.with_timezone(&tz);
    let picked = if let Some(i) = u.choice {
        let i = if i == usize::MAX {
            form.offers.len().saturating_sub(1)
        } else {
            i
        };
        match form.offers.get(i) {
            Some(&o) => o,
            None => {
                let text = format!(
                    "I only offered {} — which one suits you?",
                    speech::offers(tz, &form.offers)
                );
                let buttons = speech::offer_buttons(tz, &form.offers);
                return Some(Outcome::ask(form.clone(), Slot::Option, text).with_options(buttons));
            }
        }
    } else if let Some(t) = u.time {
        let same_day = |o: &&DateTime<Utc>| u.date.is_none_or(|d| local(o).date_naive() == d);
        let exact = form
            .offers
            .iter()
            .filter(same_day)
            .find(|o| local(o).time() == t);
        // "2" may be read as 2 AM; an offer at 2 PM is what was meant.
        let twelve = form.offers.iter().filter(same_day).find(|o| {
            local(o).time().hour() % 12 == t.hour() % 12 && local(o).time().minute() == t.minute()
        });
        *exact.or(twelve)?
    } else if u.has(Act::Affirm) && form.offers.len() == 1 {
        form.offers[0]
    } else if u.has(Act::Affirm) || (u.has(Act::Choose) && u.date.is_none()) {
        let text = format!("Which one — {}?", speech::offers(tz, &form.offers));
        let buttons = speech::offer_buttons(tz, &form.offers);
        return Some(Outcome::ask(form.clone(), Slot::Option, text).with_options(buttons));
    } else if (u.has(Act::OtherOptions) || u.lean.is_some())
        && u.date.is_none()
        && u.day_part.is_none()
    {
        let want = want_for(form, ctx);
        let busy = ctx.busy;
        let av = Availability::new(ctx.business);
        let declined = std::mem::take(&mut form.offers);
        form.avoid.extend(declined.iter().copied());
        let n = OFFERS + form.avoid.len();
        let mut others = if u.lean == Some(Lean::Earlier) {
            let first = *declined.iter().min()?;
            av.before(first, &want, busy, ctx.now, n)
        } else {
            let last = *declined.iter().max()?;
            av.after(last, &want, busy, ctx.now, n)
        };
        others.retain(|o| !form.avoid.contains(o));
        if u.lean == Some(Lean::Earlier) {
            // The closest ones before the declined times.
            others.drain(..others.len().saturating_sub(OFFERS));
        }
        if others.is_empty() {
            let which = if u.lean == Some(Lean::Earlier) {
                "earlier"
            } else {
                "later"
            };
            form.time = None;
            return Some(Outcome::ask(
                form.clone(),
                Slot::Date,
                format!("I don't have anything {which} than that. Which other day would suit you?"),
            ));
        }
        return Some(offer(form.clone(), ctx, String::new(), others));
    } else {
        return None;
    };
    let at = local(&picked);
    form.date = Some(at.date_naive());
    form.time = Some(at.time());
    form.day_part = None;
    form.offers.clear();
    take_details(form, u, ctx);
    Some(advance(form.clone(), ctx, false, false))
}

/// What this form asks the calendar for: the service's length and rules (the shortest
/// service while it is not known), the staff member asked for ("with Anna"; a move stays with
/// the booking's), and the booking that does not stand in its own way: the one being moved,
/// or this form's own booking when its write went through but the turn that made it was never
/// committed (a crash in between) and the caller confirms again (booking it again is a no-op).
fn want_for<'c>(form: &Form, ctx: &TurnContext<'c>) -> Want<'c> {
    let business = ctx.business;
    let mut want = match form.service.as_deref().and_then(|s| business.service(s)) {
        Some(service) => Want::service(service),
        None => Want::minutes(
            business
                .services
                .iter()
                .map(|s| s.minutes)
                .min()
                .unwrap_or(business.slot_minutes),
        ),
    };
    let moving = (form.kind == FormKind::Reschedule)
        .then(|| chosen_booking(form, ctx))
        .flatten();
    let staff = match moving {
        Some(b) => b.staff.as_deref(),
        None => form.staff.as_deref(),
    };
    want.staff = staff
        .and_then(|n| business.staff_member(n))
        .map(|s| s.name.as_str());
    want.except = Some(moving.map_or(form.id, |b| b.id));
    want
}

/// Decides what to say next from what the form knows: check the time, offer alternatives,
/// or ask for the first missing slot (service, date, time, name), then confirm.
fn advance(form: Form, ctx: &TurnContext, want_options: bool, was_confirming: bool) -> Outcome {
    if let Some(refused) = over_limit(&form, ctx) {
        return refused;
    }
    let tz = ctx.business.timezone;
    let av = Availability::new(ctx.business);
    let want = want_for(&form, ctx);
    let busy = ctx.busy;
    let service_known = form.service.is_some();
    match (form.date, form.time) {
        (Some(date), Some(time)) => match av.check_local(date, time, &want, busy, ctx.now) {
            Ok((start, _)) if want_options => {
                let near = av.nearest(start, &want, busy, ctx.now, OFFERS);
                offer(form, ctx, String::new(), near)
            }
            Ok((start, _)) => {
                let at = speech::when(tz, start);
                if !service_known {
                    let text = format!(
                        "{at} works. Which service is it for? {}",
                        speech::services_line(ctx.business)
                    );
                    Outcome::ask(form, Slot::Service, text).with_options(service_buttons(ctx))
                } else if form.kind == FormKind::Book && form.name.is_none() {
                    let text = format!("{at} is free. What name should I put the booking under?");
                    Outcome::ask(form, Slot::Name, text)
                } else {
                    confirm(form, ctx, start, was_confirming)
                }
            }
            Err(why) => not_free(form, ctx, date, time, why, ""),
        },
        _ if !service_known => {
            let text = format!(
                "Sure — which service? {}",
                speech::services_line(ctx.business)
            );
            Outcome::ask(form, Slot::Service, text).with_options(service_buttons(ctx))
        }
        // "Late afternoon", "the earliest you have in the morning": the first day with such
        // a time is the day meant.
        (None, None)
            if let Some(part) = form.day_part
                && let Some(date) = first_day_in_part(&form, ctx, part) =>
        {
            let mut form = form;
            form.date = Some(date);
            day_without_time(form, ctx, date, want_options)
        }
        (None, None) if form.earliest => {
            let first = av.after(ctx.now, &want, busy, ctx.now, OFFERS);
            offer(form, ctx, String::new(), first)
        }
        (None, time) => {
            let text = match (form.kind, chosen_booking(&form, ctx), time) {
                (FormKind::Reschedule, Some(b), _) => format!(
                    "When would you like to move your {} to?",
                    speech::own_booking(tz, b)
                ),
                (_, _, Some(t)) => {
                    format!("Sure — which day would you like at {}?", speech::clock(t))
                }
                _ => "Happy to. Which day suits you?".to_string(),
            };
            Outcome::ask(form, Slot::Date, text)
        }
        (Some(date), None) => {
            // "Move it from Monday to Wednesday": another day, the booking's own time.
            let kept = chosen_booking(&form, ctx)
                .map(|b| b.start.with_timezone(&tz))
                .filter(|b| {
                    form.kind == FormKind::Reschedule
                        && form.day_part.is_none()
                        && !form.earliest
                        && !want_options
                        && b.date_naive() != date
                })
                .map(|b| b.time())
                .filter(|t| av.check_local(date, *t, &want, busy, ctx.now).is_ok());
            match kept {
                Some(time) => {
                    let mut form = form;
                    form.time = Some(time);
                    advance(form, ctx, false, was_confirming)
                }
                None => day_without_time(form, ctx, date, want_options),
            }
        }
    }
}

fn service_buttons(ctx: &TurnContext) -> Vec<String> {
    ctx.business
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect()
}

/// A day is known but not the time: ask for it, or offer times when the caller wants
/// options, named a part of the day, or the day cannot be booked.
fn day_without_time(form: Form, ctx: &TurnContext, date: NaiveDate, want_options: bool) -> Outcome {
    let tz = ctx.business.timezone;
    let av = Availability::new(ctx.business);
    let want = want_for(&form, ctx);
    let busy = ctx.busy;
    let today = av.local_date(ctx.now);
    let noon = NaiveTime::from_hms_opt(12, 0, 0).expect("noon exists");
    let midday = local_instant(tz, date, noon).unwrap_or(ctx.now);
    if date < today {
        let near = av.nearest(ctx.now, &want, busy, ctx.now, OFFERS);
        let note = format!("{} has already passed.", speech::day(date));
        return offer(form, ctx, note, near);
    }
    if date > av.last_day(&want, ctx.now) {
        return beyond_horizon(form, ctx);
    }
    if av.opening(date).is_empty() {
        let near = av.nearest(midday, &want, busy, ctx.now, OFFERS);
        return offer(
            form,
            ctx,
            format!("We're closed on {}.", speech::day(date)),
            near,
        );
    }
    let mut free = av.free_starts(date, &want, busy, ctx.now);
    free.retain(|s| !form.avoid.contains(s));
    if let Some(part) = form.day_part {
        let (from, _) = part.window();
        let inside = within(part, &free, tz);
        if inside.is_empty() {
            let wanted = local_instant(tz, date, from).unwrap_or(midday);
            let near = av.nearest(wanted, &want, busy, ctx.now, OFFERS);
            let note = format!(
                "I have nothing free on {} {}.",
                speech::day(date),
                speech::day_part(part)
            );
            return offer(form, ctx, note, near);
        }
        if form.earliest {
            return first_of_day(form, ctx, inside[0]);
        }
        let picked = match part {
            // "After 11": the first times after it; "before lunch": the last before it.
            DayPart::After(_) => inside.iter().copied().take(OFFERS).collect(),
            DayPart::Before(_) => inside[inside.len().saturating_sub(OFFERS)..].to_vec(),
            _ => spread(&inside, OFFERS),
        };
        return offer(form, ctx, String::new(), picked);
    }
    if free.is_empty() {
        let near = av.nearest(midday, &want, busy, ctx.now, OFFERS);
        return offer(
            form,
            ctx,
            format!("{} is fully booked.", speech::day(date)),
            near,
        );
    }
    if form.earliest {
        return first_of_day(form, ctx, free[0]);
    }
    if want_options {
        return offer(form, ctx, String::new(), spread(&free, OFFERS));
    }
    let text = match &form.service {
        Some(s) if form.kind == FormKind::Book => format!(
            "What time on {} works for your {}?",
            speech::day(date),
            speech::service_noun(s)
        ),
        _ => format!("What time on {}?", speech::day(date)),
    };
    Outcome::ask(form, Slot::Time, text)
}

/// The starts inside a part of the day ("after 2" starts past 2: 2:00 itself is not after it).
fn within(part: DayPart, starts: &[DateTime<Utc>], tz: chrono_tz::Tz) -> Vec<DateTime<Utc>> {
    let (from, to) = part.window();
    let past = matches!(part, DayPart::After(_));
    starts
        .iter()
        .copied()
        .filter(|s| {
            let t = s.with_timezone(&tz).time();
            (from < t || (from == t && !past)) && t < to
        })
        .collect()
}

/// How many days ahead a part of the day with no day named ("late afternoon") is looked for.
const PART_DAYS: u64 = 14;

/// The first day with a free start inside the form's part of the day: from today, or for a
/// move ("push it to the afternoon") from the booking's own day.
fn first_day_in_part(form: &Form, ctx: &TurnContext, part: DayPart) -> Option<NaiveDate> {
    let av = Availability::new(ctx.business);
    let want = want_for(form, ctx);
    let today = av.local_date(ctx.now);
    let today = match chosen_booking(form, ctx).filter(|_| form.kind == FormKind::Reschedule) {
        Some(b) => b
            .start
            .with_timezone(&ctx.business.timezone)
            .date_naive()
            .max(today),
        None => today,
    };
    let last = av.last_day(&want, ctx.now);
    (0..PART_DAYS)
        .filter_map(|n| today.checked_add_days(chrono::Days::new(n)))
        .take_while(|d| *d <= last)
        .find(|d| {
            let mut free = av.free_starts(*d, &want, ctx.busy, ctx.now);
            free.retain(|s| !form.avoid.contains(s));
            !within(part, &free, ctx.business.timezone).is_empty()
        })
}

/// The first open day of next week (Monday on), for "next week" with no day named.
fn next_week_day(ctx: &TurnContext) -> Option<NaiveDate> {
    let av = Availability::new(ctx.business);
    let today = av.local_date(ctx.now);
    let monday = today.checked_add_days(chrono::Days::new(
        7 - u64::from(today.weekday().num_days_from_monday()),
    ))?;
    (0..7)
        .filter_map(|n| monday.checked_add_days(chrono::Days::new(n)))
        .find(|d| !av.opening(*d).is_empty())
}

/// "First thing Friday", "the earliest you have on Friday": the day's first free time is the
/// one meant; it goes on like a time the caller named (the service or name asked, or confirmed).
fn first_of_day(mut form: Form, ctx: &TurnContext, first: DateTime<Utc>) -> Outcome {
    form.time = Some(first.with_timezone(&ctx.business.timezone).time());
    form.day_part = None;
    advance(form, ctx, false, false)
}

/// Up to `n` starts spread over the list (first, middle, last), not just the first few.
fn spread(starts: &[DateTime<Utc>], n: usize) -> Vec<DateTime<Utc>> {
    if starts.len() <= n || n < 2 {
        return starts.iter().copied().take(n).collect();
    }
    (0..n)
        .map(|i| starts[i * (starts.len() - 1) / (n - 1)])
        .collect()
}

fn beyond_horizon(mut form: Form, ctx: &TurnContext) -> Outcome {
    form.date = None;
    form.time = None;
    form.offers.clear();
    let days = form
        .service
        .as_deref()
        .and_then(|s| ctx.business.service(s))
        .and_then(|s| s.horizon_days)
        .unwrap_or(ctx.business.horizon_days);
    let text = format!("I can only book up to {days} days ahead. Which other day would suit you?");
    Outcome::ask(form, Slot::Date, text)
}

/// The asked time cannot be booked: say why and offer the nearest free starts.
fn not_free(
    form: Form,
    ctx: &TurnContext,
    date: NaiveDate,
    time: NaiveTime,
    why: Unavailable,
    lead: &str,
) -> Outcome {
    let tz = ctx.business.timezone;
    let av = Availability::new(ctx.business);
    let want = want_for(&form, ctx);
    let busy = ctx.busy;
    let at = format!("{} on {}", speech::clock(time), speech::weekday(date));
    let note = match why {
        Unavailable::Taken => format!("{lead}{at} is taken."),
        Unavailable::InPast => format!("{at} has already passed."),
        Unavailable::TooSoon => format!(
            "{at} is too soon — I need to know at least {} ahead.",
            speech::duration(av.notice_minutes(&want))
        ),
        Unavailable::Closed if av.opening(date).is_empty() => {
            format!("We're closed on {}.", speech::day(date))
        }
        Unavailable::Closed => format!("{at} is outside our opening hours."),
        Unavailable::NoSuchTime => format!(
            "{} doesn't exist on {} — the clocks go forward that night.",
            speech::clock(time),
            speech::day(date)
        ),
        Unavailable::BeyondHorizon => return beyond_horizon(form, ctx),
        Unavailable::StaffAway => {
            let who = want.staff.unwrap_or("They");
            format!("{who} isn't in at {at}.")
        }
    };
    // Around the wanted time; a skipped local time is an hour later on the wall clock.
    let wanted = local_instant(tz, date, time)
        .or_else(|| local_instant(tz, date, time + Duration::hours(1)))
        .map_or(ctx.now, |w| w.max(ctx.now));
    let near = av.nearest(wanted, &want, busy, ctx.now, OFFERS);
    offer(form, ctx, note, near)
}

/// Reads out offered start times and waits for a pick.
fn offer(
    mut form: Form,
    ctx: &TurnContext,
    note: String,
    mut offers: Vec<DateTime<Utc>>,
) -> Outcome {
    let tz = ctx.business.timezone;
    offers.retain(|o| !form.avoid.contains(o));
    offers.truncate(OFFERS);
    let lead = if note.is_empty() {
        String::new()
    } else {
        format!("{note} ")
    };
    if offers.is_empty() {
        form.time = None;
        form.day_part = None;
        form.offers.clear();
        let text = format!(
            "{lead}I don't have anything free around then. Which other day would suit you?"
        );
        return Outcome::ask(form, Slot::Date, text);
    }
    let text = format!(
        "{lead}I can do {}. Which suits you?",
        speech::offers(tz, &offers)
    );
    let buttons = speech::offer_buttons(tz, &offers);
    form.offers = offers;
    Outcome::ask(form, Slot::Option, text).with_options(buttons)
}

/// Everything is known and free: ask before writing anything (on a call, once the heard
/// name and email are spelled back and confirmed).
fn confirm(
    mut form: Form,
    ctx: &TurnContext,
    start: DateTime<Utc>,
    was_confirming: bool,
) -> Outcome {
    if let Some(text) = spell_back(&mut form, ctx) {
        return Outcome {
            form: Some(form),
            ..Outcome::reply(text)
        }
        .with_options(yes_no());
    }
    let at = speech::when(ctx.business.timezone, start);
    let service = form.service.clone().unwrap_or_default();
    let text = match form.kind {
        FormKind::Reschedule => format!(
            "{at} is free. Move your {} there?",
            speech::service_noun(&service)
        ),
        _ if was_confirming => format!(
            "{at} is free. Shall I book the {} then?",
            speech::service_noun(&service)
        ),
        _ => format!(
            "I can book {} for {} on {at}. Shall I confirm it?",
            speech::with_article(&service),
            form.name.clone().unwrap_or_default()
        ),
    };
    let mut form = form;
    form.offers.clear();
    Outcome::ask(form, Slot::Confirmation, text).with_options(yes_no())
}

/// The caller confirmed: check once more against the fresh calendar and emit the write.
fn finish(form: Form, ctx: &TurnContext) -> Outcome {
    let tz = ctx.business.timezone;
    if form.kind == FormKind::Cancel {
        let Some(b) = chosen_booking(&form, ctx) else {
            return Outcome::reply(
                "I can't find that appointment any more. Anything else I can help with?",
            );
        };
        let mut o = Outcome::reply("It's cancelled. Would you like to book another time?");
        o.effect = Some(Effect::Cancel { id: b.id });
        o.proposal = Some(Proposal::Book);
        return o;
    }
    let (Some(date), Some(time)) = (form.date, form.time) else {
        return advance(form, ctx, false, false);
    };
    if form.kind == FormKind::Book
        && !ctx.channel.is_text()
        && (form.name_unchecked || form.email_unchecked)
    {
        // "Yes, and it's Jake Ross": the new name is spelled back before anything is booked.
        return advance(form, ctx, false, false);
    }
    if let Some(refused) = over_limit(&form, ctx) {
        return refused;
    }
    let want = want_for(&form, ctx);
    let busy = ctx.busy;
    let (start, staff) =
        match Availability::new(ctx.business).check_local(date, time, &want, busy, ctx.now) {
            Ok(found) => found,
            Err(Unavailable::Taken) => {
                return not_free(form, ctx, date, time, Unavailable::Taken, "Sorry, ");
            }
            Err(why) => return not_free(form, ctx, date, time, why, ""),
        };
    let end = start + Duration::minutes(i64::from(want.minutes));
    let at = speech::when(tz, start);
    let service = form.service.clone().unwrap_or_default();
    match form.kind {
        FormKind::Book => {
            let booking = Booking {
                id: form.id,
                phone: ctx.phone.clone(),
                name: form.name.clone(),
                email: form.email.clone(),
                service: service.clone(),
                start,
                end,
                status: BookingStatus::Confirmed,
                sequence: 0,
                staff,
                event_id: None,
            };
            let mut o = Outcome::reply(format!(
                "Done — you're booked for {} on {at}. {}",
                speech::with_article(&service),
                after_change(ctx)
            ));
            o.effect = Some(Effect::Book(booking));
            o
        }
        _ => {
            let Some(id) = form.booking else {
                return Outcome::reply(
                    "I can't find that appointment any more. Anything else I can help with?",
                );
            };
            let mut o = Outcome::reply(format!(
                "Moved — your {} is now on {at}.",
                speech::service_noun(&service)
            ));
            o.effect = Some(Effect::Reschedule { id, start, end });
            o
        }
    }
}

/// What follows a booking made or moved: where to change it.
pub(super) fn after_change(ctx: &TurnContext) -> &'static str {
    if ctx.channel.is_text() {
        "Reply here if you need to change it."
    } else {
        "See you then!"
    }
}

/// A request waiting for its "yes", as a clause of a question about two: "cancel your
/// cleaning on Friday, March 6 at 2:00 PM", "book a whitening on Monday, March 9 at 11:00
/// AM" (with "for Jin Park" unless that is `known_name`), "move your cleaning on … to …".
pub(super) fn pending_clause(
    form: &Form,
    known_name: Option<&str>,
    ctx: &TurnContext,
) -> Option<String> {
    let tz = ctx.business.timezone;
    let at = || {
        form.date
            .zip(form.time)
            .and_then(|(d, t)| local_instant(tz, d, t))
    };
    match form.kind {
        FormKind::Cancel => {
            let b = chosen_booking(form, ctx)?;
            Some(format!("cancel your {}", speech::own_booking(tz, b)))
        }
        FormKind::Reschedule => {
            let b = chosen_booking(form, ctx)?;
            Some(format!(
                "move your {} to {}",
                speech::own_booking(tz, b),
                speech::when(tz, at()?)
            ))
        }
        FormKind::Book => {
            let service = form.service.as_deref()?;
            let name = (form.name.as_deref())
                .filter(|n| Some(*n) != known_name)
                .map(|n| format!(" for {n}"))
                .unwrap_or_default();
            Some(format!(
                "book {}{name} on {}",
                speech::with_article(service),
                speech::when(tz, at()?)
            ))
        }
    }
}

/// One question about two requests that each wait for a "yes" (DIALOGS.md 12): "Cancel your
/// cleaning on Friday, March 6 at 2:00 PM, and book a whitening on Monday, March 9 at 11:00
/// AM?"; `first_name` is the name the first one is under.
pub(super) fn both_question(
    first: &Form,
    second: &Form,
    first_name: Option<&str>,
    ctx: &TurnContext,
) -> Option<String> {
    let one = pending_clause(first, None, ctx)?;
    let two = pending_clause(second, first_name, ctx)?;
    let mut text = format!("{}, and {two}?", speech::capitalised(&one));
    let cancels = first.kind == FormKind::Cancel || second.kind == FormKind::Cancel;
    if cancels && let Some(policy) = &ctx.business.cancellation_policy {
        text = format!("{text} {policy}");
    }
    Some(text)
}

/// A write done, as a clause: "the cleaning is cancelled", "you're booked for a whitening
/// on Monday, March 9 at 11:00 AM", "the cleaning is moved to …".
pub(super) fn done_clause(effect: &Effect, ctx: &TurnContext) -> String {
    let tz = ctx.business.timezone;
    let noun = |id: &BookingId| {
        ctx.bookings.iter().find(|b| b.id == *id).map_or_else(
            || "appointment".to_string(),
            |b| speech::service_noun(&b.service),
        )
    };
    match effect {
        Effect::Book(b) => format!("you're booked for {}", speech::booking(tz, b)),
        Effect::Cancel { id } => format!("the {} is cancelled", noun(id)),
        Effect::Reschedule { id, start, .. } => {
            format!("the {} is moved to {}", noun(id), speech::when(tz, *start))
        }
        Effect::Attend { .. } | Effect::Handover => String::new(),
    }
}

/// The calendar refused the write because someone else took the time: apologise and offer
/// the nearest free times from the fresh busy list.
pub(super) fn taken_after_all(mut form: Form, ctx: &TurnContext) -> Outcome {
    form.touched = ctx.now;
    let (Some(date), Some(time)) = (form.date, form.time) else {
        return advance(form, ctx, false, false);
    };
    let mut o = not_free(form, ctx, date, time, Unavailable::Taken, "Sorry, ");
    o.reply.text = o.reply.text.replacen(" is taken.", " was just taken.", 1);
    o
}

/// One short line that brings the caller back to the unfinished form.
pub(super) fn reminder(form: &Form, ctx: &TurnContext) -> String {
    let tz = ctx.business.timezone;
    let service = form.service.as_deref().map(speech::service_noun);
    let booking = chosen_booking(form, ctx).map(|b| speech::own_booking(tz, b));
    let at = match (form.date, form.time) {
        (Some(d), Some(t)) => Some(format!("{} at {}", speech::day(d), speech::clock(t))),
        _ => None,
    };
    if form.spelling.is_some() {
        let mut again = form.clone();
        if let Some(question) = spell_back(&mut again, ctx) {
            return format!("Now, {}", lower_first(&question));
        }
    }
    match (form.asked, form.kind) {
        (Some(Slot::Service), _) => format!(
            "Now, which service would you like? {}",
            speech::services_line(ctx.business)
        ),
        (Some(Slot::Time), _) if form.date.is_some() => {
            let day = form.date.map(speech::weekday).unwrap_or_default();
            match service {
                Some(s) if form.kind == FormKind::Book => {
                    format!("Now, what time on {day} works for your {s}?")
                }
                _ => format!("Now, what time on {day} works for you?"),
            }
        }
        (Some(Slot::Name), _) => "Now, what name should I put the booking under?".into(),
        (Some(Slot::Option), _) if !form.offers.is_empty() => format!(
            "Now, which suits you: {}?",
            speech::offers(tz, &form.offers)
        ),
        (Some(Slot::Booking), _) => "Now, which appointment did you mean?".into(),
        (Some(Slot::Confirmation), FormKind::Cancel) => format!(
            "Now, shall I cancel your {}?",
            booking.unwrap_or_else(|| "appointment".into())
        ),
        (Some(Slot::Confirmation), FormKind::Reschedule) => format!(
            "Now, shall I move your {} to {}?",
            service.unwrap_or_else(|| "appointment".into()),
            at.unwrap_or_default()
        ),
        (Some(Slot::Confirmation), FormKind::Book) => format!(
            "Now, shall I book {} on {}?",
            form.service
                .as_deref()
                .map_or_else(|| "it".into(), speech::with_article),
            at.unwrap_or_default()
        ),
        (_, FormKind::Reschedule) => "Now, when would you like to move your appointment to?".into(),
        (_, _) => match service {
            Some(s) => format!("Now, which day suits you for your {s}?"),
            None => "Now, which day suits you?".into(),
        },
    }
}

/// Sara could not read the time the caller gave: ask for it again, keeping nothing guessed.
fn unclear_time(mut form: Form, ctx: &TurnContext) -> Outcome {
    form.time = None;
    form.day_part = None;
    form.offers.clear();
    let _ = ctx;
    match form.date {
        Some(d) => {
            let text = format!(
                "Sorry, I didn't catch the time. What time on {} would you like? \
                 You can write it like 10:30 AM.",
                speech::day(d)
            );
            Outcome::ask(form, Slot::Time, text)
        }
        None => Outcome::ask(
            form,
            Slot::Date,
            "Sorry, I didn't catch when you meant. Which day and time would you like? \
             You can write it like Friday at 10:30 AM.",
        ),
    }
}

/// A change staff make from the console, decided by [`finish`] as if the customer had just
/// confirmed it: the same limits, notice, opening hours, staff and resources, and on a
/// refusal the same reason and nearest free times. The cancel notice is not checked: it
/// sends late changes to staff, and staff are making this one.
pub(super) fn for_staff(
    state: &DialogueState,
    change: &super::StaffChange,
    ctx: &TurnContext,
) -> super::StaffDecision {
    use super::{StaffChange, StaffDecision};
    let refused = |reason: &str| StaffDecision::Refused {
        reason: reason.to_string(),
        alternatives: Vec::new(),
    };
    let business = ctx.business;
    let mut form = Form::new(FormKind::Book, ctx, state.caller.clone());
    form.asked = Some(Slot::Confirmation);
    match change {
        StaffChange::Book {
            id,
            service,
            date,
            time,
            staff,
            name,
        } => {
            let Some(service) = business.service(service) else {
                return refused("There is no such service.");
            };
            form.id = *id;
            form.service = Some(service.name.clone());
            if let Some(wanted) = staff {
                let Some(member) = business.staff_member(wanted) else {
                    return refused("There is no such staff member.");
                };
                if !member.does(&service.name) {
                    return refused(&format!(
                        "{} does not do {}.",
                        member.name,
                        speech::with_article(&service.name)
                    ));
                }
                form.staff = Some(member.name.clone());
            }
            if let Some(name) = name {
                form.name = Some(name.clone());
            }
            (form.date, form.time) = (Some(*date), Some(*time));
        }
        StaffChange::Move {
            booking,
            date,
            time,
        } => {
            let Some(b) = ctx.bookings.iter().find(|b| b.id == *booking) else {
                return refused("That booking is not upcoming any more.");
            };
            form.kind = FormKind::Reschedule;
            form.booking = Some(b.id);
            form.service = Some(b.service.clone());
            form.name = b.name.clone();
            (form.date, form.time) = (Some(*date), Some(*time));
        }
        StaffChange::Cancel { booking } => {
            if !ctx.bookings.iter().any(|b| b.id == *booking) {
                return refused("That booking is not upcoming any more.");
            }
            form.kind = FormKind::Cancel;
            form.booking = Some(*booking);
        }
    }
    let outcome = finish(form, ctx);
    match outcome.effect {
        Some(effect) => StaffDecision::Change { effect },
        None => StaffDecision::Refused {
            reason: without_question(&outcome.reply.text),
            alternatives: outcome.form.map(|f| f.offers).unwrap_or_default(),
        },
    }
}

/// A refusal as staff read it: Sara's words to a customer without the closing question
/// ("… Which suits you?"), which the console's own buttons answer.
fn without_question(text: &str) -> String {
    let text = text.trim();
    if !text.ends_with('?') {
        return text.to_string();
    }
    match text[..text.len() - 1].rfind(['.', '!']) {
        Some(end) => text[..=end].to_string(),
        None => text.to_string(),
    }
}

/// "that's …" from "That's …", to follow "Now, ".
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
