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

/// A committed turn with nothing but its text: an SMS, no provider id, no effects.
pub(super) fn bare_commit(phone: Phone, expected_version: i64, text: &str) -> TurnCommit {
    TurnCommit {
        phone,
        expected_version,
        owner_epoch: 0,
        state: "{}".into(),
        turn: TurnRecord {
            channel: Channel::Sms,
            provider_id: None,
            text: text.into(),
            reply: crate::dialogue::Reply::default(),
            intent: "inform".into(),
            nlu: "rules".into(),
            understood: "{}".into(),
            at: Utc::now(),
            elapsed_ms: 0,
        },
        outbox: Vec::new(),
        jobs: Vec::new(),
        void_jobs: Vec::new(),
        attendance: Vec::new(),
    }
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

/// An engine whose conversation with `phone()` has failed `failures` times, its limit: the
/// next turn is answered by the supervisor's quarantine.
async fn quarantined(failures: u32) -> (Engine, Arc<MemoryStore>) {
    let settings = EngineSettings {
        max_failures: failures,
        ..EngineSettings::default()
    };
    let (engine, store) = engine(settings).await;
    for _ in 0..failures {
        assert!(engine.inject_panic(phone()));
        // A turn after the panic is ordered behind the supervisor's handling of it.
        let _ = engine.turn(msg("hi", None)).await;
    }
    (engine, store)
}

#[tokio::test]
async fn a_conversation_that_keeps_failing_is_handed_over_instead_of_crash_looping() {
    let (engine, store) = quarantined(2).await;
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

/// An engine that passivates a conversation idle for a minute (run with time paused).
async fn passivating_engine() -> (Engine, Arc<MemoryStore>) {
    let settings = EngineSettings {
        idle_timeout: Duration::from_secs(60),
        ..EngineSettings::default()
    };
    engine(settings).await
}

#[tokio::test(start_paused = true)]
async fn idle_conversations_are_passivated_and_come_back_with_their_state() {
    let (engine, store) = passivating_engine().await;
    engine.turn(msg("one", None)).await.expect("turn");
    assert_eq!(live(&engine).await, 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(live(&engine).await, 0);
    engine.turn(msg("two", None)).await.expect("reactivated");
    assert_eq!(live(&engine).await, 1);
    assert_eq!(store.turns_of(&phone()).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_number_that_opted_out_gets_no_sms_turn_until_it_opts_in_across_passivation() {
    let (engine, store) = passivating_engine().await;
    engine.turn(msg("one", None)).await.expect("turn");
    let now = Utc::now();
    assert_eq!(engine.sms_opt(phone(), true, now).await, Ok(true));
    assert_eq!(engine.sms_opt(phone(), true, now).await, Ok(false), "again");
    let refused = engine.turn(msg("book me in", Some("SM1"))).await;
    assert_eq!(refused, Err(TurnError::SmsOptedOut));
    let whatsapp = Inbound {
        channel: Channel::WhatsApp,
        ..msg("on WhatsApp", None)
    };
    engine.turn(whatsapp).await.expect("WhatsApp is not SMS");
    // Passivated, the conversation reads the opt-out back with its state.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(live(&engine).await, 0);
    let refused = engine.turn(msg("still there?", None)).await;
    assert_eq!(refused, Err(TurnError::SmsOptedOut));
    assert_eq!(engine.sms_opt(phone(), false, now).await, Ok(true));
    engine.turn(msg("two", None)).await.expect("opted in again");
    let texts: Vec<String> = (store.turns_of(&phone()).into_iter())
        .map(|t| t.text)
        .collect();
    assert_eq!(
        texts,
        ["one", "on WhatsApp", "two"],
        "nothing applied while opted out"
    );
}

#[tokio::test]
async fn a_quarantined_conversation_still_records_an_sms_opt_out() {
    let (engine, _) = quarantined(1).await;
    let reply = (engine.turn(msg("hi", None)).await).expect("quarantine answers");
    assert!(reply.handover, "quarantined: {reply:?}");
    assert_eq!(engine.sms_opt(phone(), true, Utc::now()).await, Ok(true));
}

#[tokio::test]
async fn a_stale_writer_is_refused_and_the_turn_is_redone_on_fresh_state() {
    let (engine, store) = engine(EngineSettings::default()).await;
    engine.turn(msg("one", None)).await.expect("turn");
    // Another instance commits behind this actor's back.
    let other = bare_commit(phone(), 1, "elsewhere");
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

/// "book N" = a cleaning N hours after the first opening of the first open day a week ahead,
/// for Sam Ortiz (the date comes from the business's hours and closures, never from a fixed
/// day); "yes" = agreement.
struct BookingNlu;

impl Nlu for BookingNlu {
    fn understand<'a>(
        &'a self,
        text: &'a str,
        ctx: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>> {
        let hours_later = text
            .strip_prefix("book ")
            .and_then(|n| n.parse::<i64>().ok());
        let u = match (text, hours_later) {
            (_, Some(later)) => {
                let business = Business::example();
                let hours = crate::availability::Availability::new(&business);
                let (date, opens) = (7..60)
                    .map(|d| ctx.now.date_naive() + chrono::Duration::days(d))
                    .find_map(|day| {
                        let first = hours.opening(day).first().copied()?;
                        let start = first.start + chrono::Duration::hours(later);
                        Some((day, start.with_timezone(&business.timezone).time()))
                    })
                    .expect("an open day within the horizon");
                Understanding {
                    acts: vec![
                        crate::understanding::Act::Book,
                        crate::understanding::Act::Inform,
                    ],
                    service: Some("Cleaning".into()),
                    date: Some(date),
                    time: Some(opens),
                    name: Some("Sam Ortiz".into()),
                    confidence: 0.9,
                    ..Understanding::default()
                }
            }
            ("yes", _) => Understanding {
                acts: vec![crate::understanding::Act::Affirm],
                confidence: 0.9,
                ..Understanding::default()
            },
            _ => Understanding::default(),
        };
        Box::pin(async move { Ok(u) })
    }
    fn name(&self) -> &'static str {
        "booking"
    }
}

/// An engine whose NLU books; `through_ai` sends every message through the AI actor (as a
/// model-backed NLU does) instead of understanding it in the conversation.
async fn booking_engine(through_ai: bool) -> (Engine, Arc<crate::memory::MemoryCalendar>) {
    let (mut ports, _) = crate::memory::in_memory_ports(Arc::new(BookingNlu));
    let calendar = Arc::new(crate::memory::MemoryCalendar::default());
    ports.calendar = calendar.clone();
    if through_ai {
        ports.fallback_nlu = Some(Arc::new(NothingNlu));
    }
    let engine = Engine::start(Business::example(), EngineSettings::default(), ports)
        .await
        .expect("engine starts");
    (engine, calendar)
}

fn from(n: u32) -> Inbound {
    Inbound {
        phone: Phone::parse(&format!("+1555000{n:04}")).expect("valid"),
        ..msg("", None)
    }
}

/// Books for caller `n`: "book {n % 3}", then "yes"; the reply to "yes".
async fn book(engine: &Engine, n: u32) -> Result<Reply, TurnError> {
    engine
        .turn(Inbound {
            text: format!("book {}", n % 3),
            ..from(n)
        })
        .await?;
    engine
        .turn(Inbound {
            text: "yes".into(),
            ..from(n)
        })
        .await
}

/// Until the supervisor has counted `n` restarts (it does so before starting the new actor;
/// each `stats` call is a message behind which the supervisor's work is ordered).
async fn restarts_reach(engine: &Engine, n: u64) {
    for _ in 0..1000 {
        if engine.stats().await.restarts >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the restart was never counted");
}

#[tokio::test]
async fn a_panic_in_the_calendar_actor_is_survived_and_the_next_booking_works() {
    let (engine, calendar) = booking_engine(false).await;
    let first = book(&engine, 1).await.expect("booked");
    assert!(first.text.to_lowercase().contains("booked"), "{first:?}");
    assert!(engine.inject_actor_panic(EngineActor::Calendar));
    restarts_reach(&engine, 1).await;
    // The restarted actor reloads what is booked: the second caller gets another slot.
    let mut answered = None;
    for _ in 0..3 {
        match book(&engine, 2).await {
            Ok(reply) if reply.text.to_lowercase().contains("booked") => {
                answered = Some(reply);
                break;
            }
            _ => tokio::task::yield_now().await,
        }
    }
    assert!(
        answered.is_some(),
        "no booking after the calendar restarted"
    );
    let booked = calendar.all();
    assert_eq!(booked.len(), 2, "{booked:?}");
    assert!(booked[0].end <= booked[1].start || booked[1].end <= booked[0].start);
}

#[tokio::test]
async fn a_panic_in_the_ai_actor_is_survived_and_the_next_booking_works() {
    let (engine, calendar) = booking_engine(true).await;
    assert!(engine.inject_actor_panic(EngineActor::Ai));
    restarts_reach(&engine, 1).await;
    let reply = book(&engine, 3).await.expect("booked");
    assert!(reply.text.to_lowercase().contains("booked"), "{reply:?}");
    assert_eq!(calendar.all().len(), 1);
}

/// A calendar whose first booking write panics (a bug in a port), then works.
struct PanicsOnce {
    inner: crate::memory::MemoryCalendar,
    panicked: std::sync::atomic::AtomicBool,
}

impl crate::ports::Calendar for PanicsOnce {
    fn upcoming(
        &self,
        from: chrono::DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<crate::model::Booking>, crate::ports::CalendarError>> {
        self.inner.upcoming(from)
    }
    fn book<'a>(
        &'a self,
        booking: &'a crate::model::Booking,
    ) -> BoxFuture<'a, Result<(), crate::ports::CalendarError>> {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("fault injection: the calendar port panics");
        }
        self.inner.book(booking)
    }
    fn reschedule(
        &self,
        id: crate::model::BookingId,
        start: chrono::DateTime<Utc>,
        end: chrono::DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), crate::ports::CalendarError>> {
        self.inner.reschedule(id, start, end)
    }
    fn cancel(
        &self,
        id: crate::model::BookingId,
    ) -> BoxFuture<'_, Result<(), crate::ports::CalendarError>> {
        self.inner.cancel(id)
    }
}

#[tokio::test]
async fn a_calendar_port_that_panics_under_the_booking_writer_costs_one_booking_not_all() {
    let (mut ports, _) = crate::memory::in_memory_ports(Arc::new(BookingNlu));
    let calendar = Arc::new(PanicsOnce {
        inner: crate::memory::MemoryCalendar::default(),
        panicked: Default::default(),
    });
    ports.calendar = calendar.clone();
    let engine = Engine::start(Business::example(), EngineSettings::default(), ports)
        .await
        .expect("engine starts");
    // The write that panics is answered "unavailable", not left hanging.
    let lost = book(&engine, 4).await.expect("answered");
    assert!(!lost.text.to_lowercase().contains("booked"), "{lost:?}");
    let mut booked = false;
    for _ in 0..3 {
        if book(&engine, 5)
            .await
            .is_ok_and(|r| r.text.to_lowercase().contains("booked"))
        {
            booked = true;
            break;
        }
    }
    assert!(booked, "bookings keep failing after the port panicked once");
    assert_eq!(calendar.inner.all().len(), 1);
}

/// Staff take a conversation over from the console: Sara records each message and answers
/// none, across a restart of its actor (the state is the store's); a staff reply is in the
/// transcript as staff; handing back makes Sara answer again.
#[tokio::test]
async fn a_taken_over_conversation_stays_quiet_across_a_restart_until_it_is_handed_back() {
    let (engine, store) = engine(EngineSettings::default()).await;
    engine.turn(msg("hello", Some("SM1"))).await.expect("turn");
    engine
        .staff(phone(), StaffAction::TakeOver)
        .await
        .expect("take over");
    let quiet = engine
        .turn(msg("anyone?", Some("SM2")))
        .await
        .expect("turn");
    assert!(quiet.silent, "{quiet:?}");

    assert!(engine.inject_panic(phone()));
    let after_restart = loop {
        match engine.turn(msg("still there?", Some("SM3"))).await {
            Ok(reply) => break reply,
            // The turn met the panicking actor; the provider would send it again.
            Err(TurnError::Interrupted) => continue,
            Err(other) => panic!("turn failed: {other}"),
        }
    };
    assert!(after_restart.silent, "{after_restart:?}");
    let call = engine
        .turn(Inbound {
            channel: Channel::Voice,
            ..msg("hello", Some("CA1-1"))
        })
        .await
        .expect("turn");
    assert!(call.handover, "a caller is put through to staff: {call:?}");

    engine
        .staff(
            phone(),
            StaffAction::Reply {
                channel: Channel::Sms,
                text: "Hi, this is Maria from the front desk.".into(),
                key: "k1".into(),
            },
        )
        .await
        .expect("staff reply");
    engine
        .staff(phone(), StaffAction::HandBack)
        .await
        .expect("hand back");
    let answered = engine.turn(msg("thanks", Some("SM4"))).await.expect("turn");
    assert!(
        !answered.silent && !answered.text.is_empty(),
        "{answered:?}"
    );

    let turns = store.turns_of(&phone());
    let intents: Vec<&str> = turns.iter().map(|t| t.intent.as_str()).collect();
    assert!(intents.contains(&"take_over") && intents.contains(&"hand_back"));
    let staff = turns
        .iter()
        .find(|t| t.intent == "staff_reply")
        .expect("the staff reply is in the log");
    assert_eq!(staff.channel, Channel::Staff);
    assert_eq!(staff.reply.text, "Hi, this is Maria from the front desk.");
    assert!(
        turns.iter().any(|t| t.text == "anyone?" && t.reply.silent),
        "the quiet turn is recorded"
    );
}

#[tokio::test]
async fn a_staff_reply_goes_by_sms_or_whatsapp_only() {
    let (engine, _store) = engine(EngineSettings::default()).await;
    let refused = engine
        .staff(
            phone(),
            StaffAction::Reply {
                channel: Channel::Email,
                text: "hello".into(),
                key: "k2".into(),
            },
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
}
