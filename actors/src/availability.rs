//! Which start times are free: opening hours and breaks in the business time zone, closures,
//! staff and their hours and services, resources a service takes at once, buffers before and
//! after per service, minimum notice, horizon and slot granularity. Pure code, DST-correct.
//!
//! Everything is computed on instants (`DateTime<Utc>`); local wall-clock times are only
//! used to place opening ranges and breaks on a day. A local time that does not exist (the
//! hour skipped when clocks spring forward) is never offered; an ambiguous one (the repeated
//! hour in the autumn) is read as its earliest instant.
//!
//! Buffers: every appointment holds its time plus its service's before- and after-buffer, and
//! two appointments that share a person (or a resource) may not hold the same time, so the
//! gap between neighbours is the earlier one's after-buffer plus the later one's before-buffer.
//! A block (a hand-made calendar event, or a booking of a service the business does not know)
//! holds its time plus the business's `buffer_minutes` after it and stands in every staff
//! member's way.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::business::{Business, Service, Staff, WeeklyHours};
use crate::model::{Booking, BookingId, Interval};

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
    /// The staff member asked for does not work then, or does not do the service.
    #[error("the staff member asked for does not work then")]
    StaffAway,
}

/// The instant of a local date and time in `tz`: `None` when the clocks skip it, the
/// earliest instant when they repeat it.
pub fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&date.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// One thing that holds time on the calendar: a booking (with its service and staff member)
/// or a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Busy {
    /// The booking's id; `None` for a block.
    pub id: Option<BookingId>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The service booked; `None` (or a name the business does not know) = a block. Shared
    /// (`Arc`): the calendar's busy list is copied on every change, without a heap copy of
    /// each name.
    pub service: Option<Arc<str>>,
    /// Who it is with; `None` = in every staff member's way.
    pub staff: Option<Arc<str>>,
}

impl Busy {
    /// Time that is simply not free (a hand-made event, freeBusy).
    pub fn block(interval: Interval) -> Busy {
        Busy {
            id: None,
            start: interval.start,
            end: interval.end,
            service: None,
            staff: None,
        }
    }

    pub fn of(booking: &Booking) -> Busy {
        Busy {
            id: Some(booking.id),
            start: booking.start,
            end: booking.end,
            service: Some(Arc::from(booking.service.as_str())),
            staff: booking.staff.as_deref().map(Arc::from),
        }
    }
}

/// What is busy, sorted by start, with the longest entry's length, so that the entries near a
/// time are a binary search away (each [`Availability`] method takes it so).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusyList {
    items: Vec<Busy>,
    longest: Duration,
}

impl BusyList {
    pub fn new(items: impl IntoIterator<Item = Busy>) -> BusyList {
        let mut items: Vec<Busy> = items.into_iter().filter(|b| b.start < b.end).collect();
        items.sort_by_key(|b| (b.start, b.end));
        let longest = items
            .iter()
            .map(|b| b.end - b.start)
            .max()
            .unwrap_or_default();
        BusyList { items, longest }
    }

    /// Blocks only (no services, no staff), e.g. freeBusy periods.
    pub fn blocks(intervals: impl IntoIterator<Item = Interval>) -> BusyList {
        BusyList::new(intervals.into_iter().map(Busy::block))
    }

    pub fn items(&self) -> &[Busy] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds entries, keeping the order.
    pub fn insert_many(&mut self, added: impl IntoIterator<Item = Busy>) {
        for b in added {
            if b.start >= b.end {
                continue;
            }
            self.longest = self.longest.max(b.end - b.start);
            let at = self
                .items
                .partition_point(|x| (x.start, x.end) <= (b.start, b.end));
            self.items.insert(at, b);
        }
    }

    /// Removes the entry of booking `id`, if any. (The longest length is kept: it only
    /// bounds a search.)
    pub fn remove(&mut self, id: BookingId) {
        self.items.retain(|b| b.id != Some(id));
    }

    /// The entries that may hold any of `[from, to)`.
    fn near(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> &[Busy] {
        let lo = self
            .items
            .partition_point(|b| b.start + self.longest <= from);
        let hi = self.items.partition_point(|b| b.start < to);
        &self.items[lo..hi.max(lo)]
    }
}

/// What a caller asks for: how long, for which service (its rules), with whom.
#[derive(Clone, Copy, Debug)]
pub struct Want<'a> {
    pub minutes: u32,
    /// The service's buffers, notice, horizon, resources and staff; `None` = none of them.
    pub service: Option<&'a Service>,
    /// Only this staff member (a configured name).
    pub staff: Option<&'a str>,
    /// A booking being moved: it does not stand in its own way.
    pub except: Option<BookingId>,
}

impl<'a> Want<'a> {
    /// `minutes` without a service's rules (while the service is not known yet).
    pub fn minutes(minutes: u32) -> Want<'a> {
        Want {
            minutes,
            service: None,
            staff: None,
            except: None,
        }
    }

    pub fn service(service: &'a Service) -> Want<'a> {
        Want {
            minutes: service.minutes,
            service: Some(service),
            staff: None,
            except: None,
        }
    }

    pub fn with_staff(mut self, staff: Option<&'a str>) -> Want<'a> {
        self.staff = staff;
        self
    }

    pub fn except(mut self, id: Option<BookingId>) -> Want<'a> {
        self.except = id;
        self
    }
}

/// Local ranges minus local breaks: what is left of each range, in order.
fn without_breaks(
    ranges: &[(NaiveTime, NaiveTime)],
    breaks: &[(NaiveTime, NaiveTime)],
) -> Vec<(NaiveTime, NaiveTime)> {
    let mut left: Vec<(NaiveTime, NaiveTime)> = ranges.to_vec();
    for &(bs, be) in breaks {
        left = left
            .into_iter()
            .flat_map(|(s, e)| {
                let mut parts = Vec::with_capacity(2);
                if be <= s || e <= bs {
                    parts.push((s, e));
                } else {
                    if s < bs {
                        parts.push((s, bs));
                    }
                    if be < e {
                        parts.push((be, e));
                    }
                }
                parts
            })
            .collect();
    }
    left
}

/// Whether the half-open ranges `[a, b)` and `[c, d)` share an instant.
fn overlap(a: DateTime<Utc>, b: DateTime<Utc>, c: DateTime<Utc>, d: DateTime<Utc>) -> bool {
    a < d && c < b
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

    /// The opening ranges of a local day as instants, breaks taken out; empty on closed days
    /// and closures. A range whose opening time is skipped by DST opens at the first existing
    /// minute.
    pub fn opening(&self, day: NaiveDate) -> Vec<Interval> {
        self.ranges(&self.business.hours, day)
    }

    /// A staff member's working ranges of a local day (their hours, else the business's),
    /// breaks and closures taken out.
    pub fn working(&self, staff: &Staff, day: NaiveDate) -> Vec<Interval> {
        self.ranges(staff.hours.as_ref().unwrap_or(&self.business.hours), day)
    }

    fn ranges(&self, hours: &WeeklyHours, day: NaiveDate) -> Vec<Interval> {
        if self.business.closures.contains(&day) {
            return Vec::new();
        }
        let weekday = chrono::Datelike::weekday(&day);
        without_breaks(hours.on(weekday), &self.business.breaks)
            .into_iter()
            .filter_map(|(open, close)| {
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

    /// The minimum notice of `want`'s service, else the business's.
    pub fn notice_minutes(&self, want: &Want) -> u32 {
        want.service
            .and_then(|s| s.min_notice_minutes)
            .unwrap_or(self.business.min_notice_minutes)
    }

    /// The last local date bookings of `want` are taken for.
    pub fn last_day(&self, want: &Want, now: DateTime<Utc>) -> NaiveDate {
        self.horizon_end(want, now)
    }

    /// The last local date bookings of `want` are taken for.
    fn horizon_end(&self, want: &Want, now: DateTime<Utc>) -> NaiveDate {
        let days = want
            .service
            .and_then(|s| s.horizon_days)
            .unwrap_or(self.business.horizon_days);
        self.local_date(now) + Duration::days(i64::from(days))
    }

    fn notice(&self, want: &Want) -> Duration {
        Duration::minutes(i64::from(self.notice_minutes(want)))
    }

    /// The before- and after-buffer of a service (`None`: a block's).
    fn buffers(&self, service: Option<&Service>) -> (Duration, Duration) {
        let (before, after) = match service {
            Some(s) => (
                s.buffer_before_minutes,
                s.buffer_after_minutes
                    .unwrap_or(self.business.buffer_minutes),
            ),
            None => (0, self.business.buffer_minutes),
        };
        (
            Duration::minutes(i64::from(before)),
            Duration::minutes(i64::from(after)),
        )
    }

    /// The longest before- plus after-buffer any entry may hold.
    fn widest_buffers(&self) -> Duration {
        let most = self
            .business
            .services
            .iter()
            .map(|s| {
                let (b, a) = self.buffers(Some(s));
                b + a
            })
            .max()
            .unwrap_or_default();
        most.max(Duration::minutes(i64::from(self.business.buffer_minutes)))
    }

    /// The time a busy entry holds: its own plus its service's buffers.
    fn held(&self, b: &Busy) -> (Option<&'a Service>, DateTime<Utc>, DateTime<Utc>) {
        let service = b.service.as_deref().and_then(|s| self.business.service(s));
        let (before, after) = self.buffers(service);
        (service, b.start - before, b.end + after)
    }

    /// Whether `b` stands in the way of a booking with `staff` (`None`: no staff configured,
    /// everything is with the business).
    fn in_the_way_of(&self, b: &Busy, staff: Option<&str>) -> bool {
        match (staff, b.staff.as_deref()) {
            (None, _) | (_, None) => true,
            // A name no longer configured is in everyone's way (it cannot be placed).
            (Some(p), Some(q)) => {
                p.eq_ignore_ascii_case(q) || self.business.staff_member(q).is_none()
            }
        }
    }

    /// Whether a service of `want` may start at `start`, and if not, why. With staff
    /// configured the answer names who it is with: the one asked for, else the first capable
    /// one (in the configured order) who works then and is free.
    pub fn check(
        &self,
        start: DateTime<Utc>,
        want: &Want,
        busy: &BusyList,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, Unavailable> {
        if start < now {
            return Err(Unavailable::InPast);
        }
        if start < now + self.notice(want) {
            return Err(Unavailable::TooSoon);
        }
        let day = self.local_date(start);
        if day > self.horizon_end(want, now) {
            return Err(Unavailable::BeyondHorizon);
        }
        let end = start + Duration::minutes(i64::from(want.minutes));
        let fits = |ranges: Vec<Interval>| ranges.iter().any(|r| r.start <= start && end <= r.end);
        let (before, after) = self.buffers(want.service);
        let (from, to) = (start - before, end + after);
        let widest = self.widest_buffers();
        let near: Vec<&Busy> = busy
            .near(from - widest, to + widest)
            .iter()
            .filter(|b| want.except.is_none() || b.id != want.except)
            .filter(|b| {
                let (_, s, e) = self.held(b);
                overlap(from, to, s, e)
            })
            .collect();
        if self.business.staff.is_empty() {
            if !fits(self.opening(day)) {
                return Err(Unavailable::Closed);
            }
            if !near.is_empty() || !self.resources_free(want, from, to, &near) {
                return Err(Unavailable::Taken);
            }
            return Ok(None);
        }
        let capable: Vec<&Staff> = self
            .business
            .staff
            .iter()
            .filter(|s| want.staff.is_none_or(|w| s.name.eq_ignore_ascii_case(w)))
            .filter(|s| want.service.is_none_or(|svc| s.does(&svc.name)))
            .collect();
        let working: Vec<&Staff> = capable
            .into_iter()
            .filter(|s| fits(self.working(s, day)))
            .collect();
        if working.is_empty() {
            // "Anna isn't in then" only when someone is: otherwise the clinic is closed.
            let someone_works = self
                .business
                .staff
                .iter()
                .any(|s| fits(self.working(s, day)));
            return Err(if want.staff.is_some() && someone_works {
                Unavailable::StaffAway
            } else {
                Unavailable::Closed
            });
        }
        if !self.resources_free(want, from, to, &near) {
            return Err(Unavailable::Taken);
        }
        working
            .into_iter()
            .find(|s| !near.iter().any(|b| self.in_the_way_of(b, Some(&s.name))))
            .map(|s| Some(s.name.clone()))
            .ok_or(Unavailable::Taken)
    }

    /// Whether every resource the service needs has a unit left over `[from, to)`, given the
    /// entries that overlap it.
    fn resources_free(
        &self,
        want: &Want,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        near: &[&Busy],
    ) -> bool {
        let Some(service) = want.service else {
            return true;
        };
        service.needs.iter().all(|need| {
            let count = self.business.resource(need).map_or(1, |r| r.count);
            // The most entries needing this resource at one instant of [from, to).
            let mut edges: Vec<(DateTime<Utc>, i64)> = Vec::new();
            for b in near {
                let (svc, s, e) = self.held(b);
                if svc.is_some_and(|svc| svc.needs.iter().any(|n| n.eq_ignore_ascii_case(need))) {
                    edges.push((s.max(from), 1));
                    edges.push((e.min(to), -1));
                }
            }
            // Ends sort before starts at the same instant: the ranges are half-open.
            edges.sort();
            let mut depth: i64 = 0;
            let mut most: i64 = 0;
            for (_, d) in edges {
                depth += d;
                most = most.max(depth);
            }
            most < i64::from(count)
        })
    }

    /// [`check`](Self::check) for a local date and time, which may not exist: the start and
    /// who it is with.
    pub fn check_local(
        &self,
        date: NaiveDate,
        time: NaiveTime,
        want: &Want,
        busy: &BusyList,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, Option<String>), Unavailable> {
        let start = local_instant(self.tz(), date, time).ok_or(Unavailable::NoSuchTime)?;
        self.check(start, want, busy, now)
            .map(|staff| (start, staff))
    }

    /// The ranges start times are laid out from on a day: the business's opening, or with
    /// staff the working ranges of those who could take `want`.
    fn grids(&self, day: NaiveDate, want: &Want) -> Vec<Interval> {
        if self.business.staff.is_empty() {
            return self.opening(day);
        }
        self.business
            .staff
            .iter()
            .filter(|s| want.staff.is_none_or(|w| s.name.eq_ignore_ascii_case(w)))
            .filter(|s| want.service.is_none_or(|svc| s.does(&svc.name)))
            .flat_map(|s| self.working(s, day))
            .collect()
    }

    /// Every free start on a local day: a grid of `slot_minutes` from each opening (or
    /// working) range's start, where the whole service fits inside the range.
    pub fn free_starts(
        &self,
        day: NaiveDate,
        want: &Want,
        busy: &BusyList,
        now: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let step = Duration::minutes(i64::from(self.business.slot_minutes.max(1)));
        let length = Duration::minutes(i64::from(want.minutes));
        let mut starts = BTreeSet::new();
        for range in self.grids(day, want) {
            let mut at = range.start;
            while at + length <= range.end {
                if !starts.contains(&at) && self.check(at, want, busy, now).is_ok() {
                    starts.insert(at);
                }
                at += step;
            }
        }
        starts.into_iter().collect()
    }

    /// Up to `n` free starts nearest to `wanted`: on the same local day first (closest to
    /// `wanted`, earlier on a tie), then the earliest ones of the following days. The result
    /// is in time order.
    pub fn nearest(
        &self,
        wanted: DateTime<Utc>,
        want: &Want,
        busy: &BusyList,
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let day = self.local_date(wanted);
        let mut same_day = self.free_starts(day, want, busy, now);
        same_day.sort_by_key(|&s| ((s - wanted).num_seconds().abs(), s));
        same_day.truncate(n);
        same_day.sort();
        let mut found = same_day;
        if found.len() < n {
            found.extend(self.following(day, want, busy, now, n - found.len()));
        }
        found
    }

    /// Up to `n` free starts strictly after `after` (same day, then the following days), in
    /// time order: "anything later?".
    pub fn after(
        &self,
        after: DateTime<Utc>,
        want: &Want,
        busy: &BusyList,
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let day = self.local_date(after);
        let mut found: Vec<_> = self
            .free_starts(day, want, busy, now)
            .into_iter()
            .filter(|&s| s > after)
            .take(n)
            .collect();
        if found.len() < n {
            found.extend(self.following(day, want, busy, now, n - found.len()));
        }
        found
    }

    /// Up to `n` free starts strictly before `before`, the closest first on the same day and
    /// then the latest ones of earlier days (never before `now`), in time order:
    /// "anything earlier?".
    pub fn before(
        &self,
        before: DateTime<Utc>,
        want: &Want,
        busy: &BusyList,
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let today = self.local_date(now);
        let mut day = self.local_date(before);
        let mut found: Vec<DateTime<Utc>> = Vec::new();
        while found.len() < n && day >= today {
            let mut starts: Vec<_> = self
                .free_starts(day, want, busy, now)
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
        want: &Want,
        busy: &BusyList,
        now: DateTime<Utc>,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut found = Vec::new();
        let last = self.horizon_end(want, now);
        let mut d = day.max(self.local_date(now));
        while found.len() < n {
            d += Duration::days(1);
            if d > last {
                break;
            }
            found.extend(
                self.free_starts(d, want, busy, now)
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
    use uuid::Uuid;

    fn business() -> Business {
        Business::example()
    }

    fn none() -> BusyList {
        BusyList::default()
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
        assert_eq!(
            a.check(
                at((2026, 3, 6), (14, 0)),
                &Want::minutes(45),
                &none(),
                now()
            ),
            Ok(None)
        );
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
                a.check(
                    at((2026, 3, 6), hm),
                    &Want::minutes(minutes),
                    &none(),
                    now()
                ),
                Err(Unavailable::Closed),
                "{hm:?}"
            );
        }
        // Sunday is closed all day.
        assert_eq!(
            a.check(
                at((2026, 3, 8), (10, 0)),
                &Want::minutes(30),
                &none(),
                now()
            ),
            Err(Unavailable::Closed)
        );
        assert!(
            a.free_starts(day(2026, 3, 8), &Want::minutes(30), &none(), now())
                .is_empty()
        );
    }

    #[test]
    fn closure_days_are_closed() {
        let mut b = business();
        b.closures.push(day(2026, 3, 6));
        let a = Availability::new(&b);
        assert_eq!(
            a.check(
                at((2026, 3, 6), (10, 0)),
                &Want::minutes(30),
                &none(),
                now()
            ),
            Err(Unavailable::Closed)
        );
        assert!(
            a.free_starts(day(2026, 3, 6), &Want::minutes(30), &none(), now())
                .is_empty()
        );
    }

    #[test]
    fn minimum_notice_and_the_past_are_refused() {
        let b = business();
        let a = Availability::new(&b);
        assert_eq!(
            a.check(at((2026, 3, 5), (9, 0)), &Want::minutes(30), &none(), now()),
            Err(Unavailable::InPast)
        );
        assert_eq!(
            a.check(
                at((2026, 3, 5), (11, 0)),
                &Want::minutes(30),
                &none(),
                now()
            ),
            Err(Unavailable::TooSoon)
        );
        assert_eq!(
            a.check(
                at((2026, 3, 5), (13, 0)),
                &Want::minutes(30),
                &none(),
                now()
            ),
            Ok(None)
        );
        // Today's first free start is 2 hours after now, on the grid, after lunch.
        let today = a.free_starts(day(2026, 3, 5), &Want::minutes(30), &none(), now());
        assert_eq!(local_hm(today[0]), "13:00");
    }

    #[test]
    fn the_horizon_limits_how_far_ahead() {
        let b = business();
        let a = Availability::new(&b);
        // 60 days after Thursday March 5 is Monday May 4.
        assert_eq!(
            a.check(
                at((2026, 5, 4), (10, 0)),
                &Want::minutes(30),
                &none(),
                now()
            ),
            Ok(None)
        );
        assert_eq!(
            a.check(
                at((2026, 5, 5), (10, 0)),
                &Want::minutes(30),
                &none(),
                now()
            ),
            Err(Unavailable::BeyondHorizon)
        );
    }

    #[test]
    fn busy_intervals_and_buffers_are_avoided() {
        let mut b = business();
        let busy = BusyList::blocks([Interval {
            start: at((2026, 3, 6), (10, 0)),
            end: at((2026, 3, 6), (10, 45)),
        }]);
        let a = Availability::new(&b);
        assert_eq!(
            a.check(at((2026, 3, 6), (10, 30)), &Want::minutes(30), &busy, now()),
            Err(Unavailable::Taken)
        );
        assert_eq!(
            a.check(at((2026, 3, 6), (9, 30)), &Want::minutes(30), &busy, now()),
            Ok(None),
            "ends exactly when the busy interval starts"
        );
        assert_eq!(
            a.check(at((2026, 3, 6), (10, 45)), &Want::minutes(30), &busy, now()),
            Ok(None)
        );
        b.buffer_minutes = 15;
        let a = Availability::new(&b);
        assert_eq!(
            a.check(at((2026, 3, 6), (10, 45)), &Want::minutes(30), &busy, now()),
            Err(Unavailable::Taken),
            "the busy appointment's buffer"
        );
        assert_eq!(
            a.check(at((2026, 3, 6), (9, 30)), &Want::minutes(30), &busy, now()),
            Err(Unavailable::Taken),
            "the new appointment's own buffer"
        );
        assert_eq!(
            a.check(at((2026, 3, 6), (11, 0)), &Want::minutes(30), &busy, now()),
            Ok(None)
        );
    }

    /// The binary search over the busy list agrees with checking every busy interval, for
    /// lists with overlapping and nested intervals.
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
            let busy = BusyList::blocks(raw.clone());
            let a = Availability::new(&b);
            let buffer = Duration::minutes(i64::from(b.buffer_minutes));
            for start in (0..1380).step_by(5) {
                let minutes = 5 + (start % 50) as u32;
                let end = m(start) + Duration::minutes(i64::from(minutes));
                let scan = raw
                    .iter()
                    .any(|r| r.start < end + buffer && m(start) < r.end + buffer);
                let got = a.check(m(start), &Want::minutes(minutes), &busy, now());
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
            .free_starts(day(2026, 3, 6), &Want::minutes(60), &none(), now())
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
        let busy = BusyList::blocks([Interval {
            start: at((2026, 3, 9), (9, 0)),
            end: at((2026, 3, 9), (9, 30)),
        }]);
        let offers: Vec<_> = a
            .nearest(
                at((2026, 3, 9), (9, 0)),
                &Want::minutes(30),
                &busy,
                now(),
                3,
            )
            .into_iter()
            .map(local_hm)
            .collect();
        assert_eq!(offers, ["09:30", "09:45", "10:00"]);
        // Saturday 10:00-14:00: asking at 13:30 for a 60-minute service leaves 13:00 and
        // 12:45 on the day, then Monday's first start.
        let offers = a.nearest(
            at((2026, 3, 7), (13, 30)),
            &Want::minutes(60),
            &none(),
            now(),
            3,
        );
        assert_eq!(
            offers.iter().map(|&t| local_hm(t)).collect::<Vec<_>>(),
            ["12:30", "12:45", "13:00"]
        );
        let full_saturday = BusyList::blocks([Interval {
            start: at((2026, 3, 7), (10, 0)),
            end: at((2026, 3, 7), (14, 0)),
        }]);
        let offers = a.nearest(
            at((2026, 3, 7), (13, 30)),
            &Want::minutes(60),
            &full_saturday,
            now(),
            2,
        );
        assert_eq!(
            offers,
            [at((2026, 3, 9), (9, 0)), at((2026, 3, 9), (9, 15))]
        );
    }

    #[test]
    fn after_moves_the_window_later() {
        let b = business();
        let a = Availability::new(&b);
        let later = a.after(
            at((2026, 3, 6), (16, 15)),
            &Want::minutes(30),
            &none(),
            now(),
            3,
        );
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
        let monday = a.free_starts(day(2026, 3, 9), &Want::minutes(30), &none(), now);
        assert_eq!(monday[0].format("%H:%M").to_string(), "13:00");
        let friday = a.free_starts(day(2026, 3, 6), &Want::minutes(30), &none(), now);
        assert_eq!(friday[0].format("%H:%M").to_string(), "14:00");
        // Fall back on Sunday 2026-11-01: Monday 9:00 is EST again (14:00 UTC).
        let now = at((2026, 10, 1), (8, 0));
        let monday = a.free_starts(day(2026, 11, 2), &Want::minutes(30), &none(), now);
        assert_eq!(monday[0].format("%H:%M").to_string(), "14:00");
    }

    #[test]
    fn a_nonexistent_local_time_is_never_offered() {
        // A business open on Sundays through the night of the change.
        let mut b = business();
        b.hours.days[6] = crate::business::WeeklyHours::parse_day("01:00-05:00").unwrap();
        let a = Availability::new(&b);
        let now = at((2026, 3, 1), (8, 0));
        let starts = a.free_starts(day(2026, 3, 8), &Want::minutes(60), &none(), now);
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
            a.check_local(
                day(2026, 3, 8),
                two_thirty,
                &Want::minutes(30),
                &none(),
                now
            ),
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

    // ---- the rules of a clinic's week, as a table --------------------------------------

    /// Whether the table's business has staff (and so resources that matter).
    #[derive(Clone, Copy, Debug)]
    enum Biz {
        /// No staff: bookings are with the business, one at a time.
        Clinic,
        /// Anna, Ben and Cara, two chairs, one room, one hygienist.
        Team,
    }

    /// A local date and time `(y, m, d, h, min)` in New York.
    type Local = (i32, u32, u32, u32, u32);

    /// When a case asks: a local time (which may not exist) or an exact instant.
    #[derive(Clone, Copy, Debug)]
    enum When {
        L(Local),
        U(&'static str),
    }

    /// Something already in the calendar: service ("" = a block), staff, start, minutes, and
    /// whether it is the booking being moved.
    type Held = (&'static str, Option<&'static str>, Local, i64, bool);

    struct Case {
        name: &'static str,
        biz: Biz,
        now: Local,
        service: &'static str,
        staff: Option<&'static str>,
        busy: &'static [Held],
        at: When,
        /// `Ok(staff)` or why not.
        expect: Result<Option<&'static str>, Unavailable>,
    }

    const NOW: Local = (2026, 3, 5, 10, 0);
    const AUTUMN: Local = (2026, 10, 29, 10, 0);
    const OWN: u128 = 42;

    fn lt(l: Local) -> DateTime<Utc> {
        at((l.0, l.1, l.2), (l.3, l.4))
    }

    fn rule_business(biz: Biz) -> Business {
        let h = |s: &str| crate::business::WeeklyHours::parse_day(s).unwrap();
        let mut b = business();
        b.hours.days = [
            h("09:00-17:00"),
            h("09:00-17:00"),
            h("09:00-17:00"),
            h("09:00-17:00"),
            h("09:00-17:00"),
            h("10:00-14:00"),
            // Open through the night of the clock changes (an on-call service).
            h("01:00-04:00"),
        ];
        b.breaks = vec![(
            NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(13, 0, 0).unwrap(),
        )];
        b.closures = vec![day(2026, 3, 13), day(2026, 3, 16), day(2026, 3, 17)];
        let svc = |name: &str, minutes: u32| Service {
            name: name.into(),
            minutes,
            ..Service::default()
        };
        b.services = vec![
            svc("Consultation", 30),
            Service {
                buffer_after_minutes: Some(15),
                ..svc("Cleaning", 45)
            },
            Service {
                buffer_before_minutes: 10,
                buffer_after_minutes: Some(15),
                needs: vec!["chair".into()],
                ..svc("Whitening", 60)
            },
            Service {
                needs: vec!["room".into(), "hygienist".into()],
                ..svc("Surgery", 90)
            },
            Service {
                needs: vec!["hygienist".into()],
                ..svc("Scaling", 30)
            },
            Service {
                min_notice_minutes: Some(0),
                horizon_days: Some(1),
                ..svc("Emergency", 30)
            },
            Service {
                min_notice_minutes: Some(1440),
                horizon_days: Some(7),
                ..svc("Checkup", 30)
            },
            svc("Long", 120),
        ];
        b.resources = vec![
            crate::business::Resource {
                name: "chair".into(),
                count: 2,
            },
            crate::business::Resource {
                name: "room".into(),
                count: 1,
            },
            crate::business::Resource {
                name: "hygienist".into(),
                count: 1,
            },
        ];
        if let Biz::Team = biz {
            let mut anna = crate::business::WeeklyHours::default();
            anna.days[0] = h("09:00-13:00");
            anna.days[2] = h("13:00-17:00");
            anna.days[6] = h("01:00-04:00");
            b.staff = vec![
                Staff {
                    name: "Anna".into(),
                    services: Some(vec![
                        "Cleaning".into(),
                        "Whitening".into(),
                        "Surgery".into(),
                    ]),
                    hours: Some(anna),
                },
                Staff {
                    name: "Ben".into(),
                    services: None,
                    hours: None,
                },
                Staff {
                    name: "Cara".into(),
                    services: Some(vec!["Whitening".into(), "Surgery".into()]),
                    hours: None,
                },
            ];
        }
        b
    }

    const fn ok(staff: Option<&'static str>) -> Result<Option<&'static str>, Unavailable> {
        Ok(staff)
    }

    use Biz::{Clinic, Team};
    use Unavailable::*;
    use When::{L, U};

    const fn c(
        name: &'static str,
        biz: Biz,
        service: &'static str,
        staff: Option<&'static str>,
        busy: &'static [Held],
        at: When,
        expect: Result<Option<&'static str>, Unavailable>,
    ) -> Case {
        Case {
            name,
            biz,
            now: NOW,
            service,
            staff,
            busy,
            at,
            expect,
        }
    }

    const fn late(mut case: Case, now: Local) -> Case {
        case.now = now;
        case
    }

    const ANNA: Option<&str> = Some("Anna");
    const BEN: Option<&str> = Some("Ben");
    const CARA: Option<&str> = Some("Cara");

    /// Thursday 2026-03-05 10:00 is "now" unless a case says otherwise. Friday 3/6, Saturday
    /// 3/7, Sunday 3/8 (clocks spring forward at 02:00), Monday 3/9, Wednesday 3/11; the 13th
    /// and the 16th-17th are closed; clocks fall back on Sunday 11/1.
    fn cases() -> Vec<Case> {
        vec![
            // Opening hours and breaks.
            c(
                "open",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 10, 0)),
                ok(None),
            ),
            c(
                "before opening",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 8, 30)),
                Err(Closed),
            ),
            c(
                "at closing",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 17, 0)),
                Err(Closed),
            ),
            c(
                "ends at closing",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 16, 30)),
                ok(None),
            ),
            c(
                "runs past closing",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 16, 45)),
                Err(Closed),
            ),
            c(
                "at the break",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 12, 0)),
                Err(Closed),
            ),
            c(
                "inside the break",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 12, 30)),
                Err(Closed),
            ),
            c(
                "touches the break",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 11, 30)),
                ok(None),
            ),
            c(
                "crosses the break",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 11, 45)),
                Err(Closed),
            ),
            c(
                "right after the break",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 6, 13, 0)),
                ok(None),
            ),
            c(
                "a buffer may run into the break",
                Clinic,
                "Cleaning",
                None,
                &[],
                L((2026, 3, 6, 11, 15)),
                ok(None),
            ),
            c(
                "saturday break",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 7, 12, 15)),
                Err(Closed),
            ),
            c(
                "saturday afternoon",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 7, 13, 0)),
                ok(None),
            ),
            c(
                "sunday daytime",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 8, 10, 0)),
                Err(Closed),
            ),
            // Closures.
            c(
                "closed day",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 13, 10, 0)),
                Err(Closed),
            ),
            c(
                "closure range start",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 16, 10, 0)),
                Err(Closed),
            ),
            c(
                "closure range end",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 17, 10, 0)),
                Err(Closed),
            ),
            c(
                "after the closure",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 18, 10, 0)),
                ok(None),
            ),
            c(
                "closed for staff too",
                Team,
                "Cleaning",
                ANNA,
                &[],
                L((2026, 3, 16, 10, 0)),
                Err(Closed),
            ),
            // Notice and horizon, per service.
            c(
                "in the past",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 5, 9, 0)),
                Err(InPast),
            ),
            c(
                "too soon",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 5, 11, 0)),
                Err(TooSoon),
            ),
            late(
                c(
                    "exactly the notice",
                    Clinic,
                    "Consultation",
                    None,
                    &[],
                    L((2026, 3, 5, 13, 0)),
                    ok(None),
                ),
                (2026, 3, 5, 11, 0),
            ),
            c(
                "a day's notice, 23 hours ahead",
                Clinic,
                "Checkup",
                None,
                &[],
                L((2026, 3, 6, 9, 0)),
                Err(TooSoon),
            ),
            c(
                "a day's notice, 24 hours ahead",
                Clinic,
                "Checkup",
                None,
                &[],
                L((2026, 3, 6, 10, 0)),
                ok(None),
            ),
            c(
                "no notice, now",
                Clinic,
                "Emergency",
                None,
                &[],
                L((2026, 3, 5, 10, 0)),
                ok(None),
            ),
            c(
                "no notice, soon",
                Clinic,
                "Emergency",
                None,
                &[],
                L((2026, 3, 5, 10, 30)),
                ok(None),
            ),
            c(
                "one-day horizon, tomorrow",
                Clinic,
                "Emergency",
                None,
                &[],
                L((2026, 3, 6, 16, 0)),
                ok(None),
            ),
            c(
                "one-day horizon, the day after",
                Clinic,
                "Emergency",
                None,
                &[],
                L((2026, 3, 7, 10, 0)),
                Err(BeyondHorizon),
            ),
            c(
                "week horizon, last day",
                Clinic,
                "Checkup",
                None,
                &[],
                L((2026, 3, 12, 10, 0)),
                ok(None),
            ),
            c(
                "week horizon, beyond",
                Clinic,
                "Checkup",
                None,
                &[],
                L((2026, 3, 13, 10, 0)),
                Err(BeyondHorizon),
            ),
            c(
                "business horizon, last day",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 5, 4, 10, 0)),
                ok(None),
            ),
            c(
                "business horizon, beyond",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 5, 5, 10, 0)),
                Err(BeyondHorizon),
            ),
            // Busy time and buffers that stack (X's after + Y's before).
            c(
                "inside a block",
                Clinic,
                "Consultation",
                None,
                &[("", None, (2026, 3, 6, 10, 0), 45, false)],
                L((2026, 3, 6, 10, 30)),
                Err(Taken),
            ),
            c(
                "ends as a block starts",
                Clinic,
                "Consultation",
                None,
                &[("", None, (2026, 3, 6, 10, 0), 45, false)],
                L((2026, 3, 6, 9, 30)),
                ok(None),
            ),
            c(
                "starts as a block ends",
                Clinic,
                "Consultation",
                None,
                &[("", None, (2026, 3, 6, 10, 0), 45, false)],
                L((2026, 3, 6, 10, 45)),
                ok(None),
            ),
            c(
                "inside a neighbour's after-buffer",
                Clinic,
                "Consultation",
                None,
                &[("Cleaning", None, (2026, 3, 6, 10, 0), 45, false)],
                L((2026, 3, 6, 10, 45)),
                Err(Taken),
            ),
            c(
                "after a neighbour's after-buffer",
                Clinic,
                "Consultation",
                None,
                &[("Cleaning", None, (2026, 3, 6, 10, 0), 45, false)],
                L((2026, 3, 6, 11, 0)),
                ok(None),
            ),
            c(
                "own before-buffer hits a neighbour",
                Clinic,
                "Whitening",
                None,
                &[("Consultation", None, (2026, 3, 6, 10, 0), 30, false)],
                L((2026, 3, 6, 10, 30)),
                Err(Taken),
            ),
            c(
                "own before-buffer clears a neighbour",
                Clinic,
                "Whitening",
                None,
                &[("Consultation", None, (2026, 3, 6, 10, 0), 30, false)],
                L((2026, 3, 6, 10, 40)),
                ok(None),
            ),
            c(
                "buffers stack: 15 + 10 short",
                Clinic,
                "Whitening",
                None,
                &[("Cleaning", None, (2026, 3, 6, 9, 0), 45, false)],
                U("2026-03-06T15:05:00Z"),
                Err(Taken),
            ),
            c(
                "buffers stack: 15 + 10 exactly",
                Clinic,
                "Whitening",
                None,
                &[("Cleaning", None, (2026, 3, 6, 9, 0), 45, false)],
                U("2026-03-06T15:10:00Z"),
                ok(None),
            ),
            c(
                "own after-buffer hits the next",
                Clinic,
                "Whitening",
                None,
                &[("Cleaning", None, (2026, 3, 6, 11, 10), 45, false)],
                L((2026, 3, 6, 10, 0)),
                Err(Taken),
            ),
            c(
                "own after-buffer clears the next",
                Clinic,
                "Whitening",
                None,
                &[("Cleaning", None, (2026, 3, 6, 11, 15), 45, false)],
                L((2026, 3, 6, 10, 0)),
                ok(None),
            ),
            c(
                "after-buffer meets the next before-buffer",
                Clinic,
                "Cleaning",
                None,
                &[("Whitening", None, (2026, 3, 6, 11, 10), 60, false)],
                L((2026, 3, 6, 10, 0)),
                ok(None),
            ),
            c(
                "after-buffer overlaps the next before-buffer",
                Clinic,
                "Cleaning",
                None,
                &[("Whitening", None, (2026, 3, 6, 11, 10), 60, false)],
                U("2026-03-06T15:05:00Z"),
                Err(Taken),
            ),
            c(
                "runs into the next before-buffer",
                Clinic,
                "Cleaning",
                None,
                &[("Whitening", None, (2026, 3, 6, 11, 10), 60, false)],
                L((2026, 3, 6, 10, 30)),
                Err(Taken),
            ),
            c(
                "well before the next",
                Clinic,
                "Cleaning",
                None,
                &[("Whitening", None, (2026, 3, 6, 11, 10), 60, false)],
                L((2026, 3, 6, 9, 45)),
                ok(None),
            ),
            c(
                "an unknown service is a block",
                Clinic,
                "Consultation",
                None,
                &[("Botox", None, (2026, 3, 6, 10, 0), 30, false)],
                L((2026, 3, 6, 10, 30)),
                ok(None),
            ),
            c(
                "an unknown service still holds its time",
                Clinic,
                "Consultation",
                None,
                &[("Botox", None, (2026, 3, 6, 10, 0), 30, false)],
                L((2026, 3, 6, 10, 15)),
                Err(Taken),
            ),
            c(
                "a move does not block itself",
                Clinic,
                "Consultation",
                None,
                &[("Consultation", None, (2026, 3, 6, 10, 0), 30, true)],
                L((2026, 3, 6, 10, 15)),
                ok(None),
            ),
            // Daylight saving: spring forward (Sunday 3/8, 02:00-03:00 does not exist).
            c(
                "spring: before the gap",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 8, 1, 0)),
                ok(None),
            ),
            c(
                "spring: in the gap",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 8, 2, 30)),
                Err(NoSuchTime),
            ),
            c(
                "spring: after the gap",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 8, 3, 0)),
                ok(None),
            ),
            c(
                "spring: two hours fill a 01-04 night",
                Clinic,
                "Long",
                None,
                &[],
                L((2026, 3, 8, 1, 0)),
                ok(None),
            ),
            c(
                "spring: two hours from 01:15 do not",
                Clinic,
                "Long",
                None,
                &[],
                L((2026, 3, 8, 1, 15)),
                Err(Closed),
            ),
            c(
                "spring: the last half hour",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 8, 3, 30)),
                ok(None),
            ),
            c(
                "spring: past closing",
                Clinic,
                "Consultation",
                None,
                &[],
                L((2026, 3, 8, 3, 45)),
                Err(Closed),
            ),
            c(
                "spring: a block across the gap",
                Clinic,
                "Consultation",
                None,
                &[("", None, (2026, 3, 8, 1, 30), 45, false)],
                L((2026, 3, 8, 1, 15)),
                Err(Taken),
            ),
            c(
                "spring: before a block across the gap",
                Clinic,
                "Consultation",
                None,
                &[("", None, (2026, 3, 8, 1, 30), 45, false)],
                L((2026, 3, 8, 1, 0)),
                ok(None),
            ),
            c(
                "spring: after a block across the gap",
                Clinic,
                "Consultation",
                None,
                &[("", None, (2026, 3, 8, 1, 30), 45, false)],
                L((2026, 3, 8, 3, 15)),
                ok(None),
            ),
            c(
                "spring: monday opens at 13:00 UTC",
                Clinic,
                "Consultation",
                None,
                &[],
                U("2026-03-09T13:00:00Z"),
                ok(None),
            ),
            c(
                "spring: monday 12:30 UTC is 08:30",
                Clinic,
                "Consultation",
                None,
                &[],
                U("2026-03-09T12:30:00Z"),
                Err(Closed),
            ),
            // Fall back (Sunday 11/1, 01:00-02:00 happens twice).
            late(
                c(
                    "fall: 01:00",
                    Clinic,
                    "Consultation",
                    None,
                    &[],
                    L((2026, 11, 1, 1, 0)),
                    ok(None),
                ),
                AUTUMN,
            ),
            late(
                c(
                    "fall: two hours from 01:00 EDT",
                    Clinic,
                    "Long",
                    None,
                    &[],
                    L((2026, 11, 1, 1, 0)),
                    ok(None),
                ),
                AUTUMN,
            ),
            late(
                c(
                    "fall: two hours from 02:00 EST fit",
                    Clinic,
                    "Long",
                    None,
                    &[],
                    L((2026, 11, 1, 2, 0)),
                    ok(None),
                ),
                AUTUMN,
            ),
            late(
                c(
                    "fall: two hours from 02:15 do not",
                    Clinic,
                    "Long",
                    None,
                    &[],
                    L((2026, 11, 1, 2, 15)),
                    Err(Closed),
                ),
                AUTUMN,
            ),
            late(
                c(
                    "fall: 02:00 EST as an instant",
                    Clinic,
                    "Long",
                    None,
                    &[],
                    U("2026-11-01T07:00:00Z"),
                    ok(None),
                ),
                AUTUMN,
            ),
            late(
                c(
                    "fall: first 01:30 is taken",
                    Clinic,
                    "Consultation",
                    None,
                    &[("", None, (2026, 11, 1, 1, 0), 60, false)],
                    L((2026, 11, 1, 1, 30)),
                    Err(Taken),
                ),
                AUTUMN,
            ),
            late(
                c(
                    "fall: second 01:30 is free",
                    Clinic,
                    "Consultation",
                    None,
                    &[("", None, (2026, 11, 1, 1, 0), 60, false)],
                    U("2026-11-01T06:30:00Z"),
                    ok(None),
                ),
                AUTUMN,
            ),
            late(
                c(
                    "fall: monday opens at 14:00 UTC",
                    Clinic,
                    "Consultation",
                    None,
                    &[],
                    U("2026-11-02T14:00:00Z"),
                    ok(None),
                ),
                AUTUMN,
            ),
            late(
                c(
                    "fall: monday 13:30 UTC is 08:30",
                    Clinic,
                    "Consultation",
                    None,
                    &[],
                    U("2026-11-02T13:30:00Z"),
                    Err(Closed),
                ),
                AUTUMN,
            ),
            // Staff, their hours and services.
            c(
                "first capable staff",
                Team,
                "Cleaning",
                None,
                &[],
                L((2026, 3, 9, 10, 0)),
                ok(ANNA),
            ),
            c(
                "the next capable one",
                Team,
                "Cleaning",
                None,
                &[("Cleaning", ANNA, (2026, 3, 9, 10, 0), 45, false)],
                L((2026, 3, 9, 10, 0)),
                ok(BEN),
            ),
            c(
                "every capable one busy",
                Team,
                "Cleaning",
                None,
                &[
                    ("Cleaning", ANNA, (2026, 3, 9, 10, 0), 45, false),
                    ("Cleaning", BEN, (2026, 3, 9, 10, 0), 45, false),
                ],
                L((2026, 3, 9, 10, 0)),
                Err(Taken),
            ),
            c(
                "with Anna outside her hours",
                Team,
                "Cleaning",
                ANNA,
                &[],
                L((2026, 3, 9, 14, 0)),
                Err(StaffAway),
            ),
            c(
                "with Anna in her wednesday hours",
                Team,
                "Cleaning",
                ANNA,
                &[],
                L((2026, 3, 11, 14, 0)),
                ok(ANNA),
            ),
            c(
                "with Anna, a service she does not do",
                Team,
                "Consultation",
                ANNA,
                &[],
                L((2026, 3, 9, 10, 0)),
                Err(StaffAway),
            ),
            c(
                "with Anna in the break",
                Team,
                "Cleaning",
                ANNA,
                &[],
                L((2026, 3, 9, 12, 15)),
                Err(Closed),
            ),
            c(
                "only Ben consults",
                Team,
                "Consultation",
                None,
                &[],
                L((2026, 3, 9, 10, 0)),
                ok(BEN),
            ),
            c(
                "Ben busy, nobody consults",
                Team,
                "Consultation",
                None,
                &[("Consultation", BEN, (2026, 3, 9, 10, 0), 30, false)],
                L((2026, 3, 9, 10, 0)),
                Err(Taken),
            ),
            c(
                "Anna off, Ben cleans",
                Team,
                "Cleaning",
                None,
                &[],
                L((2026, 3, 9, 14, 0)),
                ok(BEN),
            ),
            c(
                "with Ben beside Anna's booking",
                Team,
                "Cleaning",
                BEN,
                &[("Cleaning", ANNA, (2026, 3, 9, 10, 0), 45, false)],
                L((2026, 3, 9, 10, 0)),
                ok(BEN),
            ),
            c(
                "with Anna, Anna booked",
                Team,
                "Cleaning",
                ANNA,
                &[("Cleaning", ANNA, (2026, 3, 9, 10, 0), 45, false)],
                L((2026, 3, 9, 10, 30)),
                Err(Taken),
            ),
            c(
                "a block is in everyone's way",
                Team,
                "Cleaning",
                None,
                &[("", None, (2026, 3, 9, 10, 0), 60, false)],
                L((2026, 3, 9, 10, 0)),
                Err(Taken),
            ),
            c(
                "a booking with nobody is in everyone's way",
                Team,
                "Cleaning",
                None,
                &[("Cleaning", None, (2026, 3, 9, 10, 0), 45, false)],
                L((2026, 3, 9, 10, 0)),
                Err(Taken),
            ),
            c(
                "a booking with a name no longer configured",
                Team,
                "Cleaning",
                None,
                &[("Cleaning", Some("Dora"), (2026, 3, 9, 10, 0), 45, false)],
                L((2026, 3, 9, 10, 0)),
                Err(Taken),
            ),
            c(
                "Anna's buffer is Anna's",
                Team,
                "Cleaning",
                ANNA,
                &[("Cleaning", ANNA, (2026, 3, 9, 10, 0), 45, false)],
                L((2026, 3, 9, 10, 45)),
                Err(Taken),
            ),
            c(
                "Anna's buffer does not hold Ben",
                Team,
                "Cleaning",
                None,
                &[("Cleaning", ANNA, (2026, 3, 9, 10, 0), 45, false)],
                L((2026, 3, 9, 10, 45)),
                ok(BEN),
            ),
            c(
                "staff hours on the spring-forward night",
                Team,
                "Cleaning",
                ANNA,
                &[],
                L((2026, 3, 8, 3, 0)),
                ok(ANNA),
            ),
            c(
                "staff and the gap",
                Team,
                "Cleaning",
                ANNA,
                &[],
                L((2026, 3, 8, 2, 30)),
                Err(NoSuchTime),
            ),
            // Resources: two chairs; a room and a hygienist at once.
            c(
                "one chair left",
                Team,
                "Whitening",
                None,
                &[("Whitening", ANNA, (2026, 3, 9, 10, 0), 60, false)],
                L((2026, 3, 9, 10, 0)),
                ok(BEN),
            ),
            c(
                "both chairs taken",
                Team,
                "Whitening",
                BEN,
                &[
                    ("Whitening", ANNA, (2026, 3, 9, 10, 0), 60, false),
                    ("Whitening", CARA, (2026, 3, 9, 10, 0), 60, false),
                ],
                L((2026, 3, 9, 10, 0)),
                Err(Taken),
            ),
            c(
                "chairs held by buffers",
                Team,
                "Whitening",
                BEN,
                &[
                    ("Whitening", ANNA, (2026, 3, 11, 13, 0), 60, false),
                    ("Whitening", CARA, (2026, 3, 11, 14, 0), 60, false),
                ],
                L((2026, 3, 11, 14, 20)),
                Err(Taken),
            ),
            c(
                "a chair free again after the buffer",
                Team,
                "Whitening",
                BEN,
                &[
                    ("Whitening", ANNA, (2026, 3, 11, 13, 0), 60, false),
                    ("Whitening", CARA, (2026, 3, 11, 14, 0), 60, false),
                ],
                L((2026, 3, 11, 14, 30)),
                ok(BEN),
            ),
            c(
                "the room is taken",
                Team,
                "Surgery",
                CARA,
                &[("Surgery", ANNA, (2026, 3, 9, 9, 0), 90, false)],
                L((2026, 3, 9, 10, 0)),
                Err(Taken),
            ),
            c(
                "the room is free again",
                Team,
                "Surgery",
                None,
                &[("Surgery", ANNA, (2026, 3, 9, 9, 0), 90, false)],
                L((2026, 3, 9, 10, 30)),
                ok(ANNA),
            ),
            c(
                "the hygienist is scaling",
                Team,
                "Surgery",
                None,
                &[("Scaling", BEN, (2026, 3, 9, 9, 0), 30, false)],
                L((2026, 3, 9, 9, 0)),
                Err(Taken),
            ),
            c(
                "the hygienist is free again",
                Team,
                "Surgery",
                None,
                &[("Scaling", BEN, (2026, 3, 9, 9, 0), 30, false)],
                L((2026, 3, 9, 9, 30)),
                ok(ANNA),
            ),
            c(
                "a consultation needs no room",
                Team,
                "Consultation",
                None,
                &[("Surgery", ANNA, (2026, 3, 9, 9, 0), 90, false)],
                L((2026, 3, 9, 9, 30)),
                ok(BEN),
            ),
        ]
    }

    #[test]
    fn the_rules_of_a_clinics_week() {
        let cases = cases();
        assert!(cases.len() >= 60, "{} cases", cases.len());
        for case in cases {
            let b = rule_business(case.biz);
            let a = Availability::new(&b);
            let service = b.service(case.service).unwrap();
            let busy = BusyList::new(case.busy.iter().map(|&(svc, staff, start, minutes, own)| {
                let start = lt(start);
                Busy {
                    id: Some(if own {
                        Uuid::from_u128(OWN)
                    } else {
                        Uuid::new_v4()
                    }),
                    start,
                    end: start + Duration::minutes(minutes),
                    service: (!svc.is_empty()).then(|| Arc::from(svc)),
                    staff: staff.map(Arc::from),
                }
            }));
            let want = Want::service(service)
                .with_staff(case.staff)
                .except(Some(Uuid::from_u128(OWN)));
            let now = lt(case.now);
            let got = match case.at {
                L(l) => a
                    .check_local(
                        day(l.0, l.1, l.2),
                        NaiveTime::from_hms_opt(l.3, l.4, 0).unwrap(),
                        &want,
                        &busy,
                        now,
                    )
                    .map(|(_, staff)| staff),
                U(s) => a.check(s.parse().unwrap(), &want, &busy, now),
            };
            assert_eq!(
                got.as_ref().map(|s| s.as_deref()).map_err(|e| *e),
                case.expect,
                "{} ({:?}, {} with {:?})",
                case.name,
                case.biz,
                case.service,
                case.staff
            );
        }
    }

    fn hms(starts: &[DateTime<Utc>]) -> Vec<String> {
        starts.iter().map(|&t| local_hm(t)).collect()
    }

    #[test]
    fn a_break_is_never_offered_and_splits_the_grid() {
        let mut b = rule_business(Clinic);
        b.slot_minutes = 30;
        let a = Availability::new(&b);
        let want = Want::service(b.service("Consultation").unwrap());
        let starts = hms(&a.free_starts(day(2026, 3, 6), &want, &none(), now()));
        assert!(starts.contains(&"11:30".to_string()));
        assert!(!starts.iter().any(|s| s.starts_with("12:")), "{starts:?}");
        assert!(starts.contains(&"13:00".to_string()));
    }

    #[test]
    fn with_anna_only_annas_hours_are_offered() {
        let b = rule_business(Team);
        let a = Availability::new(&b);
        let cleaning = b.service("Cleaning").unwrap();
        let anna = Want::service(cleaning).with_staff(Some("Anna"));
        // Monday: Anna works 09:00-13:00 less the break; nothing of hers after noon.
        let monday = a.free_starts(day(2026, 3, 9), &anna, &none(), now());
        assert_eq!(local_hm(monday[0]), "09:00");
        assert_eq!(local_hm(*monday.last().unwrap()), "11:15");
        // Asked for Monday 14:00 with Anna: her nearest times, Wednesday afternoon next.
        let near = a.nearest(at((2026, 3, 9), (14, 0)), &anna, &none(), now(), 3);
        assert!(
            near.iter()
                .all(|t| a.check(*t, &anna, &none(), now()) == Ok(Some("Anna".into())))
        );
        // Without a name Ben cleans all day, so the afternoon is offered.
        let anyone = Want::service(cleaning);
        let all = hms(&a.free_starts(day(2026, 3, 9), &anyone, &none(), now()));
        assert!(all.contains(&"15:00".to_string()), "{all:?}");
    }

    #[test]
    fn two_staff_make_two_bookings_at_one_time() {
        let b = rule_business(Team);
        let a = Availability::new(&b);
        let whitening = b.service("Whitening").unwrap();
        let want = Want::service(whitening);
        let t = at((2026, 3, 9), (10, 0));
        let mut busy = BusyList::default();
        let mut with = Vec::new();
        while let Ok(staff) = a.check(t, &want, &busy, now()) {
            let staff = staff.unwrap();
            with.push(staff.clone());
            busy.insert_many([Busy {
                id: Some(Uuid::new_v4()),
                start: t,
                end: t + Duration::minutes(60),
                service: Some("Whitening".into()),
                staff: Some(staff.into()),
            }]);
        }
        // Three people do whitening, but there are two chairs.
        assert_eq!(with, ["Anna", "Ben"]);
    }
}
