//! Google Calendar with the store as the record (`calendar.provider = "google"`): every
//! booking is a row of the bookings table like a local one (with its Google event id), so
//! `/admin`, stats, reminders, reschedule and cancel read the same rows whichever calendar.
//!
//! - `book` holds the time in the store first (the store's guard against double booking
//!   applies, per staff member), then writes the event with the client-chosen id (the
//!   booking id's hex: a retried insert is a 409 and counts as done). If Google refuses the
//!   time (a hand-made event there) or the write for good (a 4xx), the hold is released (the
//!   row is cancelled; booking the same id again revives it) and the caller hears so. If
//!   Google cannot be reached just now (a timeout, a refused connection, a 5xx, a 429), the
//!   row stays held as `pending` and a `calendar_write` job (written in the same
//!   transaction) retries the same insert until `calendar.write_give_up_minutes`; the
//!   caller gets [`CalendarError::Deferred`], and the customer is told how it ended.
//! - `reschedule` moves the row (guarded), then the event; if Google fails the row moves back.
//! - `cancel` deletes the event first (already deleted is fine), then cancels the row, so a
//!   retry after a failure in between finishes the job.
//! - `upcoming` is the store's rows plus the events staff made by hand in Google (they only
//!   block time); when Google cannot be read, the store's rows alone (writes still ask
//!   Google's freeBusy first).
//! - As the [`CalendarMirror`], it retries held writes and reads the changes staff made in
//!   Google (events.list with a sync token kept in the store; a full read on 410 Gone),
//!   comparing each of Sara's events with its row: only a real difference is a change, so
//!   Sara's own writes echoed back, and a change seen twice, change nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sara_actors::calendar_jobs::{CalendarWriteJob, write_retry_delay};
use sara_actors::model::{Booking, BookingId, BookingStatus};
use sara_actors::ports::{
    BoxFuture, Calendar, CalendarChange, CalendarChanges, CalendarError, CalendarMirror,
    ChangedBooking, Clock, SyncToken,
};

use super::google::{self, ChangesError, GoogleCalendar, WriteError};
use super::local::LocalCalendar;
use crate::store::Database;

/// How a held booking's write is retried (from `[calendar]`).
#[derive(Clone, Debug)]
pub struct WriteRetry {
    /// After this long the hold is released and the customer told.
    pub give_up_after: chrono::Duration,
}

pub struct RecordedCalendar {
    store: LocalCalendar,
    db: Database,
    google: GoogleCalendar,
    clock: Arc<dyn Clock>,
    retry: WriteRetry,
    /// The calendar's id, which names its sync token in the store.
    calendar_id: String,
}

impl RecordedCalendar {
    pub fn new(
        db: Database,
        google: GoogleCalendar,
        clock: Arc<dyn Clock>,
        retry: WriteRetry,
    ) -> RecordedCalendar {
        RecordedCalendar {
            store: LocalCalendar::new(db.clone()),
            calendar_id: google.calendar_id().to_string(),
            db,
            google,
            clock,
            retry,
        }
    }

    /// Keeps a hold whose write failed for now: `pending`, with its retry job. `false` when
    /// that could not be written (the hold is then released by the caller).
    async fn defer(&self, held: &Booking) -> bool {
        let now = self.clock.now();
        let job = CalendarWriteJob {
            booking: held.id,
            give_up_at: now + self.retry.give_up_after,
        };
        let Some(record) = job.record(now + write_retry_delay(1)) else {
            return false;
        };
        match self.db.jobs().defer_booking(held.id, &record, now).await {
            Ok(deferred) => deferred,
            Err(error) => {
                tracing::error!(%error, booking = %held.id, "a held booking's retry could not be written");
                false
            }
        }
    }

    /// The booking `id` while it is held for its calendar write (`pending`).
    async fn held(&self, id: BookingId) -> Result<Option<Booking>, CalendarError> {
        let from = self.clock.now() - chrono::Duration::days(1);
        Ok(self
            .store
            .upcoming(from)
            .await?
            .into_iter()
            .find(|b| b.id == id && b.status == BookingStatus::Pending))
    }

    /// Gives a hold back after Google refused or failed; a failure here is logged (the row
    /// then stays held without an event until the caller's retry books it again).
    async fn release(&self, booking: &Booking) {
        if let Err(error) = self.store.cancel(booking.id).await {
            tracing::error!(%error, booking = %booking.id, "a hold could not be released");
        }
    }
}

impl Calendar for RecordedCalendar {
    fn upcoming(&self, from: DateTime<Utc>) -> BoxFuture<'_, Result<Vec<Booking>, CalendarError>> {
        Box::pin(async move {
            let mut bookings = self.store.upcoming(from).await?;
            match self.google.upcoming(from).await {
                Ok(events) => {
                    let known: HashSet<BookingId> = bookings.iter().map(|b| b.id).collect();
                    bookings.extend(
                        events
                            .into_iter()
                            .filter(|e| google::is_hand_made(e) && !known.contains(&e.id)),
                    );
                    bookings.sort_by_key(|b| b.start);
                }
                Err(error) => {
                    tracing::warn!(%error, "google calendar not read; the store's bookings only");
                }
            }
            Ok(bookings)
        })
    }

    fn book<'a>(&'a self, booking: &'a Booking) -> BoxFuture<'a, Result<(), CalendarError>> {
        Box::pin(async move {
            let held = Booking {
                event_id: Some(google::event_id(booking.id)),
                ..booking.clone()
            };
            self.store.book(&held).await?;
            match self.google.write(&held).await {
                Ok(()) => Ok(()),
                Err(WriteError::Transient(error)) if self.defer(&held).await => {
                    tracing::info!(%error, booking = %booking.id, "google unreachable; booking held, write retried");
                    Err(CalendarError::Deferred)
                }
                Err(error) => {
                    tracing::info!(?error, booking = %booking.id, "google refused the booking; hold released");
                    self.release(&held).await;
                    Err(error.into())
                }
            }
        })
    }

    fn reschedule(
        &self,
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), CalendarError>> {
        Box::pin(async move {
            let before = self
                .store
                .upcoming(self.clock.now() - chrono::Duration::days(1))
                .await?
                .into_iter()
                .find(|b| b.id == id)
                .ok_or(CalendarError::NotFound)?;
            self.store.reschedule(id, start, end).await?;
            if let Err(error) = self.google.reschedule(id, start, end).await {
                if let Err(back) = self.store.reschedule(id, before.start, before.end).await {
                    tracing::error!(%back, booking = %id, "a move could not be undone in the store");
                }
                return Err(error);
            }
            Ok(())
        })
    }

    fn cancel(&self, id: BookingId) -> BoxFuture<'_, Result<(), CalendarError>> {
        Box::pin(async move {
            match self.google.cancel(id).await {
                // No event: the store's row is still the booking to cancel.
                Ok(()) | Err(CalendarError::NotFound) => self.store.cancel(id).await,
                Err(error) => Err(error),
            }
        })
    }
}

impl CalendarMirror for RecordedCalendar {
    fn retry_write(&self, id: BookingId) -> BoxFuture<'_, Result<Option<Booking>, CalendarError>> {
        Box::pin(async move {
            let Some(held) = self.held(id).await? else {
                return Ok(None);
            };
            match self.google.write(&held).await {
                Ok(()) => Ok(Some(held)),
                Err(WriteError::Taken) => Err(CalendarError::SlotTaken),
                Err(WriteError::Transient(detail)) => Err(CalendarError::Unavailable(detail)),
                // Google will not take this event, however often it is asked.
                Err(WriteError::Refused(detail)) => {
                    tracing::warn!(%detail, booking = %id, "google refused a held booking for good");
                    Err(CalendarError::NotFound)
                }
            }
        })
    }

    fn abandon_write(
        &self,
        id: BookingId,
    ) -> BoxFuture<'_, Result<Option<Booking>, CalendarError>> {
        Box::pin(async move {
            let Some(held) = self.held(id).await? else {
                return Ok(None);
            };
            // An attempt whose answer was lost may have written the event: take it out.
            match self.google.cancel(id).await {
                Ok(()) | Err(CalendarError::NotFound) => {}
                Err(error) => {
                    tracing::warn!(%error, booking = %id, "an abandoned booking's event may be left in google");
                }
            }
            Ok(Some(held))
        })
    }

    fn changes(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<CalendarChanges, CalendarError>> {
        Box::pin(async move {
            let stored = (self.db.jobs().sync_token(&self.calendar_id).await)
                .map_err(|e| CalendarError::Unavailable(e.to_string()))?;
            let failed = |detail: String| CalendarError::Unavailable(detail);
            let (read, full) = match self.google.changes(stored.as_deref(), now).await {
                Ok(read) => (read, stored.is_none()),
                Err(ChangesError::Gone) => {
                    tracing::info!("google sync token expired; reading the calendar in full");
                    let read = match self.google.changes(None, now).await {
                        Ok(read) => read,
                        Err(ChangesError::Gone) => {
                            return Err(failed(
                                "events.list: 410 Gone without a sync token".into(),
                            ));
                        }
                        Err(ChangesError::Failed(detail)) => return Err(failed(detail)),
                    };
                    (read, true)
                }
                Err(ChangesError::Failed(detail)) => return Err(failed(detail)),
            };
            let held: HashMap<BookingId, Booking> = self
                .store
                .upcoming(now - chrono::Duration::days(1))
                .await?
                .into_iter()
                .filter(|b| b.event_id.is_some())
                .map(|b| (b.id, b))
                .collect();
            let mut changed: Vec<ChangedBooking> = Vec::new();
            let mut seen = HashSet::new();
            // The last state of each event counts (a page may list an event once per change).
            for event in read.events.iter().rev() {
                if !seen.insert(event.booking) {
                    continue;
                }
                let Some(booking) = held.get(&event.booking) else {
                    continue;
                };
                let change = if event.cancelled {
                    CalendarChange::Cancelled
                } else {
                    match (event.start, event.end) {
                        (Some(start), Some(end))
                            if end > start && (start, end) != (booking.start, booking.end) =>
                        {
                            CalendarChange::Moved { start, end }
                        }
                        _ => continue,
                    }
                };
                changed.push(ChangedBooking {
                    booking: booking.clone(),
                    change,
                });
            }
            changed.reverse();
            Ok(CalendarChanges {
                changed,
                token: SyncToken {
                    calendar: self.calendar_id.clone(),
                    token: read.next_sync_token,
                },
                full,
            })
        })
    }
}
