//! The retention run on both backends: turns older than the cutoff lose their words (and
//! sent messages of that time go), newer turns and every booking stay, the run is audited
//! and the next one scheduled, all or nothing for the job's claim holder.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingStatus, Channel, Phone};
use sara_actors::ports::{
    ConversationStore, JobQueue, JobRecord, OutboxKind, OutboxMessage, TurnCommit, TurnRecord,
};
use uuid::Uuid;

use super::Database;
use super::testing::on_both_backends;

on_both_backends!(a_retention_run_redacts_old_turns_keeps_bookings_audits_and_schedules_the_next);
on_both_backends!(a_retention_run_whose_claim_was_lost_writes_nothing);

const PHONE: &str = "+15550177001";
const OLD_TEXT: &str = "book me a cleaning, I'm Wanda Ostrowski";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 14, 0, 0)
        .single()
        .expect("a valid test time")
}

fn phone() -> Phone {
    Phone::parse(PHONE).expect("a valid test number")
}

fn turn(version: i64, id: &str, text: &str, at: DateTime<Utc>) -> TurnCommit {
    TurnCommit {
        phone: phone(),
        expected_version: version,
        owner_epoch: 0,
        state: "{}".to_string(),
        turn: TurnRecord {
            channel: Channel::WhatsApp,
            provider_id: Some(id.to_string()),
            text: text.to_string(),
            reply: Reply {
                text: format!("Sara's answer to {id}"),
                options: vec!["Yes".into(), "No".into()],
                ..Reply::default()
            },
            intent: "book".to_string(),
            nlu: "rules".to_string(),
            understood: "{\"name\":\"Wanda Ostrowski\"}".to_string(),
            at,
            elapsed_ms: 2,
        },
        outbox: vec![OutboxMessage {
            contact: phone(),
            recipient: PHONE.to_string(),
            channel: Channel::WhatsApp,
            kind: OutboxKind::Reply,
            payload: format!("{{\"text\":\"Sara's answer to {id}\"}}"),
            idempotency_key: format!("{id}:reply"),
            not_before: at,
        }],
        jobs: Vec::new(),
        void_jobs: Vec::new(),
        attendance: Vec::new(),
    }
}

fn retention_job(key: &str, due_at: DateTime<Utc>) -> JobRecord {
    JobRecord {
        kind: "retention".into(),
        due_at,
        payload: "{}".into(),
        unique_key: key.into(),
    }
}

/// Schedules a retention run due at `at` and claims it for `owner`: its id.
async fn claimed_run(db: &Database, key: &str, at: DateTime<Utc>, owner: &str) -> i64 {
    db.schedule_job(retention_job(key, at), at)
        .await
        .expect("schedule");
    let claimed = db
        .claim_jobs(owner, at, at + Duration::seconds(60), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].kind, "retention");
    claimed[0].id
}

async fn a_retention_run_redacts_old_turns_keeps_bookings_audits_and_schedules_the_next(
    db: Database,
) {
    let new_at = t0() + Duration::days(400);
    db.commit(vec![
        turn(0, "wamid.old", OLD_TEXT, t0()),
        turn(1, "wamid.new", "and can I park?", new_at),
    ])
    .await
    .expect("commit");
    let start = t0() + Duration::days(3);
    db.insert_booking(&Booking {
        id: Uuid::new_v4(),
        phone: phone(),
        name: Some("Wanda Ostrowski".into()),
        email: None,
        service: "Cleaning".into(),
        start,
        end: start + Duration::minutes(45),
        status: BookingStatus::Confirmed,
        sequence: 0,
        staff: None,
        event_id: None,
    })
    .await
    .expect("book");
    // The old message was sent; the new one still waits.
    let outbox = db.outbox();
    let claimed = outbox
        .claim_outbox(
            Channel::WhatsApp,
            "relay",
            t0(),
            t0() + Duration::seconds(30),
            1,
        )
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(
        outbox
            .mark_sent(claimed[0].id, "relay", "wamid.sent", t0())
            .await
            .expect("sent")
    );

    let now = t0() + Duration::days(366);
    let id = claimed_run(&db, "retention:run1", now, "sched").await;
    // Scheduling the same run twice (another instance starting) leaves one.
    db.schedule_job(retention_job("retention:run1", now), now)
        .await
        .expect("schedule again");
    let next = retention_job("retention:run2", now + Duration::days(1));
    let cutoff = now - Duration::days(365);
    let redacted = db
        .complete_retention(id, "sched", cutoff, next.clone(), now)
        .await
        .expect("run");
    assert_eq!(redacted, Some(1), "only the turn older than the window");

    let log = db.turns_for(PHONE).await.expect("read").expect("found");
    assert_eq!(log.turns.len(), 2, "the turns themselves stay");
    let (old, new) = (&log.turns[0], &log.turns[1]);
    assert!(old.redacted && !new.redacted);
    assert_eq!((old.text.as_str(), old.reply.as_str()), ("", ""));
    assert_eq!(old.understood, "{}");
    assert_eq!(
        (old.intent.as_str(), old.at),
        ("book", t0()),
        "time and intent stay"
    );
    assert_eq!(new.text, "and can I park?");
    assert_eq!(new.reply, "Sara's answer to wamid.new");
    assert_eq!(
        db.processed_reply("wamid.old")
            .await
            .expect("read")
            .map(|r| r.text),
        Some(String::new()),
        "a retried year-old webhook is still a duplicate, with nothing said"
    );

    let rows = db.outbox().list_outbox(10).await.expect("outbox");
    assert_eq!(
        rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ["pending"],
        "the old sent message is gone, the pending one stays"
    );
    let bookings = db.bookings(chrono_tz::UTC).await.expect("bookings");
    assert_eq!(bookings.len(), 1, "bookings are kept");
    assert_eq!(bookings[0].name.as_deref(), Some("Wanda Ostrowski"));

    let audit = db.privacy().audit(10).await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "retention");
    assert_eq!(audit[0].contact_key, None);
    assert_eq!(audit[0].at, now);
    assert!(
        audit[0].detail.contains("1 turns") && audit[0].detail.contains("1 sent messages"),
        "{}",
        audit[0].detail
    );

    let due = db.next_job_due().await.expect("next");
    assert_eq!(
        due,
        Some(next.due_at),
        "the run is done and the next scheduled"
    );
    // A second run a day later finds nothing left to redact.
    let id = claimed_run(&db, "retention:run2", next.due_at, "sched").await;
    let again = db
        .complete_retention(
            id,
            "sched",
            cutoff + Duration::days(1),
            retention_job("retention:run3", next.due_at + Duration::days(1)),
            next.due_at,
        )
        .await
        .expect("run");
    assert_eq!(again, Some(0));
}

async fn a_retention_run_whose_claim_was_lost_writes_nothing(db: Database) {
    db.commit(vec![turn(0, "wamid.lost", OLD_TEXT, t0())])
        .await
        .expect("commit");
    let now = t0() + Duration::days(366);
    let id = claimed_run(&db, "retention:lost", now, "first").await;
    // The claim ran out and another instance took the job over.
    let later = now + Duration::seconds(61);
    let taken = db
        .claim_jobs("second", later, later + Duration::seconds(60), 10)
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1);
    let done = db
        .complete_retention(
            id,
            "first",
            now - Duration::days(365),
            retention_job("retention:next", now + Duration::days(1)),
            now,
        )
        .await
        .expect("run");
    assert_eq!(done, None);
    let log = db.turns_for(PHONE).await.expect("read").expect("found");
    assert_eq!(log.turns[0].text, OLD_TEXT, "nothing redacted");
    assert!(db.privacy().audit(10).await.expect("audit").is_empty());
    assert_eq!(
        db.next_job_due().await.expect("next"),
        Some(now),
        "only the taken-over run"
    );
}
