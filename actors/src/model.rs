//! The nouns shared by every layer: contacts' phone numbers, channels and bookings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A phone number in E.164 form (`+` then 8 to 15 digits). The only way to build one is
/// [`Phone::parse`], so every `Phone` in the engine is normalised.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Normalises what a provider sends (`+1 555-010-0000`, `whatsapp:+15550100000`,
    /// `15550100000`) to E.164. Returns `None` for anything that is not a phone number.
    pub fn parse(raw: &str) -> Option<Phone> {
        let raw = raw.trim();
        let raw = raw.strip_prefix("whatsapp:").unwrap_or(raw);
        let mut digits = String::with_capacity(16);
        for (i, c) in raw.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '(' | ')' | '.' => {}
                _ => return None,
            }
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return None;
        }
        Some(Phone(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the last four digits hidden, for logs.
    pub fn masked(&self) -> String {
        let tail = &self.0[self.0.len().saturating_sub(4)..];
        format!("+…{tail}")
    }
}

impl TryFrom<String> for Phone {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Phone::parse(&value).ok_or_else(|| "not an E.164 phone number".to_string())
    }
}

impl From<Phone> for String {
    fn from(value: Phone) -> Self {
        value.0
    }
}

/// Debug never prints the number in clear: a `{:?}` in a log line must not leak it.
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// Where a message came from; replies go back the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Voice,
    /// `whatsapp`, as the contract spells it (`whats_app`, how it was written before, is
    /// still read).
    #[serde(rename = "whatsapp", alias = "whats_app")]
    WhatsApp,
    Email,
    /// `sara chat` in a terminal.
    Chat,
    /// Staff acting on a conversation (handing it back to Sara).
    Staff,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::WhatsApp => "whatsapp",
            Channel::Email => "email",
            Channel::Chat => "chat",
            Channel::Staff => "staff",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Some(match s {
            "sms" => Channel::Sms,
            "voice" => Channel::Voice,
            "whatsapp" => Channel::WhatsApp,
            "email" => Channel::Email,
            "chat" => Channel::Chat,
            "staff" => Channel::Staff,
            _ => return None,
        })
    }

    /// Text channels show buttons and stay quiet after a hand-over; voice dials through.
    pub fn is_text(self) -> bool {
        !matches!(self, Channel::Voice)
    }
}

pub type BookingId = Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    /// Held for a caller who has not confirmed yet.
    Pending,
    Cancelled,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Pending => "pending",
            BookingStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<BookingStatus> {
        Some(match s {
            "confirmed" => BookingStatus::Confirmed,
            "pending" => BookingStatus::Pending,
            "cancelled" => BookingStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One appointment in the business calendar. Times are instants; the business time zone
/// is applied only when they are shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Chosen by the conversation when the booking form starts, so that a retried "yes"
    /// writes the same booking again instead of a second one.
    pub id: BookingId,
    pub phone: Phone,
    pub name: Option<String>,
    pub email: Option<String>,
    pub service: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: BookingStatus,
    /// How many times the booking was changed (moved, cancelled) since it was made: the
    /// SEQUENCE of its calendar invites, one more with every change.
    #[serde(default)]
    pub sequence: u32,
    /// The staff member it is with (a configured name); `None` without staff.
    #[serde(default)]
    pub staff: Option<String>,
    /// The Google Calendar event that mirrors it (`calendar.provider = "google"`); `None` for
    /// a booking of the local calendar.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// A half-open time range `[start, end)` that is not free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        assert_eq!(
            Phone::parse("+1 555-010-0000").unwrap().as_str(),
            "+15550100000"
        );
        assert_eq!(
            Phone::parse("whatsapp:+15550100000").unwrap().as_str(),
            "+15550100000"
        );
        assert_eq!(
            Phone::parse("15550100000").unwrap().as_str(),
            "+15550100000"
        );
        assert!(Phone::parse("hello").is_none());
        assert!(Phone::parse("+12").is_none());
        assert!(Phone::parse("+1234567890123456").is_none());
        assert!(Phone::parse("").is_none());
    }

    #[test]
    fn debug_output_masks_the_number() {
        let p = Phone::parse("+15550100000").unwrap();
        assert_eq!(format!("{p:?}"), "Phone(+…0000)");
    }

    #[test]
    fn channels_are_written_as_the_contract_spells_them_and_the_old_spelling_is_read() {
        assert_eq!(
            serde_json::to_string(&Channel::WhatsApp).unwrap(),
            "\"whatsapp\""
        );
        for (json, channel) in [
            ("\"whatsapp\"", Channel::WhatsApp),
            ("\"whats_app\"", Channel::WhatsApp),
            ("\"sms\"", Channel::Sms),
        ] {
            assert_eq!(serde_json::from_str::<Channel>(json).unwrap(), channel);
        }
        for c in [
            Channel::Sms,
            Channel::Voice,
            Channel::WhatsApp,
            Channel::Email,
            Channel::Chat,
            Channel::Staff,
        ] {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
    }
}
