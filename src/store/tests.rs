//! The store's behaviour, the same on both backends: compare-and-swap, duplicates, group
//! commit, gapless turn numbers and the admin read models.

use chrono::{DateTime, TimeZone, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingStatus, Channel, Phone};
use sara_actors::ports::{CommitOutcome, ConversationStore, TurnCommit, TurnRecord};
use uuid::Uuid;

use super::testing::on_both_backends;
use super::{BookingCounts, Database, Stats};

fn phone(n: u32) -> Phone {
    Phone::parse(&format!("+1555{n:07}")).expect("a valid test number")
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 15, minute, 0)
        .single()
        .expect("a valid test time")
}

fn turn(phone: &Phone, expected_version: i64, provider_id: Option<&str>, text: &str) -> TurnCommit {
    TurnCommit {
        phone: phone.clone(),
        expected_version,
        owner_epoch: 0,
        state: format!("{{\"after\":\"{text}\"}}"),
        turn: TurnRecord {
            channel: Channel::Sms,
            provider_id: provider_id.map(str::to_string),
            text: text.to_string(),
            reply: plain(&format!("reply to {text}")),
            intent: "book".to_string(),
            nlu: "rules".to_string(),
            understood: "{\"acts\":[]}".to_string(),
            at: at(expected_version as u32),
            elapsed_ms: 12,
        },
        outbox: Vec::new(),
        jobs: Vec::new(),
        void_jobs: Vec::new(),
        attendance: Vec::new(),
    }
}

fn plain(text: &str) -> Reply {
    Reply {
        text: text.to_string(),
        ..Reply::default()
    }
}

async fn seqs(db: &Database, phone: &Phone) -> Vec<i64> {
    db.turns_for(phone.as_str())
        .await
        .expect("read the log")
        .map(|log| log.turns.iter().map(|t| t.seq).collect())
        .unwrap_or_default()
}

on_both_backends!(
    a_stale_version_is_a_conflict_and_writes_nothing,
    a_seen_provider_id_is_a_duplicate_with_the_stored_reply,
    a_duplicate_is_answered_with_the_whole_reply,
    a_batch_commits_many_conversations_at_once,
    turns_of_one_phone_chain_inside_a_batch,
    turn_numbers_stay_gapless_across_conflicts_and_duplicates,
    the_log_is_found_by_phone_and_by_provider_id,
    bookings_are_shown_in_the_business_offset,
    stats_count_conversations_turns_and_bookings,
    ping_answers_and_an_empty_batch_is_fine,
    concurrent_writers_of_one_conversation_get_one_commit,
    a_stale_lease_owner_is_fenced_off_even_with_the_right_version,
    attendance_commits_with_its_turn_for_the_customers_own_booking_and_a_move_clears_it,
    overlaps_are_refused_however_long_the_earlier_booking,
    what_a_caller_heard_and_voicemails_are_kept_sealed_in_any_callback_order,
    an_older_binary_starts_on_a_database_a_newer_one_migrated,
    bookings_with_different_staff_share_a_time_and_with_the_same_do_not,
    a_released_hold_is_booked_again_through_the_same_guard,
    the_calendar_reload_searches_the_live_bookings_by_their_end,
);

/// A relay caller's interruption is kept on its turn; a voicemail's callbacks (the record
/// action, the status, the transcription) fill one row whichever comes first, and both are
/// sealed at rest.
async fn what_a_caller_heard_and_voicemails_are_kept_sealed_in_any_callback_order(db: Database) {
    use super::VoicemailReport;
    let p = phone(8);
    let mut spoken = turn(&p, 0, Some("CA77:r1"), "book me in");
    spoken.turn.channel = Channel::Voice;
    db.commit(vec![spoken]).await.expect("commit");
    assert!(
        db.record_heard("CA77:r1", "Sure, which")
            .await
            .expect("heard")
    );
    assert!(
        !db.record_heard("CA77:r9", "nothing")
            .await
            .expect("no such turn")
    );
    assert_eq!(
        db.heard_of(&p).await.expect("read"),
        vec![("CA77:r1".to_string(), "Sure, which".to_string())]
    );

    let url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1";
    let transcribed = VoicemailReport {
        recording_sid: "RE1".into(),
        call_sid: "CA77".into(),
        transcription: Some("Please call me back about Friday".into()),
        ..VoicemailReport::default()
    };
    assert!(
        db.store_voicemail(transcribed, Some(&p), None, at(1))
            .await
            .expect("store")
    );
    let recorded = VoicemailReport {
        recording_sid: "RE1".into(),
        call_sid: "CA77".into(),
        recording_url: Some(url.into()),
        duration_s: Some(9),
        ..VoicemailReport::default()
    };
    let alert = sara_actors::ports::OutboxMessage {
        contact: p.clone(),
        recipient: "front@harbor.example".into(),
        channel: Channel::Email,
        kind: sara_actors::ports::OutboxKind::StaffAlert,
        payload: "{\"voicemail\":\"Recordings/RE1\"}".into(),
        idempotency_key: "RE1:staff_alert".into(),
        not_before: at(2),
    };
    // The transcription came first (no URL yet): no alert then.
    assert!(
        db.outbox()
            .list_outbox(10)
            .await
            .expect("outbox")
            .is_empty()
    );
    assert!(
        !db.store_voicemail(recorded.clone(), None, Some(&alert), at(2))
            .await
            .expect("store")
    );
    // Twilio's second callback with the URL (or a retry) writes no second alert.
    assert!(
        !db.store_voicemail(recorded, None, Some(&alert), at(3))
            .await
            .expect("again")
    );
    let outbox = db.outbox().list_outbox(10).await.expect("outbox");
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].kind, "staff_alert");
    assert_eq!(outbox[0].channel, "email");
    for (call, who) in [("CA77", None), ("", Some(&p))] {
        let found = db.voicemails(call, who).await.expect("read");
        assert_eq!(found.len(), 1, "{call} {who:?}");
        assert_eq!(found[0].recording_url.as_deref(), Some(url));
        assert_eq!(found[0].duration_s, Some(9));
        assert_eq!(
            found[0].transcription.as_deref(),
            Some("Please call me back about Friday")
        );
        assert_eq!(found[0].at, at(1));
    }
    assert!(
        db.voicemails("CA78", Some(&phone(9)))
            .await
            .expect("read")
            .is_empty()
    );
    let raw = super::privacy_tests::dump(&db).await;
    assert!(!raw.contains("call me back"), "the transcription is sealed");
    assert!(
        !raw.contains("Recordings/RE1"),
        "the recording URL is sealed"
    );
    assert!(!raw.contains("Sure, which"), "what was heard is sealed");
}

/// A rollback (or an old pod restarting mid-rollout): the database holds a migration this
/// binary does not know; migrating again starts instead of refusing it.
async fn an_older_binary_starts_on_a_database_a_newer_one_migrated(db: Database) {
    const NEWER: &str = "INSERT INTO _sqlx_migrations \
         (version, description, success, checksum, execution_time) \
         VALUES (99991231000000, 'from a newer release', TRUE, $1, 1)";
    if let Some(pool) = db.sqlite_pool() {
        sqlx::query(NEWER)
            .bind(vec![0u8; 48])
            .execute(pool)
            .await
            .expect("a newer migration recorded");
    } else if let Some(pool) = db.postgres_pool() {
        sqlx::query(NEWER)
            .bind(vec![0u8; 48])
            .execute(pool)
            .await
            .expect("a newer migration recorded");
    }
    db.migrate()
        .await
        .expect("an older binary starts on a newer schema");
    db.ping().await.expect("and serves");
}

/// The commit checks the fencing token as well as the version: once a newer lease owner has
/// committed, an older one cannot, even when it names the current version.
async fn a_stale_lease_owner_is_fenced_off_even_with_the_right_version(db: Database) {
    let me = Phone::parse("+15550009001").expect("test phone");
    let fenced = |expected: i64, epoch: i64, text: &str| TurnCommit {
        owner_epoch: epoch,
        ..turn(&me, expected, None, text)
    };
    let out = db
        .commit(vec![fenced(0, 3, "first")])
        .await
        .expect("commit");
    assert_eq!(out, vec![CommitOutcome::Committed { version: 1 }]);
    let stored = db.load(&me).await.expect("load").expect("stored");
    assert_eq!((stored.version, stored.owner_epoch), (1, 3));
    // Owner 5 takes over and commits; owner 4 (paused, lease expired) then names version 2.
    let out = db
        .commit(vec![fenced(1, 5, "new owner")])
        .await
        .expect("commit");
    assert_eq!(out, vec![CommitOutcome::Committed { version: 2 }]);
    let out = db
        .commit(vec![fenced(2, 4, "stale")])
        .await
        .expect("commit");
    assert_eq!(out, vec![CommitOutcome::Fenced]);
    // An unfenced commit (no lease: Redis down) is decided by the version alone and keeps
    // the stored token.
    let out = db
        .commit(vec![fenced(2, 0, "unfenced")])
        .await
        .expect("commit");
    assert_eq!(out, vec![CommitOutcome::Committed { version: 3 }]);
    let stored = db.load(&me).await.expect("load").expect("stored");
    assert_eq!((stored.version, stored.owner_epoch), (3, 5));
    assert_eq!(seqs(&db, &me).await, vec![1, 2, 3]);
}

async fn a_stale_version_is_a_conflict_and_writes_nothing(db: Database) {
    let p = phone(1);
    assert!(db.load(&p).await.expect("load").is_none());
    let out = db
        .commit(vec![turn(&p, 0, None, "hi")])
        .await
        .expect("commit");
    assert_eq!(out, vec![CommitOutcome::Committed { version: 1 }]);

    // Someone who also read "no conversation", and someone with a made-up version.
    let out = db
        .commit(vec![
            turn(&p, 0, None, "stale"),
            turn(&p, 7, None, "future"),
        ])
        .await
        .expect("commit");
    assert_eq!(
        out,
        vec![
            CommitOutcome::VersionConflict,
            CommitOutcome::VersionConflict
        ]
    );
    let stored = db.load(&p).await.expect("load").expect("stored");
    assert_eq!(stored.version, 1);
    assert_eq!(stored.state, "{\"after\":\"hi\"}");
    assert_eq!(seqs(&db, &p).await, vec![1]);

    let out = db
        .commit(vec![turn(&p, 1, None, "next")])
        .await
        .expect("commit");
    assert_eq!(out, vec![CommitOutcome::Committed { version: 2 }]);
    let stored = db.load(&p).await.expect("load").expect("stored");
    assert_eq!(
        (stored.version, stored.state.as_str()),
        (2, "{\"after\":\"next\"}")
    );
}

async fn a_seen_provider_id_is_a_duplicate_with_the_stored_reply(db: Database) {
    let p = phone(2);
    assert_eq!(db.processed_reply("SM1").await.expect("query"), None);
    let out = db
        .commit(vec![
            turn(&p, 0, Some("SM1"), "book"),
            // The provider retried inside the same batch.
            turn(&p, 1, Some("SM1"), "book again"),
        ])
        .await
        .expect("commit");
    assert_eq!(
        out,
        vec![
            CommitOutcome::Committed { version: 1 },
            CommitOutcome::Duplicate {
                reply: plain("reply to book")
            },
        ]
    );
    // And retried later, in another batch, with a fresh version.
    let out = db
        .commit(vec![turn(&p, 1, Some("SM1"), "book once more")])
        .await
        .expect("commit");
    assert_eq!(
        out,
        vec![CommitOutcome::Duplicate {
            reply: plain("reply to book")
        }]
    );
    let stored = db.load(&p).await.expect("load").expect("stored");
    assert_eq!(stored.version, 1, "a duplicate writes nothing");
    assert_eq!(
        db.processed_reply("SM1").await.expect("query"),
        Some(plain("reply to book"))
    );
    assert_eq!(seqs(&db, &p).await, vec![1]);
}

/// A re-delivered message gets its first reply whole: a voice gather its hand-over (Twilio
/// must dial again, not gather), a WhatsApp message its buttons, a call its hang-up, a
/// message staff have its silence. Inside the batch and from a later one alike.
async fn a_duplicate_is_answered_with_the_whole_reply(db: Database) {
    let p = phone(20);
    let replies = [
        Reply {
            text: "Connecting you now.".into(),
            handover: true,
            ..Reply::default()
        },
        Reply {
            text: "Which time suits you?".into(),
            options: vec!["10:00 AM".into(), "11:30 AM".into(), "2:00 PM".into()],
            ..Reply::default()
        },
        Reply {
            text: "Goodbye!".into(),
            end: true,
            ..Reply::default()
        },
        Reply {
            silent: true,
            ..Reply::default()
        },
    ];
    let with = |version: i64, id: &str, reply: &Reply| {
        let mut commit = turn(&p, version, Some(id), "hello");
        commit.turn.reply = reply.clone();
        commit
    };
    let mut batch: Vec<TurnCommit> = replies
        .iter()
        .enumerate()
        .map(|(n, reply)| with(n as i64, &format!("WA{n}"), reply))
        .collect();
    // The first one retried inside the same batch.
    batch.push(with(4, "WA0", &plain("other")));
    let out = db.commit(batch).await.expect("commit");
    assert_eq!(
        out[4],
        CommitOutcome::Duplicate {
            reply: replies[0].clone()
        }
    );
    for (n, reply) in replies.iter().enumerate() {
        let again = db
            .commit(vec![with(4, &format!("WA{n}"), &plain("other"))])
            .await
            .expect("commit");
        assert_eq!(
            again,
            vec![CommitOutcome::Duplicate {
                reply: reply.clone()
            }]
        );
        assert_eq!(
            db.processed_reply(&format!("WA{n}")).await.expect("query"),
            Some(reply.clone())
        );
    }
    // The log still shows the reply's words.
    let log = db.turns_for("WA1").await.expect("log").expect("found");
    assert_eq!(log.turns[1].reply, "Which time suits you?");
}

/// A reply the cache remembered before whole replies were (its text alone) opens as that
/// text, silent when empty, as it was answered then; a whole reply opens whole.
#[test]
fn the_cache_sealer_opens_whole_replies_and_old_text_ones() {
    use base64::Engine as _;
    let key = super::EncryptionKey::generate();
    let sealer = super::CacheSealer::from_key(&key);
    let reply = Reply {
        text: "Connecting you now.".into(),
        handover: true,
        ..Reply::default()
    };
    assert_eq!(sealer.open_reply(&sealer.seal_reply(&reply)), Some(reply));
    let old = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(sealer.sealer.seal_str(super::Field::CachedReply, text))
    };
    assert_eq!(
        sealer.open_reply(&old("see you then")),
        Some(plain("see you then"))
    );
    assert_eq!(
        sealer.open_reply(&old("")),
        Some(Reply {
            silent: true,
            ..Reply::default()
        })
    );
    assert_eq!(sealer.open_reply("not base64!"), None);
}

async fn a_batch_commits_many_conversations_at_once(db: Database) {
    let batch: Vec<TurnCommit> = (0..300)
        .map(|n| turn(&phone(1000 + n), 0, Some(&format!("SM{n}")), "hello"))
        .collect();
    let out = db.commit(batch).await.expect("commit");
    assert_eq!(out.len(), 300);
    assert!(
        out.iter()
            .all(|o| *o == CommitOutcome::Committed { version: 1 })
    );
    let stats = db.stats().await.expect("stats");
    assert_eq!((stats.conversations, stats.turns), (300, 300));
    for n in [0, 150, 299] {
        let stored = db
            .load(&phone(1000 + n))
            .await
            .expect("load")
            .expect("stored");
        assert_eq!(stored.version, 1);
    }
}

async fn turns_of_one_phone_chain_inside_a_batch(db: Database) {
    let (a, b) = (phone(3), phone(4));
    let out = db
        .commit(vec![
            turn(&a, 0, Some("a1"), "one"),
            turn(&b, 0, Some("b1"), "one"),
            turn(&a, 1, Some("a2"), "two"),
            turn(&a, 2, Some("a3"), "three"),
            turn(&b, 1, Some("b2"), "two"),
        ])
        .await
        .expect("commit");
    assert_eq!(
        out,
        vec![
            CommitOutcome::Committed { version: 1 },
            CommitOutcome::Committed { version: 1 },
            CommitOutcome::Committed { version: 2 },
            CommitOutcome::Committed { version: 3 },
            CommitOutcome::Committed { version: 2 },
        ]
    );
    assert_eq!(seqs(&db, &a).await, vec![1, 2, 3]);
    assert_eq!(seqs(&db, &b).await, vec![1, 2]);
    let stored = db.load(&a).await.expect("load").expect("stored");
    assert_eq!(
        (stored.version, stored.state.as_str()),
        (3, "{\"after\":\"three\"}")
    );
}

async fn turn_numbers_stay_gapless_across_conflicts_and_duplicates(db: Database) {
    let p = phone(5);
    let out = db
        .commit(vec![
            turn(&p, 0, Some("w1"), "one"),
            turn(&p, 5, Some("w2"), "conflict"),
            turn(&p, 1, Some("w1"), "duplicate"),
            turn(&p, 1, Some("w3"), "two"),
        ])
        .await
        .expect("commit");
    assert_eq!(out[1], CommitOutcome::VersionConflict);
    assert!(matches!(out[2], CommitOutcome::Duplicate { .. }));
    assert_eq!(out[3], CommitOutcome::Committed { version: 2 });
    db.commit(vec![turn(&p, 2, None, "three")])
        .await
        .expect("commit");
    assert_eq!(seqs(&db, &p).await, vec![1, 2, 3]);
    // The conflicting turn's provider id was not recorded: a retry may still commit it.
    assert_eq!(db.processed_reply("w2").await.expect("query"), None);
}

async fn the_log_is_found_by_phone_and_by_provider_id(db: Database) {
    let (p, other) = (phone(6), phone(7));
    let mut voice = turn(&p, 1, Some("CA9f00:1"), "on the phone");
    voice.turn.channel = Channel::Voice;
    db.commit(vec![
        turn(&p, 0, Some("SMabc"), "by text"),
        voice,
        turn(&other, 0, Some("SMzzz"), "someone else"),
    ])
    .await
    .expect("commit");

    let by_phone = db
        .turns_for("+15550000006")
        .await
        .expect("read")
        .expect("found by phone");
    assert_eq!(by_phone.conversation, "+15550000006");
    assert_eq!(by_phone.turns.len(), 2);
    assert_eq!(by_phone.turns[1].channel, Channel::Voice);
    assert_eq!(by_phone.turns[1].provider_id.as_deref(), Some("CA9f00:1"));
    // A provider id finds the whole conversation; a CallSid finds its turns' conversation.
    for id in ["SMabc", "CA9f00:1", "CA9f00"] {
        let log = db.turns_for(id).await.expect("read").expect("found by id");
        assert_eq!(log, by_phone, "looked up by {id}");
    }
    // A phone written another way is the same contact.
    assert_eq!(
        db.turns_for("+1 555-000-0006").await.expect("read"),
        Some(by_phone.clone())
    );
    assert_eq!(db.turns_for("SMnope").await.expect("read"), None);
    assert_eq!(db.turns_for("+15559999999").await.expect("read"), None);
    assert_eq!(db.turns_for("").await.expect("read"), None);

    let json = serde_json::to_value(&by_phone).expect("serializes");
    assert_eq!(json["conversation"], "+15550000006");
    let first = &json["turns"][0];
    assert_eq!(first["seq"], 1);
    assert_eq!(first["channel"], "sms");
    assert_eq!(first["provider_id"], "SMabc");
    assert_eq!(first["text"], "by text");
    assert_eq!(first["reply"], "reply to by text");
    assert_eq!(first["intent"], "book");
    assert_eq!(first["at"], "2026-11-25T15:00:00Z");
}

/// The calendar reloads the bookings still to come every minute: that read is a search of
/// the live bookings' own index by their end, not a walk over every booking ever made (in a
/// soak, cancelled bookings pile up and the walk stalled every booking for a second a minute).
/// SQLite's planner is checked; PostgreSQL's chooses by table statistics (a small test table
/// is read whole), so there the index is only checked to exist.
async fn the_calendar_reload_searches_the_live_bookings_by_their_end(db: Database) {
    if let Some(pool) = db.sqlite_pool() {
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            super::sql::UPCOMING_BOOKINGS
        )))
        .bind("2026-12-01T00:00:00.000Z")
        .fetch_all(pool)
        .await
        .expect("a query plan");
        assert!(
            plan.iter()
                .any(|(.., step)| step.contains("USING INDEX bookings_live_end")),
            "{plan:?}"
        );
    } else if let Some(pool) = db.postgres_pool() {
        let found: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname = 'bookings_live_end' \
             AND indexdef LIKE '%WHERE (status <> ''cancelled''%'",
        )
        .fetch_one(pool)
        .await
        .expect("the index list");
        assert_eq!(found, 1);
    }
}

fn booking(n: u32, start: DateTime<Utc>, minutes: i64, status: BookingStatus) -> Booking {
    Booking {
        id: Uuid::new_v4(),
        phone: phone(n),
        name: Some("Ada".to_string()),
        email: None,
        service: "checkup".to_string(),
        start,
        end: start + chrono::Duration::minutes(minutes),
        status,
        sequence: 0,
        staff: None,
        event_id: None,
    }
}

/// The overlap check searches a window of starts bounded by the longest confirmed booking:
/// a booking that starts days earlier still blocks, a pending or cancelled one never does,
/// and a booking ending exactly where another starts is fine.
async fn overlaps_are_refused_however_long_the_earlier_booking(db: Database) {
    let day = |d: u32, h: u32| {
        Utc.with_ymd_and_hms(2027, 3, d, h, 0, 0)
            .single()
            .expect("a valid test time")
    };
    let taken = |r: Result<(), sara_actors::ports::CalendarError>| {
        matches!(r, Err(sara_actors::ports::CalendarError::SlotTaken))
    };
    // Many short bookings before and after, so the long one is not the latest start.
    for h in 8..12 {
        let short = booking(1, day(1, h), 30, BookingStatus::Confirmed);
        db.insert_booking(&short).await.expect("a free short slot");
        let later = booking(1, day(20, h), 30, BookingStatus::Confirmed);
        db.insert_booking(&later).await.expect("a free later slot");
    }
    // Four days long, from March 2 at 12:00 to March 6 at 12:00.
    let long = booking(2, day(2, 12), 4 * 24 * 60, BookingStatus::Confirmed);
    db.insert_booking(&long).await.expect("a free long slot");
    for h in 8..12 {
        let short = booking(1, day(3, h), 30, BookingStatus::Confirmed);
        assert!(
            taken(db.insert_booking(&short).await),
            "inside the long booking, {h}:00 on its second day"
        );
    }
    let inside = booking(3, day(5, 23), 30, BookingStatus::Confirmed);
    assert!(taken(db.insert_booking(&inside).await), "near its end");
    let across = booking(3, day(6, 11), 120, BookingStatus::Confirmed);
    assert!(taken(db.insert_booking(&across).await), "across its end");
    let after = booking(3, day(6, 12), 30, BookingStatus::Confirmed);
    db.insert_booking(&after)
        .await
        .expect("starts as the long one ends");
    let pending = booking(4, day(4, 9), 30, BookingStatus::Pending);
    db.insert_booking(&pending)
        .await
        .expect("pending never conflicts");

    // Moving a short booking into the long one is refused; moving it clear is fine.
    let movable = booking(5, day(10, 9), 30, BookingStatus::Confirmed);
    db.insert_booking(&movable).await.expect("a free slot");
    let (s, e) = (day(4, 9), day(4, 9) + chrono::Duration::minutes(30));
    assert!(
        taken(db.move_booking(movable.id, s, e).await),
        "moved inside"
    );
    let (s, e) = (day(10, 10), day(10, 10) + chrono::Duration::minutes(30));
    db.move_booking(movable.id, s, e)
        .await
        .expect("moved clear");

    // Once the long booking is cancelled its days are free.
    db.cancel_booking(long.id).await.expect("cancel");
    let freed = booking(1, day(3, 9), 30, BookingStatus::Confirmed);
    db.insert_booking(&freed)
        .await
        .expect("free after the cancel");
}

/// With staff, the store's guard against double booking is per staff member: Anna and Ben
/// may both be booked at 9:00, Anna twice may not (nor moved onto her own time), and a
/// booking with nobody conflicts only with other bookings with nobody.
async fn bookings_with_different_staff_share_a_time_and_with_the_same_do_not(db: Database) {
    let nine = Utc
        .with_ymd_and_hms(2027, 3, 1, 14, 0, 0)
        .single()
        .expect("a valid test time");
    let taken = |r: Result<(), sara_actors::ports::CalendarError>| {
        matches!(r, Err(sara_actors::ports::CalendarError::SlotTaken))
    };
    let with = |n: u32, staff: Option<&str>, start: DateTime<Utc>| Booking {
        staff: staff.map(str::to_string),
        ..booking(n, start, 30, BookingStatus::Confirmed)
    };
    let anna = with(1, Some("Anna"), nine);
    db.insert_booking(&anna).await.expect("Anna at nine");
    db.insert_booking(&with(2, Some("Ben"), nine))
        .await
        .expect("Ben at nine too");
    assert!(taken(
        db.insert_booking(&with(3, Some("Anna"), nine + chrono::Duration::minutes(15)))
            .await
    ));
    db.insert_booking(&with(4, None, nine))
        .await
        .expect("nobody's booking beside the staff's");
    assert!(taken(db.insert_booking(&with(5, None, nine)).await));
    // A later booking of Anna's cannot move onto her nine o'clock; Ben's time is no bar.
    let later = with(6, Some("Anna"), nine + chrono::Duration::hours(2));
    db.insert_booking(&later).await.expect("Anna at eleven");
    let half = chrono::Duration::minutes(30);
    assert!(taken(db.move_booking(later.id, nine, nine + half).await));
    let ben_later = with(7, Some("Ben"), nine + chrono::Duration::hours(2));
    db.insert_booking(&ben_later).await.expect("Ben at eleven");
    let views = db
        .bookings(chrono_tz::America::New_York)
        .await
        .expect("list");
    let json = serde_json::to_value(&views).expect("serializes");
    let staff: Vec<&serde_json::Value> = json
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| &v["staff"])
        .collect();
    assert!(staff.contains(&&serde_json::json!("Anna")));
    assert!(staff.contains(&&serde_json::Value::Null));
    assert!(
        json.as_array()
            .expect("a list")
            .iter()
            .all(|v| v["calendar"] == "local")
    );
}

/// A hold released after its Google write failed (the row cancelled) is booked again by
/// the caller's retry — the same row, with its event id — unless someone took the time.
async fn a_released_hold_is_booked_again_through_the_same_guard(db: Database) {
    let nine = Utc
        .with_ymd_and_hms(2027, 3, 2, 14, 0, 0)
        .single()
        .expect("a valid test time");
    let hold = Booking {
        event_id: Some("abc123".into()),
        ..booking(1, nine, 30, BookingStatus::Confirmed)
    };
    db.insert_booking(&hold).await.expect("held");
    db.cancel_booking(hold.id).await.expect("released");
    db.insert_booking(&hold).await.expect("booked again");
    let views = db
        .bookings(chrono_tz::America::New_York)
        .await
        .expect("list");
    assert_eq!(views.len(), 1, "one row: {views:?}");
    assert_eq!(views[0].status, "confirmed");
    assert_eq!(views[0].calendar, "google");
    assert_eq!(views[0].event_id.as_deref(), Some("abc123"));

    // Released again, and someone else takes the time meanwhile: the retry is refused.
    db.cancel_booking(hold.id).await.expect("released");
    db.insert_booking(&booking(2, nine, 30, BookingStatus::Confirmed))
        .await
        .expect("someone else");
    assert!(matches!(
        db.insert_booking(&hold).await,
        Err(sara_actors::ports::CalendarError::SlotTaken)
    ));
}

async fn bookings_are_shown_in_the_business_offset(db: Database) {
    // 14:00 UTC on 30 Nov is 09:00 in New York (EST); 14:00 UTC on 1 Jul is 10:00 (EDT).
    let winter = Utc
        .with_ymd_and_hms(2026, 11, 30, 14, 0, 0)
        .single()
        .expect("time");
    let summer = Utc
        .with_ymd_and_hms(2027, 7, 1, 14, 0, 0)
        .single()
        .expect("time");
    let b1 = booking(8, summer, 30, BookingStatus::Confirmed);
    let b2 = booking(9, winter, 45, BookingStatus::Pending);
    db.insert_booking(&b1).await.expect("book");
    db.insert_booking(&b2).await.expect("book");

    let views = db
        .bookings(chrono_tz::America::New_York)
        .await
        .expect("list");
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].id, b2.id, "ordered by start");
    assert_eq!(views[0].start, "2026-11-30T09:00:00-05:00");
    assert_eq!(views[0].end, "2026-11-30T09:45:00-05:00");
    assert_eq!(views[0].status, "pending");
    assert_eq!(views[1].start, "2027-07-01T10:00:00-04:00");
    let json = serde_json::to_value(&views[1]).expect("serializes");
    assert_eq!(json["id"], b1.id.to_string());
    assert_eq!(json["phone"], "+15550000008");
    assert_eq!(json["name"], "Ada");
    assert_eq!(json["service"], "checkup");
    assert_eq!(json["status"], "confirmed");
}

async fn stats_count_conversations_turns_and_bookings(db: Database) {
    assert_eq!(db.stats().await.expect("stats"), Stats::default());
    let (a, b) = (phone(10), phone(11));
    db.commit(vec![
        turn(&a, 0, None, "one"),
        turn(&a, 1, None, "two"),
        turn(&b, 0, None, "one"),
    ])
    .await
    .expect("commit");
    let start = at(0) + chrono::Duration::days(3);
    let kept = booking(10, start, 30, BookingStatus::Confirmed);
    let dropped = booking(
        11,
        start + chrono::Duration::hours(1),
        30,
        BookingStatus::Confirmed,
    );
    db.insert_booking(&kept).await.expect("book");
    db.insert_booking(&dropped).await.expect("book");
    db.insert_booking(&booking(12, start, 30, BookingStatus::Pending))
        .await
        .expect("hold");
    db.cancel_booking(dropped.id).await.expect("cancel");
    assert_eq!(
        db.stats().await.expect("stats"),
        Stats {
            conversations: 2,
            turns: 3,
            bookings: BookingCounts {
                confirmed: 1,
                pending: 1,
                cancelled: 1
            },
        }
    );
}

async fn concurrent_writers_of_one_conversation_get_one_commit(db: Database) {
    // Stale writers (two instances, a lost lease) racing on the same phone, each in its own
    // batch alongside other conversations.
    let p = phone(30);
    for expected in [0, 1] {
        let tasks: Vec<_> = (0..10u32)
            .map(|n| {
                let db = db.clone();
                let mine = turn(&p, expected, Some(&format!("race{expected}-{n}")), "race");
                let other = turn(&phone(40 + n + 10 * expected as u32), 0, None, "bystander");
                tokio::spawn(async move { db.commit(vec![other, mine]).await })
            })
            .collect();
        let mut committed = 0;
        for task in tasks {
            let out = task.await.expect("the task finishes").expect("commit");
            assert_eq!(out[0], CommitOutcome::Committed { version: 1 });
            match out[1] {
                CommitOutcome::Committed { version } => {
                    assert_eq!(version, expected + 1);
                    committed += 1;
                }
                CommitOutcome::VersionConflict => {}
                ref other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!(
            committed, 1,
            "exactly one writer of version {expected} wins"
        );
    }
    assert_eq!(seqs(&db, &p).await, vec![1, 2]);
    assert_eq!(db.stats().await.expect("stats").conversations, 21);
}

async fn ping_answers_and_an_empty_batch_is_fine(db: Database) {
    db.ping().await.expect("ping");
    assert_eq!(db.commit(Vec::new()).await.expect("commit"), vec![]);
}

#[tokio::test]
async fn connect_refuses_an_unknown_scheme() {
    let err = Database::connect("mysql://localhost/sara", None)
        .await
        .expect_err("only SQLite and PostgreSQL");
    assert!(err.to_string().contains("unsupported database URL"));
}

#[tokio::test]
async fn connect_creates_a_missing_sqlite_file_in_wal_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    let db = Database::connect(&format!("sqlite://{}", path.display()), None)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    // Migrating twice is a no-op.
    db.migrate().await.expect("migrate again");
    assert!(path.exists());
    let Some(pool) = db.sqlite_pool() else {
        panic!("a sqlite URL gives a SQLite database");
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .expect("pragma");
    assert_eq!(fk, 1);
    db.close().await;
}

#[tokio::test]
async fn an_in_memory_sqlite_database_keeps_its_tables() {
    let db = Database::connect("sqlite::memory:", None)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    let p = phone(20);
    db.commit(vec![turn(&p, 0, None, "hi")])
        .await
        .expect("commit");
    assert_eq!(db.load(&p).await.expect("load").map(|s| s.version), Some(1));
}

/// Group-commit throughput: 10,000 new conversations' turns in batches of 256, then one more
/// turn for each of them (the compare-and-swap path). The floor is for a debug build on a
/// busy machine; the printed rate is the number.
async fn group_commit_throughput(db: Database) {
    let text = "I'd like to book a checkup tomorrow at 3pm please";
    let round = |version: i64, prefix: &'static str| -> Vec<TurnCommit> {
        (0..10_000u32)
            .map(|n| {
                let id = format!("{prefix}{n:032}");
                let mut t = turn(&phone(100_000 + n), version, Some(&id), text);
                t.state = format!("{{\"form\":{{\"service\":\"checkup\",\"n\":{n}}}}}");
                t
            })
            .collect()
    };
    let mut rates = Vec::new();
    for (version, prefix) in [(0, "SM"), (1, "SX")] {
        let mut all = round(version, prefix);
        let started = std::time::Instant::now();
        while !all.is_empty() {
            let rest = all.split_off(all.len().min(256));
            let out = db
                .commit(std::mem::replace(&mut all, rest))
                .await
                .expect("commit");
            assert!(
                out.iter()
                    .all(|o| matches!(o, CommitOutcome::Committed { .. }))
            );
        }
        rates.push(10_000.0 / started.elapsed().as_secs_f64());
    }
    println!(
        "{} group commit: new conversations {:.0} turns/s, existing {:.0} turns/s",
        db.backend(),
        rates[0],
        rates[1]
    );
    assert!(rates.iter().all(|r| *r > 1_000.0));
    assert_eq!(db.stats().await.expect("stats").turns, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn sqlite_group_commit_throughput() {
    super::testing::on_sqlite(group_commit_throughput).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn postgres_group_commit_throughput() {
    super::testing::on_postgres(group_commit_throughput).await
}

/// A confirmed attendance is written by the turn that answered the reminder, in its
/// transaction: a turn that conflicts marks nothing, a turn cannot mark another customer's
/// booking or a cancelled one, and moving the booking clears it (the new time is not yet
/// confirmed).
async fn attendance_commits_with_its_turn_for_the_customers_own_booking_and_a_move_clears_it(
    db: Database,
) {
    let tz = chrono_tz::America::New_York;
    let start = Utc
        .with_ymd_and_hms(2027, 3, 10, 15, 0, 0)
        .single()
        .expect("time");
    let mine = booking(20, start, 30, BookingStatus::Confirmed);
    let theirs = booking(
        21,
        start + chrono::Duration::hours(2),
        30,
        BookingStatus::Confirmed,
    );
    let gone = booking(
        20,
        start + chrono::Duration::hours(4),
        30,
        BookingStatus::Confirmed,
    );
    for b in [&mine, &theirs, &gone] {
        db.insert_booking(b).await.expect("book");
    }
    db.cancel_booking(gone.id).await.expect("cancel");
    let attendance = |db: &Database| {
        let db = db.clone();
        async move {
            db.bookings(tz)
                .await
                .expect("list")
                .into_iter()
                .map(|v| (v.id, v.attendance))
                .collect::<std::collections::HashMap<_, _>>()
        }
    };
    let me = phone(20);
    // A turn that loses the compare-and-swap writes no attendance.
    let conflict = TurnCommit {
        attendance: vec![mine.id],
        ..turn(&me, 5, None, "C")
    };
    assert_eq!(
        db.commit(vec![conflict]).await.expect("commit"),
        vec![CommitOutcome::VersionConflict]
    );
    assert_eq!(attendance(&db).await[&mine.id], None);
    let answered = TurnCommit {
        attendance: vec![mine.id, theirs.id, gone.id],
        ..turn(&me, 0, Some("SMattend"), "C")
    };
    assert_eq!(
        db.commit(vec![answered]).await.expect("commit"),
        vec![CommitOutcome::Committed { version: 1 }]
    );
    let seen = attendance(&db).await;
    assert_eq!(seen[&mine.id].as_deref(), Some("confirmed"));
    assert_eq!(seen[&theirs.id], None, "another customer's booking");
    assert_eq!(seen[&gone.id], None, "a cancelled booking");
    let json = serde_json::to_value(db.bookings(tz).await.expect("list")).expect("json");
    assert!(
        json.as_array()
            .expect("list")
            .iter()
            .any(|b| b["attendance"] == "confirmed" && b["id"] == mine.id.to_string()),
        "{json}"
    );
    db.move_booking(
        mine.id,
        start + chrono::Duration::days(1),
        start + chrono::Duration::days(1) + chrono::Duration::minutes(30),
    )
    .await
    .expect("move");
    assert_eq!(attendance(&db).await[&mine.id], None, "a move clears it");
}
