//! Google Calendar with the store as the record (`calendar.provider = "google"`): every
//! booking is a row of the bookings table like a local one (with its Google event id), so
//! `/admin`, stats, reminders, reschedule and cancel read the same rows whichever calendar.
//!
//! - `book` holds the time in the store first (the store's guard against double booking
//!   applies, per staff member), then writes the event with the client-chosen id (the
//!   booking id's hex: a retried insert is a 409 and counts as done). If Google refuses the
//!   time (a hand-made event there) or cannot be reached, the hold is released (the row is
//!   cancelled; booking the same id again revives it) and the caller hears that the time is
//!   taken or that the calendar is unavailable — never a booking that is only half there.
//! - `reschedule` moves the row (guarded), then the event; if Google fails the row moves back.
//! - `cancel` deletes the event first (already deleted is fine), then cancels the row, so a
//!   retry after a failure in between finishes the job.
//! - `upcoming` is the store's rows plus the events staff made by hand in Google (they only
//!   block time); when Google cannot be read, the store's rows alone (writes still ask
//!   Google's freeBusy first).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sara_actors::model::{Booking, BookingId};
use sara_actors::ports::{BoxFuture, Calendar, CalendarError};

use super::google::{self, GoogleCalendar};
use super::local::LocalCalendar;

pub struct RecordedCalendar {
    store: LocalCalendar,
    google: GoogleCalendar,
}

impl RecordedCalendar {
    pub fn new(store: LocalCalendar, google: GoogleCalendar) -> RecordedCalendar {
        RecordedCalendar { store, google }
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
            match self.google.book(&held).await {
                Ok(()) => Ok(()),
                Err(error) => {
                    tracing::info!(%error, booking = %booking.id, "google refused the booking; hold released");
                    self.release(&held).await;
                    Err(error)
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
                .upcoming(Utc::now() - chrono::Duration::days(1))
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
