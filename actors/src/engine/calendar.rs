//! The calendar actor: one per calendar. It serialises bookings (one write at a time) and
//! keeps the upcoming bookings in memory so that every turn can see what is busy without a
//! store round trip. The store behind the `Calendar` port still refuses overlaps, so a stale
//! view here can cost a re-offer, never a double booking.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use crate::model::{Booking, BookingId, BookingStatus, Interval, Phone};
use crate::ports::{Calendar, CalendarError, Clock};

pub struct CalendarActor;

pub struct CalendarArgs {
    pub calendar: Arc<dyn Calendar>,
    pub clock: Arc<dyn Clock>,
    /// How often the view is reloaded to see bookings made elsewhere (other instances, staff).
    pub refresh: Duration,
}

/// What one turn sees of the calendar.
#[derive(Clone, Debug, Default)]
pub struct CalendarView {
    pub busy: Arc<[Interval]>,
    /// The caller's own upcoming bookings, soonest first.
    pub mine: Vec<Booking>,
}

pub enum CalendarMsg {
    View {
        phone: Phone,
        reply: RpcReplyPort<CalendarView>,
    },
    Book {
        booking: Booking,
        reply: RpcReplyPort<Result<(), CalendarError>>,
    },
    Reschedule {
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reply: RpcReplyPort<Result<(), CalendarError>>,
    },
    Cancel {
        id: BookingId,
        reply: RpcReplyPort<Result<(), CalendarError>>,
    },
    Refresh,
    /// A booking write finished (sent by the task that ran it).
    Booked {
        booking: Booking,
        result: Result<(), CalendarError>,
        reply: RpcReplyPort<Result<(), CalendarError>>,
    },
}

pub struct CalendarState {
    calendar: Arc<dyn Calendar>,
    clock: Arc<dyn Clock>,
    /// Upcoming bookings that are not cancelled.
    bookings: HashMap<BookingId, Booking>,
    /// The ids in `bookings` of each phone, so a view need not look at everyone's.
    by_phone: HashMap<Phone, Vec<BookingId>>,
    /// Confirmed intervals of `bookings` sorted by start, shared with every turn until the
    /// next change. Kept up to date one booking at a time rather than rebuilt.
    busy: Arc<[Interval]>,
    /// The booking writer's queue: bookings are written one at a time, in order, by one task
    /// beside the actor, so views never wait behind a write.
    writes: mpsc::UnboundedSender<PendingBooking>,
}

type PendingBooking = (Booking, RpcReplyPort<Result<(), CalendarError>>);

/// Writes queued bookings one after another and reports each result to the actor.
async fn write_bookings(
    calendar: Arc<dyn Calendar>,
    actor: ActorRef<CalendarMsg>,
    mut queue: mpsc::UnboundedReceiver<PendingBooking>,
) {
    while let Some((booking, reply)) = queue.recv().await {
        let result = calendar.book(&booking).await;
        if actor
            .send_message(CalendarMsg::Booked {
                booking,
                result,
                reply,
            })
            .is_err()
        {
            break;
        }
    }
}

fn interval(b: &Booking) -> Interval {
    Interval {
        start: b.start,
        end: b.end,
    }
}

impl CalendarState {
    /// Replaces everything with `bookings` (a reload from the store).
    fn set_all(&mut self, bookings: Vec<Booking>) {
        let mut busy: Vec<Interval> = bookings
            .iter()
            .filter(|b| b.status == BookingStatus::Confirmed)
            .map(interval)
            .collect();
        busy.sort_unstable_by_key(|i| (i.start, i.end));
        self.busy = Arc::from(busy);
        self.by_phone.clear();
        for b in &bookings {
            self.by_phone.entry(b.phone.clone()).or_default().push(b.id);
        }
        self.bookings = bookings.into_iter().map(|b| (b.id, b)).collect();
    }

    /// Adds or replaces one booking.
    fn insert(&mut self, booking: Booking) {
        self.remove(booking.id);
        if booking.status == BookingStatus::Confirmed {
            let mut busy = self.busy.to_vec();
            let i = interval(&booking);
            busy.insert(
                busy.partition_point(|b| (b.start, b.end) < (i.start, i.end)),
                i,
            );
            self.busy = Arc::from(busy);
        }
        self.by_phone
            .entry(booking.phone.clone())
            .or_default()
            .push(booking.id);
        self.bookings.insert(booking.id, booking);
    }

    /// Forgets one booking (cancelled, or about to be replaced); its interval, if confirmed,
    /// is no longer busy.
    fn remove(&mut self, id: BookingId) -> Option<Booking> {
        let old = self.bookings.remove(&id)?;
        if let Some(ids) = self.by_phone.get_mut(&old.phone) {
            ids.retain(|&b| b != id);
            if ids.is_empty() {
                self.by_phone.remove(&old.phone);
            }
        }
        if old.status == BookingStatus::Confirmed {
            let i = interval(&old);
            let at = self
                .busy
                .partition_point(|b| (b.start, b.end) < (i.start, i.end));
            if self.busy.get(at) == Some(&i) {
                let mut busy = self.busy.to_vec();
                busy.remove(at);
                self.busy = Arc::from(busy);
            }
        }
        Some(old)
    }

    async fn reload(&mut self) -> Result<(), CalendarError> {
        let from = self.clock.now() - chrono::Duration::days(1);
        let bookings = self.calendar.upcoming(from).await?;
        self.set_all(bookings);
        Ok(())
    }

    fn view(&self, phone: &Phone) -> CalendarView {
        let now = self.clock.now();
        let mut mine: Vec<Booking> = self
            .by_phone
            .get(phone)
            .into_iter()
            .flatten()
            .filter_map(|id| self.bookings.get(id))
            .filter(|b| b.end > now && b.status != BookingStatus::Cancelled)
            .cloned()
            .collect();
        mine.sort_by_key(|b| b.start);
        CalendarView {
            busy: self.busy.clone(),
            mine,
        }
    }
}

impl Actor for CalendarActor {
    type Msg = CalendarMsg;
    type State = CalendarState;
    type Arguments = CalendarArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CalendarMsg>,
        args: CalendarArgs,
    ) -> Result<CalendarState, ActorProcessingErr> {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_bookings(args.calendar.clone(), myself.clone(), queue));
        let mut state = CalendarState {
            calendar: args.calendar,
            clock: args.clock,
            bookings: HashMap::new(),
            by_phone: HashMap::new(),
            busy: Arc::from(Vec::new()),
            writes,
        };
        if let Err(error) = state.reload().await {
            // Start anyway: the next refresh tries again and the store still guards writes.
            tracing::warn!(%error, "calendar not loaded at start");
        }
        myself.send_interval(args.refresh, || CalendarMsg::Refresh);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CalendarMsg>,
        message: CalendarMsg,
        state: &mut CalendarState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CalendarMsg::View { phone, reply } => {
                let _ = reply.send(state.view(&phone));
            }
            CalendarMsg::Book { booking, reply } => {
                // Every turn asks this actor for a view; a write waiting for the database's
                // write lock must not hold them up, so the writer task does it (in order).
                if let Err(mpsc::error::SendError((_, reply))) = state.writes.send((booking, reply))
                {
                    let _ = reply.send(Err(CalendarError::Unavailable(
                        "booking writer stopped".into(),
                    )));
                }
            }
            CalendarMsg::Booked {
                booking,
                result,
                reply,
            } => {
                match &result {
                    Ok(()) => state.insert(booking),
                    // Someone else took it: our view is stale, so look again.
                    Err(CalendarError::SlotTaken) => {
                        let _ = state.reload().await;
                    }
                    Err(_) => {}
                }
                let _ = reply.send(result);
            }
            CalendarMsg::Reschedule {
                id,
                start,
                end,
                reply,
            } => {
                let result = state.calendar.reschedule(id, start, end).await;
                match &result {
                    Ok(()) => {
                        if let Some(mut b) = state.remove(id) {
                            b.start = start;
                            b.end = end;
                            state.insert(b);
                        }
                    }
                    Err(CalendarError::SlotTaken | CalendarError::NotFound) => {
                        let _ = state.reload().await;
                    }
                    Err(_) => {}
                }
                let _ = reply.send(result);
            }
            CalendarMsg::Cancel { id, reply } => {
                let result = state.calendar.cancel(id).await;
                if result.is_ok() {
                    state.remove(id);
                }
                let _ = reply.send(result);
            }
            CalendarMsg::Refresh => {
                if let Err(error) = state.reload().await {
                    tracing::warn!(%error, "calendar refresh failed");
                }
            }
        }
        Ok(())
    }
}
