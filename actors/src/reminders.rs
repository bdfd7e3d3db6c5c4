//! The reminder schedule and the reminder's words, as pure code: when each reminder of a
//! booking is due (offsets before the appointment, kept out of the quiet hours, in the
//! business time zone and right across DST changes), and what it says on each channel.
//!
//! The scheduler stores one job per [`DueReminder`]; a reschedule computes them again from
//! the new start, a cancel drops them.

use chrono::{
    DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::business::Business;
use crate::dialogue::spoken_when;
use crate::model::{Booking, BookingId, Channel, Phone};
use crate::outbound::{Choice, Content};
use crate::ports::JobRecord;

const DAY_MINUTES: u32 = 24 * 60;

/// The local hours when no reminder is sent, e.g. 21:00–08:00 (it may wrap past midnight).
/// Start is inside, end is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// `"21:00-08:00"`. Start and end must differ (all day quiet would send nothing).
    pub fn parse(spec: &str) -> Result<QuietHours, String> {
        let (a, b) = spec
            .split_once('-')
            .ok_or_else(|| format!("{spec:?}: expected \"HH:MM-HH:MM\""))?;
        let time = |s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map_err(|_| format!("{spec:?}: {:?} is not a time (HH:MM)", s.trim()))
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(format!("{spec:?}: start and end are the same"));
        }
        Ok(QuietHours { start, end })
    }

    /// Whether a local wall-clock time falls in the quiet hours.
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// When reminders go out, from `[reminders]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderSettings {
    /// Minutes before the appointment. A whole number of days means the same local time that
    /// many days before; other offsets are elapsed minutes.
    pub offsets_minutes: Vec<u32>,
    pub quiet_hours: Option<QuietHours>,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        ReminderSettings {
            offsets_minutes: vec![1440, 120],
            quiet_hours: Some(QuietHours {
                start: NaiveTime::from_hms_opt(21, 0, 0).expect("valid"),
                end: NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
            }),
        }
    }
}

/// One reminder of a booking and when it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueReminder {
    /// The configured offset it comes from (part of the job's identity: one job per booking
    /// and offset).
    pub offset_minutes: u32,
    pub due: DateTime<Utc>,
}

/// The instant of a local wall-clock time. A time that does not exist (the hour skipped when
/// DST starts) is read as the same distance past the gap, as a clock set forward shows it
/// (02:30 → 03:30); a time that happens twice (DST ends) is its first occurrence.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(first, _) => first.to_utc(),
        LocalResult::None => {
            // Gaps are at most a few hours: read the time in the offset in force just before
            // the gap, which is exactly the shift a clock set forward makes.
            let before = (1..=24 * 60)
                .map(|m| local - Duration::minutes(m))
                .find_map(|t| tz.from_local_datetime(&t).earliest())
                .map_or(0, |t| t.offset().fix().local_minus_utc());
            (local - Duration::seconds(i64::from(before))).and_utc()
        }
    }
}

/// The nominal time of one offset, before quiet hours: whole days keep the local time.
fn nominal(start: DateTime<Utc>, tz: Tz, offset_minutes: u32) -> DateTime<Utc> {
    if offset_minutes > 0 && offset_minutes.is_multiple_of(DAY_MINUTES) {
        let local = start.with_timezone(&tz).naive_local();
        let days = i64::from(offset_minutes / DAY_MINUTES);
        local_instant(tz, local - Duration::days(days))
    } else {
        start - Duration::minutes(i64::from(offset_minutes))
    }
}

/// Moves a reminder out of the quiet hours: to their end if that is still before the
/// appointment, otherwise to their start.
fn outside_quiet(
    due: DateTime<Utc>,
    start: DateTime<Utc>,
    tz: Tz,
    quiet: QuietHours,
) -> DateTime<Utc> {
    let local = due.with_timezone(&tz).naive_local();
    if !quiet.contains(local.time()) {
        return due;
    }
    let on = |date: NaiveDate, t: NaiveTime| local_instant(tz, date.and_time(t));
    let date = local.date();
    // The quiet period holding `local` began at its start on this day or the day before,
    // and ends at its end on this day or the day after.
    let (began, ends) = if quiet.start < quiet.end {
        (on(date, quiet.start), on(date, quiet.end))
    } else if local.time() >= quiet.start {
        (
            on(date, quiet.start),
            on(date + Duration::days(1), quiet.end),
        )
    } else {
        (
            on(date - Duration::days(1), quiet.start),
            on(date, quiet.end),
        )
    };
    if ends < start { ends } else { began }
}

/// The reminders of a booking starting at `start`, made (or last moved) at `created`, in
/// order of due time. A reschedule computes them again with the time of the move.
/// An offset whose time had already come when the booking was made is skipped, and so is
/// one that the quiet hours push to before that; two offsets that land on the same instant
/// give one reminder.
pub fn schedule(
    start: DateTime<Utc>,
    tz: Tz,
    created: DateTime<Utc>,
    settings: &ReminderSettings,
) -> Vec<DueReminder> {
    let mut due: Vec<DueReminder> = Vec::new();
    let mut offsets = settings.offsets_minutes.clone();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets.dedup();
    for offset in offsets.into_iter().filter(|&o| o > 0) {
        let nominal = nominal(start, tz, offset);
        if nominal <= created {
            continue;
        }
        let at = match settings.quiet_hours {
            Some(quiet) => outside_quiet(nominal, start, tz, quiet),
            None => nominal,
        };
        if at <= created || at >= start || due.iter().any(|d| d.due == at) {
            continue;
        }
        due.push(DueReminder {
            offset_minutes: offset,
            due: at,
        });
    }
    due.sort_by_key(|d| d.due);
    due
}

/// The job kind of a reminder.
pub const REMINDER_JOB: &str = "reminder";

/// A reminder job's arguments (its payload, sealed at rest): which booking, at which start,
/// from which offset. At run time the scheduler checks that the booking is still confirmed
/// at `start`; a job for a start the booking left (a move) or a cancelled booking finishes
/// without sending.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReminderJob {
    pub booking: BookingId,
    pub phone: Phone,
    pub start: DateTime<Utc>,
    pub offset_minutes: u32,
}

impl ReminderJob {
    /// `reminder:{booking}:{start}:{offset}`: unique per booking, start and offset, so a
    /// booking written twice schedules each reminder once, and a moved booking's new
    /// reminders never collide with the old ones. It is also the outbox row's key.
    pub fn unique_key(&self) -> String {
        format!(
            "{}{}:{}",
            reminder_key_prefix(self.booking),
            self.start.format("%Y-%m-%dT%H:%MZ"),
            self.offset_minutes
        )
    }
}

/// What every reminder job of a booking's key starts with (a move or cancel voids them).
pub fn reminder_key_prefix(booking: BookingId) -> String {
    format!("{REMINDER_JOB}:{booking}:")
}

/// The jobs of a booking's reminders, booked (or moved) at `now`: one per [`schedule`]d
/// reminder; none for an offset whose time had already come.
pub fn reminder_jobs(
    booking: &Booking,
    tz: Tz,
    now: DateTime<Utc>,
    settings: &ReminderSettings,
) -> Vec<JobRecord> {
    schedule(booking.start, tz, now, settings)
        .into_iter()
        .filter_map(|due| {
            let job = ReminderJob {
                booking: booking.id,
                phone: booking.phone.clone(),
                start: booking.start,
                offset_minutes: due.offset_minutes,
            };
            Some(JobRecord {
                kind: REMINDER_JOB.to_string(),
                due_at: due.due,
                payload: serde_json::to_string(&job).ok()?,
                unique_key: job.unique_key(),
            })
        })
        .collect()
}

/// What the scheduler does with a reminder job it holds at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReminderAction {
    /// Not yet due.
    Wait,
    /// Due (or its mark was jumped over, by a restart or the test clock): send it now.
    Send,
    /// The appointment has started: a reminder now would only confuse; drop it.
    Drop,
}

/// A due reminder goes out at once, however late, as long as its appointment has not started.
pub fn reminder_action(
    due: DateTime<Utc>,
    appointment: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ReminderAction {
    if now >= appointment {
        ReminderAction::Drop
    } else if now >= due {
        ReminderAction::Send
    } else {
        ReminderAction::Wait
    }
}

/// The answers a reminder invites, as the customer sends them by letter, by tapping one of
/// its WhatsApp buttons or in their own words ("yes, I'll be there", "can we do Monday
/// instead").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderAnswer {
    /// "C": the customer will come (attendance confirmed).
    Confirm,
    /// "R": move it.
    Reschedule,
    /// "X": cancel it (after Sara's usual confirmation).
    Cancel,
}

/// A message read as an answer to a reminder: what it answers, and whether it is the bare
/// letter, which means nothing outside a reminder's context (a "C" in the middle of a
/// booking is not a confirmation of attendance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderReply {
    pub answer: ReminderAnswer,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub letter: bool,
}

/// "Yes, I'll be there!" → "yes i'll be there": lower case, curly apostrophes straight,
/// punctuation other than apostrophes dropped, spaces collapsed.
fn plain_words(text: &str) -> String {
    let lowered: String = text
        .to_lowercase()
        .chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' => '\'',
            c if c.is_alphanumeric() || c == '\'' => c,
            _ => ' ',
        })
        .collect();
    lowered.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Words that may open or close an answer without changing it: "yes, I'll be there,
/// thanks".
const FILLERS: &[&str] = &[
    "yes", "yeah", "yep", "yup", "sure", "ok", "okay", "great", "perfect", "thanks", "thank",
    "you", "please", "pls", "hi", "hello", "and", "oh", "so", "sorry", "but",
];

fn without_fillers(words: &str) -> String {
    let mut w: Vec<&str> = words.split(' ').filter(|w| !w.is_empty()).collect();
    while w.first().is_some_and(|f| FILLERS.contains(f)) {
        w.remove(0);
    }
    while w.last().is_some_and(|f| FILLERS.contains(f)) {
        w.pop();
    }
    w.join(" ")
}

const CONFIRMS: &[&str] = &[
    "i'll be there",
    "ill be there",
    "i will be there",
    "i'll be there on time",
    "we'll be there",
    "will be there",
    "be there",
    "see you then",
    "see you there",
    "see you tomorrow",
    "see you soon",
    "i'm coming",
    "im coming",
    "i am coming",
    "i'll come",
    "i will come",
    "coming",
    "confirm",
    "confirmed",
    "i confirm",
    "confirming",
    "confirm it",
    "confirm my appointment",
    "i can make it",
    "still on",
    "i'm still coming",
    "i'm still on",
];

const CANCELS: &[&str] = &[
    "cancel it",
    "cancel that",
    "cancel my appointment",
    "cancel the appointment",
    "i need to cancel it",
    "i want to cancel it",
    "i can't make it",
    "i cant make it",
    "i can't come",
    "i cant come",
    "i won't make it",
    "i won't be there",
    "i wont be there",
    "i can't be there",
];

/// Openings of a request to move the appointment: "move it to Friday at 3".
const MOVES: &[&str] = &[
    "move it",
    "can we move it",
    "could we move it",
    "can i move it",
    "could i move it",
    "i need to move it",
    "i'd like to move it",
    "reschedule it",
    "can we reschedule",
    "can i reschedule",
    "change it",
    "can we change it",
    "can i change it",
    "i need to change it",
    "i'd like to change it",
];

impl ReminderAnswer {
    pub fn parse(text: &str) -> Option<ReminderAnswer> {
        ReminderReply::read(text).map(|r| r.answer)
    }
}

impl ReminderReply {
    /// The answer a message gives to a reminder, if it is one. The bare word "cancel" is
    /// not (it starts the usual cancel dialogue, and over SMS it is an opt-out keyword).
    pub fn read(text: &str) -> Option<ReminderReply> {
        let words = plain_words(text);
        let letter = match words.as_str() {
            "c" => Some(ReminderAnswer::Confirm),
            "r" => Some(ReminderAnswer::Reschedule),
            "x" => Some(ReminderAnswer::Cancel),
            _ => None,
        };
        if let Some(answer) = letter {
            return Some(ReminderReply {
                answer,
                letter: true,
            });
        }
        let core = without_fillers(&words);
        let phrase = |answer| {
            Some(ReminderReply {
                answer,
                letter: false,
            })
        };
        if CONFIRMS.contains(&core.as_str()) {
            return phrase(ReminderAnswer::Confirm);
        }
        if CANCELS.contains(&core.as_str()) {
            return phrase(ReminderAnswer::Cancel);
        }
        let opens = |p: &&str| core == *p || core.starts_with(&format!("{p} "));
        if MOVES.iter().any(opens) || words.split(' ').any(|w| w == "instead") {
            return phrase(ReminderAnswer::Reschedule);
        }
        None
    }
}

/// "Maria" from "Maria Lopez"; "there" when Sara has no name ("Hi there").
pub fn first_name(booking: &Booking) -> String {
    booking
        .name
        .as_deref()
        .and_then(|n| n.split_whitespace().next())
        .map_or_else(|| "there".to_string(), str::to_string)
}

/// "today, " / "tomorrow, " / "" for the appointment's day as seen when the reminder is sent.
fn relative_day(tz: Tz, now: DateTime<Utc>, start: DateTime<Utc>) -> &'static str {
    let today = now.with_timezone(&tz).date_naive();
    let day = start.with_timezone(&tz).date_naive();
    if day == today {
        "today, "
    } else if Some(day) == today.succ_opt() {
        "tomorrow, "
    } else {
        ""
    }
}

/// The reminder's words, sent at `now`: "Hi Maria, a reminder of your cleaning tomorrow,
/// Friday, March 6 at 2:00 PM at Harbor Street Clinic. Reply C to confirm, R to change it or
/// X to cancel." It asks for letters, never for the bare word CANCEL or STOP: over SMS those
/// are carrier opt-out keywords, and a customer who answers with one alone is unsubscribed.
pub fn reminder_text(business: &Business, booking: &Booking, now: DateTime<Utc>) -> String {
    format!(
        "Hi {}, a reminder of your {} {}{} at {}. Reply C to confirm, R to change it or X to cancel.",
        first_name(booking),
        booking.service.to_lowercase(),
        relative_day(business.timezone, now, booking.start),
        spoken_when(business.timezone, booking.start),
        business.name,
    )
}

/// The parameters of the WhatsApp reminder template: `{{1}}` first name, `{{2}}` service,
/// `{{3}}` day and time as Sara says them.
pub fn template_parameters(business: &Business, booking: &Booking) -> Vec<String> {
    vec![
        first_name(booking),
        booking.service.to_lowercase(),
        spoken_when(business.timezone, booking.start),
    ]
}

/// Where a WhatsApp reminder may go as free text: the customer wrote within the last 24 hours
/// (Meta's customer-service window); otherwise only a template is delivered.
pub fn whatsapp_window_open(last_inbound: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_inbound.is_some_and(|t| t <= now && now - t < Duration::hours(24))
}

/// The template a closed WhatsApp window needs, from `[whatsapp]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderTemplate {
    pub name: String,
    pub language: String,
}

/// The reminder as one channel sends it. WhatsApp inside the window gets the text with three
/// reply buttons whose titles are the phrases Sara reads as the answers; outside it, the
/// template (`None` when none is configured: Meta would not deliver free text). SMS gets the
/// text; email a subject and the text.
pub fn reminder_content(
    channel: Channel,
    business: &Business,
    booking: &Booking,
    now: DateTime<Utc>,
    window_open: bool,
    template: Option<&ReminderTemplate>,
) -> Option<Content> {
    let text = reminder_text(business, booking, now);
    match channel {
        Channel::WhatsApp if window_open => {
            let buttons = vec![
                Choice::new("reminder-confirm", "Yes, I'll be there"),
                Choice::new("reminder-move", "Move it"),
                Choice::new("reminder-cancel", "Please cancel it"),
            ];
            Content::buttons(text, buttons).ok()
        }
        Channel::WhatsApp => template.map(|t| Content::Template {
            name: t.name.clone(),
            language: t.language.clone(),
            parameters: template_parameters(business, booking),
        }),
        Channel::Email => Some(Content::Email {
            subject: format!(
                "Reminder: your {} on {}",
                booking.service.to_lowercase(),
                spoken_when(business.timezone, booking.start)
            ),
            text,
            invite: None,
        }),
        Channel::Sms | Channel::Chat => Some(Content::text(text)),
        Channel::Voice | Channel::Staff => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BookingStatus, Phone};
    use chrono_tz::America::New_York;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn settings(offsets: &[u32], quiet: Option<&str>) -> ReminderSettings {
        ReminderSettings {
            offsets_minutes: offsets.to_vec(),
            quiet_hours: quiet.map(|q| QuietHours::parse(q).expect("quiet hours")),
        }
    }

    /// (case, appointment start, booked at, offsets, quiet hours, expected due times), all
    /// RFC 3339 with the New York offset so the local times read directly.
    #[test]
    fn reminders_fall_at_the_right_local_time() {
        let q = Some("21:00-08:00");
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a [u32],
            Option<&'a str>,
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (
                "the defaults: a day before at the same time, and two hours before",
                "2026-12-10T14:00:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[1440, 120],
                q,
                &["2026-12-09T14:00:00-05:00", "2026-12-10T12:00:00-05:00"],
            ),
            (
                "DST starts (March 14, 2027): the day before is still 10:00 local, 23 hours earlier",
                "2027-03-14T10:00:00-04:00",
                "2027-03-01T10:00:00-05:00",
                &[1440, 120],
                q,
                &["2027-03-13T10:00:00-05:00", "2027-03-14T08:00:00-04:00"],
            ),
            (
                "DST ends (November 7, 2027): 10:00 local the day before, 25 hours earlier",
                "2027-11-07T10:00:00-05:00",
                "2027-11-01T10:00:00-04:00",
                &[1440],
                q,
                &["2027-11-06T10:00:00-04:00"],
            ),
            (
                "two days before across the March change",
                "2027-03-15T09:30:00-04:00",
                "2027-03-01T10:00:00-05:00",
                &[2880],
                q,
                &["2027-03-13T09:30:00-05:00"],
            ),
            (
                "elapsed minutes across the March change: 3 h before 04:00 EDT is 00:00 EST, quiet; 08:00 is too late, so 21:00 the evening before",
                "2027-03-14T04:00:00-04:00",
                "2027-03-01T10:00:00-05:00",
                &[180],
                q,
                &["2027-03-13T21:00:00-05:00"],
            ),
            (
                "elapsed minutes across the March change without quiet hours: 3 h before 04:00 EDT is 00:00 EST",
                "2027-03-14T04:00:00-04:00",
                "2027-03-01T10:00:00-05:00",
                &[180],
                None,
                &["2027-03-14T00:00:00-05:00"],
            ),
            (
                "elapsed minutes across the November change: 3 h before 02:30 EST",
                "2027-11-07T02:30:00-05:00",
                "2027-11-01T10:00:00-04:00",
                &[180],
                None,
                &["2027-11-07T00:30:00-04:00"],
            ),
            (
                "a day before an appointment at 02:30 the day after DST starts: 02:30 does not exist, so 03:30",
                "2027-03-15T02:30:00-04:00",
                "2027-03-01T10:00:00-05:00",
                &[1440],
                None,
                &["2027-03-14T03:30:00-04:00"],
            ),
            (
                "a day before an appointment at 01:30 the day after DST ends: the first 01:30",
                "2027-11-08T01:30:00-05:00",
                "2027-11-01T10:00:00-04:00",
                &[1440],
                None,
                &["2027-11-07T01:30:00-04:00"],
            ),
            (
                "a 9:00 appointment: 2 h before is 07:00, quiet, so at 08:00",
                "2026-12-10T09:00:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[1440, 120],
                q,
                &["2026-12-09T09:00:00-05:00", "2026-12-10T08:00:00-05:00"],
            ),
            (
                "an 8:30 appointment: the end of the quiet hours is too close? no, 08:00 is before 08:30",
                "2026-12-10T08:30:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[120],
                q,
                &["2026-12-10T08:00:00-05:00"],
            ),
            (
                "a 7:30 appointment: 08:00 is after it, so at the start of the quiet hours the evening before",
                "2026-12-10T07:30:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[120],
                q,
                &["2026-12-09T21:00:00-05:00"],
            ),
            (
                "a 22:30 appointment: 2 h before is 20:30, outside the quiet hours",
                "2026-12-10T22:30:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[120],
                q,
                &["2026-12-10T20:30:00-05:00"],
            ),
            (
                "a 23:30 appointment: 21:30 is quiet, 08:00 next day is after it, so 21:00",
                "2026-12-10T23:30:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[120],
                q,
                &["2026-12-10T21:00:00-05:00"],
            ),
            (
                "a day before a 7:00 appointment is quiet too: the end of that morning's quiet hours",
                "2026-12-10T07:00:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[1440],
                q,
                &["2026-12-09T08:00:00-05:00"],
            ),
            (
                "quiet hours that do not wrap (12:00-13:00): a reminder due at 12:15 goes at 13:00",
                "2026-12-10T14:15:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[120],
                Some("12:00-13:00"),
                &["2026-12-10T13:00:00-05:00"],
            ),
            (
                "quiet hours' end across the March change: 2 h before 09:00 EDT is 07:00 EDT, shifted to 08:00 EDT",
                "2027-03-14T09:00:00-04:00",
                "2027-03-01T10:00:00-05:00",
                &[120],
                q,
                &["2027-03-14T08:00:00-04:00"],
            ),
            (
                "a late booking: made 3 h before, the day-before reminder is skipped",
                "2026-12-10T14:00:00-05:00",
                "2026-12-10T11:00:00-05:00",
                &[1440, 120],
                q,
                &["2026-12-10T12:00:00-05:00"],
            ),
            (
                "made 1 h before: both are skipped",
                "2026-12-10T14:00:00-05:00",
                "2026-12-10T13:00:00-05:00",
                &[1440, 120],
                q,
                &[],
            ),
            (
                "made at the very mark: skipped (the confirmation has just told them)",
                "2026-12-10T14:00:00-05:00",
                "2026-12-10T12:00:00-05:00",
                &[120],
                q,
                &[],
            ),
            (
                "made at 22:00 for 07:30: 05:30 is quiet, 08:00 is too late, 21:00 has passed: none",
                "2026-12-10T07:30:00-05:00",
                "2026-12-09T22:00:00-05:00",
                &[120],
                q,
                &[],
            ),
            (
                "made at 20:00 for 09:00: 07:00 is quiet and goes at 08:00, still after the booking",
                "2026-12-10T09:00:00-05:00",
                "2026-12-09T20:00:00-05:00",
                &[1440, 120],
                q,
                &["2026-12-10T08:00:00-05:00"],
            ),
            (
                "two offsets pushed to the same 08:00 give one reminder",
                "2026-12-10T09:30:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[120, 150, 0],
                q,
                &["2026-12-10T08:00:00-05:00"],
            ),
            (
                "moved on the 9th at 15:00 to 16:00 on the 10th: both follow the new time",
                "2026-12-10T16:00:00-05:00",
                "2026-12-09T15:00:00-05:00",
                &[1440, 120],
                q,
                &["2026-12-09T16:00:00-05:00", "2026-12-10T14:00:00-05:00"],
            ),
            (
                "moved on the 9th at 17:00: the day-before mark has passed, the 2 h one stays",
                "2026-12-10T16:00:00-05:00",
                "2026-12-09T17:00:00-05:00",
                &[1440, 120],
                q,
                &["2026-12-10T14:00:00-05:00"],
            ),
            (
                "offsets given in any order and twice",
                "2026-12-10T14:00:00-05:00",
                "2026-12-01T10:00:00-05:00",
                &[120, 1440, 120],
                q,
                &["2026-12-09T14:00:00-05:00", "2026-12-10T12:00:00-05:00"],
            ),
        ];
        for &(case, start, created, offsets, quiet, want) in cases {
            let got: Vec<DateTime<Utc>> = schedule(
                utc(start),
                New_York,
                utc(created),
                &settings(offsets, quiet),
            )
            .into_iter()
            .map(|d| d.due)
            .collect();
            let want: Vec<DateTime<Utc>> = want.iter().map(|s| utc(s)).collect();
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn each_reminder_names_its_offset() {
        let due = schedule(
            utc("2026-12-10T14:00:00-05:00"),
            New_York,
            utc("2026-12-01T10:00:00-05:00"),
            &ReminderSettings::default(),
        );
        let offsets: Vec<u32> = due.iter().map(|d| d.offset_minutes).collect();
        assert_eq!(offsets, [1440, 120]);
    }

    #[test]
    fn quiet_hours_are_read_with_or_without_wrapping() {
        let q = QuietHours::parse("21:00-08:00").expect("valid");
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").expect("time");
        assert!(q.contains(t("21:00")) && q.contains(t("23:59")) && q.contains(t("00:00")));
        assert!(q.contains(t("07:59")) && !q.contains(t("08:00")) && !q.contains(t("20:59")));
        let noon = QuietHours::parse(" 12:00 - 13:00 ").expect("valid");
        assert!(noon.contains(t("12:30")) && !noon.contains(t("13:00")));
        for bad in [
            "",
            "21:00",
            "21:00-21:00",
            "25:00-08:00",
            "9pm-8am",
            "21:00-08:00-09:00",
        ] {
            assert!(QuietHours::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn booking(name: Option<&str>, start: &str) -> Booking {
        let start = utc(start);
        Booking {
            id: uuid::Uuid::nil(),
            phone: Phone::parse("+15550001111").expect("phone"),
            name: name.map(str::to_string),
            email: None,
            service: "Cleaning".into(),
            start,
            end: start + Duration::minutes(45),
            status: BookingStatus::Confirmed,
            sequence: 0,
            staff: None,
            event_id: None,
        }
    }

    #[test]
    fn the_reminder_reads_like_dialog_13_and_never_asks_for_an_opt_out_word() {
        let business = Business::example();
        let b = booking(Some("Maria Lopez"), "2026-03-06T14:00:00-05:00");
        let text = reminder_text(&business, &b, utc("2026-03-05T14:00:00-05:00"));
        assert_eq!(
            text,
            "Hi Maria, a reminder of your cleaning tomorrow, Friday, March 6 at 2:00 PM at \
             Harbor Street Clinic. Reply C to confirm, R to change it or X to cancel."
        );
        let today = reminder_text(&business, &b, utc("2026-03-06T12:00:00-05:00"));
        assert!(today.contains("cleaning today, Friday, March 6"), "{today}");
        let later = reminder_text(&business, &b, utc("2026-03-03T12:00:00-05:00"));
        assert!(later.contains("cleaning Friday, March 6"), "{later}");
        let anonymous = reminder_text(
            &business,
            &booking(None, "2026-03-06T14:00:00-05:00"),
            utc("2026-03-05T14:00:00-05:00"),
        );
        assert!(anonymous.starts_with("Hi there, "), "{anonymous}");
        // Twilio's default opt-out keywords: none may be what the reminder asks to reply with.
        for t in [&text, &today, &later, &anonymous] {
            for word in [
                "STOP",
                "CANCEL",
                "END",
                "QUIT",
                "UNSUBSCRIBE",
                "STOPALL",
                "REVOKE",
                "OPTOUT",
            ] {
                assert!(!t.contains(&format!("Reply {word}")), "{t}");
                assert!(
                    !t.contains(&format!("reply {}", word.to_lowercase())),
                    "{t}"
                );
                assert!(!t.contains(word), "{t} asks for {word}");
            }
        }
    }

    #[test]
    fn each_channel_gets_the_reminder_in_its_own_shape() {
        let business = Business::example();
        let b = booking(Some("Maria Lopez"), "2026-03-06T14:00:00-05:00");
        let now = utc("2026-03-05T14:00:00-05:00");
        let template = ReminderTemplate {
            name: "appointment_reminder".into(),
            language: "en_US".into(),
        };
        let sms = reminder_content(Channel::Sms, &business, &b, now, false, Some(&template));
        assert!(matches!(sms, Some(Content::Text { ref body }) if body.starts_with("Hi Maria")));
        let open = reminder_content(Channel::WhatsApp, &business, &b, now, true, Some(&template));
        let Some(Content::Buttons { buttons, .. }) = open else {
            panic!("buttons inside the window: {open:?}");
        };
        let titles: Vec<&str> = buttons.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            ["Yes, I'll be there", "Move it", "Please cancel it"]
        );
        assert!(titles.iter().all(|t| t.chars().count() <= 20));
        let closed = reminder_content(
            Channel::WhatsApp,
            &business,
            &b,
            now,
            false,
            Some(&template),
        );
        assert_eq!(
            closed,
            Some(Content::Template {
                name: "appointment_reminder".into(),
                language: "en_US".into(),
                parameters: vec![
                    "Maria".into(),
                    "cleaning".into(),
                    "Friday, March 6 at 2:00 PM".into()
                ],
            })
        );
        assert_eq!(
            reminder_content(Channel::WhatsApp, &business, &b, now, false, None),
            None,
            "no free text outside the window"
        );
        let email = reminder_content(Channel::Email, &business, &b, now, false, None);
        assert!(
            matches!(email, Some(Content::Email { ref subject, .. }) if subject == "Reminder: your cleaning on Friday, March 6 at 2:00 PM")
        );
        assert_eq!(
            reminder_content(Channel::Voice, &business, &b, now, false, None),
            None
        );
    }

    #[test]
    fn a_jumped_over_reminder_goes_at_once_unless_the_appointment_began() {
        let due = utc("2026-12-10T12:00:00Z");
        let start = utc("2026-12-10T14:00:00Z");
        let cases = [
            ("2026-12-10T11:59:59Z", ReminderAction::Wait),
            ("2026-12-10T12:00:00Z", ReminderAction::Send),
            ("2026-12-10T13:59:59Z", ReminderAction::Send),
            ("2026-12-10T14:00:00Z", ReminderAction::Drop),
            ("2026-12-11T09:00:00Z", ReminderAction::Drop),
        ];
        for (now, want) in cases {
            assert_eq!(reminder_action(due, start, utc(now)), want, "{now}");
        }
    }

    #[test]
    fn the_letters_and_buttons_a_reminder_offers_are_its_answers() {
        let business = Business::example();
        let b = booking(Some("Maria Lopez"), "2026-03-06T14:00:00-05:00");
        let now = utc("2026-03-05T14:00:00-05:00");
        let Some(Content::Buttons { buttons, .. }) =
            reminder_content(Channel::WhatsApp, &business, &b, now, true, None)
        else {
            panic!("buttons");
        };
        let tapped: Vec<_> = buttons
            .iter()
            .map(|c| ReminderAnswer::parse(&c.title))
            .collect();
        assert_eq!(
            tapped,
            [
                Some(ReminderAnswer::Confirm),
                Some(ReminderAnswer::Reschedule),
                Some(ReminderAnswer::Cancel)
            ]
        );
        let cases = [
            ("C", Some(ReminderAnswer::Confirm)),
            (" c. ", Some(ReminderAnswer::Confirm)),
            ("r", Some(ReminderAnswer::Reschedule)),
            ("X!", Some(ReminderAnswer::Cancel)),
            ("Please cancel it", Some(ReminderAnswer::Cancel)),
            ("cancel", None),
            ("stop", None),
            ("can we do Monday instead", Some(ReminderAnswer::Reschedule)),
            ("Yes, I’ll be there!", Some(ReminderAnswer::Confirm)),
            ("yes I will be there thanks", Some(ReminderAnswer::Confirm)),
            ("see you then", Some(ReminderAnswer::Confirm)),
            ("move it to Friday at 3", Some(ReminderAnswer::Reschedule)),
            ("sorry, I can't make it", Some(ReminderAnswer::Cancel)),
            ("I can't make it", Some(ReminderAnswer::Cancel)),
            ("yes", None),
            ("book me in for Friday", None),
            ("I'd like to confirm my address", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(ReminderAnswer::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn the_whatsapp_window_is_24_hours_since_the_customer_wrote() {
        let now = utc("2026-12-01T12:00:00Z");
        let cases = [
            (None, false),
            (Some("2026-12-01T11:59:00Z"), true),
            (Some("2026-11-30T12:00:01Z"), true),
            (Some("2026-11-30T12:00:00Z"), false),
            (Some("2026-11-29T12:00:00Z"), false),
            (Some("2026-12-01T12:30:00Z"), false),
        ];
        for (last, open) in cases {
            assert_eq!(whatsapp_window_open(last.map(utc), now), open, "{last:?}");
        }
    }
}
