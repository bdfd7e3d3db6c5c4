//! The retention window for message text: how long Sara keeps what customers wrote, what
//! she answered and what staff sent, and when the job that removes older text runs.
//!
//! The job is an ordinary row of the jobs table (kind [`RETENTION_JOB`]), claimed like a
//! reminder, so one instance runs it at a time. It runs once a day at [`RUN_AT`] in the
//! business's time zone (a quiet hour for a clinic); each run redacts the turns older than
//! the window, records itself in the privacy audit and schedules the next day's run in the
//! same transaction. The unique key names the local day, so every instance that schedules
//! "the next run" on start schedules the same row. Bookings are not touched: the calendar
//! and the counts stay, the words go.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::availability::local_instant;
use crate::ports::JobRecord;

/// The jobs table's kind of a retention run.
pub const RETENTION_JOB: &str = "retention";

/// The local time of day a retention run is due.
pub const RUN_AT: NaiveTime = match NaiveTime::from_hms_opt(3, 0, 0) {
    Some(t) => t,
    None => panic!("03:00 is a time"),
};

/// How long message text is kept (`[privacy] retention_days`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSettings {
    /// At least 1.
    pub days: u32,
}

impl RetentionSettings {
    /// Turns before this instant lose their text in a run at `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - Duration::days(i64::from(self.days.max(1)))
    }
}

/// The first run after `now`: [`RUN_AT`] local time on the day it next comes round (a day
/// whose 03:00 a DST change skips runs an hour later).
pub fn next_run(tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = now.with_timezone(&tz).date_naive();
    loop {
        let at = local_instant(tz, day, RUN_AT)
            .or_else(|| local_instant(tz, day, RUN_AT + Duration::hours(1)));
        if let Some(at) = at.filter(|at| *at > now) {
            return at;
        }
        day = day.succ_opt().unwrap_or(day);
    }
}

/// The job row of the first run after `now`, keyed by its local day.
pub fn next_job(tz: Tz, now: DateTime<Utc>) -> JobRecord {
    let due_at = next_run(tz, now);
    JobRecord {
        kind: RETENTION_JOB.into(),
        due_at,
        payload: "{}".into(),
        unique_key: format!("{RETENTION_JOB}:{}", due_at.with_timezone(&tz).date_naive()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    #[test]
    fn a_run_is_due_at_three_in_the_morning_local_time_the_next_time_it_comes_round() {
        let cases = [
            (
                "2026-03-05T10:00:00-05:00",
                "2026-03-06T03:00:00-05:00",
                "2026-03-06",
            ),
            (
                "2026-03-05T02:59:00-05:00",
                "2026-03-05T03:00:00-05:00",
                "2026-03-05",
            ),
            (
                "2026-03-05T03:00:00-05:00",
                "2026-03-06T03:00:00-05:00",
                "2026-03-06",
            ),
            // The night the clocks go forward, 03:00 still exists; 02:30 does not.
            (
                "2026-03-07T12:00:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08",
            ),
            (
                "2026-11-01T00:30:00-04:00",
                "2026-11-01T03:00:00-05:00",
                "2026-11-01",
            ),
        ];
        for (now, due, day) in cases {
            let job = next_job(New_York, utc(now));
            assert_eq!(job.due_at, utc(due), "{now}");
            assert_eq!(job.unique_key, format!("retention:{day}"), "{now}");
            assert_eq!(job.kind, RETENTION_JOB);
        }
    }

    #[test]
    fn the_cutoff_is_the_window_before_the_run() {
        let now = utc("2026-12-02T08:00:00Z");
        assert_eq!(
            RetentionSettings { days: 365 }.cutoff(now),
            utc("2025-12-02T08:00:00Z")
        );
        assert_eq!(
            RetentionSettings { days: 0 }.cutoff(now),
            utc("2026-12-01T08:00:00Z"),
            "never less than a day"
        );
    }
}
