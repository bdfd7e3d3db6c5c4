//! The engine's mechanics with in-memory ports: commits, duplicates, restarts, quarantine,
//! passivation and stale writers. The policy's own behaviour is tested in `dialogue`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::memory::MemoryStore;
use crate::ports::{BoxFuture, NluError, TurnCommit, TurnRecord};
use crate::understanding::{NluContext, Understanding};

struct NothingNlu;
impl Nlu for NothingNlu {
    fn understand<'a>(
        &'a self,
        _: &'a str,
        _: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>> {
        Box::pin(async { Ok(Understanding::default()) })
    }
    fn name(&self) -> &'static str {
        "nothing"
    }
}

async fn engine(settings: EngineSettings) -> (Engine, Arc<MemoryStore>) {
    let (ports, store) = crate::memory::in_memory_ports(Arc::new(NothingNlu));
    let engine = Engine::start(Business::example(), settings, ports)
        .await
        .expect("engine starts");
    (engine, store)
}

fn phone() -> Phone {
    Phone::parse("+15550001111").expect("valid")
}

fn msg(text: &str, id: Option<&str>) -> Inbound {
    Inbound {
        phone: phone(),
        channel: Channel::Sms,
        text: text.into(),
        provider_id: id.map(Into::into),
        at: Utc::now(),
    }
}

async fn live(engine: &Engine) -> usize {
    engine.stats().await.live_conversations
}

#[tokio::test]
async fn every_turn_is_committed_before_it_is_answered_and_a_retry_is_answered_once() {
    let (engine, store) = engine(EngineSettings::default()).await;
    let first = engine.turn(msg("hello", Some("SM1"))).await.expect("turn");
    engine.turn(msg("again", Some("SM2"))).await.expect("turn");
    let retry = engine.turn(msg("hello", Some("SM1"))).await.expect("turn");
    assert_eq!(first.text, retry.text);
    let turns = store.turns_of(&phone());
    assert_eq!(
        turns.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
        ["hello", "again"]
    );
}

#[tokio::test]
async fn a_panicking_conversation_restarts_from_its_committed_state() {
    let (engine, store) = engine(EngineSettings::default()).await;
    engine.turn(msg("one", None)).await.expect("turn");
    assert!(engine.inject_panic(phone()));
    // The next turn either meets the restarted actor or is told it was interrupted.
    let mut answered = false;
    for _ in 0..3 {
        match engine.turn(msg("two", None)).await {
            Ok(_) => {
                answered = true;
                break;
            }
            Err(TurnError::Interrupted) => continue,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(answered);
    assert_eq!(engine.stats().await.restarts, 1);
    assert_eq!(
        store.turns_of(&phone()).len(),
        2,
        "the restarted actor continued from version 1"
    );
}

#[tokio::test]
async fn a_conversation_that_keeps_failing_is_handed_over_instead_of_crash_looping() {
    let settings = EngineSettings {
        max_failures: 2,
        ..EngineSettings::default()
    };
    let (engine, store) = engine(settings).await;
    for _ in 0..2 {
        assert!(engine.inject_panic(phone()));
        // A turn after the panic is ordered behind the supervisor's handling of it.
        let _ = engine.turn(msg("hi", None)).await;
    }
    let reply = engine
        .turn(msg("hi", None))
        .await
        .expect("quarantine answers");
    assert!(reply.handover, "{reply:?}");
    let before = store.turn_count();
    let _ = engine.turn(msg("hi", None)).await;
    assert_eq!(
        store.turn_count(),
        before,
        "a quarantined conversation is not run"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_conversations_are_passivated_and_come_back_with_their_state() {
    let settings = EngineSettings {
        idle_timeout: Duration::from_secs(60),
        ..EngineSettings::default()
    };
    let (engine, store) = engine(settings).await;
    engine.turn(msg("one", None)).await.expect("turn");
    assert_eq!(live(&engine).await, 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(live(&engine).await, 0);
    engine.turn(msg("two", None)).await.expect("reactivated");
    assert_eq!(live(&engine).await, 1);
    assert_eq!(store.turns_of(&phone()).len(), 2);
}

#[tokio::test]
async fn a_stale_writer_is_refused_and_the_turn_is_redone_on_fresh_state() {
    let (engine, store) = engine(EngineSettings::default()).await;
    engine.turn(msg("one", None)).await.expect("turn");
    // Another instance commits behind this actor's back.
    let other = TurnCommit {
        phone: phone(),
        expected_version: 1,
        owner_epoch: 0,
        state: "{}".into(),
        turn: TurnRecord {
            channel: Channel::Sms,
            provider_id: None,
            text: "elsewhere".into(),
            reply: crate::dialogue::Reply::default(),
            intent: "inform".into(),
            nlu: "rules".into(),
            understood: "{}".into(),
            at: Utc::now(),
            elapsed_ms: 0,
        },
        outbox: Vec::new(),
        jobs: Vec::new(),
    };
    assert_eq!(
        store.commit(vec![other]).await.expect("commit"),
        vec![crate::ports::CommitOutcome::Committed { version: 2 }]
    );
    engine
        .turn(msg("three", None))
        .await
        .expect("turn redone after the conflict");
    let texts: Vec<String> = store
        .turns_of(&phone())
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert_eq!(texts, ["one", "elsewhere", "three"]);
}

/// A lease service whose counter can be set, to play a Redis that lost its data or a lease
/// that is always held elsewhere.
#[derive(Default)]
struct FakeLeases {
    epoch: std::sync::Mutex<i64>,
    busy: bool,
}

impl crate::ports::Leases for FakeLeases {
    fn acquire<'a>(
        &'a self,
        _: &'a Phone,
        _: Duration,
    ) -> BoxFuture<'a, Result<crate::ports::Lease, crate::ports::LeaseError>> {
        Box::pin(async move {
            if self.busy {
                return Err(crate::ports::LeaseError::Busy);
            }
            let mut epoch = self.epoch.lock().expect("fake lease lock");
            *epoch += 1;
            Ok(crate::ports::Lease {
                epoch: *epoch,
                token: epoch.to_string(),
            })
        })
    }
    fn release<'a>(&'a self, _: &'a Phone, _: &'a crate::ports::Lease) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    fn raise<'a>(
        &'a self,
        _: &'a Phone,
        to: i64,
    ) -> BoxFuture<'a, Result<(), crate::ports::LeaseError>> {
        Box::pin(async move {
            let mut epoch = self.epoch.lock().expect("fake lease lock");
            *epoch = (*epoch).max(to);
            Ok(())
        })
    }
}

async fn leased_engine(leases: Arc<FakeLeases>) -> (Engine, Arc<MemoryStore>) {
    let (ports, store) = crate::memory::in_memory_ports(Arc::new(NothingNlu));
    let engine = Engine::start_with_leases(
        Business::example(),
        EngineSettings::default(),
        ports,
        Some(leases),
    )
    .await
    .expect("engine starts");
    (engine, store)
}

#[tokio::test]
async fn a_lease_counter_that_went_backwards_is_lifted_past_the_stores_token() {
    let leases = Arc::new(FakeLeases::default());
    let (engine, store) = leased_engine(leases.clone()).await;
    engine.turn(msg("one", None)).await.expect("turn");
    engine.turn(msg("two", None)).await.expect("turn");
    // Redis restarts empty: its counter starts over below the token the store holds.
    *leases.epoch.lock().expect("fake lease lock") = 0;
    engine
        .turn(msg("three", None))
        .await
        .expect("not fenced off by its own older token");
    assert_eq!(store.turns_of(&phone()).len(), 3);
    assert!(
        *leases.epoch.lock().expect("fake lease lock") > 2,
        "the counter was raised past the stored token"
    );
}

#[tokio::test]
async fn a_lease_held_elsewhere_for_the_whole_wait_is_busy_and_applies_nothing() {
    let leases = Arc::new(FakeLeases {
        busy: true,
        ..FakeLeases::default()
    });
    let (engine, store) = leased_engine(leases).await;
    assert_eq!(
        engine.turn(msg("one", Some("SM1"))).await,
        Err(TurnError::Busy)
    );
    assert!(store.turns_of(&phone()).is_empty());
}

/// Understands "person" as a request for a human, anything else as nothing.
struct HandoverNlu;
impl Nlu for HandoverNlu {
    fn understand<'a>(
        &'a self,
        text: &'a str,
        _: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>> {
        let acts = if text.contains("person") {
            vec![crate::understanding::Act::Handover]
        } else {
            Vec::new()
        };
        Box::pin(async move {
            Ok(Understanding {
                acts,
                ..Understanding::default()
            })
        })
    }
    fn name(&self) -> &'static str {
        "handover"
    }
}

/// A retried delivery gets the first answer whole, hand-over included, both from the
/// conversation's recent ids and, once those have moved on, from the store's duplicate.
#[tokio::test]
async fn a_retried_delivery_gets_the_whole_first_reply_from_memory_and_from_the_store() {
    let (ports, store) = crate::memory::in_memory_ports(Arc::new(HandoverNlu));
    let engine = Engine::start(Business::example(), EngineSettings::default(), ports)
        .await
        .expect("engine starts");
    let voice = |text: &str, id: &str| Inbound {
        channel: Channel::Voice,
        ..msg(text, Some(id))
    };
    let first = engine
        .turn(voice("a person please", "CA1-1"))
        .await
        .expect("turn");
    assert!(first.handover, "{first:?}");
    let from_memory = engine
        .turn(voice("a person please", "CA1-1"))
        .await
        .expect("turn");
    assert_eq!(from_memory, first);
    // Enough later turns that the conversation's recent ids no longer hold CA1-1.
    for n in 0..conversation::RECENT_IDS {
        engine
            .turn(voice("hello", &format!("CA2-{n}")))
            .await
            .expect("turn");
    }
    let turns = store.turns_of(&phone()).len();
    let from_store = engine
        .turn(voice("a person please", "CA1-1"))
        .await
        .expect("turn");
    assert_eq!(from_store, first);
    assert_eq!(
        store.turns_of(&phone()).len(),
        turns,
        "nothing new committed"
    );
}

/// States written before whole replies were remembered (id and text) still load, and a
/// plain reply is still written in that compact form.
#[test]
fn recent_replies_read_the_old_text_form_and_write_plain_replies_in_it() {
    use conversation::{ConversationState, Remembered};
    let old = r#"{"d":{},"r":[["SM1","see you then"]]}"#;
    let state: ConversationState = serde_json::from_str(old).expect("old state parses");
    assert_eq!(
        state.recent[0],
        ("SM1".to_string(), Remembered::Text("see you then".into()))
    );
    let plain = Reply {
        text: "hi".into(),
        ..Reply::default()
    };
    assert_eq!(
        serde_json::to_value(Remembered::new(&plain)).expect("json"),
        "hi"
    );
    let buttons = Reply {
        text: "Which time?".into(),
        options: vec!["10:00".into(), "11:00".into()],
        ..Reply::default()
    };
    let json = serde_json::to_string(&Remembered::new(&buttons)).expect("json");
    let back: Remembered = serde_json::from_str(&json).expect("parses");
    assert_eq!(back.reply(), buttons);
}
