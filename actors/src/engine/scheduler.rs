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
use crate::model::{Booking, BookingStatus, Channel};
use crate::outbound::{OutboundKind, OutboundMessage, Recipient};
use crate::ports::{Calendar, Clock, DueJob, JobQueue, LastInbound, OutboxKind, OutboxMessage};
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
    let can = |c: Channel| args.channels.contains(&c);
    let content = |channel: Channel, window_open: bool| {
        reminders::reminder_content(
            channel,
            business,
            booking,
            now,
            window_open,
            args.template.as_ref(),
        )
    };
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
                kind: OutboundKind::Reminder,
                content,
            };
            Some(OutboxMessage {
                contact: booking.phone.clone(),
                recipient,
                channel,
                kind: OutboxKind::Reminder,
                payload: serde_json::to_string(&message).ok()?,
                idempotency_key: key,
                not_before: now,
            })
        })
        .collect()
}
