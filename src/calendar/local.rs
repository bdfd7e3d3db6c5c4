//! The local calendar: bookings kept in Sara's own database, which forbids overlaps.

use chrono::{DateTime, Utc};
use sara_actors::model::{Booking, BookingId};
use sara_actors::ports::{BoxFuture, Calendar, CalendarError, CalendarWrite};

use crate::store::Database;

/// The `Calendar` port over the bookings table. Overlaps are refused inside the database
/// (SQLite: check and write under one write lock; PostgreSQL: an exclusion constraint), so
/// several writers cannot double-book.
#[derive(Clone, Debug)]
pub struct LocalCalendar {
    db: Database,
}

impl LocalCalendar {
    pub fn new(db: Database) -> LocalCalendar {
        LocalCalendar { db }
    }
}

impl Calendar for LocalCalendar {
    fn upcoming(&self, from: DateTime<Utc>) -> BoxFuture<'_, Result<Vec<Booking>, CalendarError>> {
        Box::pin(self.db.upcoming_bookings(from))
    }

    fn book<'a>(&'a self, booking: &'a Booking) -> BoxFuture<'a, Result<(), CalendarError>> {
        Box::pin(self.db.insert_booking(booking))
    }

    fn write_many<'a>(
        &'a self,
        writes: &'a [CalendarWrite],
    ) -> BoxFuture<'a, Vec<Result<(), CalendarError>>> {
        Box::pin(self.db.write_bookings(writes))
    }

    fn reschedule(
        &self,
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), CalendarError>> {
        Box::pin(self.db.move_booking(id, start, end))
    }

    fn cancel(&self, id: BookingId) -> BoxFuture<'_, Result<(), CalendarError>> {
        Box::pin(self.db.cancel_booking(id))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{Duration, TimeZone};
    use sara_actors::model::{BookingStatus, Phone};
    use uuid::Uuid;

    use super::*;
    use crate::store::testing::on_both_backends;

    fn nine_am() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0)
            .single()
            .expect("a valid test time")
    }

    fn booking(start: DateTime<Utc>, minutes: i64) -> Booking {
        Booking {
            id: Uuid::new_v4(),
            phone: Phone::parse("+15550100001").expect("a valid test number"),
            name: Some("Grace".to_string()),
            email: Some("grace@example.com".to_string()),
            service: "cleaning".to_string(),
            start,
            end: start + Duration::minutes(minutes),
            status: BookingStatus::Confirmed,
            sequence: 0,
            staff: None,
            event_id: None,
        }
    }

    on_both_backends!(
        twenty_concurrent_bookers_of_one_slot_get_exactly_one_booking,
        a_batch_of_moves_cancels_and_bookings_is_decided_in_order,
        booking_the_same_id_twice_leaves_one_booking,
        a_booking_overlapping_a_confirmed_one_is_refused_but_touching_is_fine,
        rescheduling_into_a_taken_slot_keeps_the_old_time,
        cancelling_frees_the_slot_and_is_idempotent,
        upcoming_skips_past_and_cancelled_bookings_in_start_order,
        a_batch_of_bookings_is_decided_in_order_as_one_write_each,
        a_batch_without_overlaps_writes_every_booking,
        a_run_of_cancels_is_decided_per_booking,
    );

    async fn a_batch_of_bookings_is_decided_in_order_as_one_write_each(db: Database) {
        let calendar = LocalCalendar::new(db);
        let existing = booking(nine_am() + Duration::hours(3), 60);
        calendar.book(&existing).await.expect("book");
        let first = booking(nine_am(), 30);
        let overlaps_first = booking(nine_am() + Duration::minutes(15), 30);
        let retry_of_first = first.clone();
        let overlaps_existing = booking(existing.start + Duration::minutes(30), 60);
        let free = booking(nine_am() + Duration::hours(1), 30);
        let batch = vec![
            first.clone(),
            overlaps_first,
            retry_of_first,
            overlaps_existing,
            free.clone(),
            existing.clone(),
        ];
        assert_eq!(
            calendar.write_many(&books(&batch)).await,
            vec![
                Ok(()),
                Err(CalendarError::SlotTaken),
                Ok(()),
                Err(CalendarError::SlotTaken),
                Ok(()),
                Ok(()),
            ]
        );
        let upcoming = calendar.upcoming(nine_am()).await.expect("upcoming");
        assert_eq!(upcoming, vec![first, free, existing]);
    }

    fn books(bookings: &[Booking]) -> Vec<CalendarWrite> {
        bookings.iter().cloned().map(CalendarWrite::Book).collect()
    }

    async fn a_batch_of_moves_cancels_and_bookings_is_decided_in_order(db: Database) {
        let calendar = LocalCalendar::new(db);
        let nine = booking(nine_am(), 30);
        let ten = booking(nine_am() + Duration::hours(1), 30);
        calendar
            .write_many(&books(&[nine.clone(), ten.clone()]))
            .await;
        let eleven = nine_am() + Duration::hours(2);
        let half = Duration::minutes(30);
        let at_nine = booking(nine_am(), 30);
        let at_ten = booking(ten.start, 30);
        let batch = vec![
            // Taken by `nine` until it is cancelled below.
            CalendarWrite::Book(at_nine.clone()),
            CalendarWrite::Cancel(nine.id),
            CalendarWrite::Book(at_nine.clone()),
            // `ten` moves to eleven; its old time is free at once.
            CalendarWrite::Move {
                id: ten.id,
                start: eleven,
                end: eleven + half,
            },
            CalendarWrite::Book(at_ten.clone()),
            // Onto a time the batch took: refused, the booking keeps its time.
            CalendarWrite::Move {
                id: at_ten.id,
                start: nine_am(),
                end: nine_am() + half,
            },
            CalendarWrite::Cancel(Uuid::new_v4()),
            CalendarWrite::Move {
                id: nine.id,
                start: eleven,
                end: eleven + half,
            },
        ];
        assert_eq!(
            calendar.write_many(&batch).await,
            vec![
                Err(CalendarError::SlotTaken),
                Ok(()),
                Ok(()),
                Ok(()),
                Ok(()),
                Err(CalendarError::SlotTaken),
                Err(CalendarError::NotFound),
                Err(CalendarError::NotFound),
            ]
        );
        let upcoming = calendar.upcoming(nine_am()).await.expect("upcoming");
        let times: Vec<(BookingId, DateTime<Utc>)> =
            upcoming.iter().map(|b| (b.id, b.start)).collect();
        assert_eq!(
            times,
            vec![
                (at_nine.id, nine_am()),
                (at_ten.id, ten.start),
                (ten.id, eleven)
            ]
        );
    }

    async fn a_run_of_cancels_is_decided_per_booking(db: Database) {
        let calendar = LocalCalendar::new(db);
        let batch: Vec<Booking> = (0..4)
            .map(|i| booking(nine_am() + Duration::hours(i), 30))
            .collect();
        calendar.write_many(&books(&batch)).await;
        calendar.cancel(batch[3].id).await.expect("cancel");
        let unknown = Uuid::new_v4();
        let cancels = vec![
            CalendarWrite::Cancel(batch[0].id),
            CalendarWrite::Cancel(unknown),
            CalendarWrite::Cancel(batch[1].id),
            // Twice in one run, and one cancelled before: each is cancelled, as one by one.
            CalendarWrite::Cancel(batch[1].id),
            CalendarWrite::Cancel(batch[3].id),
            // The freed slot is bookable again within the same batch.
            CalendarWrite::Book(booking(batch[0].start, 30)),
        ];
        assert_eq!(
            calendar.write_many(&cancels).await,
            vec![
                Ok(()),
                Err(CalendarError::NotFound),
                Ok(()),
                Ok(()),
                Ok(()),
                Ok(())
            ]
        );
        let upcoming = calendar.upcoming(nine_am()).await.expect("upcoming");
        let starts: Vec<DateTime<Utc>> = upcoming.iter().map(|b| b.start).collect();
        assert_eq!(starts, vec![batch[0].start, batch[2].start]);
    }

    async fn a_batch_without_overlaps_writes_every_booking(db: Database) {
        let calendar = LocalCalendar::new(db);
        let batch: Vec<Booking> = (0..40)
            .map(|i| booking(nine_am() + Duration::minutes(30 * i), 30))
            .collect();
        let results = calendar.write_many(&books(&batch)).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(
            calendar.write_many(&books(&batch)).await,
            vec![Ok(()); 40],
            "a retry"
        );
        let upcoming = calendar.upcoming(nine_am()).await.expect("upcoming");
        assert_eq!(upcoming, batch);
    }

    async fn twenty_concurrent_bookers_of_one_slot_get_exactly_one_booking(db: Database) {
        let calendar = Arc::new(LocalCalendar::new(db));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let calendar = Arc::clone(&calendar);
                // Different lengths and offsets, all overlapping 09:10–09:20.
                let b = booking(nine_am() + Duration::minutes(i % 10), 20 + i);
                tokio::spawn(async move { calendar.book(&b).await })
            })
            .collect();
        let mut booked = 0;
        for task in tasks {
            match task.await.expect("the booking task finishes") {
                Ok(()) => booked += 1,
                Err(CalendarError::SlotTaken) => {}
                Err(other) => panic!("unexpected calendar error: {other}"),
            }
        }
        assert_eq!(booked, 1);
        let upcoming = calendar.upcoming(nine_am()).await.expect("upcoming");
        assert_eq!(upcoming.len(), 1);
    }

    async fn booking_the_same_id_twice_leaves_one_booking(db: Database) {
        let calendar = LocalCalendar::new(db);
        let b = booking(nine_am(), 30);
        calendar.book(&b).await.expect("book");
        calendar.book(&b).await.expect("a retried write is fine");
        let upcoming = calendar
            .upcoming(nine_am() - Duration::days(1))
            .await
            .expect("upcoming");
        assert_eq!(upcoming, vec![b]);
    }

    async fn a_booking_overlapping_a_confirmed_one_is_refused_but_touching_is_fine(db: Database) {
        let calendar = LocalCalendar::new(db);
        calendar.book(&booking(nine_am(), 30)).await.expect("book");
        assert_eq!(
            calendar
                .book(&booking(nine_am() + Duration::minutes(29), 30))
                .await,
            Err(CalendarError::SlotTaken)
        );
        // Half-open intervals: 09:30 starts exactly when 09:00–09:30 ends.
        calendar
            .book(&booking(nine_am() + Duration::minutes(30), 30))
            .await
            .expect("back to back");
        calendar
            .book(&booking(nine_am() - Duration::minutes(30), 30))
            .await
            .expect("just before");
    }

    async fn rescheduling_into_a_taken_slot_keeps_the_old_time(db: Database) {
        let calendar = LocalCalendar::new(db);
        let mine = booking(nine_am(), 30);
        let theirs = booking(nine_am() + Duration::hours(2), 30);
        calendar.book(&mine).await.expect("book");
        calendar.book(&theirs).await.expect("book");

        let taken = (
            theirs.start + Duration::minutes(15),
            theirs.end + Duration::minutes(15),
        );
        assert_eq!(
            calendar.reschedule(mine.id, taken.0, taken.1).await,
            Err(CalendarError::SlotTaken)
        );
        let upcoming = calendar.upcoming(nine_am()).await.expect("upcoming");
        assert_eq!(upcoming[0], mine, "the old time is kept");

        // Moving within its own time (overlapping only itself) is fine.
        let later = (
            mine.start + Duration::minutes(15),
            mine.end + Duration::minutes(15),
        );
        calendar
            .reschedule(mine.id, later.0, later.1)
            .await
            .expect("reschedule");
        let upcoming = calendar.upcoming(nine_am()).await.expect("upcoming");
        assert_eq!((upcoming[0].start, upcoming[0].end), later);
        // The old slot is free again.
        calendar
            .book(&booking(nine_am() - Duration::minutes(15), 30))
            .await
            .expect("book the released time");

        assert_eq!(
            calendar.reschedule(Uuid::new_v4(), later.0, later.1).await,
            Err(CalendarError::NotFound)
        );
        calendar.cancel(theirs.id).await.expect("cancel");
        assert_eq!(
            calendar
                .reschedule(theirs.id, theirs.start, theirs.end)
                .await,
            Err(CalendarError::NotFound),
            "a cancelled booking cannot be moved"
        );
    }

    async fn cancelling_frees_the_slot_and_is_idempotent(db: Database) {
        let calendar = LocalCalendar::new(db);
        let b = booking(nine_am(), 30);
        calendar.book(&b).await.expect("book");
        calendar.cancel(b.id).await.expect("cancel");
        calendar.cancel(b.id).await.expect("cancel again");
        assert!(
            calendar
                .upcoming(nine_am())
                .await
                .expect("upcoming")
                .is_empty()
        );
        calendar
            .book(&booking(nine_am(), 30))
            .await
            .expect("the slot is free again");
        assert_eq!(
            calendar.cancel(Uuid::new_v4()).await,
            Err(CalendarError::NotFound)
        );
    }

    async fn upcoming_skips_past_and_cancelled_bookings_in_start_order(db: Database) {
        let calendar = LocalCalendar::new(db);
        let past = booking(nine_am() - Duration::hours(4), 60);
        let late = booking(nine_am() + Duration::hours(5), 30);
        let early = booking(nine_am() + Duration::hours(1), 30);
        let cancelled = booking(nine_am() + Duration::hours(2), 30);
        // Ends exactly at `from`: not upcoming. Started before `from` but still running: upcoming.
        // (A hold, so that it may overlap the running one.)
        let mut ending = booking(nine_am() - Duration::minutes(30), 30);
        ending.status = BookingStatus::Pending;
        let running = booking(nine_am() - Duration::minutes(210), 240);
        let mut held = booking(nine_am() + Duration::hours(3), 30);
        held.status = BookingStatus::Pending;
        held.name = None;
        held.email = None;
        for b in [&past, &late, &early, &cancelled, &ending, &held] {
            calendar.book(b).await.expect("book");
        }
        assert_eq!(calendar.book(&running).await, Err(CalendarError::SlotTaken));
        calendar.cancel(past.id).await.expect("cancel");
        calendar
            .book(&running)
            .await
            .expect("book once the past one is cancelled");
        calendar.cancel(cancelled.id).await.expect("cancel");

        let ids: Vec<Uuid> = calendar
            .upcoming(nine_am())
            .await
            .expect("upcoming")
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(ids, vec![running.id, early.id, held.id, late.id]);
        let all = calendar
            .upcoming(nine_am() - Duration::days(1))
            .await
            .expect("upcoming");
        assert_eq!(all.iter().find(|b| b.id == held.id), Some(&held));
    }
}
