//! The ports: what the engine needs from the outside world, as traits. The `sara` crate
//! implements them (rule NLU, SQLite/PostgreSQL store, local/Google calendar); tests use fakes.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Booking, BookingId, Channel, Phone};
use crate::understanding::{NluContext, Understanding};

/// A boxed, sendable future: the ports are used as `Arc<dyn Port>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum NluError {
    #[error("understanding service unavailable: {0}")]
    Unavailable(String),
    #[error("understanding took longer than its deadline")]
    Timeout,
}

/// Turns a message into acts and slots.
pub trait Nlu: Send + Sync + 'static {
    fn understand<'a>(
        &'a self,
        text: &'a str,
        ctx: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>>;

    /// Short name for logs and the turn record ("rules", "openai").
    fn name(&self) -> &'static str;

    /// True when understanding needs no I/O and takes microseconds (the rules). Such an NLU,
    /// configured without a fallback, is asked by the conversation itself: a deadline and a
    /// trip through the AI actor would cost more than the understanding.
    fn answers_at_once(&self) -> bool {
        false
    }
}

/// Answers questions from the business's FAQ.
pub trait KnowledgeBase: Send + Sync + 'static {
    /// The best answer when it is good enough to give; `None` when Sara does not know.
    fn answer(&self, question: &str) -> Option<String>;
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CalendarError {
    #[error("the slot is taken")]
    SlotTaken,
    #[error("no such booking")]
    NotFound,
    #[error("calendar unavailable: {0}")]
    Unavailable(String),
    /// The time is held in the store, but the calendar could not be written just now (a
    /// timeout, a 5xx, a 429, a refused connection): the booking stays `pending` and a job
    /// retries the write; the customer is told once it is confirmed, or that it could not be.
    #[error("the booking is held; the calendar write is retried")]
    Deferred,
}

/// One write to a calendar, as [`Calendar::write_many`] takes them.
#[derive(Clone, Debug, PartialEq)]
pub enum CalendarWrite {
    /// [`Calendar::book`].
    Book(Booking),
    /// [`Calendar::reschedule`].
    Move {
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// [`Calendar::cancel`].
    Cancel(BookingId),
}

/// The business calendar. Writes are idempotent by booking id: writing the same booking
/// twice leaves one booking.
pub trait Calendar: Send + Sync + 'static {
    /// Every booking that is not cancelled and ends after `from`.
    fn upcoming(&self, from: DateTime<Utc>) -> BoxFuture<'_, Result<Vec<Booking>, CalendarError>>;

    /// Writes a confirmed booking; `SlotTaken` when it overlaps another confirmed booking.
    fn book<'a>(&'a self, booking: &'a Booking) -> BoxFuture<'a, Result<(), CalendarError>>;

    /// Makes several writes, decided in order as if each were made on its own one after the
    /// other: one result per write, so a booking that overlaps an earlier one of the same
    /// batch gets `SlotTaken`, and one made after a cancel of the same time gets it. A
    /// calendar that can (the local one) makes them in one transaction; the default makes
    /// them one at a time.
    fn write_many<'a>(
        &'a self,
        writes: &'a [CalendarWrite],
    ) -> BoxFuture<'a, Vec<Result<(), CalendarError>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(writes.len());
            for write in writes {
                results.push(match write {
                    CalendarWrite::Book(booking) => self.book(booking).await,
                    CalendarWrite::Move { id, start, end } => {
                        self.reschedule(*id, *start, *end).await
                    }
                    CalendarWrite::Cancel(id) => self.cancel(*id).await,
                });
            }
            results
        })
    }

    /// Moves a booking; the old time is released only if the new one is free.
    fn reschedule(
        &self,
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), CalendarError>>;

    fn cancel(&self, id: BookingId) -> BoxFuture<'_, Result<(), CalendarError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A conversation as it was last committed.
#[derive(Clone, Debug)]
pub struct StoredConversation {
    /// The serialized `ConversationState`.
    pub state: String,
    /// Bumped by every commit; a commit must name the version it read.
    pub version: i64,
    /// The fencing token (lease epoch) of the last commit that carried one; 0 = none yet.
    pub owner_epoch: i64,
}

/// What a conversation actor reads of a customer when it (re)loads: the last committed
/// conversation (none yet for a new customer) and whether the number opted out of SMS (a
/// number may opt out before it ever had a conversation). One read: the actor then answers
/// from memory, so an SMS turn costs no look-up of its own.
#[derive(Clone, Debug, Default)]
pub struct StoredContact {
    pub conversation: Option<StoredConversation>,
    pub sms_opted_out: bool,
}

/// The audit record of one turn (what `GET /logs/{id}` shows).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TurnRecord {
    pub channel: Channel,
    /// The provider's message id (MessageSid, CallSid + sequence, wamid); unique when present.
    pub provider_id: Option<String>,
    pub text: String,
    /// The whole reply (text, buttons, hand-over, hang-up): a duplicate delivery of
    /// `provider_id` is answered with it again, exactly as the first time.
    pub reply: crate::dialogue::Reply,
    /// The act the policy acted on, e.g. "book".
    pub intent: String,
    /// Which NLU understood the turn ("rules", "openai").
    pub nlu: String,
    /// The full understanding as JSON.
    pub understood: String,
    pub at: DateTime<Utc>,
    pub elapsed_ms: u32,
}

/// One conversation's turn, ready to commit: its new state and its audit record.
#[derive(Clone, Debug)]
pub struct TurnCommit {
    pub phone: Phone,
    /// The version the turn started from; 0 for a conversation never stored.
    pub expected_version: i64,
    /// The fencing token of the lease this turn ran under; 0 = no lease (single instance, or
    /// Redis unreachable). When non-zero the commit also requires the stored `owner_epoch` to
    /// be no greater, and stores this one: a writer whose lease was taken over cannot commit
    /// after the new owner has.
    pub owner_epoch: i64,
    pub state: String,
    pub turn: TurnRecord,
    /// Messages the turn sends outside its HTTP answer: written in the same transaction as
    /// the turn (the group commit included), so both commit or neither does.
    pub outbox: Vec<OutboxMessage>,
    /// Work the turn schedules (reminders, retries), written in the same transaction too.
    pub jobs: Vec<JobRecord>,
    /// Unique-key prefixes of pending jobs the turn makes void (a moved or cancelled
    /// booking's reminders, `reminder:{booking}:`): deleted in the same transaction, before
    /// the turn's own `jobs` are written.
    pub void_jobs: Vec<String>,
    /// Bookings whose attendance the customer confirmed in this turn (an answer to a
    /// reminder), marked in the same transaction.
    pub attendance: Vec<BookingId>,
}

/// Why a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    Reply,
    Confirmation,
    Reminder,
    Notice,
    StaffAlert,
    StaffReply,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Reply => "reply",
            OutboxKind::Confirmation => "confirmation",
            OutboxKind::Reminder => "reminder",
            OutboxKind::Notice => "notice",
            OutboxKind::StaffAlert => "staff_alert",
            OutboxKind::StaffReply => "staff_reply",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxKind> {
        [
            OutboxKind::Reply,
            OutboxKind::Confirmation,
            OutboxKind::Reminder,
            OutboxKind::Notice,
            OutboxKind::StaffAlert,
            OutboxKind::StaffReply,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One outbound message, as a turn asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxMessage {
    /// The customer the message concerns (its contact key orders its messages).
    pub contact: Phone,
    /// Where it goes: an E.164 number (SMS, WhatsApp, voice) or an email address.
    pub recipient: String,
    pub channel: Channel,
    pub kind: OutboxKind,
    /// What the channel's sender needs, as JSON (e.g. a serialized `Reply`); sealed at rest.
    pub payload: String,
    /// Unique across the outbox (e.g. the turn's provider id + part): a second row with
    /// the same key is not written.
    pub idempotency_key: String,
    /// Not sent before this instant.
    pub not_before: DateTime<Utc>,
}

/// One scheduled job, as a turn asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// What to do, e.g. "reminder".
    pub kind: String,
    pub due_at: DateTime<Utc>,
    /// The job's arguments as JSON; sealed at rest.
    pub payload: String,
    /// Unique across the jobs table (e.g. "reminder:{booking}:{offset}"): scheduling the same
    /// job twice leaves one.
    pub unique_key: String,
}

/// A scheduled job claimed for running (see [`JobQueue`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DueJob {
    pub id: i64,
    pub kind: String,
    pub due_at: DateTime<Utc>,
    /// The job's arguments as JSON, opened.
    pub payload: String,
    pub unique_key: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// The jobs table as the scheduler sees it. A claim holds a job for a lease (other
/// instances skip it; a killed instance's claim is taken over once it runs out); each
/// settlement applies only while the claim is still held.
pub trait JobQueue: Send + Sync + 'static {
    /// Claims up to `limit` jobs due at `now` until `lease_until`, the earliest due first.
    fn claim_jobs<'a>(
        &'a self,
        owner: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<DueJob>, StoreError>>;

    /// Finishes the job and writes `outbox` (once per idempotency key) in ONE transaction;
    /// `false`, and nothing written, when `owner` lost the claim.
    fn complete_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        outbox: Vec<OutboxMessage>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Due again at `at`, the claim released.
    fn retry_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Settles the job as `completion` says, all in ONE transaction: its booking writes,
    /// the pending jobs it voids, the jobs and outbox rows it writes (once per key), the
    /// calendar's sync token; then the job is finished, or due again at `again_at` (a
    /// recurring job). `false`, and nothing written, when `owner` lost the claim.
    fn complete_job_with<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        completion: JobCompletion,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Writes jobs that are not written yet (by unique key); an existing one is left alone.
    fn schedule_jobs(&self, jobs: Vec<JobRecord>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Given up: never claimed again.
    fn kill_job<'a>(&'a self, id: i64, owner: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// When the earliest pending job is due; `None` when there is none.
    fn next_job_due(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>>;

    /// The channel and time of the customer's newest message (where a reminder goes, and
    /// whether WhatsApp's 24-hour window is open).
    fn last_inbound<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<Option<LastInbound>, StoreError>>;

    /// Schedules `job` at `now` unless a job with its unique key exists (done or not).
    fn schedule_job(
        &self,
        job: JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Runs the retention job `id` that `owner` holds, in ONE transaction: the message text
    /// of every turn before `cutoff` is redacted (customer text, Sara's reply, staff
    /// messages, what was understood; the turn itself, its time and intent stay, and so do
    /// bookings), the run is recorded in the privacy audit, `next` is scheduled and the job
    /// finished. `None`, and nothing written, when `owner` lost the claim; else how many
    /// turns were redacted.
    fn complete_retention<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        cutoff: DateTime<Utc>,
        next: JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;
}

/// A change to a booking row that a job's completion writes.
#[derive(Clone, Debug, PartialEq)]
pub enum BookingWrite {
    /// A held (`pending`) booking whose calendar write went through: `confirmed`.
    Confirm(BookingId),
    /// Moved (staff moved its event); a cancelled booking is left alone.
    Move {
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// Cancelled (staff deleted its event, or its held time was given up).
    Cancel(BookingId),
}

/// Where a calendar's changes were last read up to (Google's `nextSyncToken`); `None`
/// forgets it, so that the next read is a full one.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncToken {
    pub calendar: String,
    pub token: Option<String>,
}

/// What finishing a job writes, in one transaction (see [`JobQueue::complete_job_with`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobCompletion {
    pub bookings: Vec<BookingWrite>,
    /// Unique-key prefixes of pending jobs made void (a moved or cancelled booking's
    /// reminders), deleted before `jobs` are written.
    pub void_jobs: Vec<String>,
    pub jobs: Vec<JobRecord>,
    pub outbox: Vec<OutboxMessage>,
    pub sync_token: Option<SyncToken>,
    /// `Some`: the job stays pending, due again then, its attempts counted from zero (a
    /// recurring job such as the calendar sync); `None`: done.
    pub again_at: Option<DateTime<Utc>>,
}

/// What staff changed in the calendar to one of Sara's bookings.
#[derive(Clone, Debug, PartialEq)]
pub enum CalendarChange {
    /// Its event now starts and ends at these times.
    Moved {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// Its event was deleted or cancelled.
    Cancelled,
}

/// One booking whose event changed, as the store holds it before the change.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangedBooking {
    pub booking: Booking,
    pub change: CalendarChange,
}

/// What one read of the calendar's changes found.
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarChanges {
    /// Only Sara's bookings whose event differs from the store; events staff made by hand,
    /// and Sara's own writes echoed back, are not here.
    pub changed: Vec<ChangedBooking>,
    /// Where the next read continues (`calendar` names the calendar it belongs to).
    pub token: SyncToken,
    /// Whether this was a full read (first run, or the old token had expired).
    pub full: bool,
}

/// An external calendar that mirrors the store (Google): the background work the scheduler
/// does for it. Nothing here writes the store; the scheduler writes what follows in the
/// job's completion, so a crash in between leaves the job to run again.
pub trait CalendarMirror: Send + Sync + 'static {
    /// Writes a held booking's event again (the same client-chosen id, so an earlier try
    /// that did get through counts as done). The booking as held; `None` when it is no
    /// longer held (cancelled meanwhile). `Unavailable` means try again later; `SlotTaken`
    /// or `NotFound` mean it cannot be written.
    fn retry_write(&self, id: BookingId) -> BoxFuture<'_, Result<Option<Booking>, CalendarError>>;

    /// The held booking given up on, its event removed if an attempt did get through (best
    /// effort); `None` when it is no longer held.
    fn abandon_write(&self, id: BookingId)
    -> BoxFuture<'_, Result<Option<Booking>, CalendarError>>;

    /// Reads what changed in the calendar since the stored token (everything from `now` on
    /// without one, or when it expired).
    fn changes(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<CalendarChanges, CalendarError>>;
}

/// A customer's newest message: on which channel, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastInbound {
    pub channel: Channel,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CommitOutcome {
    Committed {
        version: i64,
    },
    /// Someone else committed this conversation since it was read; nothing was written.
    VersionConflict,
    /// The provider id was already committed; nothing was written. Carries the stored reply,
    /// whole (its buttons, hand-over and hang-up as well as its text).
    Duplicate {
        reply: crate::dialogue::Reply,
    },
    /// A newer lease owner has committed this conversation (stored `owner_epoch` is greater
    /// than the turn's); nothing was written.
    Fenced,
}

/// Where conversations live between turns and across restarts.
pub trait ConversationStore: Send + Sync + 'static {
    /// The customer's conversation and SMS opt-out, read together.
    fn load_contact<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<StoredContact, StoreError>>;

    /// The customer's last committed conversation alone.
    fn load<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<Option<StoredConversation>, StoreError>> {
        Box::pin(async move { Ok(self.load_contact(phone).await?.conversation) })
    }

    /// Records that the number opted out of SMS (`out`: STOP) or back in (START); `true`
    /// when that changed anything (a repeated STOP does not). Only the conversation's actor
    /// calls it, under the conversation's lease, so the opt-out it holds in memory is the
    /// stored one.
    fn set_sms_opt_out<'a>(
        &'a self,
        phone: &'a Phone,
        out: bool,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Commits the turns of many conversations in one transaction (group commit). Each turn
    /// gets its own outcome; a conflict on one does not stop the others.
    fn commit(
        &self,
        batch: Vec<TurnCommit>,
    ) -> BoxFuture<'_, Result<Vec<CommitOutcome>, StoreError>>;

    /// The stored reply, whole, of an already processed provider message id.
    fn processed_reply<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::dialogue::Reply>, StoreError>>;
}

/// What happened to a booking, for confirmations sent outside the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingChange {
    Booked,
    Moved,
    Cancelled,
}

/// Tells people outside the conversation what happened in it: the customer about a booking
/// change (an email with a calendar invite), the staff about a hand-over. It only composes the
/// message: the engine writes it to the outbox in the turn's commit, and the outbox relay
/// sends it. `key` is the message's idempotency key (the turn's provider id + part).
pub trait Notifier: Send + Sync + 'static {
    /// `booking` as it is after the change, its `sequence` counted with it.
    fn booking_changed(
        &self,
        booking: &Booking,
        change: BookingChange,
        key: String,
        at: DateTime<Utc>,
    ) -> Option<crate::outbound::OutboundMessage>;

    /// A customer asked for a person on `channel`.
    fn handover_requested(
        &self,
        phone: &Phone,
        channel: Channel,
        key: String,
    ) -> Option<crate::outbound::OutboundMessage>;

    /// Whether `handover_requested` reaches a person (so Sara may say the team will reply).
    fn alerts_staff(&self) -> bool;
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum LeaseError {
    /// Someone else held the lease for the whole wait.
    #[error("the conversation is busy elsewhere")]
    Busy,
    /// The lease service (Redis) did not answer in time.
    #[error("lease service unavailable: {0}")]
    Unavailable(String),
}

/// A granted ownership lease over one conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// The fencing token: strictly greater than every earlier grant for the same phone.
    pub epoch: i64,
    /// Identifies this grant, so that only its holder can release it.
    pub token: String,
}

/// Per-conversation ownership across instances: one holder at a time, each grant with a
/// larger fencing token. Leases expire on their own (a crashed holder blocks nobody for
/// long); every wait is bounded.
pub trait Leases: Send + Sync + 'static {
    /// Waits at most `wait` for the phone's lease; `Busy` when it stayed taken.
    fn acquire<'a>(
        &'a self,
        phone: &'a Phone,
        wait: std::time::Duration,
    ) -> BoxFuture<'a, Result<Lease, LeaseError>>;

    /// Gives the lease back early; a lease that already expired (or was taken over) is left
    /// alone.
    fn release<'a>(&'a self, phone: &'a Phone, lease: &'a Lease) -> BoxFuture<'a, ()>;

    /// Makes the next grants for `phone` larger than `epoch` (the counter was lost, e.g. by a
    /// Redis restart without persistence, while the store remembers a larger token).
    fn raise<'a>(&'a self, phone: &'a Phone, epoch: i64) -> BoxFuture<'a, Result<(), LeaseError>>;
}

/// The time, so that tests can choose it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The one clock every part of Sara reads: another clock (the system's) moved forward by an
/// offset that only grows. `POST /admin/debug/clock` advances it, so availability, notice,
/// form expiry, reminders and the outbox all see the same later "now".
pub struct OffsetClock {
    base: std::sync::Arc<dyn Clock>,
    offset_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    pub fn new(base: std::sync::Arc<dyn Clock>) -> OffsetClock {
        OffsetClock {
            base,
            offset_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Moves the clock `by` forward (a negative `by` is ignored: it never goes back); the
    /// new now.
    pub fn advance(&self, by: chrono::Duration) -> DateTime<Utc> {
        let ms = by.num_milliseconds().max(0);
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::AcqRel);
        self.now()
    }

    /// The base clock's now plus the offset.
    pub fn now(&self) -> DateTime<Utc> {
        self.base.now() + self.offset()
    }

    /// How far ahead of its base clock it runs.
    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.offset_ms.load(std::sync::atomic::Ordering::Acquire))
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        OffsetClock::now(self)
    }
}
