//! The actors of the engine and the [`Engine`] handle the service drives them through.
//!
//! ```text
//! EngineSupervisor (root.rs) ─spawn_linked─┬─ AiActor, CalendarActor, ChannelActor
//!                                          └─ ConversationSupervisor
//! Engine::turn ──▶ ConversationSupervisor ──spawn_linked──▶ ConversationActor (one per phone)
//!                                                             │ ask (rpc.rs): AiActor, CalendarActor
//!                                                             │ commit: TurnWriter (group commit)
//! ```
//!
//! Every actor is supervised: the root restarts the long-lived ones, the conversation
//! supervisor restarts (or quarantines) conversations.

pub mod ai;
pub mod calendar;
pub mod conversation;
pub mod relay;
pub mod root;
pub mod rpc;
pub mod scheduler;
pub mod supervisor;
pub mod writer;

#[cfg(test)]
mod scheduler_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorRef};
use serde::Serialize;

use crate::business::Business;
use crate::dialogue::Reply;
use crate::model::{Channel, Phone};
use crate::outbound::{ChannelSender, OutboxQueue, RetryPolicy};
use crate::ports::{
    Calendar, CalendarMirror, Clock, ConversationStore, JobQueue, KnowledgeBase, Leases, Nlu,
    Notifier, StoreError,
};
use crate::reminders::{ReminderSettings, ReminderTemplate};
use ai::{AiArgs, AiMsg};
use calendar::{CalendarArgs, CalendarBoard, CalendarMsg};
use conversation::ConversationMsg;
pub use conversation::{StaffAction, StaffOutcome};
use relay::{RelayArgs, RelayMsg, RelayWake};
use root::{EngineSupervisor, RootArgs, Slots};
use rpc::{AskError, ask};
use scheduler::{SchedulerArgs, SchedulerMsg};
use supervisor::SupervisorMsg;
use writer::TurnWriter;

/// One incoming message, already verified and parsed by a channel.
#[derive(Clone, Debug)]
pub struct Inbound {
    pub phone: Phone,
    pub channel: Channel,
    pub text: String,
    /// The provider's id for this message; a second delivery with the same id is a retry.
    pub provider_id: Option<String>,
    /// When the message was sent; "tomorrow" is read relative to this (the policy's checks,
    /// such as minimum notice, use the engine's clock).
    pub at: DateTime<Utc>,
}

/// Why a turn got no answer from the engine. The channel still answers the caller politely.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TurnError {
    #[error("the store is unavailable")]
    StoreUnavailable,
    #[error("the calendar is unavailable")]
    CalendarUnavailable,
    #[error("the conversation was interrupted (its actor restarted)")]
    Interrupted,
    #[error("the conversation kept changing under this turn")]
    Conflict,
    #[error("the turn took too long")]
    Timeout,
    /// Another instance held the conversation's lease for the whole lease wait; nothing was
    /// applied, so the provider's retry is safe.
    #[error("the conversation is busy on another instance")]
    Busy,
    /// An SMS from a number that opted out of SMS (STOP): nothing was applied and nothing
    /// may be sent to it until it opts in again.
    #[error("the number opted out of SMS")]
    SmsOptedOut,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for TurnError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => TurnError::StoreUnavailable,
            StoreError::Corrupt(detail) => TurnError::Internal(detail),
        }
    }
}

/// Tunables of the engine (from the `[engine]`-ish parts of the config).
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// A live conversation with no message for this long is passivated.
    pub idle_timeout: Duration,
    pub chat_deadline: Duration,
    pub voice_deadline: Duration,
    pub calendar_timeout: Duration,
    /// A whole turn, as the channel waits for it.
    pub turn_timeout: Duration,
    /// Failures of one conversation within `failure_window` that trigger quarantine.
    pub max_failures: u32,
    pub failure_window: Duration,
    pub quarantine: Duration,
    pub max_batch: usize,
    /// Group commits that may run at once (see [`TurnWriter::spawn`]).
    pub commits_in_flight: usize,
    pub calendar_refresh: Duration,
    /// How long a turn waits for the conversation's lease (several instances) before it gives
    /// up with [`TurnError::Busy`].
    pub lease_wait: Duration,
    /// When the outbox relay tries a failed message again, and when it gives up (`[outbox]`).
    pub delivery_retry: RetryPolicy,
    /// How long the relay's claim on a row keeps other instances off it.
    pub outbox_lease: Duration,
    /// How often the relay looks for due rows when no commit woke it.
    pub outbox_poll: Duration,
    /// When each confirmed booking's reminders are due (`[reminders]`).
    pub reminders: ReminderSettings,
    /// The WhatsApp template of a reminder outside the 24-hour window; `None` = such a
    /// reminder goes by SMS (or email) only.
    pub reminder_template: Option<ReminderTemplate>,
    /// How long the scheduler sleeps at most when no job is due sooner.
    pub scheduler_poll: Duration,
    /// How long a scheduler's claim on a job keeps other instances off it.
    pub job_lease: Duration,
    /// How long message text is kept (`[privacy]`); `None` = kept until a caller is
    /// forgotten.
    pub retention: Option<crate::retention::RetentionSettings>,
    /// How often a mirrored calendar's changes are read (`calendar.sync_secs`).
    pub calendar_sync: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            idle_timeout: Duration::from_secs(600),
            chat_deadline: Duration::from_millis(6000),
            voice_deadline: Duration::from_millis(2500),
            calendar_timeout: Duration::from_secs(10),
            turn_timeout: Duration::from_secs(20),
            max_failures: 3,
            failure_window: Duration::from_secs(300),
            quarantine: Duration::from_secs(3600),
            max_batch: 512,
            commits_in_flight: 1,
            calendar_refresh: Duration::from_secs(60),
            lease_wait: Duration::from_secs(5),
            delivery_retry: RetryPolicy::default(),
            outbox_lease: Duration::from_secs(30),
            outbox_poll: Duration::from_millis(250),
            reminders: ReminderSettings::default(),
            reminder_template: None,
            scheduler_poll: Duration::from_secs(30),
            job_lease: Duration::from_secs(60),
            retention: None,
            calendar_sync: Duration::from_secs(60),
        }
    }
}

/// The ports the engine runs on.
pub struct Ports {
    pub nlu: Arc<dyn Nlu>,
    pub fallback_nlu: Option<Arc<dyn Nlu>>,
    pub knowledge: Arc<dyn KnowledgeBase>,
    pub calendar: Arc<dyn Calendar>,
    pub store: Arc<dyn ConversationStore>,
    pub clock: Arc<dyn Clock>,
    /// Confirmations and staff alerts outside the conversation (email); `None` = none.
    pub notifier: Option<Arc<dyn Notifier>>,
    /// The outbox and the senders its relay delivers through; `None` = nothing is sent
    /// outside the HTTP answer (rows are still written, and wait).
    pub outbox: Option<OutboxPorts>,
}

/// What the outbox relay needs.
pub struct OutboxPorts {
    pub queue: Arc<dyn OutboxQueue>,
    /// One sender per channel that can send.
    pub senders: Vec<Arc<dyn ChannelSender>>,
    /// The jobs table the scheduler runs (reminders); `None` = no scheduler.
    pub jobs: Option<Arc<dyn JobQueue>>,
    /// The calendar that mirrors the store (Google), whose write retries and sync the
    /// scheduler runs; `None` for the local calendar.
    pub mirror: Option<Arc<dyn CalendarMirror>>,
}

/// Which engine actor fault injection makes panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineActor {
    Ai,
    Calendar,
}

/// Counts kept for `/admin/stats` (the same events also go to `metrics`).
#[derive(Debug, Default)]
pub struct Counters {
    pub turns: AtomicU64,
    pub restarts: AtomicU64,
    /// Messages the fallback NLU answered because the primary failed or was late.
    pub fallbacks: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineStats {
    pub live_conversations: usize,
    pub turns: u64,
    pub restarts: u64,
    pub fallbacks: u64,
}

/// What every conversation actor shares.
pub struct EngineShared {
    pub business: Arc<Business>,
    pub settings: EngineSettings,
    pub store: Arc<dyn ConversationStore>,
    /// The supervised actors, found again after a restart (see [`root`]).
    pub slots: Slots,
    /// The NLU and knowledge base a conversation asks itself, when the NLU answers at once
    /// and has no fallback (the rules); otherwise `None` and turns go through `ai`.
    pub instant_nlu: Option<(Arc<dyn Nlu>, Arc<dyn KnowledgeBase>)>,
    /// What the calendar actor publishes for turns to read (busy times, own bookings).
    pub calendar_board: Arc<CalendarBoard>,
    pub writer: TurnWriter,
    pub counters: Counters,
    /// Per-conversation ownership across instances; `None` = this process is the only writer.
    pub leases: Option<Arc<dyn Leases>>,
    /// "Now" for the policy (notice, expiry); the NLU reads dates from the message's own time.
    pub clock: Arc<dyn Clock>,
    pub notifier: Option<Arc<dyn Notifier>>,
    /// Set while a wake-up of the outbox relay is on its way.
    pub relay_wake: Arc<RelayWake>,
}

impl EngineShared {
    /// A commit wrote outbox rows: the relay makes a pass now instead of at its next tick.
    fn wake_relay(&self) {
        if let Some(relay) = self.slots.relay.get()
            && self.relay_wake.arm()
            && relay.send_message(RelayMsg::Wake).is_err()
        {
            tracing::debug!("outbox relay restarting; its next tick sends");
        }
    }

    fn record_turn(&self, took: Duration) {
        self.counters.turns.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sara_turns_total").increment(1);
        metrics::histogram!("sara_turn_seconds").record(took.as_secs_f64());
    }

    /// Counts a restart of an actor of kind `actor` ("conversation", "calendar", ...).
    fn record_restart(&self, actor: &'static str) {
        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
        // The contract's series stays one unlabelled total; the kind is in a series of its own.
        metrics::counter!("sara_actor_restarts_total").increment(1);
        metrics::counter!("sara_actor_restarts_by_kind_total", "actor" => actor).increment(1);
    }

    /// Asks the AI actor; [`AskError::Gone`] while it is being restarted.
    async fn ask_ai<T: Send + 'static>(
        &self,
        make: impl FnOnce(ractor::RpcReplyPort<T>) -> AiMsg,
        timeout: Duration,
    ) -> Result<T, AskError> {
        let actor = self.slots.ai.get().ok_or(AskError::Gone)?;
        ask(&actor, make, timeout).await
    }

    /// Asks the calendar actor; [`AskError::Gone`] while it is being restarted.
    async fn ask_calendar<T: Send + 'static>(
        &self,
        make: impl FnOnce(ractor::RpcReplyPort<T>) -> CalendarMsg,
        timeout: Duration,
    ) -> Result<T, AskError> {
        let actor = self.slots.calendar.get().ok_or(AskError::Gone)?;
        ask(&actor, make, timeout).await
    }
}

/// The stages of a turn `sara_turn_stage_seconds{stage}` breaks its latency into, in order:
/// `front` (the webhook's checks before the engine: rate limit, duplicate lookup), `queue`
/// (waiting for the supervisor and the conversation's mailbox), `lease` (the conversation's
/// ownership across instances), `load` (reading its state from the store, only when it is
/// read), `understand` (rules or model), `calendar` (the booking's effect, only when there is
/// one), `commit_wait` (waiting for the group commit's batch to start) and `commit` (the
/// batch's transaction).
pub const TURN_STAGES: [&str; 8] = [
    "front",
    "queue",
    "lease",
    "load",
    "understand",
    "calendar",
    "commit_wait",
    "commit",
];

/// Records how long one stage of a turn took (a name from [`TURN_STAGES`]).
pub fn record_stage(stage: &'static str, took: Duration) {
    debug_assert!(TURN_STAGES.contains(&stage));
    metrics::histogram!("sara_turn_stage_seconds", "stage" => stage).record(took.as_secs_f64());
}

/// Every kind of actor whose restarts `sara_actor_restarts_by_kind_total` counts (its `actor`
/// label); `sara_actor_restarts_total` is their sum.
pub const ACTOR_KINDS: [&str; 6] = [
    "conversation",
    "conversations",
    "ai",
    "calendar",
    "relay",
    "scheduler",
];

#[derive(Debug, thiserror::Error)]
#[error("engine failed to start: {0}")]
pub struct StartError(String);

/// The running engine. Cheap to clone; the service holds one.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<EngineShared>,
    root: ActorRef<()>,
}

impl Engine {
    /// Outbox rows were written outside a turn: the relay makes a pass now.
    pub fn wake_outbox(&self) {
        self.shared.wake_relay();
    }

    pub async fn start(
        business: Business,
        settings: EngineSettings,
        ports: Ports,
    ) -> Result<Engine, StartError> {
        Engine::start_with_leases(business, settings, ports, None).await
    }

    /// Like [`Engine::start`], with every turn run under the conversation's lease (see
    /// `conversation.rs`), so that several instances can share one store.
    pub async fn start_with_leases(
        business: Business,
        settings: EngineSettings,
        ports: Ports,
        leases: Option<Arc<dyn Leases>>,
    ) -> Result<Engine, StartError> {
        let fail = |e: ractor::SpawnErr| StartError(e.to_string());
        let instant_nlu = (ports.nlu.answers_at_once() && ports.fallback_nlu.is_none())
            .then(|| (ports.nlu.clone(), ports.knowledge.clone()));
        let counters = Counters::default();
        let ai = AiArgs {
            primary: ports.nlu,
            fallback: ports.fallback_nlu,
            knowledge: ports.knowledge,
            fallbacks: counters.fallbacks.clone(),
        };
        let calendar_board = Arc::new(CalendarBoard::default());
        let calendar = CalendarArgs {
            calendar: ports.calendar.clone(),
            clock: ports.clock.clone(),
            refresh: settings.calendar_refresh,
            board: calendar_board.clone(),
        };
        let relay_wake = Arc::new(RelayWake::default());
        let owner = format!("sara-{}", uuid::Uuid::new_v4());
        let scheduler = (ports.outbox.as_ref()).and_then(|outbox| {
            Some(SchedulerArgs {
                queue: outbox.jobs.clone()?,
                calendar: ports.calendar.clone(),
                clock: ports.clock.clone(),
                channels: outbox.senders.iter().map(|s| s.channel()).collect(),
                template: settings.reminder_template.clone(),
                owner: owner.clone(),
                lease: settings.job_lease,
                poll: settings.scheduler_poll,
                batch: 32,
                retention: settings.retention,
                mirror: outbox.mirror.clone(),
                sync_every: settings.calendar_sync,
            })
        });
        let relay = ports.outbox.map(|outbox| RelayArgs {
            queue: outbox.queue,
            senders: (outbox.senders.into_iter())
                .map(|s| (s.channel(), s))
                .collect(),
            retry: settings.delivery_retry,
            clock: ports.clock.clone(),
            owner,
            lease: settings.outbox_lease,
            poll: settings.outbox_poll,
            batch: 32,
            wake: relay_wake.clone(),
        });
        let writer = TurnWriter::spawn(
            ports.store.clone(),
            settings.max_batch,
            settings.commits_in_flight,
        );
        let shared = Arc::new(EngineShared {
            business: Arc::new(business),
            settings,
            store: ports.store,
            slots: Slots::default(),
            instant_nlu,
            calendar_board,
            writer,
            counters,
            leases,
            clock: ports.clock,
            notifier: ports.notifier,
            relay_wake,
        });
        let args = RootArgs {
            ai,
            calendar,
            relay,
            scheduler,
            shared: shared.clone(),
        };
        let (root, _) = Actor::spawn(None, EngineSupervisor, args)
            .await
            .map_err(fail)?;
        Ok(Engine { shared, root })
    }

    pub fn business(&self) -> &Business {
        &self.shared.business
    }

    /// "Now" as the engine reads it (the debug clock moves it; tests set it).
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    /// Asks the conversation supervisor.
    async fn ask_conversations<T: Send + 'static>(
        &self,
        make: impl FnOnce(ractor::RpcReplyPort<T>) -> SupervisorMsg,
        timeout: Duration,
    ) -> Result<T, AskError> {
        let actor = self
            .shared
            .slots
            .conversations
            .get()
            .ok_or(AskError::Gone)?;
        ask(&actor, make, timeout).await
    }

    /// Delivers a message to the phone's conversation and waits (the turn timeout at most)
    /// for its answer.
    async fn deliver<T: Send + 'static>(
        &self,
        phone: Phone,
        make: impl FnOnce(ractor::RpcReplyPort<Result<T, TurnError>>) -> ConversationMsg,
    ) -> Result<T, TurnError> {
        self.ask_conversations(
            |reply| SupervisorMsg::Deliver(phone, make(reply)),
            self.shared.settings.turn_timeout,
        )
        .await
        .unwrap_or_else(|e| match e {
            AskError::Timeout => Err(TurnError::Timeout),
            // The conversation actor died with the message in hand or in its mailbox.
            AskError::Gone => Err(TurnError::Interrupted),
        })
    }

    /// Runs one turn and returns the reply once the turn is committed.
    pub async fn turn(&self, inbound: Inbound) -> Result<Reply, TurnError> {
        let phone = inbound.phone.clone();
        self.deliver(phone, |reply| {
            ConversationMsg::Turn(inbound, Instant::now(), reply)
        })
        .await
    }

    /// Records that the phone opted out of SMS (`out`: STOP) or back in (START), through its
    /// conversation, which then refuses SMS turns while it is opted out
    /// ([`TurnError::SmsOptedOut`]). Whether that changed anything (a repeated STOP does not).
    pub async fn sms_opt(
        &self,
        phone: Phone,
        out: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, TurnError> {
        self.deliver(phone, |reply| ConversationMsg::SmsOpt(out, at, reply))
            .await
    }

    /// Staff give a handed-over conversation back to Sara.
    pub async fn hand_back(&self, phone: Phone) -> Result<(), TurnError> {
        self.staff(phone, StaffAction::HandBack).await.map(|_| ())
    }

    /// Carries out a staff action on the phone's conversation once it is committed.
    pub async fn staff(
        &self,
        phone: Phone,
        action: StaffAction,
    ) -> Result<StaffOutcome, TurnError> {
        self.deliver(phone, |reply| ConversationMsg::Staff(action, reply))
            .await
    }

    /// Drops the phone's conversation from memory (after the turns already queued), so that
    /// what the store erases next is not written back from memory. False when the
    /// supervisor did not answer.
    pub async fn passivate(&self, phone: Phone) -> bool {
        self.ask_conversations(
            |reply| SupervisorMsg::Passivate(phone, reply),
            Duration::from_secs(5),
        )
        .await
        .is_ok()
    }

    /// The phones whose conversation is quarantined now (empty when the supervisor does not
    /// answer).
    pub async fn quarantined(&self) -> Vec<Phone> {
        self.ask_conversations(SupervisorMsg::Quarantined, Duration::from_secs(2))
            .await
            .unwrap_or_default()
    }

    /// Runs one outbox pass now and waits for it (the debug clock; tests). False when no
    /// relay runs.
    pub async fn flush_outbox(&self) -> bool {
        let Some(relay) = self.shared.slots.relay.get() else {
            return false;
        };
        ask(&relay, RelayMsg::Flush, Duration::from_secs(30))
            .await
            .is_ok()
    }

    /// Runs scheduler and relay passes until neither has anything due (the debug clock after
    /// it moved; tests): due jobs become outbox rows, and due rows are sent or wait for their
    /// retry. The number of jobs run and rows tried; bounded, so a row that keeps failing at
    /// once does not hold it forever.
    pub async fn settle(&self) -> (usize, usize) {
        let slots = &self.shared.slots;
        let (mut jobs, mut rows) = (0, 0);
        for _ in 0..64 {
            let ran = match slots.scheduler.get() {
                Some(s) => ask(&s, SchedulerMsg::Flush, Duration::from_secs(30))
                    .await
                    .unwrap_or(0),
                None => 0,
            };
            let tried = match slots.relay.get() {
                Some(r) => ask(&r, RelayMsg::Flush, Duration::from_secs(30))
                    .await
                    .unwrap_or(0),
                None => 0,
            };
            jobs += ran;
            rows += tried;
            if ran == 0 && tried == 0 {
                break;
            }
        }
        (jobs, rows)
    }

    /// Tells the scheduler and the relay that time moved: each makes a pass now.
    pub fn wake_background(&self) {
        if let Some(scheduler) = self.shared.slots.scheduler.get() {
            let _ = scheduler.send_message(SchedulerMsg::Wake);
        }
        self.shared.wake_relay();
    }

    /// Fault injection: activates the phone's conversation and makes it panic.
    pub fn inject_panic(&self, phone: Phone) -> bool {
        self.shared.slots.conversations.get().is_some_and(|s| {
            s.send_message(SupervisorMsg::Deliver(phone, ConversationMsg::Panic))
                .is_ok()
        })
    }

    /// Fault injection: makes one of the engine's long-lived actors panic.
    pub fn inject_actor_panic(&self, actor: EngineActor) -> bool {
        let slots = &self.shared.slots;
        match actor {
            EngineActor::Ai => slots
                .ai
                .get()
                .is_some_and(|a| a.send_message(AiMsg::Panic).is_ok()),
            EngineActor::Calendar => slots
                .calendar
                .get()
                .is_some_and(|a| a.send_message(CalendarMsg::Panic).is_ok()),
        }
    }

    /// How many conversations are live; `None` when the supervisor did not answer within 2 s
    /// (busy, restarting or stopped).
    pub async fn live_conversations(&self) -> Option<usize> {
        self.ask_conversations(SupervisorMsg::Live, Duration::from_secs(2))
            .await
            .ok()
    }

    pub async fn stats(&self) -> EngineStats {
        EngineStats {
            live_conversations: self.live_conversations().await.unwrap_or(0),
            turns: self.shared.counters.turns.load(Ordering::Relaxed),
            restarts: self.shared.counters.restarts.load(Ordering::Relaxed),
            fallbacks: self.shared.counters.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Stops the actors after the turns already queued have been answered.
    pub async fn shutdown(&self) {
        let slots = &self.shared.slots;
        if let Some(conversations) = slots.conversations.get() {
            let _ = conversations
                .drain_and_wait(Some(Duration::from_secs(10)))
                .await;
        }
        if let Some(relay) = slots.relay.get() {
            relay.stop(None);
        }
        if let Some(scheduler) = slots.scheduler.get() {
            scheduler.stop(None);
        }
        let _ = self
            .root
            .stop_and_wait(None, Some(Duration::from_secs(10)))
            .await;
    }
}
