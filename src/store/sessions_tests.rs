//! Console sessions on both backends: valid until their expiry, ended by logging out, kept
//! as a hash only; the conversation list the console reads, newest first, opened.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Channel, Phone};
use sara_actors::ports::{ConversationStore, TurnCommit, TurnRecord};

use super::Database;
use super::testing::on_both_backends;

on_both_backends!(
    a_session_is_valid_until_it_expires_or_is_ended,
    conversations_are_listed_newest_first_with_their_state
);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0)
        .single()
        .expect("a valid test time")
}

async fn a_session_is_valid_until_it_expires_or_is_ended(db: Database) {
    let sessions = db.sessions();
    let expires = t0() + Duration::hours(12);
    sessions
        .create_session("session-one", t0(), expires)
        .await
        .expect("create");
    sessions
        .create_session("session-two", t0(), expires)
        .await
        .expect("create");
    assert!(
        sessions
            .session_valid("session-one", t0())
            .await
            .expect("read")
    );
    assert!(
        !sessions
            .session_valid("session-one", expires)
            .await
            .expect("read"),
        "expired at its expiry"
    );
    assert!(
        !sessions
            .session_valid("session-three", t0())
            .await
            .expect("read"),
        "an unknown id opens nothing"
    );
    sessions.end_session("session-one").await.expect("end");
    assert!(
        !sessions
            .session_valid("session-one", t0())
            .await
            .expect("read")
    );
    assert!(
        sessions
            .session_valid("session-two", t0())
            .await
            .expect("read"),
        "logging out ends that session only"
    );
    sessions
        .end_session("session-one")
        .await
        .expect("ending twice is fine");
    // A later login drops the sessions expired by then.
    sessions
        .create_session("session-four", expires, expires + Duration::hours(12))
        .await
        .expect("create");
    assert!(
        !sessions
            .session_valid("session-two", t0())
            .await
            .expect("read")
    );
}

fn commit(phone: &Phone, version: i64, id: &str, state: &str, at: DateTime<Utc>) -> TurnCommit {
    TurnCommit {
        phone: phone.clone(),
        expected_version: version,
        owner_epoch: 0,
        state: state.to_string(),
        turn: TurnRecord {
            channel: Channel::Sms,
            provider_id: Some(id.to_string()),
            text: "hello".to_string(),
            reply: Reply::default(),
            intent: "greet".to_string(),
            nlu: "rules".to_string(),
            understood: "{}".to_string(),
            at,
            elapsed_ms: 7,
        },
        outbox: Vec::new(),
        jobs: Vec::new(),
    }
}

async fn conversations_are_listed_newest_first_with_their_state(db: Database) {
    let first = Phone::parse("+15553001111").expect("phone");
    let second = Phone::parse("+15553002222").expect("phone");
    db.commit(vec![commit(&first, 0, "SMlist1", r#"{"d":{}}"#, t0())])
        .await
        .expect("commit");
    db.commit(vec![commit(
        &second,
        0,
        "SMlist2",
        r#"{"d":{"c":"Ann"}}"#,
        t0(),
    )])
    .await
    .expect("commit");
    let list = db.conversations(10).await.expect("list");
    assert_eq!(list.len(), 2, "{list:?}");
    let phones: Vec<&str> = list.iter().map(|c| c.phone.as_str()).collect();
    assert!(phones.contains(&"+15553001111") && phones.contains(&"+15553002222"));
    let ann = list
        .iter()
        .find(|c| c.phone == "+15553002222")
        .expect("listed");
    assert_eq!(ann.state, r#"{"d":{"c":"Ann"}}"#);
    assert_eq!(db.conversations(1).await.expect("list").len(), 1);
    let log = db
        .turns_for("+15553001111")
        .await
        .expect("read")
        .expect("log");
    assert_eq!(log.turns[0].elapsed_ms, 7);
    assert_eq!(log.turns[0].understood, "{}");
}
