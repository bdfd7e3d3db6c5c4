//! The outbox on both backends: rows commit with their turn or not at all, claims keep each
//! contact's order, a lapsed claim is taken over, settling needs the claim, delivery
//! reports only move forward.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Channel, Phone};
use sara_actors::ports::{
    CommitOutcome, ConversationStore, JobRecord, OutboxKind, OutboxMessage, TurnCommit, TurnRecord,
};

use super::Database;
use super::outbox::DeliveryReport;
use super::testing::on_both_backends;

on_both_backends!(
    the_outbox_row_commits_with_its_turn_or_not_at_all,
    claims_keep_each_contacts_order_and_a_lapsed_claim_is_taken_over,
    concurrent_claimers_never_share_a_row,
    an_sms_to_a_number_that_opted_out_is_withheld_until_it_opts_in,
);

fn phone(n: u32) -> Phone {
    Phone::parse(&format!("+1555300{n:04}")).expect("a valid test number")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0)
        .single()
        .expect("a valid test time")
}

fn message(p: &Phone, key: &str, channel: Channel) -> OutboxMessage {
    OutboxMessage {
        contact: p.clone(),
        recipient: p.as_str().to_string(),
        channel,
        kind: OutboxKind::Reply,
        payload: format!("{{\"text\":\"reply {key}\"}}"),
        idempotency_key: key.to_string(),
        not_before: t0(),
    }
}

fn turn_with(p: &Phone, version: i64, id: &str, outbox: Vec<OutboxMessage>) -> TurnCommit {
    TurnCommit {
        phone: p.clone(),
        expected_version: version,
        owner_epoch: 0,
        state: "{}".to_string(),
        turn: TurnRecord {
            channel: Channel::WhatsApp,
            provider_id: Some(id.to_string()),
            text: "hello".to_string(),
            reply: Reply {
                text: "hi".to_string(),
                ..Reply::default()
            },
            intent: "greet".to_string(),
            nlu: "rules".to_string(),
            understood: "{}".to_string(),
            at: t0(),
            elapsed_ms: 1,
        },
        outbox,
        jobs: Vec::new(),
        void_jobs: Vec::new(),
        attendance: Vec::new(),
    }
}

async fn jobs(db: &Database) -> i64 {
    let sql = "SELECT COUNT(*) FROM jobs";
    match (db.sqlite_pool(), db.postgres_pool()) {
        (Some(pool), _) => sqlx::query_scalar(sql).fetch_one(pool).await,
        (None, Some(pool)) => sqlx::query_scalar(sql).fetch_one(pool).await,
        (None, None) => unreachable!("a store has a pool"),
    }
    .expect("count jobs")
}

async fn the_outbox_row_commits_with_its_turn_or_not_at_all(db: Database) {
    let (a, b, c) = (phone(1), phone(2), phone(3));
    let mut first = turn_with(
        &a,
        0,
        "wamid.a1",
        vec![message(&a, "wamid.a1:0", Channel::WhatsApp)],
    );
    first.jobs.push(JobRecord {
        kind: "reminder".to_string(),
        due_at: t0() + Duration::hours(20),
        payload: "{\"booking\":\"x\"}".to_string(),
        unique_key: "reminder:x:1440".to_string(),
    });
    let out = db
        .commit(vec![
            first,
            // A conflict and a redelivery: neither turn commits, so neither's message exists.
            turn_with(
                &b,
                7,
                "wamid.b1",
                vec![message(&b, "wamid.b1:0", Channel::WhatsApp)],
            ),
            turn_with(
                &a,
                1,
                "wamid.a1",
                vec![message(&a, "wamid.a1:again", Channel::WhatsApp)],
            ),
        ])
        .await
        .expect("commit");
    assert_eq!(out[0], CommitOutcome::Committed { version: 1 });
    assert_eq!(out[1], CommitOutcome::VersionConflict);
    assert!(matches!(out[2], CommitOutcome::Duplicate { .. }), "{out:?}");
    let listed = db.outbox().list_outbox(10).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let row = &listed[0];
    assert_eq!(
        (row.phone.as_str(), row.channel.as_str(), row.kind.as_str()),
        (a.as_str(), "whatsapp", "reply")
    );
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    assert_eq!((row.sent_at, row.provider_id.as_deref()), (None, None));
    assert_eq!(jobs(&db).await, 1);

    // A fault between the turns and their messages: the second item's outbox row breaks a
    // constraint (no such outbound channel) after every turn of the batch was inserted, in
    // the same transaction. Nothing of the batch may remain.
    let before = db.stats().await.expect("stats");
    let broken = db
        .commit(vec![
            turn_with(
                &c,
                0,
                "wamid.c1",
                vec![message(&c, "wamid.c1:0", Channel::WhatsApp)],
            ),
            turn_with(
                &a,
                1,
                "wamid.a2",
                vec![message(&a, "wamid.a2:0", Channel::Chat)],
            ),
        ])
        .await;
    assert!(broken.is_err(), "{broken:?}");
    assert_eq!(db.stats().await.expect("stats"), before);
    assert!(
        db.load(&c).await.expect("load").is_none(),
        "c's turn vanished"
    );
    assert_eq!(db.load(&a).await.expect("load").expect("a").version, 1);
    assert_eq!(db.outbox().list_outbox(10).await.expect("list").len(), 1);
    // The same turns without the fault commit, with their messages.
    let out = db
        .commit(vec![
            turn_with(
                &c,
                0,
                "wamid.c1",
                vec![message(&c, "wamid.c1:0", Channel::WhatsApp)],
            ),
            turn_with(
                &a,
                1,
                "wamid.a2",
                vec![message(&a, "wamid.a2:0", Channel::Sms)],
            ),
        ])
        .await
        .expect("commit");
    assert!(
        out.iter()
            .all(|o| matches!(o, CommitOutcome::Committed { .. }))
    );
    assert_eq!(db.outbox().list_outbox(10).await.expect("list").len(), 3);
}

async fn claims_keep_each_contacts_order_and_a_lapsed_claim_is_taken_over(db: Database) {
    let (a, b) = (phone(10), phone(11));
    let out = db
        .commit(vec![
            turn_with(
                &a,
                0,
                "SMa1",
                vec![
                    message(&a, "a:1", Channel::Sms),
                    message(&a, "a:2", Channel::Sms),
                ],
            ),
            turn_with(&b, 0, "SMb1", vec![message(&b, "b:1", Channel::Sms)]),
        ])
        .await
        .expect("commit");
    assert_eq!(out.len(), 2);
    let outbox = db.outbox();
    let lease = t0() + Duration::seconds(30);
    let claimed = outbox
        .claim_outbox(Channel::Sms, "one", t0(), lease, 10)
        .await
        .expect("claim");
    // Oldest first across contacts too; which contact's rows the batch wrote first is the
    // backend's business, so look them up by key.
    let mut keys: Vec<&str> = claimed.iter().map(|m| m.idempotency_key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a:1", "b:1"], "a:2 waits behind a:1");
    assert!(claimed.windows(2).all(|w| w[0].id < w[1].id));
    let by_key = |key: &str| {
        claimed
            .iter()
            .find(|m| m.idempotency_key == key)
            .expect("claimed")
            .clone()
    };
    let (first_a, first_b) = (by_key("a:1"), by_key("b:1"));
    assert_eq!(first_a.recipient, a.as_str());
    assert_eq!(first_a.payload, "{\"text\":\"reply a:1\"}");
    assert_eq!((first_a.attempts, first_a.kind), (1, OutboxKind::Reply));
    let (a1, b1) = (first_a.id, first_b.id);
    // Other channels and live claims are not due.
    assert!(
        outbox
            .claim_outbox(Channel::WhatsApp, "two", t0(), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        outbox
            .claim_outbox(Channel::Sms, "two", t0(), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );

    // a:1 failed for now: retried in 10 s; a:2 still waits.
    let later = t0() + Duration::seconds(10);
    assert!(
        outbox
            .reschedule(a1, "one", later, "HTTP 503")
            .await
            .expect("reschedule")
    );
    assert!(
        outbox
            .claim_outbox(Channel::Sms, "two", t0(), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let again = outbox
        .claim_outbox(
            Channel::Sms,
            "two",
            later,
            later + Duration::seconds(30),
            10,
        )
        .await
        .expect("claim");
    assert_eq!(
        again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(),
        [(a1, 2)]
    );
    assert!(
        !outbox
            .mark_sent(a1, "one", "SMx", later)
            .await
            .expect("mark"),
        "not one's claim now"
    );
    assert!(
        outbox
            .mark_sent(a1, "two", "SM-a1", later)
            .await
            .expect("mark")
    );
    // Now a:2 is the contact's oldest pending message.
    let next = outbox
        .claim_outbox(
            Channel::Sms,
            "two",
            later,
            later + Duration::seconds(30),
            10,
        )
        .await
        .expect("claim");
    assert_eq!(
        next.iter()
            .map(|m| m.idempotency_key.as_str())
            .collect::<Vec<_>>(),
        ["a:2"]
    );
    assert!(
        outbox
            .mark_dead(next[0].id, "two", "gave up")
            .await
            .expect("dead")
    );

    // b:1's claim by "one" lapses (a killed instance): "two" takes it over.
    let past_lease = lease + Duration::seconds(1);
    let taken = outbox
        .claim_outbox(
            Channel::Sms,
            "two",
            past_lease,
            past_lease + Duration::seconds(30),
            10,
        )
        .await
        .expect("claim");
    assert_eq!(
        taken.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(),
        [(b1, 2)]
    );
    assert!(
        !outbox
            .mark_sent(b1, "one", "SM-late", past_lease)
            .await
            .expect("mark")
    );
    assert!(
        outbox
            .mark_sent(b1, "two", "SM-b1", past_lease)
            .await
            .expect("mark")
    );

    // Delivery reports move forward only.
    let report = |id, r| outbox.update_status(Channel::Sms, id, r, None);
    assert!(
        report("SM-a1", DeliveryReport::Delivered)
            .await
            .expect("report")
    );
    assert!(report("SM-a1", DeliveryReport::Read).await.expect("report"));
    assert!(
        !report("SM-a1", DeliveryReport::Delivered)
            .await
            .expect("report")
    );
    assert!(
        !report("SM-a1", DeliveryReport::Failed)
            .await
            .expect("report")
    );
    assert!(
        report("SM-b1", DeliveryReport::Failed)
            .await
            .expect("report")
    );
    assert!(
        !report("SM-unknown", DeliveryReport::Delivered)
            .await
            .expect("report")
    );

    let listed = db.outbox().list_outbox(10).await.expect("list");
    let shown: Vec<(&str, &str, i64, Option<&str>)> = listed
        .iter()
        .map(|r| {
            (
                r.phone.as_str(),
                r.status.as_str(),
                r.attempts,
                r.provider_id.as_deref(),
            )
        })
        .collect();
    assert!(listed.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let mut shown = shown;
    shown.sort_unstable();
    let mut expected = vec![
        (b.as_str(), "failed", 2, Some("SM-b1")),
        (a.as_str(), "dead", 1, None),
        (a.as_str(), "read", 2, Some("SM-a1")),
    ];
    expected.sort_unstable();
    assert_eq!(shown, expected);
    let sent_at = |id: i64| listed.iter().find(|r| r.id == id).and_then(|r| r.sent_at);
    assert_eq!((sent_at(a1), sent_at(b1)), (Some(later), Some(past_lease)));
}

async fn concurrent_claimers_never_share_a_row(db: Database) {
    let batch: Vec<TurnCommit> = (0..40)
        .map(|n| {
            let p = phone(100 + n);
            let key = format!("m{n}");
            turn_with(
                &p,
                0,
                &format!("SM{n}"),
                vec![message(&p, &key, Channel::Sms)],
            )
        })
        .collect();
    db.commit(batch).await.expect("commit");
    let lease = t0() + Duration::seconds(30);
    let claimers = (0..4).map(|n| {
        let db = db.clone();
        tokio::spawn(async move {
            let owner = format!("instance-{n}");
            let mut mine = Vec::new();
            loop {
                let got = db
                    .outbox()
                    .claim_outbox(Channel::Sms, &owner, t0(), lease, 3)
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|m| m.id));
            }
        })
    });
    let mut all: Vec<i64> = Vec::new();
    for claimer in claimers.collect::<Vec<_>>() {
        all.extend(claimer.await.expect("claimer"));
    }
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(
        (before, all.len()),
        (40, 40),
        "every row claimed exactly once"
    );
}

/// STOP is recorded once per number; while it stands the relay is told to withhold every SMS
/// to that number (and only SMS, and only that number); START lifts it.
async fn an_sms_to_a_number_that_opted_out_is_withheld_until_it_opts_in(db: Database) {
    use sara_actors::outbound::{Content, OutboundKind, OutboundMessage, OutboxQueue, Recipient};
    let (me, other) = (phone(40), phone(41));
    let sms = |p: &Phone| OutboundMessage {
        key: format!("{}:reminder", p.as_str()),
        channel: Channel::Sms,
        to: Recipient::Phone(p.clone()),
        kind: OutboundKind::Reminder,
        content: Content::text("Hi"),
    };
    let withheld = |m: OutboundMessage| {
        let db = db.clone();
        async move { db.withheld(&m).await.expect("opt-out check") }
    };
    assert_eq!(withheld(sms(&me)).await, None);
    assert!(db.set_sms_opt_out(&me, true, t0()).await.expect("stop"));
    assert!(
        !db.set_sms_opt_out(&me, true, t0()).await.expect("stop"),
        "a repeated STOP changes nothing (and is not logged again)"
    );
    assert!(db.sms_opted_out(&me).await.expect("read"));
    // The conversation's actor reads the opt-out with its state, in one statement, whether
    // or not the number ever had a conversation.
    let contact = db.load_contact(&me).await.expect("load");
    assert!(contact.sms_opted_out && contact.conversation.is_none());
    assert!(!db.load_contact(&other).await.expect("load").sms_opted_out);
    let out = (db
        .commit(vec![turn_with(&me, 0, "SMopt1", Vec::new())])
        .await)
        .expect("commit");
    assert_eq!(out, vec![CommitOutcome::Committed { version: 1 }]);
    let contact = db.load_contact(&me).await.expect("load");
    assert!(contact.sms_opted_out);
    assert_eq!(contact.conversation.map(|c| c.version), Some(1));
    let reason = withheld(sms(&me)).await.expect("withheld");
    assert!(reason.contains("opted out of SMS (STOP)"), "{reason}");
    assert_eq!(withheld(sms(&other)).await, None, "another number");
    let whatsapp = OutboundMessage {
        channel: Channel::WhatsApp,
        ..sms(&me)
    };
    assert_eq!(withheld(whatsapp).await, None, "WhatsApp is not SMS");
    assert!(db.set_sms_opt_out(&me, false, t0()).await.expect("start"));
    assert!(!db.set_sms_opt_out(&me, false, t0()).await.expect("start"));
    assert!(!db.load_contact(&me).await.expect("load").sms_opted_out);
    assert_eq!(withheld(sms(&me)).await, None, "sent again after START");
}
