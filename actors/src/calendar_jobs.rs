//! Background work for a calendar that mirrors the store (Google), as pure code: the job
//! that retries the write of a held booking, the recurring job that reads what staff changed
//! in the calendar, when a write is tried again, and what the customer is told about each.
//!
//! The scheduler runs both jobs through the [`crate::ports::CalendarMirror`] port and writes
//! what follows (booking rows, reminders, messages, the sync token) in the job's completion.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::business::Business;
use crate::dialogue::spoken_when;
use crate::model::{Booking, BookingId, Channel};
use crate::outbound::Content;
use crate::ports::JobRecord;
use crate::reminders::{ReminderTemplate, first_name, template_parameters};

/// The job kind of a held booking's retried calendar write.
pub const CALENDAR_WRITE_JOB: &str = "calendar_write";

/// The job kind (and unique key: there is one) of the calendar sync. Its claim is the lease
/// that lets one instance at a time read the calendar's changes.
pub const CALENDAR_SYNC_JOB: &str = "calendar_sync";

/// A retried write's arguments: which booking, and when to stop trying.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarWriteJob {
    pub booking: BookingId,
    /// From then on the hold is released and the customer told it could not be booked.
    pub give_up_at: DateTime<Utc>,
}

impl CalendarWriteJob {
    /// `calendar_write:{booking}`: one retry job per booking.
    pub fn unique_key(&self) -> String {
        format!("{CALENDAR_WRITE_JOB}:{}", self.booking)
    }

    /// The job, first due at `due_at`.
    pub fn record(&self, due_at: DateTime<Utc>) -> Option<JobRecord> {
        Some(JobRecord {
            kind: CALENDAR_WRITE_JOB.to_string(),
            due_at,
            payload: serde_json::to_string(self).ok()?,
            unique_key: self.unique_key(),
        })
    }
}

/// The calendar sync job, first due at `now` (written once; a second write is a no-op).
pub fn sync_job(now: DateTime<Utc>) -> JobRecord {
    JobRecord {
        kind: CALENDAR_SYNC_JOB.to_string(),
        due_at: now,
        payload: "{}".to_string(),
        unique_key: CALENDAR_SYNC_JOB.to_string(),
    }
}

/// How long after its first try a failed write is tried again: 30 s, doubling per attempt,
/// at most 5 minutes (the calendar is usually back within minutes).
pub fn write_retry_delay(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 10)).unwrap_or(10);
    (Duration::seconds(30) * (1 << doublings)).min(Duration::minutes(5))
}

fn service(booking: &Booking) -> String {
    booking.service.to_lowercase()
}

/// What the customer hears when the time is held but the calendar could not be written.
pub fn deferred_text(business: &Business, booking: &Booking) -> String {
    format!(
        "I couldn't reach the calendar just now; I've held {} for your {}, and I'll text you \
         once it's confirmed.",
        spoken_when(business.timezone, booking.start),
        service(booking),
    )
}

/// The message once a held booking's write went through.
pub fn confirmed_text(business: &Business, booking: &Booking) -> String {
    format!(
        "Hi {}, good news: your {} on {} at {} is confirmed. Reply here if you need to change it.",
        first_name(booking),
        service(booking),
        spoken_when(business.timezone, booking.start),
        business.name,
    )
}

/// The message when a held booking could not be written before the give-up time.
pub fn not_booked_text(business: &Business, booking: &Booking) -> String {
    let team = match &business.phone {
        Some(phone) => format!("call us on {} and the team will help", phone.as_str()),
        None => "ask for the team and they'll help".to_string(),
    };
    format!(
        "Hi {}, I'm sorry: I couldn't get your {} on {} into our calendar, so it is not booked. \
         Reply here to try another time, or {team}.",
        first_name(booking),
        service(booking),
        spoken_when(business.timezone, booking.start),
    )
}

/// The message when staff cancelled (deleted) the booking's event.
pub fn cancelled_by_staff_text(business: &Business, booking: &Booking) -> String {
    format!(
        "Hi {}, {} has cancelled your {} on {}. Reply here if you'd like to book another time.",
        first_name(booking),
        business.name,
        service(booking),
        spoken_when(business.timezone, booking.start),
    )
}

/// The message when staff moved the booking's event (`after` is the booking at its new time).
pub fn moved_by_staff_text(business: &Business, before: &Booking, after: &Booking) -> String {
    format!(
        "Hi {}, {} has moved your {} from {} to {}. Reply here if the new time doesn't suit you.",
        first_name(after),
        business.name,
        service(after),
        spoken_when(business.timezone, before.start),
        spoken_when(business.timezone, after.start),
    )
}

/// A notice as one channel sends it: text on SMS and on WhatsApp inside the 24-hour window,
/// the configured template outside it (`None` without one: Meta would not deliver free text),
/// a subject and the text by email.
pub fn notice_content(
    channel: Channel,
    business: &Business,
    booking: &Booking,
    text: &str,
    subject: &str,
    window_open: bool,
    template: Option<&ReminderTemplate>,
) -> Option<Content> {
    match channel {
        Channel::WhatsApp if window_open => Some(Content::text(text)),
        Channel::WhatsApp => template.map(|t| Content::Template {
            name: t.name.clone(),
            language: t.language.clone(),
            parameters: template_parameters(business, booking),
        }),
        Channel::Email => Some(Content::Email {
            subject: subject.to_string(),
            text: text.to_string(),
            invite: None,
        }),
        Channel::Sms | Channel::Chat => Some(Content::text(text)),
        Channel::Voice | Channel::Staff => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_is_tried_again_sooner_first_then_every_five_minutes() {
        let seconds: Vec<i64> = (1..=7)
            .map(|a| write_retry_delay(a).num_seconds())
            .collect();
        assert_eq!(seconds, vec![30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(write_retry_delay(0).num_seconds(), 30);
        assert_eq!(write_retry_delay(i64::MAX).num_seconds(), 300);
    }

    #[test]
    fn one_retry_job_per_booking() {
        let booking = uuid::Uuid::nil();
        let job = CalendarWriteJob {
            booking,
            give_up_at: DateTime::UNIX_EPOCH,
        };
        assert_eq!(
            job.unique_key(),
            "calendar_write:00000000-0000-0000-0000-000000000000"
        );
        let record = job.record(DateTime::UNIX_EPOCH).expect("record");
        let back: CalendarWriteJob = serde_json::from_str(&record.payload).expect("payload");
        assert_eq!(back, job);
        assert_eq!(sync_job(DateTime::UNIX_EPOCH).unique_key, CALENDAR_SYNC_JOB);
    }
}
