//! Scheduled jobs on both backends: written with their turn (once per unique key), claimed
//! when due in due order, a lapsed claim taken over, settled only by the claim holder.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Channel, Phone};
use sara_actors::ports::{
    ConversationStore, JobQueue, JobRecord, OutboxKind, OutboxMessage, TurnCommit, TurnRecord,
};

use super::Database;
use super::testing::on_both_backends;

on_both_backends!(due_jobs_are_claimed_in_order_once_and_settled_by_their_holder);
on_both_backends!(a_turn_voids_pending_jobs_by_prefix_before_writing_its_own);
on_both_backends!(a_completed_job_writes_its_outbox_rows_once_and_only_for_the_claim_holder);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0)
        .single()
        .expect("a valid test time")
}

fn job(key: &str, due_in_minutes: i64) -> JobRecord {
    JobRecord {
        kind: "reminder".to_string(),
        due_at: t0() + Duration::minutes(due_in_minutes),
        payload: format!("{{\"job\":\"{key}\"}}"),
        unique_key: key.to_string(),
    }
}

fn turn_with_jobs(version: i64, id: &str, jobs: Vec<JobRecord>) -> TurnCommit {
    TurnCommit {
        phone: Phone::parse("+15553009999").expect("a valid test number"),
        expected_version: version,
        owner_epoch: 0,
        state: "{}".to_string(),
        turn: TurnRecord {
            channel: Channel::Sms,
            provider_id: Some(id.to_string()),
            text: "book".to_string(),
            reply: Reply::default(),
            intent: "book".to_string(),
            nlu: "rules".to_string(),
            understood: "{}".to_string(),
            at: t0(),
            elapsed_ms: 1,
        },
        outbox: Vec::new(),
        jobs,
        void_jobs: Vec::new(),
        attendance: Vec::new(),
    }
}

async fn due_jobs_are_claimed_in_order_once_and_settled_by_their_holder(db: Database) {
    db.commit(vec![
        turn_with_jobs(0, "SM1", vec![job("r:late", 120), job("r:early", 60)]),
        // Scheduling the same job again (another turn) leaves one.
        turn_with_jobs(1, "SM2", vec![job("r:early", 90), job("r:later", 180)]),
    ])
    .await
    .expect("commit");
    let jobs = db.jobs();
    let lease = |at: DateTime<Utc>| at + Duration::seconds(30);
    assert!(
        jobs.claim_jobs("one", t0(), lease(t0()), 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let at = t0() + Duration::minutes(120);
    let claimed = jobs
        .claim_jobs("one", at, lease(at), 10)
        .await
        .expect("claim");
    let keys: Vec<&str> = claimed.iter().map(|j| j.unique_key.as_str()).collect();
    assert_eq!(keys, ["r:early", "r:late"], "due first, once each");
    assert_eq!(claimed[0].due_at, t0() + Duration::minutes(60));
    assert_eq!(claimed[0].payload, "{\"job\":\"r:early\"}");
    assert_eq!(
        (claimed[0].kind.as_str(), claimed[0].attempts),
        ("reminder", 1)
    );
    let (early, late) = (claimed[0].id, claimed[1].id);
    assert!(
        jobs.claim_jobs("two", at, lease(at), 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        !jobs.finish_job(early, "two").await.expect("finish"),
        "not two's claim"
    );
    assert!(jobs.finish_job(early, "one").await.expect("finish"));
    assert!(
        !jobs.finish_job(early, "one").await.expect("finish"),
        "done once"
    );
    let retry_at = t0() + Duration::minutes(200);
    assert!(jobs.retry_job(late, "one", retry_at).await.expect("retry"));

    // "later" is claimed by one, whose lease lapses: two takes it over.
    let at = t0() + Duration::minutes(180);
    let later = jobs
        .claim_jobs("one", at, lease(at), 10)
        .await
        .expect("claim");
    assert_eq!(
        later
            .iter()
            .map(|j| j.unique_key.as_str())
            .collect::<Vec<_>>(),
        ["r:later"]
    );
    let past = lease(at) + Duration::seconds(1);
    let taken = jobs
        .claim_jobs("two", past, lease(past), 10)
        .await
        .expect("claim");
    assert_eq!(
        taken.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(),
        [(later[0].id, 2)]
    );
    assert!(!jobs.kill_job(later[0].id, "one").await.expect("kill"));
    assert!(jobs.kill_job(later[0].id, "two").await.expect("kill"));

    // The retried job comes back when due, its attempts counted.
    let at = retry_at;
    let again = jobs
        .claim_jobs("two", at, lease(at), 10)
        .await
        .expect("claim");
    assert_eq!(
        again.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(),
        [(late, 2)]
    );
    assert!(jobs.finish_job(late, "two").await.expect("finish"));
    let end = t0() + Duration::days(30);
    assert!(
        jobs.claim_jobs("two", end, lease(end), 10)
            .await
            .expect("claim")
            .is_empty()
    );
}

/// A move voids the booking's pending reminders and writes the new time's, which share the
/// prefix; a job already done and another booking's jobs stay.
async fn a_turn_voids_pending_jobs_by_prefix_before_writing_its_own(db: Database) {
    db.commit(vec![turn_with_jobs(
        0,
        "SM1",
        vec![
            job("reminder:b1:t1:1440", 60),
            job("reminder:b1:t1:120", 120),
            job("reminder:b10:t1:120", 120),
        ],
    )])
    .await
    .expect("commit");
    let jobs = db.jobs();
    let at = t0() + Duration::minutes(60);
    let done = jobs
        .claim_jobs("one", at, at + Duration::seconds(30), 1)
        .await
        .expect("claim");
    assert_eq!(done.len(), 1);
    assert!(jobs.finish_job(done[0].id, "one").await.expect("finish"));

    let mut moved = turn_with_jobs(1, "SM2", vec![job("reminder:b1:t2:120", 150)]);
    moved.void_jobs = vec!["reminder:b1:".to_string()];
    db.commit(vec![moved]).await.expect("commit");

    let end = t0() + Duration::days(30);
    let left = jobs
        .claim_jobs("one", end, end + Duration::seconds(30), 10)
        .await
        .expect("claim");
    let keys: Vec<&str> = left.iter().map(|j| j.unique_key.as_str()).collect();
    assert_eq!(
        keys,
        ["reminder:b10:t1:120", "reminder:b1:t2:120"],
        "b1's old pending reminder is void, b10's (another booking) is kept"
    );
}

fn reminder_row(key: &str) -> OutboxMessage {
    let phone = Phone::parse("+15553009999").expect("a valid test number");
    OutboxMessage {
        recipient: phone.as_str().to_string(),
        contact: phone,
        channel: Channel::Sms,
        kind: OutboxKind::Reminder,
        payload: format!("{{\"reminder\":\"{key}\"}}"),
        idempotency_key: key.to_string(),
        not_before: t0(),
    }
}

/// The scheduler's settlement of a reminder: its outbox row and the job's finish in one
/// transaction. A holder whose claim was taken over writes nothing; the new holder writes the
/// row, and a second row with the same key (the job run again) is not written.
async fn a_completed_job_writes_its_outbox_rows_once_and_only_for_the_claim_holder(db: Database) {
    db.commit(vec![turn_with_jobs(
        0,
        "SM1",
        vec![job("reminder:b1:t1:120", 0), job("reminder:b2:t1:120", 0)],
    )])
    .await
    .expect("commit");
    let at = t0();
    let lease = at + Duration::seconds(30);
    let claimed = JobQueue::claim_jobs(&db, "one", at, lease, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    // One's claim on the first lapses and two takes it over.
    let past = lease + Duration::seconds(1);
    let taken = JobQueue::claim_jobs(&db, "two", past, past + Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert_eq!(taken.len(), 2, "both lapsed");
    let (first, second) = (&taken[0], &taken[1]);
    let row = reminder_row(&first.unique_key);
    assert!(
        !db.complete_job(first.id, "one", vec![row.clone()], past)
            .await
            .expect("complete"),
        "one lost the claim"
    );
    assert!(db.outbox().list_outbox(10).await.expect("list").is_empty());
    assert!(
        db.complete_job(first.id, "two", vec![row.clone()], past)
            .await
            .expect("complete")
    );
    // The other job carries a row with the same key: the job finishes, no second row.
    assert!(
        db.complete_job(second.id, "two", vec![row], past)
            .await
            .expect("complete")
    );
    let listed = db.outbox().list_outbox(10).await.expect("list");
    assert_eq!(listed.len(), 1, "one row per key");
    assert_eq!(
        (listed[0].kind.as_str(), listed[0].status.as_str()),
        ("reminder", "pending")
    );
    assert_eq!(
        listed[0].created_at, past,
        "created on the scheduler's clock"
    );
    let end = t0() + Duration::days(30);
    assert!(
        JobQueue::claim_jobs(&db, "two", end, end + Duration::seconds(30), 10)
            .await
            .expect("claim")
            .is_empty(),
        "both done"
    );
    assert_eq!(db.next_job_due().await.expect("next"), None);
}

on_both_backends!(one_instance_at_a_time_holds_the_calendar_sync_and_its_token_is_kept);
on_both_backends!(a_completion_writes_its_bookings_jobs_and_token_in_one_go_or_not_at_all);
on_both_backends!(a_deferred_booking_is_pending_with_its_retry_job);

/// The calendar sync is one recurring job: written once however many instances start, held by
/// one claimant at a time (the others see nothing to claim), due again after each run, and
/// taken over when its holder dies (its late completion then writes nothing, token included).
async fn one_instance_at_a_time_holds_the_calendar_sync_and_its_token_is_kept(db: Database) {
    use sara_actors::calendar_jobs::sync_job;
    use sara_actors::ports::{JobCompletion, SyncToken};
    let token = |t: &str| SyncToken {
        calendar: "clinic".to_string(),
        token: Some(t.to_string()),
    };
    // Two instances start and each writes the job.
    for _ in 0..2 {
        JobQueue::schedule_jobs(&db, vec![sync_job(t0())])
            .await
            .expect("schedule");
    }
    let lease = |at: DateTime<Utc>| at + Duration::seconds(60);
    let a = JobQueue::claim_jobs(&db, "a", t0(), lease(t0()), 10)
        .await
        .expect("claim");
    assert_eq!(a.len(), 1, "one sync job");
    let b = JobQueue::claim_jobs(&db, "b", t0(), lease(t0()), 10)
        .await
        .expect("claim");
    assert!(b.is_empty(), "b does not sync while a does");
    let again = t0() + Duration::seconds(60);
    let done = JobCompletion {
        sync_token: Some(token("t1")),
        again_at: Some(again),
        ..JobCompletion::default()
    };
    assert!(
        db.complete_job_with(a[0].id, "a", done, t0())
            .await
            .expect("complete")
    );
    assert_eq!(
        db.jobs().sync_token("clinic").await.expect("token"),
        Some("t1".to_string())
    );
    assert_eq!(db.jobs().sync_token("other").await.expect("token"), None);
    assert_eq!(db.next_job_due().await.expect("next"), Some(again));
    let early = again - Duration::seconds(1);
    assert!(
        JobQueue::claim_jobs(&db, "b", early, lease(early), 10)
            .await
            .expect("claim")
            .is_empty(),
        "not due before its interval"
    );
    let b = JobQueue::claim_jobs(&db, "b", again, lease(again), 10)
        .await
        .expect("claim");
    assert_eq!(b.len(), 1, "then any instance may take it");
    assert_eq!(b[0].attempts, 1, "attempts start afresh after each run");
    // b dies holding it; a takes it over once the lease runs out.
    let later = lease(again) + Duration::seconds(1);
    let a = JobQueue::claim_jobs(&db, "a", later, lease(later), 10)
        .await
        .expect("claim");
    assert_eq!(a.len(), 1, "taken over");
    let late = JobCompletion {
        sync_token: Some(token("stale")),
        again_at: Some(later + Duration::seconds(60)),
        ..JobCompletion::default()
    };
    assert!(
        !db.complete_job_with(b[0].id, "b", late, later)
            .await
            .expect("complete"),
        "b lost the claim"
    );
    assert_eq!(
        db.jobs().sync_token("clinic").await.expect("token"),
        Some("t1".to_string()),
        "a lost claim writes no token"
    );
    let forget = JobCompletion {
        sync_token: Some(SyncToken {
            calendar: "clinic".to_string(),
            token: None,
        }),
        again_at: Some(later + Duration::seconds(60)),
        ..JobCompletion::default()
    };
    assert!(
        db.complete_job_with(a[0].id, "a", forget, later)
            .await
            .expect("complete")
    );
    assert_eq!(db.jobs().sync_token("clinic").await.expect("token"), None);
}

fn held_booking(start_in_minutes: i64) -> sara_actors::model::Booking {
    use sara_actors::model::{Booking, BookingStatus};
    let start = t0() + Duration::minutes(start_in_minutes);
    Booking {
        id: uuid::Uuid::new_v4(),
        phone: Phone::parse("+15553009998").expect("a valid test number"),
        name: Some("Ada".to_string()),
        email: None,
        service: "Cleaning".to_string(),
        start,
        end: start + Duration::minutes(30),
        status: BookingStatus::Confirmed,
        sequence: 0,
        staff: None,
        event_id: Some("e1".to_string()),
    }
}

/// A job's completion applies its booking writes, voids the old reminder jobs, writes the new
/// ones and its outbox row together; a completion by a holder that lost the claim changes
/// nothing at all.
async fn a_completion_writes_its_bookings_jobs_and_token_in_one_go_or_not_at_all(db: Database) {
    use sara_actors::model::BookingStatus;
    use sara_actors::ports::{BookingWrite, JobCompletion};
    let moved = held_booking(24 * 60);
    let cancelled = held_booking(26 * 60);
    db.insert_booking(&moved).await.expect("book");
    db.insert_booking(&cancelled).await.expect("book");
    let reminder =
        |b: &sara_actors::model::Booking, at: &str| job(&format!("reminder:{}:{at}:120", b.id), 10);
    let old = vec![reminder(&moved, "old"), reminder(&cancelled, "old")];
    JobQueue::schedule_jobs(&db, old).await.expect("schedule");
    JobQueue::schedule_jobs(&db, vec![sara_actors::calendar_jobs::sync_job(t0())])
        .await
        .expect("schedule");
    let lease = t0() + Duration::seconds(60);
    let sync = JobQueue::claim_jobs(&db, "a", t0(), lease, 10)
        .await
        .expect("claim");
    assert_eq!(sync.len(), 1, "only the sync job is due");
    let new_start = moved.start + Duration::hours(2);
    let completion = || JobCompletion {
        bookings: vec![
            BookingWrite::Move {
                id: moved.id,
                start: new_start,
                end: new_start + Duration::minutes(30),
            },
            BookingWrite::Cancel(cancelled.id),
        ],
        void_jobs: vec![
            format!("reminder:{}:", moved.id),
            format!("reminder:{}:", cancelled.id),
        ],
        jobs: vec![reminder(&moved, "new")],
        outbox: vec![reminder_row(&format!("calendar_sync:{}:0", moved.id))],
        again_at: Some(t0() + Duration::seconds(60)),
        sync_token: None,
    };
    assert!(
        !db.complete_job_with(sync[0].id, "b", completion(), t0())
            .await
            .expect("complete"),
        "b holds no claim"
    );
    let untouched = db.upcoming_bookings(t0()).await.expect("bookings");
    assert_eq!(untouched.len(), 2, "nothing written: {untouched:?}");
    assert!(untouched.iter().all(|b| b.sequence == 0));
    assert!(
        db.complete_job_with(sync[0].id, "a", completion(), t0())
            .await
            .expect("complete")
    );
    let after = db.upcoming_bookings(t0()).await.expect("bookings");
    assert_eq!(after.len(), 1, "the cancelled one is gone: {after:?}");
    assert_eq!(after[0].id, moved.id);
    assert_eq!(after[0].start, new_start);
    assert_eq!(after[0].status, BookingStatus::Confirmed);
    assert_eq!(after[0].sequence, 1);
    let due = t0() + Duration::minutes(30);
    let keys: Vec<String> = JobQueue::claim_jobs(&db, "a", due, due + Duration::seconds(5), 10)
        .await
        .expect("claim")
        .into_iter()
        .map(|j| j.unique_key)
        .collect();
    assert_eq!(
        keys,
        vec![
            "calendar_sync".to_string(),
            format!("reminder:{}:new:120", moved.id),
        ],
        "the old reminders are void, the new one written, the sync due again"
    );
    assert_eq!(db.outbox().list_outbox(10).await.expect("list").len(), 1);
}

/// A booking whose calendar write failed for now is kept `pending` with its retry job; a
/// booking that is not held is not.
async fn a_deferred_booking_is_pending_with_its_retry_job(db: Database) {
    use sara_actors::calendar_jobs::CalendarWriteJob;
    use sara_actors::model::BookingStatus;
    use sara_actors::ports::{BookingWrite, JobCompletion};
    let booking = held_booking(24 * 60);
    db.insert_booking(&booking).await.expect("book");
    let retry = CalendarWriteJob {
        booking: booking.id,
        give_up_at: t0() + Duration::hours(1),
    }
    .record(t0())
    .expect("a job");
    assert!(
        db.jobs()
            .defer_booking(booking.id, &retry, t0())
            .await
            .expect("defer")
    );
    assert!(
        !db.jobs()
            .defer_booking(uuid::Uuid::new_v4(), &retry, t0())
            .await
            .expect("defer"),
        "no such booking"
    );
    let held = db.upcoming_bookings(t0()).await.expect("bookings");
    assert_eq!(held[0].status, BookingStatus::Pending);
    let claimed = JobQueue::claim_jobs(&db, "a", t0(), t0() + Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].unique_key, retry.unique_key);
    let confirm = JobCompletion {
        bookings: vec![BookingWrite::Confirm(booking.id)],
        ..JobCompletion::default()
    };
    assert!(
        db.complete_job_with(claimed[0].id, "a", confirm, t0())
            .await
            .expect("complete")
    );
    let confirmed = db.upcoming_bookings(t0()).await.expect("bookings");
    assert_eq!(confirmed[0].status, BookingStatus::Confirmed);
    // The same booking held again later (a released hold booked again) revives its job.
    assert!(
        db.jobs()
            .defer_booking(booking.id, &retry, t0())
            .await
            .expect("defer")
    );
    let again = JobQueue::claim_jobs(&db, "a", t0(), t0() + Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "the done job is pending again");
}
