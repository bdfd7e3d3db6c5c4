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
    conversations_are_listed_newest_first_with_their_state,
    a_forgotten_caller_leaves_only_anonymous_time_blocks_and_an_audit_row
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
        void_jobs: Vec::new(),
        attendance: Vec::new(),
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

async fn a_forgotten_caller_leaves_only_anonymous_time_blocks_and_an_audit_row(db: Database) {
    use sara_actors::model::{Booking, BookingStatus};
    use sara_actors::ports::{OutboxKind, OutboxMessage};

    let gone = Phone::parse("+15553003333").expect("phone");
    let kept = Phone::parse("+15553004444").expect("phone");
    let mut first = commit(&gone, 0, "SMforget1", r#"{"d":{"c":"Ann Lee"}}"#, t0());
    first.outbox.push(OutboxMessage {
        contact: gone.clone(),
        recipient: gone.as_str().to_string(),
        channel: Channel::Sms,
        kind: OutboxKind::StaffReply,
        payload: r#"{"text":"hi Ann"}"#.to_string(),
        idempotency_key: "staff:forget".to_string(),
        not_before: t0(),
    });
    db.commit(vec![first]).await.expect("commit");
    db.commit(vec![commit(&gone, 1, "SMforget2", "{}", t0())])
        .await
        .expect("commit");
    db.commit(vec![commit(&kept, 0, "SMforget3", "{}", t0())])
        .await
        .expect("commit");
    let booking = |phone: &Phone, hour: u32| Booking {
        id: uuid::Uuid::new_v4(),
        phone: phone.clone(),
        name: Some("Ann Lee".into()),
        email: Some("ann@example.com".into()),
        service: "Cleaning".into(),
        start: t0() + Duration::hours(i64::from(hour)),
        end: t0() + Duration::hours(i64::from(hour)) + Duration::minutes(30),
        status: BookingStatus::Confirmed,
        sequence: 0,
        staff: None,
        event_id: None,
    };
    db.insert_booking(&booking(&gone, 24)).await.expect("book");
    db.insert_booking(&booking(&kept, 26)).await.expect("book");

    let report = db.privacy().forget(&gone, t0()).await.expect("forget");
    assert_eq!((report.turns, report.outbox, report.bookings), (2, 1, 1));
    assert!(report.conversation);

    assert!(db.turns_for("+15553003333").await.expect("read").is_none());
    assert!(db.turns_for("SMforget1").await.expect("read").is_none());
    assert!(db.load(&gone).await.expect("read").is_none());
    let outbox = db.outbox().list_outbox(10).await.expect("outbox");
    assert!(outbox.is_empty(), "{outbox:?}");
    let bookings = db.bookings(chrono_tz::UTC).await.expect("bookings");
    assert_eq!(bookings.len(), 2, "the time blocks stay: {bookings:?}");
    let block = bookings
        .iter()
        .find(|b| b.phone == super::forget::FORGOTTEN_PHONE)
        .expect("an anonymous block");
    assert_eq!(
        (block.name.as_deref(), block.status.as_str()),
        (None, "confirmed")
    );
    assert!(
        bookings
            .iter()
            .any(|b| b.phone == "+15553004444" && b.name.is_some())
    );
    assert!(db.turns_for("+15553004444").await.expect("read").is_some());

    let audit = db.privacy().audit(10).await.expect("audit");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, "forget");
    assert_eq!(
        audit[0].contact_key.as_deref(),
        Some(db.contact_key(&gone).as_str())
    );
    assert!(audit[0].detail.contains("2 turns"), "{:?}", audit[0]);

    let again = db
        .privacy()
        .forget(&gone, t0())
        .await
        .expect("forget twice");
    assert_eq!(again, super::forget::Forgotten::default());
}
