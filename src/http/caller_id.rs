//! Whether a phone call's caller ID can be believed for changes to existing bookings.
//!
//! Anyone can place a call showing someone else's number. Twilio reports its SHAKEN/STIR
//! verdict on an incoming call's webhook as `StirVerstat` (present only for calls that carried
//! a SHAKEN PASSporT); only `TN-Validation-Passed-A` (the originating carrier knows the caller
//! and that they may use the number) counts as verified here. An unverified caller may book,
//! but a request to move or cancel an existing booking (which would read it out first) is
//! put through to staff: Sara has no SMS sending path to send a confirmation code to that
//! phone, and a hand-over is the confirmation the caller cannot fake.
//!
//! The verdict of the call start is carried in the gather action URL (Twilio signs it), so
//! later gathers of the same call keep it. The check reads the caller's words with the rule
//! understanding before the engine sees them; it is an edge guard kept apart from the
//! dialogue policy, which does not know about caller verification (README, "Security").

use sara_actors::understanding::{Act, NluContext};

use super::AppState;
use super::webhook::param;
use crate::ai::RuleNlu;

/// The `StirVerstat` value of a fully attested, verified caller ID.
pub const VERIFIED: &str = "TN-Validation-Passed-A";

/// Whether this webhook's own `StirVerstat` verifies the caller.
pub fn verified_by_twilio(params: &[(String, String)]) -> bool {
    param(params, "StirVerstat").is_some_and(|v| v.trim().eq_ignore_ascii_case(VERIFIED))
}

/// Whether `speech` asks to move or cancel an existing booking.
pub fn asks_to_change_a_booking(app: &AppState, speech: &str) -> bool {
    let business = app.engine.business();
    let ctx = NluContext {
        now: app.clock.now().with_timezone(&business.timezone),
        services: business.services.iter().map(|s| s.name.clone()).collect(),
        expecting: None,
        prompt: None,
    };
    RuleNlu::new(vec![])
        .understand(speech, &ctx)
        .acts
        .iter()
        .any(|a| matches!(a, Act::Reschedule | Act::Cancel))
}
