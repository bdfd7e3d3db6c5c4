//! Which start times are free: opening hours in the business time zone, closures, service
//! durations, buffers, minimum notice, horizon and slot granularity. Pure code, DST-correct.
//!
//! Everything is computed on instants (`DateTime<Utc>`); local wall-clock times are only
//! used to place opening ranges on a day. A local time that does not exist (the hour skipped
//! when clocks spring forward) is never offered; an ambiguous one (the repeated hour in the
//! autumn) is read as its earliest instant.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::business::Business;
use crate::model::Interval;

/// Why a start time cannot be booked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the time has passed")]
    InPast,
    #[error("the time is sooner than the minimum notice")]
    TooSoon,
    #[error("the time is beyond the booking horizon")]
    BeyondHorizon,
    #[error("the business is closed then")]
    Closed,
    #[error("the time is taken")]
    Taken,
    /// The local time is skipped by a daylight-saving change.
    #[error("the local time does not exist on that day")]
    NoSuchTime,
}

/// The instant of a local date and time in `tz`: `None` when the clocks skip it, the
/// earliest instant when they repeat it.
pub fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&date.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Busy intervals in the form every [`Availability`] method expects: sorted by start, with
/// intervals that overlap one another merged. Blocking the union blocks exactly what the
/// intervals block (each busy interval's buffer follows its end, and a merged end is the
/// latest of the ends). Cheap on a list that is already sorted and apart.
pub fn busy_list(mut busy: Vec<Interval>) -> Vec<Interval> {
    if is_busy_list(&busy) {
        return busy;
    }
    busy.sort_unstable_by_key(|b| (b.start, b.end));
    let mut merged: Vec<Interval> = Vec::with_capacity(busy.len());
    for b in busy {
        match merged.last_mut() {
            Some(last) if b.start < last.end => last.end = last.end.max(b.end),
            _ => merged.push(b),
        }
    }
    merged
}

/// Whether `busy` already is what [`busy_list`] makes: sorted by start, no two overlapping.
pub fn is_busy_list(busy: &[Interval]) -> bool {
    busy.windows(2).all(|w| w[0].end <= w[1].start)
}

/// Opening-hours arithmetic for one business.
#[derive(Clone, Copy, Debug)]
pub struct Availability<'a> {
    business: &'a Business,
}

impl<'a> Availability<'a> {
    pub fn new(business: &'a Business) -> Availability<'a> {
        Availability { business }
    }

    fn tz(&self) -> Tz {
        self.business.timezone
    }

    /// The business-local calendar date of an instant.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz()).date_naive()
    }

    /// The opening ranges of a local day as instants; empty on closed days and closures.
    /// A range whose opening time is skipped by DST opens at the first existing minute.
    pub fn opening(&self, day: NaiveDate) -> Vec<Interval> {
        if self.business.closures.contains(&day) {
            return Vec::new();
        }
        let weekday = chrono::Datelike::weekday(&day);
        self.business
            .hours
            .on(weekday)
            .iter()
            .filter_map(|&(open, close)| {
                let start = self.first_existing(day, open)?;
                let end = self.first_existing(day, close)?;
                (start < end).then_some(Interval { start, end })
            })
            .collect()
    }

    /// The instant of `time` on `day`, or of the first minute after it that exists (the
    /// spring-forward gap is at most a few hours).
    fn first_existing(&self, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let local = day.and_time(time);
        (0..=180).find_map(|m| {
            self.tz()
                .from_local_datetime(&(local + Duration::minutes(m)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        })
    }

    /// The last local date bookings are taken for.
    fn horizon_end(&self, now: DateTime<Utc>) -> NaiveDate {
        self.local_date(now) + Duration::days(i64::from(self.business.horizon_days))
    }

    /// Whether a service of `minutes` may start at `start`, and if not, why.
    /// Busy intervals are kept clear of the new appointment plus its buffer, and each busy
    /// interval is followed by its own buffer. `busy` is sorted by start with no two
    /// intervals overlapping, as [`busy_list`] makes it (and every method here takes it so).
    pub fn check(
        &self,
        start: DateTime<Utc>,
        minutes: u32,
        busy: &[Interval],
        now: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        if start < now {
            return Err(Unavailable::InPast);
        }
        if start < now + Duration::minutes(i64::from(self.business.min_notice_minutes)) {
            return Err(Unavailable::TooSoon);
        }
        let day = self.local_date(start);
        if day > self.horizon_end(now) {
            return Err(Unavailable::BeyondHorizon);
        }
        let end = start + Duration::minutes(i64::from(minutes));
        if !self
            .opening(day)
            .iter()
            .any(|r| r.start <= start && end <= r.end)
        {
            return Err(Unavailable::Closed);
        }
        let buffer = Duration::minutes(i64::from(self.business.buffer_minutes));
        debug_assert!(
            busy.windows(2).all(|w| w[0].end <= w[1].start),
            "busy intervals must be sorted and apart (see `busy_list`)"
        );
        // The busy list is sorted and its intervals do not overlap, so their ends rise with
        // their starts: of the intervals that start before the new appointment (plus its
        // buffer) ends, the last one reaches furthest. It alone decides.
        let before_end = busy.partition_point(|b| b.start < end + buffer);
        if before_end > 0 && busy[before_end - 1].end + buffer > start {
            return Err(Unavailable::Taken);
        }
        Ok(())
    }

    /// [`check`](Self::check) for a local date and time, which may not exist.
    pub fn check_local(
        &self,
        date: NaiveDate,
        time: NaiveTime,
        minutes: u32,
        busy: &[Interval],
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Unavailable> {
        let start = local_instant(self.tz(), date, time).ok_or(Unavailable::NoSuchTime)?;
        self.check(start, minutes, busy, now).map(|()| start)
    }

    /// Every free start on a local day: a grid of `slot_minutes` from each opening range's
    /// start, where the whole service fits inside the range.
    pub fn free_starts(
        &self,
        day: NaiveDate,
        minutes: u32,
        busy: &[Interval],
        now: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let step = Duration::minutes(i64::from(self.business.slot_minutes.max(1)));
        let mut starts = Vec::new();
        for range in self.opening(day) {
            let mut at = range.start;
            while at + Duration::minutes(i64::from(minutes)) <= range.end {
                if self.check(at, minutes, busy, now).is_ok() {
                    starts.push(at);
                }
                at += step;
            }
        }
        starts
    }

    /// Up to `n` free starts nearest to `wanted`: on the same local day first (closest to
    /// `wanted`, earlier on a tie), then the earliest ones of the following days. The result
    /// is in time order.
    pub fn nearest(
        &self,
        wanted: DateTime<Utc>,
        minutes: u32,
        busy: &[Interval],
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let day = self.local_date(wanted);
        let mut same_day = self.free_starts(day, minutes, busy, now);
        same_day.sort_by_key(|&s| ((s - wanted).num_seconds().abs(), s));
        same_day.truncate(n);
        same_day.sort();
        let mut found = same_day;
        if found.len() < n {
            found.extend(self.following(day, minutes, busy, now, n - found.len()));
        }
        found
    }

    /// Up to `n` free starts strictly after `after` (same day, then the following days), in
    /// time order: "anything later?".
    pub fn after(
        &self,
        after: DateTime<Utc>,
        minutes: u32,
        busy: &[Interval],
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let day = self.local_date(after);
        let mut found: Vec<_> = self
            .free_starts(day, minutes, busy, now)
            .into_iter()
            .filter(|&s| s > after)
            .take(n)
            .collect();
        if found.len() < n {
            found.extend(self.following(day, minutes, busy, now, n - found.len()));
        }
        found
    }

    /// Up to `n` free starts strictly before `before`, the closest first on the same day and
    /// then the latest ones of earlier days (never before `now`), in time order:
    /// "anything earlier?".
    pub fn before(
        &self,
        before: DateTime<Utc>,
        minutes: u32,
        busy: &[Interval],
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let today = self.local_date(now);
        let mut day = self.local_date(before);
        let mut found: Vec<DateTime<Utc>> = Vec::new();
        while found.len() < n && day >= today {
            let mut starts: Vec<_> = self
                .free_starts(day, minutes, busy, now)
                .into_iter()
                .filter(|&s| s < before)
                .collect();
            while found.len() < n
                && let Some(s) = starts.pop()
            {
                found.push(s);
            }
            day -= Duration::days(1);
        }
        found.sort();
        found
    }

    /// The earliest `n` free starts on the days after `day`, up to the horizon.
    fn following(
        &self,
        day: NaiveDate,
        minutes: u32,
        busy: &[Interval],
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut found = Vec::new();
        let last = self.horizon_end(now);
        let mut d = day.max(self.local_date(now));
        while found.len() < n {
            d += Duration::days(1);
            if d > last {
                break;
            }
            found.extend(
                self.free_starts(d, minutes, busy, now)
                    .into_iter()
                    .take(n - found.len()),
            );
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn business() -> Business {
        Business::example()
    }

    fn at(date: (i32, u32, u32), hm: (u32, u32)) -> DateTime<Utc> {
        local_instant(
            New_York,
            NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap(),
            NaiveTime::from_hms_opt(hm.0, hm.1, 0).unwrap(),
        )
        .unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Thursday 2026-03-05 10:00 in New York.
    fn now() -> DateTime<Utc> {
        at((2026, 3, 5), (10, 0))
    }

    fn local_hm(t: DateTime<Utc>) -> String {
        t.with_timezone(&New_York).format("%H:%M").to_string()
    }

    #[test]
    fn a_time_inside_opening_hours_is_free() {
        let b = business();
        let a = Availability::new(&b);
        assert_eq!(a.check(at((2026, 3, 6), (14, 0)), 45, &[], now()), Ok(()));
    }

    #[test]
    fn times_outside_hours_or_not_fitting_the_range_are_closed() {
        let b = business();
        let a = Availability::new(&b);
        // Before opening, during lunch, and a cleaning that would run into lunch.
        for (hm, minutes) in [
            ((8, 30), 30),
            ((12, 15), 30),
            ((11, 30), 45),
            ((16, 45), 30),
        ] {
            assert_eq!(
                a.check(at((2026, 3, 6), hm), minutes, &[], now()),
                Err(Unavailable::Closed),
                "{hm:?}"
            );
        }
        // Sunday is closed all day.
        assert_eq!(
            a.check(at((2026, 3, 8), (10, 0)), 30, &[], now()),
            Err(Unavailable::Closed)
        );
        assert!(a.free_starts(day(2026, 3, 8), 30, &[], now()).is_empty());
    }

    #[test]
    fn closure_days_are_closed() {
        let mut b = business();
        b.closures.push(day(2026, 3, 6));
        let a = Availability::new(&b);
        assert_eq!(
            a.check(at((2026, 3, 6), (10, 0)), 30, &[], now()),
            Err(Unavailable::Closed)
        );
        assert!(a.free_starts(day(2026, 3, 6), 30, &[], now()).is_empty());
    }

    #[test]
    fn minimum_notice_and_the_past_are_refused() {
        let b = business();
        let a = Availability::new(&b);
        assert_eq!(
            a.check(at((2026, 3, 5), (9, 0)), 30, &[], now()),
            Err(Unavailable::InPast)
        );
        assert_eq!(
            a.check(at((2026, 3, 5), (11, 0)), 30, &[], now()),
            Err(Unavailable::TooSoon)
        );
        assert_eq!(a.check(at((2026, 3, 5), (13, 0)), 30, &[], now()), Ok(()));
        // Today's first free start is 2 hours after now, on the grid, after lunch.
        let today = a.free_starts(day(2026, 3, 5), 30, &[], now());
        assert_eq!(local_hm(today[0]), "13:00");
    }

    #[test]
    fn the_horizon_limits_how_far_ahead() {
        let b = business();
        let a = Availability::new(&b);
        // 60 days after Thursday March 5 is Monday May 4.
        assert_eq!(a.check(at((2026, 5, 4), (10, 0)), 30, &[], now()), Ok(()));
        assert_eq!(
            a.check(at((2026, 5, 5), (10, 0)), 30, &[], now()),
            Err(Unavailable::BeyondHorizon)
        );
    }

    #[test]
    fn busy_intervals_and_buffers_are_avoided() {
        let mut b = business();
        let busy = [Interval {
            start: at((2026, 3, 6), (10, 0)),
            end: at((2026, 3, 6), (10, 45)),
        }];
        let a = Availability::new(&b);
        assert_eq!(
            a.check(at((2026, 3, 6), (10, 30)), 30, &busy, now()),
            Err(Unavailable::Taken)
        );
        assert_eq!(
            a.check(at((2026, 3, 6), (9, 30)), 30, &busy, now()),
            Ok(()),
            "ends exactly when the busy interval starts"
        );
        assert_eq!(
            a.check(at((2026, 3, 6), (10, 45)), 30, &busy, now()),
            Ok(())
        );
        b.buffer_minutes = 15;
        let a = Availability::new(&b);
        assert_eq!(
            a.check(at((2026, 3, 6), (10, 45)), 30, &busy, now()),
            Err(Unavailable::Taken),
            "the busy appointment's buffer"
        );
        assert_eq!(
            a.check(at((2026, 3, 6), (9, 30)), 30, &busy, now()),
            Err(Unavailable::Taken),
            "the new appointment's own buffer"
        );
        assert_eq!(a.check(at((2026, 3, 6), (11, 0)), 30, &busy, now()), Ok(()));
    }

    /// The binary search over the busy list agrees with checking every busy interval, for
    /// lists with overlapping and nested intervals merged by `busy_list`.
    #[test]
    fn the_search_agrees_with_a_scan_of_every_busy_interval() {
        let mut b = business();
        let all_day = crate::business::WeeklyHours::parse_day("00:00-23:59").unwrap();
        b.hours.days = std::array::from_fn(|_| all_day.clone());
        let base = at((2026, 3, 6), (0, 0));
        let m = |x: i64| base + Duration::minutes(x);
        // Pseudo-random intervals, some overlapping, some nested, some touching.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as i64
        };
        for round in 0..40 {
            b.buffer_minutes = (round % 3 * 10) as u32;
            let raw: Vec<Interval> = (0..next(12))
                .map(|_| {
                    let s = next(1300);
                    Interval {
                        start: m(s),
                        end: m(s + 1 + next(180)),
                    }
                })
                .collect();
            let busy = busy_list(raw.clone());
            let a = Availability::new(&b);
            let buffer = Duration::minutes(i64::from(b.buffer_minutes));
            for start in (0..1380).step_by(5) {
                let minutes = 5 + (start % 50) as u32;
                let end = m(start) + Duration::minutes(i64::from(minutes));
                let scan = raw
                    .iter()
                    .any(|r| r.start < end + buffer && m(start) < r.end + buffer);
                let got = a.check(m(start), minutes, &busy, now());
                assert_eq!(
                    got == Err(Unavailable::Taken),
                    scan,
                    "round {round}, start {start}, busy {raw:?}"
                );
            }
        }
    }

    #[test]
    fn free_starts_follow_the_slot_grid_and_fit_the_service() {
        let mut b = business();
        b.slot_minutes = 30;
        let a = Availability::new(&b);
        let starts: Vec<_> = a
            .free_starts(day(2026, 3, 6), 60, &[], now())
            .into_iter()
            .map(local_hm)
            .collect();
        assert_eq!(
            starts,
            [
                "09:00", "09:30", "10:00", "10:30", "11:00", "13:00", "13:30", "14:00", "14:30",
                "15:00", "15:30", "16:00"
            ]
        );
    }

    #[test]
    fn nearest_prefers_the_same_day_then_following_days() {
        let b = business();
        let a = Availability::new(&b);
        let busy = [Interval {
            start: at((2026, 3, 9), (9, 0)),
            end: at((2026, 3, 9), (9, 30)),
        }];
        let offers: Vec<_> = a
            .nearest(at((2026, 3, 9), (9, 0)), 30, &busy, now(), 3)
            .into_iter()
            .map(local_hm)
            .collect();
        assert_eq!(offers, ["09:30", "09:45", "10:00"]);
        // Saturday 10:00-14:00: asking at 13:30 for a 60-minute service leaves 13:00 and
        // 12:45 on the day, then Monday's first start.
        let offers = a.nearest(at((2026, 3, 7), (13, 30)), 60, &[], now(), 3);
        assert_eq!(
            offers.iter().map(|&t| local_hm(t)).collect::<Vec<_>>(),
            ["12:30", "12:45", "13:00"]
        );
        let full_saturday = [Interval {
            start: at((2026, 3, 7), (10, 0)),
            end: at((2026, 3, 7), (14, 0)),
        }];
        let offers = a.nearest(at((2026, 3, 7), (13, 30)), 60, &full_saturday, now(), 2);
        assert_eq!(
            offers,
            [at((2026, 3, 9), (9, 0)), at((2026, 3, 9), (9, 15))]
        );
    }

    #[test]
    fn after_moves_the_window_later() {
        let b = business();
        let a = Availability::new(&b);
        let later = a.after(at((2026, 3, 6), (16, 15)), 30, &[], now(), 3);
        assert_eq!(
            later,
            [
                at((2026, 3, 6), (16, 30)),
                at((2026, 3, 7), (10, 0)),
                at((2026, 3, 7), (10, 15))
            ]
        );
    }

    #[test]
    fn opening_times_are_right_across_dst_changes() {
        let b = business();
        let a = Availability::new(&b);
        let now = at((2026, 3, 1), (8, 0));
        // Spring forward on Sunday 2026-03-08: Monday 9:00 is EDT (13:00 UTC), Friday before
        // is EST (14:00 UTC).
        let monday = a.free_starts(day(2026, 3, 9), 30, &[], now);
        assert_eq!(monday[0].format("%H:%M").to_string(), "13:00");
        let friday = a.free_starts(day(2026, 3, 6), 30, &[], now);
        assert_eq!(friday[0].format("%H:%M").to_string(), "14:00");
        // Fall back on Sunday 2026-11-01: Monday 9:00 is EST again (14:00 UTC).
        let now = at((2026, 10, 1), (8, 0));
        let monday = a.free_starts(day(2026, 11, 2), 30, &[], now);
        assert_eq!(monday[0].format("%H:%M").to_string(), "14:00");
    }

    #[test]
    fn a_nonexistent_local_time_is_never_offered() {
        // A business open on Sundays through the night of the change.
        let mut b = business();
        b.hours.days[6] = crate::business::WeeklyHours::parse_day("01:00-05:00").unwrap();
        let a = Availability::new(&b);
        let now = at((2026, 3, 1), (8, 0));
        let starts = a.free_starts(day(2026, 3, 8), 60, &[], now);
        for s in &starts {
            let local = s.with_timezone(&New_York).time();
            // Every offered start maps back to an existing local time, none in 02:00-03:00.
            assert!(local.format("%H").to_string() != "02", "{local}");
            assert_eq!(local_instant(New_York, day(2026, 3, 8), local), Some(*s));
        }
        // 01:00 EST to 05:00 EDT is 3 real hours: 60-minute starts every 15 minutes.
        assert_eq!(starts.len(), 9);
        let two_thirty = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        assert_eq!(
            a.check_local(day(2026, 3, 8), two_thirty, 30, &[], now),
            Err(Unavailable::NoSuchTime)
        );
        // On the fall-back night 01:30 happens twice; it reads as the earlier (EDT) one.
        let once = local_instant(
            New_York,
            day(2026, 11, 1),
            NaiveTime::from_hms_opt(1, 30, 0).unwrap(),
        );
        assert_eq!(once.unwrap().format("%H:%M").to_string(), "05:30");
    }
}
