//! Scheduled jobs on both backends: written with their turn (once per unique key), claimed
//! when due in due order, a lapsed claim taken over, settled only by the claim holder.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Channel, Phone};
use sara_actors::ports::{ConversationStore, JobRecord, TurnCommit, TurnRecord};

use super::Database;
use super::testing::on_both_backends;

on_both_backends!(due_jobs_are_claimed_in_order_once_and_settled_by_their_holder);

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
