//! The dialogue policy: a pure function from (state, understanding, context) to the next
//! state, the reply and at most one effect for the engine to run. No I/O, no clock, no
//! randomness: everything it needs arrives in [`TurnContext`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::business::Business;
use crate::model::{Booking, BookingId, Channel, Interval, Phone};
use crate::ports::CalendarError;
use crate::understanding::{Act, Slot, Understanding};

/// Everything the policy may know about the world for one turn.
#[derive(Clone, Debug)]
pub struct TurnContext<'a> {
    /// The message's time.
    pub now: DateTime<Utc>,
    pub business: &'a Business,
    pub phone: &'a Phone,
    pub channel: Channel,
    /// Times not free in the calendar (confirmed bookings plus buffers are the calendar's
    /// business; the policy only avoids these).
    pub busy: &'a [Interval],
    /// This caller's upcoming, not cancelled bookings, soonest first.
    pub bookings: &'a [Booking],
    /// A fresh id the policy may use for a new booking form (it cannot make its own).
    pub fresh_id: Uuid,
}

/// The dialogue state of one conversation: what is being done and what is known so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DialogueState {}

impl DialogueState {
    /// What Sara asked for last, to help the NLU read a bare answer.
    pub fn expecting(&self) -> Option<Slot> {
        None
    }
}

/// What Sara says back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub text: String,
    /// Quick-reply choices (WhatsApp buttons); the text already lists them.
    pub options: Vec<String>,
    /// Pass the caller to a human now (voice: dial the staff number).
    pub handover: bool,
    /// The conversation is over (voice: hang up).
    pub end: bool,
    /// Say nothing (text channels while staff have the conversation).
    pub silent: bool,
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
    Handover,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub state: DialogueState,
    pub reply: Reply,
    pub effect: Option<Effect>,
    /// The act the policy acted on, for the turn log.
    pub intent: Act,
}

/// One turn of the policy.
pub fn step(state: &DialogueState, understanding: &Understanding, ctx: &TurnContext) -> Decision {
    let _ = (understanding, ctx);
    Decision {
        state: state.clone(),
        reply: Reply {
            text: "placeholder".into(),
            ..Reply::default()
        },
        effect: None,
        intent: Act::Inform,
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
    let _ = (effect, error, ctx);
    Decision {
        state: before.clone(),
        reply: Reply {
            text: "placeholder".into(),
            ..Reply::default()
        },
        effect: None,
        intent: Act::Inform,
    }
}

/// Said after a crash lost the caller's last message.
pub fn missed_turn_reply() -> Reply {
    Reply {
        text: "Sorry, I missed that — could you say it once more?".into(),
        ..Reply::default()
    }
}

/// Said instead of running a conversation that keeps failing.
pub fn quarantine_reply(business: &Business) -> Reply {
    Reply {
        text: format!(
            "I'm having trouble on my side, so I've asked the team at {} to get back to you.",
            business.name
        ),
        handover: true,
        ..Reply::default()
    }
}

/// Said when the calendar could not be reached; the caller can simply try again.
pub fn calendar_unavailable_reply() -> Reply {
    Reply {
        text: "Sorry, I can't reach the calendar right now — could you try again in a minute?"
            .into(),
        ..Reply::default()
    }
}

/// The first thing Sara says (a call starts, or `sara chat` opens).
pub fn greeting(business: &Business, channel: Channel) -> Reply {
    let _ = channel;
    Reply {
        text: format!("Hi! This is Sara at {}. How can I help?", business.name),
        ..Reply::default()
    }
}
