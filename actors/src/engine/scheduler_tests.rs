//! The scheduler on fake ports: what it writes for each kind of due job (a current reminder,
//! one whose booking moved or was cancelled, an unreadable or unknown job), on which channel.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use super::{Engine, EngineSettings, OutboxPorts};
use crate::business::Business;
use crate::memory::{MemoryCalendar, in_memory_ports};
use crate::model::{Booking, BookingStatus, Channel, Phone};
use crate::outbound::{
    ChannelSender, Content, DueMessage, OutboundKind, OutboundMessage, OutboxQueue, SendError,
    Sent, Settlement,
};
use crate::ports::{
    BoxFuture, Calendar, Clock, DueJob, JobQueue, JobRecord, LastInbound, OutboxKind,
    OutboxMessage, StoreError,
};
use crate::reminders::{REMINDER_JOB, ReminderJob, ReminderTemplate};
use crate::understanding::{NluContext, Understanding};

struct NothingNlu;

impl crate::ports::Nlu for NothingNlu {
    fn understand<'a>(
        &'a self,
        _: &'a str,
        _: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, crate::ports::NluError>> {
        Box::pin(async { Ok(Understanding::default()) })
    }

    fn name(&self) -> &'static str {
        "nothing"
    }
}

struct Fixed(DateTime<Utc>);

impl Clock for Fixed {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// Jobs handed out once each; what the scheduler did with them.
#[derive(Default)]
struct FakeJobs {
    due: Mutex<Vec<DueJob>>,
    last: Mutex<Option<LastInbound>>,
    completed: Mutex<Vec<(i64, Vec<OutboxMessage>)>>,
    /// Whole completions (`complete_job_with`), by job id.
    completions: Mutex<Vec<(i64, crate::ports::JobCompletion)>>,
    killed: Mutex<Vec<i64>>,
    scheduled: Mutex<Vec<JobRecord>>,
    /// (job id, cutoff, next run) of each retention run.
    retention_runs: Mutex<Vec<(i64, DateTime<Utc>, JobRecord)>>,
}

impl JobQueue for FakeJobs {
    fn claim_jobs<'a>(
        &'a self,
        _: &'a str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: i64,
    ) -> BoxFuture<'a, Result<Vec<DueJob>, StoreError>> {
        let jobs = std::mem::take(&mut *self.due.lock().expect("jobs"));
        Box::pin(async move { Ok(jobs) })
    }

    fn complete_job<'a>(
        &'a self,
        id: i64,
        _: &'a str,
        outbox: Vec<OutboxMessage>,
        _: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.completed.lock().expect("jobs").push((id, outbox));
        Box::pin(async { Ok(true) })
    }

    fn retry_job<'a>(
        &'a self,
        _: i64,
        _: &'a str,
        _: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(true) })
    }

    fn complete_job_with<'a>(
        &'a self,
        id: i64,
        _: &'a str,
        completion: crate::ports::JobCompletion,
        _: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.completions
            .lock()
            .expect("jobs")
            .push((id, completion.clone()));
        self.completed
            .lock()
            .expect("jobs")
            .push((id, completion.outbox));
        Box::pin(async { Ok(true) })
    }

    fn schedule_jobs(
        &self,
        _: Vec<crate::ports::JobRecord>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn kill_job<'a>(&'a self, id: i64, _: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.killed.lock().expect("jobs").push(id);
        Box::pin(async { Ok(true) })
    }

    fn next_job_due(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    fn last_inbound<'a>(
        &'a self,
        _: &'a Phone,
    ) -> BoxFuture<'a, Result<Option<LastInbound>, StoreError>> {
        let last = *self.last.lock().expect("jobs");
        Box::pin(async move { Ok(last) })
    }

    fn schedule_job(
        &self,
        job: JobRecord,
        _: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.scheduled.lock().expect("jobs").push(job);
        Box::pin(async { Ok(()) })
    }

    fn complete_retention<'a>(
        &'a self,
        id: i64,
        _: &'a str,
        cutoff: DateTime<Utc>,
        next: JobRecord,
        _: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        (self.retention_runs.lock().expect("jobs")).push((id, cutoff, next));
        Box::pin(async { Ok(Some(2)) })
    }
}

/// An outbox with nothing due (the scheduler's rows are inspected in [`FakeJobs`]).
struct NoRows;

impl OutboxQueue for NoRows {
    fn claim<'a>(
        &'a self,
        _: Channel,
        _: &'a str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: i64,
    ) -> BoxFuture<'a, Result<Vec<DueMessage>, StoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn settle<'a>(
        &'a self,
        _: i64,
        _: &'a str,
        _: &'a Settlement,
        _: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(true) })
    }

    fn backlog(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async { Ok(0) })
    }
}

struct Accepts(Channel);

impl ChannelSender for Accepts {
    fn channel(&self) -> Channel {
        self.0
    }

    fn send<'a>(&'a self, _: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(async {
            Ok(Sent {
                provider_id: "sent".into(),
            })
        })
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-09T14:00:00-05:00")
        .expect("time")
        .to_utc()
}

fn booking(id: u128, status: BookingStatus, email: Option<&str>) -> Booking {
    Booking {
        id: uuid::Uuid::from_u128(id),
        phone: Phone::parse("+15550001111").expect("phone"),
        name: Some("Maria Lopez".into()),
        email: email.map(str::to_string),
        service: "Cleaning".into(),
        start: now() + Duration::hours(24),
        end: now() + Duration::hours(25),
        status,
        sequence: 0,
        staff: None,
        event_id: None,
    }
}

fn job(id: i64, b: &Booking, start: DateTime<Utc>) -> DueJob {
    let reminder = ReminderJob {
        booking: b.id,
        phone: b.phone.clone(),
        start,
        offset_minutes: 1440,
    };
    DueJob {
        id,
        kind: REMINDER_JOB.into(),
        due_at: now(),
        payload: serde_json::to_string(&reminder).expect("json"),
        unique_key: reminder.unique_key(),
        attempts: 1,
    }
}

async fn engine_on(
    jobs: Arc<FakeJobs>,
    bookings: &[Booking],
    channels: &[Channel],
    template: Option<ReminderTemplate>,
) -> Engine {
    engine_with(jobs, bookings, channels, template, None).await
}

async fn engine_with(
    jobs: Arc<FakeJobs>,
    bookings: &[Booking],
    channels: &[Channel],
    template: Option<ReminderTemplate>,
    mirror: Option<Arc<dyn crate::ports::CalendarMirror>>,
) -> Engine {
    let (mut ports, _) = in_memory_ports(Arc::new(NothingNlu));
    let calendar = Arc::new(MemoryCalendar::default());
    for b in bookings {
        let mut b = b.clone();
        let cancelled = b.status == BookingStatus::Cancelled;
        b.status = BookingStatus::Confirmed;
        calendar.book(&b).await.expect("booked");
        if cancelled {
            calendar.cancel(b.id).await.expect("cancelled");
        }
    }
    ports.calendar = calendar;
    ports.clock = Arc::new(Fixed(now()));
    ports.outbox = Some(OutboxPorts {
        queue: Arc::new(NoRows),
        senders: (channels.iter())
            .map(|&c| Arc::new(Accepts(c)) as Arc<dyn ChannelSender>)
            .collect(),
        jobs: Some(jobs),
        mirror,
    });
    let settings = EngineSettings {
        reminder_template: template,
        retention: Some(crate::retention::RetentionSettings { days: 365 }),
        ..EngineSettings::default()
    };
    Engine::start(Business::example(), settings, ports)
        .await
        .expect("engine starts")
}

fn content(row: &OutboxMessage) -> Content {
    let message: OutboundMessage = serde_json::from_str(&row.payload).expect("payload");
    assert_eq!(message.kind, OutboundKind::Reminder);
    assert_eq!(message.key, row.idempotency_key);
    message.content
}

#[tokio::test]
async fn a_current_reminder_is_written_and_a_stale_one_finishes_without_sending() {
    let current = booking(1, BookingStatus::Confirmed, Some("maria@example.com"));
    let mut cancelled = booking(2, BookingStatus::Cancelled, None);
    cancelled.start += Duration::days(2);
    cancelled.end += Duration::days(2);
    let jobs = Arc::new(FakeJobs::default());
    let mut unreadable = job(5, &current, current.start);
    unreadable.payload = "{".into();
    let mut unknown = job(6, &current, current.start);
    unknown.kind = "defragment".into();
    *jobs.due.lock().expect("jobs") = vec![
        job(1, &current, current.start),
        // Made for the time before a move.
        job(2, &current, current.start - Duration::hours(3)),
        job(3, &cancelled, cancelled.start),
        unreadable,
        unknown,
    ];
    *jobs.last.lock().expect("jobs") = Some(LastInbound {
        channel: Channel::Sms,
        at: now() - Duration::days(3),
    });
    let engine = engine_on(
        jobs.clone(),
        &[current.clone(), cancelled],
        &[Channel::Sms, Channel::Email],
        None,
    )
    .await;
    engine.settle().await;

    let completed = jobs.completed.lock().expect("jobs").clone();
    let rows_of = |id: i64| {
        (completed.iter())
            .find(|(j, _)| *j == id)
            .map(|(_, rows)| rows.clone())
    };
    let rows = rows_of(1).expect("the current reminder ran");
    assert_eq!(rows.len(), 2, "SMS and email: {rows:?}");
    let key = job(1, &current, current.start).unique_key;
    assert_eq!(
        (
            rows[0].channel,
            rows[0].kind,
            rows[0].idempotency_key.as_str()
        ),
        (Channel::Sms, OutboxKind::Reminder, key.as_str())
    );
    assert_eq!(rows[0].recipient, "+15550001111");
    let text = content(&rows[0]);
    assert!(
        text.plain_text()
            .is_some_and(|t| t.starts_with("Hi Maria, a reminder of your cleaning tomorrow")),
        "{text:?}"
    );
    assert_eq!(rows[1].channel, Channel::Email);
    assert_eq!(rows[1].recipient, "maria@example.com");
    assert_eq!(rows[1].idempotency_key, format!("{key}:email"));
    assert_eq!(
        rows_of(2),
        Some(Vec::new()),
        "a moved booking's old reminder"
    );
    assert_eq!(
        rows_of(3),
        Some(Vec::new()),
        "a cancelled booking's reminder"
    );
    let mut killed = jobs.killed.lock().expect("jobs").clone();
    killed.sort_unstable();
    assert_eq!(killed, [5, 6], "unreadable and unknown jobs are given up");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_whatsapp_customer_outside_the_window_gets_the_template_or_else_an_sms() {
    let b = booking(1, BookingStatus::Confirmed, None);
    let template = ReminderTemplate {
        name: "appointment_reminder".into(),
        language: "en_US".into(),
    };
    for (template, expected) in [(Some(template), Channel::WhatsApp), (None, Channel::Sms)] {
        let jobs = Arc::new(FakeJobs::default());
        *jobs.due.lock().expect("jobs") = vec![job(1, &b, b.start)];
        *jobs.last.lock().expect("jobs") = Some(LastInbound {
            channel: Channel::WhatsApp,
            at: now() - Duration::hours(30),
        });
        let with_template = template.is_some();
        let engine = engine_on(
            jobs.clone(),
            std::slice::from_ref(&b),
            &[Channel::Sms, Channel::WhatsApp],
            template,
        )
        .await;
        engine.settle().await;
        let completed = jobs.completed.lock().expect("jobs").clone();
        assert_eq!(completed.len(), 1);
        let rows = &completed[0].1;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].channel, expected);
        let content = content(&rows[0]);
        assert_eq!(
            matches!(content, Content::Template { .. }),
            with_template,
            "{content:?}"
        );
        engine.shutdown().await;
    }
}

/// The scheduler schedules the next retention run when it starts, and a due run redacts
/// what is older than the window and schedules the one after it.
#[tokio::test]
async fn a_retention_run_is_scheduled_on_start_and_a_due_one_redacts_and_schedules_the_next() {
    let jobs = Arc::new(FakeJobs::default());
    *jobs.due.lock().expect("jobs") = vec![DueJob {
        id: 9,
        kind: crate::retention::RETENTION_JOB.into(),
        due_at: now(),
        payload: "{}".into(),
        unique_key: "retention:2026-12-09".into(),
        attempts: 1,
    }];
    let engine = engine_on(jobs.clone(), &[], &[Channel::Sms], None).await;
    engine.settle().await;
    let next_day = DateTime::parse_from_rfc3339("2026-12-10T03:00:00-05:00")
        .expect("time")
        .to_utc();
    let scheduled = jobs.scheduled.lock().expect("jobs").clone();
    assert_eq!(
        scheduled
            .iter()
            .map(|j| (j.unique_key.as_str(), j.due_at))
            .collect::<Vec<_>>(),
        [("retention:2026-12-10", next_day)],
        "the next 03:00 after the start"
    );
    let runs = jobs.retention_runs.lock().expect("jobs").clone();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (id, cutoff, next) = &runs[0];
    assert_eq!(*id, 9);
    assert_eq!(*cutoff, now() - Duration::days(365));
    assert_eq!(next.unique_key, "retention:2026-12-10");
    assert!(jobs.killed.lock().expect("jobs").is_empty());
}

/// A calendar mirror that reports one change to staff's calendar and writes nothing itself.
struct OneChange(crate::ports::ChangedBooking);

impl crate::ports::CalendarMirror for OneChange {
    fn retry_write(
        &self,
        _: crate::model::BookingId,
    ) -> BoxFuture<'_, Result<Option<Booking>, crate::ports::CalendarError>> {
        Box::pin(async { Ok(None) })
    }

    fn abandon_write(
        &self,
        _: crate::model::BookingId,
    ) -> BoxFuture<'_, Result<Option<Booking>, crate::ports::CalendarError>> {
        Box::pin(async { Ok(None) })
    }

    fn changes(
        &self,
        _: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<crate::ports::CalendarChanges, crate::ports::CalendarError>> {
        let changed = vec![self.0.clone()];
        Box::pin(async move {
            Ok(crate::ports::CalendarChanges {
                changed,
                token: crate::ports::SyncToken {
                    calendar: "clinic".into(),
                    token: Some("next".into()),
                },
                full: false,
            })
        })
    }
}

/// A sync that finds a booking moved by staff completes in one go: the move, the old
/// reminders void and new ones for the new time, a notice to the customer on WhatsApp (inside
/// the window) naming the new time, the token, and the job due again after the interval.
#[tokio::test]
async fn a_sync_that_finds_a_moved_booking_writes_the_move_its_reminders_a_notice_and_the_token() {
    use crate::calendar_jobs::{CALENDAR_SYNC_JOB, sync_job};
    use crate::ports::{BookingWrite, CalendarChange, ChangedBooking};
    let b = booking(7, BookingStatus::Confirmed, None);
    let (start, end) = (b.start + Duration::days(2), b.end + Duration::days(2));
    let mirror = Arc::new(OneChange(ChangedBooking {
        booking: b.clone(),
        change: CalendarChange::Moved { start, end },
    }));
    let jobs = Arc::new(FakeJobs::default());
    let record = sync_job(now());
    *jobs.due.lock().expect("jobs") = vec![DueJob {
        id: 9,
        kind: record.kind,
        due_at: now(),
        payload: record.payload,
        unique_key: record.unique_key,
        attempts: 1,
    }];
    *jobs.last.lock().expect("jobs") = Some(LastInbound {
        channel: Channel::WhatsApp,
        at: now() - Duration::hours(1),
    });
    let engine = engine_with(
        jobs.clone(),
        std::slice::from_ref(&b),
        &[Channel::Sms, Channel::WhatsApp],
        None,
        Some(mirror),
    )
    .await;
    engine.settle().await;

    let completions = jobs.completions.lock().expect("jobs").clone();
    assert_eq!(completions.len(), 1, "{completions:?}");
    let (id, done) = &completions[0];
    assert_eq!(*id, 9);
    assert_eq!(
        done.bookings,
        vec![BookingWrite::Move {
            id: b.id,
            start,
            end
        }]
    );
    assert_eq!(
        done.void_jobs,
        vec![crate::reminders::reminder_key_prefix(b.id)]
    );
    assert!(!done.jobs.is_empty(), "reminders for the new time");
    assert!(
        done.jobs.iter().all(|j| j
            .unique_key
            .contains(&start.format("%Y-%m-%dT%H:%MZ").to_string())),
        "{:?}",
        done.jobs
    );
    assert_eq!(
        done.sync_token.as_ref().and_then(|t| t.token.as_deref()),
        Some("next")
    );
    assert_eq!(done.again_at, Some(now() + Duration::seconds(60)));
    assert_eq!(done.outbox.len(), 1, "{:?}", done.outbox);
    let row = &done.outbox[0];
    assert_eq!(
        (row.channel, row.kind),
        (Channel::WhatsApp, OutboxKind::Notice)
    );
    assert_eq!(
        row.idempotency_key,
        format!("{CALENDAR_SYNC_JOB}:{}:0", b.id)
    );
    let message: OutboundMessage = serde_json::from_str(&row.payload).expect("payload");
    let text = message.content.plain_text().unwrap_or_default().to_string();
    let when = crate::dialogue::spoken_when(Business::example().timezone, start);
    assert!(text.contains("has moved your cleaning"), "{text}");
    assert!(text.contains(&when), "{when} in {text}");
    engine.shutdown().await;
}
