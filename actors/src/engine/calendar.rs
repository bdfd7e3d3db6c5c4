//! The calendar actor: one per calendar. It serialises writes (bookings, moves and cancels,
//! made in order by a task beside it, those that queue up together in one batch) and keeps
//! the upcoming bookings in memory on a [`CalendarBoard`] that every
//! turn reads directly, so seeing what is busy costs neither a store round trip nor a trip
//! through this actor's mailbox (and a reload never holds turns up). Only this actor writes
//! the board. The store behind the `Calendar` port still refuses overlaps, so a stale board
//! can cost a re-offer, never a double booking.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use crate::availability::{Busy, BusyList};
use crate::model::{Booking, BookingId, BookingStatus, Phone};
use crate::ports::{Calendar, CalendarError, CalendarWrite, Clock};

pub struct CalendarActor;

#[derive(Clone)]
pub struct CalendarArgs {
    pub calendar: Arc<dyn Calendar>,
    pub clock: Arc<dyn Clock>,
    /// How often the view is reloaded to see bookings made elsewhere (other instances, staff).
    pub refresh: Duration,
    /// Where the actor publishes what turns see (see [`CalendarBoard`]).
    pub board: Arc<CalendarBoard>,
}

/// What one turn sees of the calendar.
#[derive(Clone, Debug, Default)]
pub struct CalendarView {
    pub busy: Arc<BusyList>,
    /// The caller's own upcoming bookings, soonest first.
    pub mine: Vec<Booking>,
}

pub enum CalendarMsg {
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
    /// A batch of writes finished (sent by the task that made it), in queue order.
    Written(Vec<Written>),
    /// Fault injection: the actor panics (its supervisor starts a new one).
    Panic,
}

pub struct CalendarState {
    calendar: Arc<dyn Calendar>,
    clock: Arc<dyn Clock>,
    board: Arc<CalendarBoard>,
    /// The writer's queue: writes are made in order by one task beside the actor (those
    /// that queue up together in one batch), so views never wait behind a write and a
    /// cancel never waits in the mailbox behind another one's transaction.
    writes: mpsc::UnboundedSender<PendingWrite>,
}

type PendingWrite = (CalendarWrite, RpcReplyPort<Result<(), CalendarError>>);

/// A write the writer task made, with the calendar's verdict and who waits for it.
pub struct Written {
    write: CalendarWrite,
    result: Result<(), CalendarError>,
    reply: RpcReplyPort<Result<(), CalendarError>>,
}

/// How many queued writes one batch takes at most.
const MAX_WRITE_BATCH: usize = 128;

/// Makes queued writes in order and reports each result to the actor. The writes that
/// queued up while the previous batch ran go together in one [`Calendar::write_many`] (one
/// transaction for the local calendar), so a busy hour is not one commit per write, and on
/// SQLite not one wait for the write lock per write.
async fn write_batches(
    calendar: Arc<dyn Calendar>,
    actor: ActorRef<CalendarMsg>,
    mut queue: mpsc::UnboundedReceiver<PendingWrite>,
) {
    let mut pending: Vec<PendingWrite> = Vec::with_capacity(MAX_WRITE_BATCH);
    while queue.recv_many(&mut pending, MAX_WRITE_BATCH).await > 0 {
        let (writes, replies): (Vec<CalendarWrite>, Vec<_>) = pending.drain(..).unzip();
        let t0 = std::time::Instant::now();
        let mut results = calendar.write_many(&writes).await;
        tracing::debug!(
            writes = writes.len(),
            micros = t0.elapsed().as_micros() as u64,
            "calendar batch written"
        );
        if results.len() != writes.len() {
            tracing::error!(
                expected = writes.len(),
                got = results.len(),
                "calendar returned a wrong number of write results"
            );
            results =
                vec![Err(CalendarError::Unavailable("calendar result count".into())); writes.len()];
        }
        let written = writes
            .into_iter()
            .zip(replies)
            .zip(results)
            .map(|((write, reply), result)| Written {
                write,
                result,
                reply,
            })
            .collect();
        if actor.send_message(CalendarMsg::Written(written)).is_err() {
            return;
        }
    }
}

/// Whether a booking holds its time (held for confirmation, or confirmed).
fn holds(b: &Booking) -> bool {
    b.status != BookingStatus::Cancelled
}

/// What turns see of the calendar: the upcoming bookings, shared. Written only by the
/// calendar actor, read by every turn (a short read lock; no `await` is ever held under it).
#[derive(Default)]
pub struct CalendarBoard {
    board: RwLock<Board>,
}

#[derive(Default)]
struct Board {
    /// Upcoming bookings that are not cancelled.
    bookings: HashMap<BookingId, Booking>,
    /// The ids in `bookings` of each phone, so a view need not look at everyone's.
    by_phone: HashMap<Phone, Vec<BookingId>>,
    /// What `bookings` hold (pending and confirmed ones, with service and staff) sorted by
    /// start, shared with every turn until the next change.
    busy: Arc<BusyList>,
}

impl CalendarBoard {
    /// The busy times and `phone`'s own upcoming bookings (soonest first) as of `now`.
    pub fn view(&self, phone: &Phone, now: DateTime<Utc>) -> CalendarView {
        let board = self
            .board
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut mine: Vec<Booking> = board
            .by_phone
            .get(phone)
            .into_iter()
            .flatten()
            .filter_map(|id| board.bookings.get(id))
            .filter(|b| b.end > now && b.status != BookingStatus::Cancelled)
            .cloned()
            .collect();
        mine.sort_by_key(|b| b.start);
        CalendarView {
            busy: board.busy.clone(),
            mine,
        }
    }

    /// Changes the board (the calendar actor only).
    fn change<T>(&self, change: impl FnOnce(&mut Board) -> T) -> T {
        let mut board = self
            .board
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut board)
    }
}

impl Board {
    /// Replaces everything with `bookings` (a reload from the store).
    fn set_all(&mut self, bookings: Vec<Booking>) {
        self.busy = Arc::new(BusyList::new(
            bookings.iter().filter(|b| holds(b)).map(Busy::of),
        ));
        self.by_phone.clear();
        for b in &bookings {
            self.by_phone.entry(b.phone.clone()).or_default().push(b.id);
        }
        self.bookings = bookings.into_iter().map(|b| (b.id, b)).collect();
    }

    /// Applies what the calendar accepted of a batch, in order: bookings added (a deferred
    /// one as pending: its time is held), moves and cancels. The shared busy list is copied
    /// once for the batch, not once per write.
    fn apply(&mut self, accepted: Vec<(CalendarWrite, Result<(), CalendarError>)>) {
        if accepted.is_empty() {
            return;
        }
        let mut busy = (*self.busy).clone();
        for (write, result) in accepted {
            let booking = match (write, result) {
                (CalendarWrite::Book(booking), Ok(())) => booking,
                (CalendarWrite::Book(booking), Err(_)) => Booking {
                    status: BookingStatus::Pending,
                    ..booking
                },
                (CalendarWrite::Move { id, start, end }, _) => {
                    let Some(mut moved) = self.bookings.get(&id).cloned() else {
                        continue;
                    };
                    moved.start = start;
                    moved.end = end;
                    moved.sequence = moved.sequence.saturating_add(1);
                    moved
                }
                (CalendarWrite::Cancel(id), _) => {
                    if let Some(old) = self.forget(id)
                        && holds(&old)
                    {
                        busy.remove(id);
                    }
                    continue;
                }
            };
            if let Some(old) = self.forget(booking.id)
                && holds(&old)
            {
                busy.remove(old.id);
            }
            if holds(&booking) {
                busy.insert_many([Busy::of(&booking)]);
            }
            self.by_phone
                .entry(booking.phone.clone())
                .or_default()
                .push(booking.id);
            self.bookings.insert(booking.id, booking);
        }
        self.busy = Arc::new(busy);
    }

    /// Drops a booking from the maps, leaving the busy list alone.
    fn forget(&mut self, id: BookingId) -> Option<Booking> {
        let old = self.bookings.remove(&id)?;
        if let Some(ids) = self.by_phone.get_mut(&old.phone) {
            ids.retain(|&b| b != id);
            if ids.is_empty() {
                self.by_phone.remove(&old.phone);
            }
        }
        Some(old)
    }
}

impl CalendarState {
    /// Hands a write to the writer task (in order).
    fn queue(
        &self,
        write: CalendarWrite,
        reply: RpcReplyPort<Result<(), CalendarError>>,
    ) -> Result<(), ActorProcessingErr> {
        // Reads and refreshes must not wait behind a write waiting for the database's write
        // lock, so the writer task makes it.
        if let Err(mpsc::error::SendError((_, reply))) = self.writes.send((write, reply)) {
            // The writer task is gone (the calendar port panicked under it): this actor
            // fails so its supervisor starts a new one, with a new writer.
            let _ = reply.send(Err(CalendarError::Unavailable(
                "calendar writer stopped".into(),
            )));
            return Err("the calendar writer task stopped".into());
        }
        Ok(())
    }

    async fn reload(&mut self) -> Result<(), CalendarError> {
        let from = self.clock.now() - chrono::Duration::days(1);
        let bookings = self.calendar.upcoming(from).await?;
        self.board.change(|board| board.set_all(bookings));
        Ok(())
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
        tokio::spawn(write_batches(args.calendar.clone(), myself.clone(), queue));
        let mut state = CalendarState {
            calendar: args.calendar,
            clock: args.clock,
            board: args.board,
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
            CalendarMsg::Book { booking, reply } => {
                state.queue(CalendarWrite::Book(booking), reply)?;
            }
            CalendarMsg::Reschedule {
                id,
                start,
                end,
                reply,
            } => {
                state.queue(CalendarWrite::Move { id, start, end }, reply)?;
            }
            CalendarMsg::Cancel { id, reply } => {
                state.queue(CalendarWrite::Cancel(id), reply)?;
            }
            CalendarMsg::Written(written) => {
                let mut accepted = Vec::with_capacity(written.len());
                let mut stale = false;
                let mut replies = Vec::with_capacity(written.len());
                for Written {
                    write,
                    result,
                    reply,
                } in written
                {
                    match &result {
                        // Held in the store while its calendar write is retried: the time
                        // is taken, not yet confirmed.
                        Ok(()) | Err(CalendarError::Deferred) => {
                            accepted.push((write, result.clone()));
                        }
                        // Someone else took the time this view showed free, or the booking
                        // was changed elsewhere.
                        Err(CalendarError::SlotTaken | CalendarError::NotFound) => stale = true,
                        Err(CalendarError::Unavailable(_)) => {}
                    }
                    replies.push((reply, result));
                }
                state.board.change(|board| board.apply(accepted));
                if stale {
                    // Look again (once).
                    let _ = state.reload().await;
                }
                // Only now, so that the callers' next views include their changes.
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            CalendarMsg::Panic => panic!("fault injection: calendar actor panic"),
            CalendarMsg::Refresh => {
                if let Err(error) = state.reload().await {
                    tracing::warn!(%error, "calendar refresh failed");
                }
            }
        }
        Ok(())
    }
}
