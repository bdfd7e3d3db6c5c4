//! The scheduler: one per instance, supervised by the engine's root like the outbox relay.
//! It claims due jobs through the [`JobQueue`] port (a claim holds a job for a lease; a
//! killed instance's claim is taken over once it runs out) and runs them. A reminder job
//! becomes outbox rows (kind `reminder`, keyed by the job's unique key) written in the same
//! transaction that finishes the job, so each reminder is sent once across instances and
//! restarts; the relay then sends them.
//!
//! At run time a reminder is checked again: its booking must still be confirmed at the start
//! the job was made for (a move or a cancel voids the jobs in its own commit, and this check
//! covers a job claimed before that commit), and its appointment must not have begun. It goes
//! on the channel the customer last used: WhatsApp as text with buttons inside the 24-hour
//! window, the configured template outside it (SMS when there is none); SMS through the
//! Twilio REST sender for SMS and voice callers; and by email too when the booking has an
//! address.
//!
//! It sleeps until the earliest pending job is due (at most `poll`), and is woken by
//! [`SchedulerMsg::Wake`] (the debug clock moved) or asked to run a pass now
//! ([`SchedulerMsg::Flush`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::EngineShared;
use crate::calendar_jobs::{self, CALENDAR_SYNC_JOB, CALENDAR_WRITE_JOB, CalendarWriteJob};
use crate::model::{Booking, BookingStatus, Channel};
use crate::outbound::{OutboundKind, OutboundMessage, Recipient};
use crate::ports::{
    BookingWrite, Calendar, CalendarChange, CalendarError, CalendarMirror, Clock, DueJob,
    JobCompletion, JobQueue, LastInbound, OutboxKind, OutboxMessage, StoreError,
};
use crate::reminders::{
    self, REMINDER_JOB, ReminderAction, ReminderJob, ReminderTemplate, reminder_action,
};
use crate::retention::{self, RETENTION_JOB, RetentionSettings};

pub struct Scheduler;

#[derive(Clone)]
pub struct SchedulerArgs {
    pub queue: Arc<dyn JobQueue>,
    /// Where a reminder's booking is looked up again when it is due.
    pub calendar: Arc<dyn Calendar>,
    pub clock: Arc<dyn Clock>,
    /// The channels the relay can send on; a reminder is written only for those.
    pub channels: Vec<Channel>,
    pub template: Option<ReminderTemplate>,
    /// Who holds a claim: this instance, the same across scheduler restarts.
    pub owner: String,
    pub lease: Duration,
    /// The longest sleep between passes.
    pub poll: Duration,
    /// Jobs claimed per round of a pass.
    pub batch: i64,
    /// How long message text is kept; `None` = no retention runs are scheduled (a run
    /// already in the table finishes without redacting).
    pub retention: Option<RetentionSettings>,
    /// The calendar that mirrors the store (Google): its held bookings' writes are retried
    /// and its changes read by jobs run here. `None` for the local calendar.
    pub mirror: Option<Arc<dyn CalendarMirror>>,
    /// How often the mirror's changes are read (`calendar.sync_secs`).
    pub sync_every: Duration,
}

pub enum SchedulerMsg {
    /// A timer went off; only the newest timer (`generation`) runs a pass.
    Tick(u64),
    /// Something may have become due (the debug clock moved): a pass now.
    Wake,
    /// Runs a pass and answers with the number of jobs it ran (tests, the debug clock).
    Flush(ractor::RpcReplyPort<usize>),
}

pub struct SchedulerState {
    args: SchedulerArgs,
    shared: Arc<EngineShared>,
    /// The generation of the one timer that counts.
    generation: u64,
}

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = (SchedulerArgs, Arc<EngineShared>);

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        (args, shared): (SchedulerArgs, Arc<EngineShared>),
    ) -> Result<SchedulerState, ActorProcessingErr> {
        if args.retention.is_some() {
            // Every instance schedules the same next run (its key is the local day).
            let now = args.clock.now();
            let next = retention::next_job(shared.business.timezone, now);
            if let Err(error) = args.queue.schedule_job(next, now).await {
                tracing::warn!(%error, "retention run not scheduled; the next start tries again");
            }
        }
        if args.mirror.is_some() {
            // One sync job for all instances: whoever claims it syncs, the others skip it.
            let job = calendar_jobs::sync_job(args.clock.now());
            if let Err(error) = args.queue.schedule_jobs(vec![job]).await {
                tracing::warn!(%error, "calendar sync job not written; the next start tries again");
            }
        }
        myself.send_message(SchedulerMsg::Wake)?;
        Ok(SchedulerState {
            args,
            shared,
            generation: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        message: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SchedulerMsg::Tick(generation) if generation != state.generation => return Ok(()),
            SchedulerMsg::Tick(_) | SchedulerMsg::Wake => {
                pass(state).await?;
            }
            SchedulerMsg::Flush(reply) => {
                let ran = pass(state).await?;
                let _ = reply.send(ran);
            }
        }
        let sleep = next_sleep(&state.args).await;
        state.generation += 1;
        let generation = state.generation;
        myself.send_after(sleep, move || SchedulerMsg::Tick(generation));
        Ok(())
    }
}

/// Until the earliest pending job is due, at most `poll` (and at least a moment, so a job
/// that stays due after a failed run does not spin).
async fn next_sleep(args: &SchedulerArgs) -> Duration {
    let floor = Duration::from_millis(50);
    match args.queue.next_job_due().await {
        Ok(Some(due)) => (due - args.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .clamp(floor, args.poll.max(floor)),
        Ok(None) => args.poll,
        Err(error) => {
            tracing::warn!(%error, "next job unknown");
            args.poll
        }
    }
}

/// Claims and runs due jobs until none is left; the number run.
async fn pass(state: &SchedulerState) -> Result<usize, ActorProcessingErr> {
    let args = &state.args;
    let mut ran = 0;
    loop {
        let now = args.clock.now();
        let lease_until = now + chrono::Duration::from_std(args.lease).unwrap_or_default();
        let jobs = match args
            .queue
            .claim_jobs(&args.owner, now, lease_until, args.batch)
            .await
        {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, "job claim failed");
                return Ok(ran);
            }
        };
        let claimed = jobs.len();
        for job in jobs {
            run(state, job).await;
            ran += 1;
        }
        if claimed < usize::try_from(args.batch).unwrap_or(1) {
            return Ok(ran);
        }
    }
}

/// What became of one job.
async fn run(state: &SchedulerState, job: DueJob) {
    let args = &state.args;
    let settled = if job.kind == REMINDER_JOB {
        run_reminder(state, &job).await
    } else if job.kind == RETENTION_JOB {
        run_retention(state, &job).await
    } else if job.kind == CALENDAR_WRITE_JOB && args.mirror.is_some() {
        run_calendar_write(state, &job).await
    } else if job.kind == CALENDAR_SYNC_JOB && args.mirror.is_some() {
        run_calendar_sync(state, &job).await
    } else if job.kind == CALENDAR_SYNC_JOB {
        // The calendar is local now: nothing to sync. The job stays for a later switch back.
        args.queue
            .retry_job(
                job.id,
                &args.owner,
                args.clock.now() + chrono::Duration::days(1),
            )
            .await
    } else {
        tracing::error!(kind = %job.kind, "job of an unknown kind given up");
        args.queue.kill_job(job.id, &args.owner).await
    };
    match settled {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = job.id, "job claim was taken over before settling"),
        // The claim runs out and the job is tried again; its outbox rows are keyed, so a
        // second run sends nothing twice.
        Err(error) => tracing::error!(%error, job = job.id, "job settle failed"),
    }
}

/// Redacts the text older than the window and schedules the next run (see [`retention`]).
async fn run_retention(
    state: &SchedulerState,
    job: &DueJob,
) -> Result<bool, crate::ports::StoreError> {
    let args = &state.args;
    let now = args.clock.now();
    let Some(settings) = args.retention else {
        return args
            .queue
            .complete_job(job.id, &args.owner, Vec::new(), now)
            .await;
    };
    let next = retention::next_job(state.shared.business.timezone, now);
    let done = args
        .queue
        .complete_retention(job.id, &args.owner, settings.cutoff(now), next, now)
        .await?;
    if let Some(turns) = done {
        tracing::info!(
            turns,
            days = settings.days,
            "retention run redacted old message text"
        );
        metrics::counter!("sara_retention_redacted_turns_total").increment(turns);
    }
    Ok(done.is_some())
}

/// How long a reminder whose booking could not be read waits before it is tried again.
const CALENDAR_RETRY: chrono::Duration = chrono::Duration::minutes(1);

async fn run_reminder(
    state: &SchedulerState,
    job: &DueJob,
) -> Result<bool, crate::ports::StoreError> {
    let args = &state.args;
    let queue = &args.queue;
    let Ok(reminder) = serde_json::from_str::<ReminderJob>(&job.payload) else {
        tracing::error!(job = job.id, "reminder payload unreadable; given up");
        return queue.kill_job(job.id, &args.owner).await;
    };
    let now = args.clock.now();
    let finish = || queue.complete_job(job.id, &args.owner, Vec::new(), now);
    if now >= reminder.start {
        return finish().await;
    }
    let booking = match args.calendar.upcoming(now).await {
        Ok(bookings) => bookings.into_iter().find(|b| b.id == reminder.booking),
        Err(error) => {
            tracing::warn!(%error, job = job.id, "reminder's booking unreadable; will retry");
            return queue
                .retry_job(job.id, &args.owner, now + CALENDAR_RETRY)
                .await;
        }
    };
    let Some(booking) = booking.filter(|b| {
        b.status == BookingStatus::Confirmed
            && b.start == reminder.start
            && b.phone == reminder.phone
    }) else {
        tracing::info!(
            job = job.id,
            "reminder of a moved or cancelled booking; not sent"
        );
        return finish().await;
    };
    match reminder_action(job.due_at, booking.start, now) {
        ReminderAction::Drop => return finish().await,
        ReminderAction::Wait => return queue.retry_job(job.id, &args.owner, job.due_at).await,
        ReminderAction::Send => {}
    }
    let last = match queue.last_inbound(&booking.phone).await {
        Ok(last) => last,
        Err(error) => {
            tracing::warn!(%error, job = job.id, "customer's last channel unknown; will retry");
            return queue
                .retry_job(job.id, &args.owner, now + CALENDAR_RETRY)
                .await;
        }
    };
    let rows = reminder_rows(state, &booking, &job.unique_key, last, now);
    if rows.is_empty() {
        tracing::warn!(job = job.id, "no channel can carry this reminder; not sent");
    }
    let sends = !rows.is_empty();
    let done = queue.complete_job(job.id, &args.owner, rows, now).await?;
    if done && sends {
        state.shared.wake_relay();
    }
    Ok(done)
}

/// Retries a held booking's calendar write: confirmed (with its reminders and a message to
/// the customer) once it goes through, tried again later while the calendar is unreachable,
/// given up (the hold released, the customer told) at the give-up time or when the calendar
/// refuses it.
async fn run_calendar_write(state: &SchedulerState, job: &DueJob) -> Result<bool, StoreError> {
    let args = &state.args;
    let queue = &args.queue;
    let (Some(mirror), Ok(write)) = (
        args.mirror.as_ref(),
        serde_json::from_str::<CalendarWriteJob>(&job.payload),
    ) else {
        tracing::error!(job = job.id, "calendar write payload unreadable; given up");
        return queue.kill_job(job.id, &args.owner).await;
    };
    let now = args.clock.now();
    if now >= write.give_up_at {
        return give_up_write(state, job, mirror.as_ref(), &write, now).await;
    }
    let held = match mirror.retry_write(write.booking).await {
        Ok(Some(held)) => held,
        Ok(None) => {
            tracing::info!(
                job = job.id,
                "held booking no longer held; nothing to write"
            );
            return complete(state, job, JobCompletion::default(), now).await;
        }
        Err(CalendarError::Unavailable(error)) => {
            metrics::counter!("sara_calendar_write_retries_total", "outcome" => "failed")
                .increment(1);
            let again =
                (now + calendar_jobs::write_retry_delay(job.attempts)).min(write.give_up_at);
            tracing::info!(%error, job = job.id, attempts = job.attempts, "calendar still unreachable; will retry");
            return queue.retry_job(job.id, &args.owner, again).await;
        }
        Err(error) => {
            tracing::info!(%error, job = job.id, "calendar refused the held booking");
            return give_up_write(state, job, mirror.as_ref(), &write, now).await;
        }
    };
    let Some(last) = last_inbound(state, job, &held).await? else {
        return queue
            .retry_job(job.id, &args.owner, now + CALENDAR_RETRY)
            .await;
    };
    let booking = Booking {
        status: BookingStatus::Confirmed,
        ..held
    };
    let business = &*state.shared.business;
    let text = calendar_jobs::confirmed_text(business, &booking);
    let subject = format!(
        "Confirmed: your {} on {}",
        booking.service.to_lowercase(),
        crate::dialogue::spoken_when(business.timezone, booking.start)
    );
    let key = format!("{}:confirmed", job.unique_key);
    let outbox = notice_rows(
        state,
        &booking,
        &key,
        last,
        now,
        OutboundKind::Confirmation,
        &text,
        &subject,
    );
    let completion = JobCompletion {
        bookings: vec![BookingWrite::Confirm(booking.id)],
        jobs: reminders::reminder_jobs(
            &booking,
            business.timezone,
            now,
            &state.shared.settings.reminders,
        ),
        outbox,
        ..JobCompletion::default()
    };
    metrics::counter!("sara_calendar_write_retries_total", "outcome" => "confirmed").increment(1);
    complete(state, job, completion, now).await
}

/// Releases a held booking the calendar never took, and tells the customer.
async fn give_up_write(
    state: &SchedulerState,
    job: &DueJob,
    mirror: &dyn CalendarMirror,
    write: &CalendarWriteJob,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let args = &state.args;
    let booking = match mirror.abandon_write(write.booking).await {
        Ok(Some(booking)) => booking,
        Ok(None) => return complete(state, job, JobCompletion::default(), now).await,
        Err(error) => {
            tracing::warn!(%error, job = job.id, "held booking unreadable; will retry the give-up");
            return args
                .queue
                .retry_job(job.id, &args.owner, now + CALENDAR_RETRY)
                .await;
        }
    };
    let Some(last) = last_inbound(state, job, &booking).await? else {
        return args
            .queue
            .retry_job(job.id, &args.owner, now + CALENDAR_RETRY)
            .await;
    };
    let business = &*state.shared.business;
    let text = calendar_jobs::not_booked_text(business, &booking);
    let subject = format!("Not booked: your {}", booking.service.to_lowercase());
    let key = format!("{}:not_booked", job.unique_key);
    let outbox = notice_rows(
        state,
        &booking,
        &key,
        last,
        now,
        OutboundKind::Notice,
        &text,
        &subject,
    );
    metrics::counter!("sara_calendar_write_retries_total", "outcome" => "given_up").increment(1);
    let completion = JobCompletion {
        bookings: vec![BookingWrite::Cancel(booking.id)],
        void_jobs: vec![reminders::reminder_key_prefix(booking.id)],
        outbox,
        ..JobCompletion::default()
    };
    complete(state, job, completion, now).await
}

/// Reads the calendar's changes and follows each of Sara's bookings staff changed there:
/// cancelled or moved (its reminders with it), the customer told on their channel. Then the
/// job is due again after `sync_every`; its claim is the lease that keeps other instances
/// from syncing at the same time.
async fn run_calendar_sync(state: &SchedulerState, job: &DueJob) -> Result<bool, StoreError> {
    let args = &state.args;
    let Some(mirror) = args.mirror.as_ref() else {
        return args.queue.kill_job(job.id, &args.owner).await;
    };
    let now = args.clock.now();
    let again =
        now + chrono::Duration::from_std(args.sync_every).unwrap_or(chrono::Duration::minutes(1));
    let changes = match mirror.changes(now).await {
        Ok(changes) => changes,
        Err(error) => {
            metrics::counter!("sara_calendar_sync_errors_total").increment(1);
            tracing::warn!(%error, "calendar sync failed; tried again at the next interval");
            return args.queue.retry_job(job.id, &args.owner, again).await;
        }
    };
    let business = &*state.shared.business;
    let mut completion = JobCompletion {
        sync_token: Some(changes.token),
        again_at: Some(again),
        ..JobCompletion::default()
    };
    let changed = changes.changed.len();
    for change in changes.changed {
        let before = change.booking;
        let Some(last) = last_inbound(state, job, &before).await? else {
            metrics::counter!("sara_calendar_sync_errors_total").increment(1);
            return args
                .queue
                .retry_job(job.id, &args.owner, now + CALENDAR_RETRY)
                .await;
        };
        // Keyed by the booking's sequence before this change: the same change read twice
        // (a crash before the commit) writes one message.
        let key = format!("{CALENDAR_SYNC_JOB}:{}:{}", before.id, before.sequence);
        completion
            .void_jobs
            .push(reminders::reminder_key_prefix(before.id));
        let (label, after, text) = match change.change {
            CalendarChange::Cancelled => {
                completion.bookings.push(BookingWrite::Cancel(before.id));
                let text = calendar_jobs::cancelled_by_staff_text(business, &before);
                let after = Booking {
                    status: BookingStatus::Cancelled,
                    ..before.clone()
                };
                ("cancelled", after, text)
            }
            CalendarChange::Moved { start, end } => {
                completion.bookings.push(BookingWrite::Move {
                    id: before.id,
                    start,
                    end,
                });
                let after = Booking {
                    start,
                    end,
                    sequence: before.sequence.saturating_add(1),
                    ..before.clone()
                };
                if after.status == BookingStatus::Confirmed {
                    completion.jobs.extend(reminders::reminder_jobs(
                        &after,
                        business.timezone,
                        now,
                        &state.shared.settings.reminders,
                    ));
                }
                let text = calendar_jobs::moved_by_staff_text(business, &before, &after);
                ("moved", after, text)
            }
        };
        let subject = format!(
            "Your {} on {}",
            after.service.to_lowercase(),
            crate::dialogue::spoken_when(business.timezone, after.start)
        );
        completion.outbox.extend(notice_rows(
            state,
            &after,
            &key,
            last,
            now,
            OutboundKind::Notice,
            &text,
            &subject,
        ));
        metrics::counter!("sara_calendar_sync_changes_total", "change" => label).increment(1);
    }
    if changes.full {
        tracing::info!(changed, "calendar fully synced");
    } else if changed > 0 {
        tracing::info!(changed, "calendar changes followed");
    }
    complete(state, job, completion, now).await
}

/// The customer's last channel, read for a message about `booking`; `Ok(None)` when the
/// store could not say (the job is tried again shortly).
async fn last_inbound(
    state: &SchedulerState,
    job: &DueJob,
    booking: &Booking,
) -> Result<Option<Option<LastInbound>>, StoreError> {
    match state.args.queue.last_inbound(&booking.phone).await {
        Ok(last) => Ok(Some(last)),
        Err(error) => {
            tracing::warn!(%error, job = job.id, "customer's last channel unknown; will retry");
            Ok(None)
        }
    }
}

/// Settles a calendar job with what it writes; then the relay sends, and the calendar's
/// board reloads when bookings changed.
async fn complete(
    state: &SchedulerState,
    job: &DueJob,
    completion: JobCompletion,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sends = !completion.outbox.is_empty();
    let changes_bookings = !completion.bookings.is_empty();
    let done = state
        .args
        .queue
        .complete_job_with(job.id, &state.args.owner, completion, now)
        .await?;
    if done && sends {
        state.shared.wake_relay();
    }
    if done
        && changes_bookings
        && let Some(calendar) = state.shared.slots.calendar.get()
    {
        let _ = calendar.send_message(super::calendar::CalendarMsg::Refresh);
    }
    Ok(done)
}

/// A notice's outbox rows (see [`customer_rows`]): `text` on the customer's channel, with
/// `subject` by email.
#[allow(clippy::too_many_arguments)]
fn notice_rows(
    state: &SchedulerState,
    booking: &Booking,
    key: &str,
    last: Option<LastInbound>,
    now: DateTime<Utc>,
    kind: OutboundKind,
    text: &str,
    subject: &str,
) -> Vec<OutboxMessage> {
    let business = &*state.shared.business;
    let template = state.args.template.as_ref();
    customer_rows(state, booking, key, last, now, kind, |channel, open| {
        calendar_jobs::notice_content(channel, business, booking, text, subject, open, template)
    })
}

/// The reminder's outbox rows: one on the customer's channel, and an email when the booking
/// has an address.
fn reminder_rows(
    state: &SchedulerState,
    booking: &Booking,
    key: &str,
    last: Option<LastInbound>,
    now: DateTime<Utc>,
) -> Vec<OutboxMessage> {
    let args = &state.args;
    let business = &*state.shared.business;
    customer_rows(
        state,
        booking,
        key,
        last,
        now,
        OutboundKind::Reminder,
        |channel, window_open| {
            reminders::reminder_content(
                channel,
                business,
                booking,
                now,
                window_open,
                args.template.as_ref(),
            )
        },
    )
}

/// The outbox rows of a message to a booking's customer: one on the channel they last used
/// (WhatsApp when `content` has something for it, otherwise SMS for WhatsApp, SMS and voice
/// customers and for those never heard from), and an email when the booking has an address.
/// `content(channel, whatsapp_window_open)` composes the message for a channel.
fn customer_rows(
    state: &SchedulerState,
    booking: &Booking,
    key: &str,
    last: Option<LastInbound>,
    now: DateTime<Utc>,
    kind: OutboundKind,
    content: impl Fn(Channel, bool) -> Option<crate::outbound::Content>,
) -> Vec<OutboxMessage> {
    let args = &state.args;
    let can = |c: Channel| args.channels.contains(&c);
    let phone = Recipient::Phone(booking.phone.clone());
    let mut messages = Vec::new();
    let whatsapp = match last {
        Some(LastInbound {
            channel: Channel::WhatsApp,
            at,
        }) if can(Channel::WhatsApp) => content(
            Channel::WhatsApp,
            reminders::whatsapp_window_open(Some(at), now),
        ),
        _ => None,
    };
    match (whatsapp, last.map(|l| l.channel)) {
        (Some(content), _) => messages.push((Channel::WhatsApp, phone, content, key.to_string())),
        // A WhatsApp customer outside the window without a template, a caller, a texter,
        // or nobody known: SMS reaches the number.
        (None, Some(Channel::WhatsApp | Channel::Sms | Channel::Voice) | None)
            if can(Channel::Sms) =>
        {
            if let Some(content) = content(Channel::Sms, false) {
                messages.push((Channel::Sms, phone, content, key.to_string()));
            }
        }
        _ => {}
    }
    if let Some(address) = booking.email.as_deref().filter(|_| can(Channel::Email))
        && let Some(content) = content(Channel::Email, false)
    {
        let to = Recipient::Email(address.to_string());
        messages.push((Channel::Email, to, content, format!("{key}:email")));
    }
    messages
        .into_iter()
        .filter_map(|(channel, to, content, key)| {
            let recipient = match &to {
                Recipient::Phone(p) => p.as_str().to_owned(),
                Recipient::Email(a) => a.clone(),
            };
            let message = OutboundMessage {
                key: key.clone(),
                channel,
                to,
                kind,
                content,
            };
            Some(OutboxMessage {
                contact: booking.phone.clone(),
                recipient,
                channel,
                kind: OutboxKind::parse(kind.as_str())?,
                payload: serde_json::to_string(&message).ok()?,
                idempotency_key: key,
                not_before: now,
            })
        })
        .collect()
}
