//! The conversation actor: one per contact phone number. It holds the dialogue state and
//! handles that contact's turns strictly in order: understand → decide (pure policy) → act on
//! the calendar → commit state and turn together → reply. Nothing is answered before it is
//! committed, so a crash anywhere loses no committed turn.
//!
//! Several instances: with leases configured, each turn runs under the phone's lease (one
//! holder across all instances at a time) and commits with the lease's epoch as a fencing
//! token. The lease keeps turns of one conversation one at a time and mostly conflict-free;
//! the store's version check and fencing check keep them exactly-once even when the lease
//! fails (expired under a paused process, Redis down).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::calendar::{CalendarMsg, CalendarView};
use super::{EngineShared, Inbound, TurnError};
use crate::dialogue::{
    self, Decision, DialogueState, Effect, Reply, StaffChange, StaffDecision, TurnContext,
};
use crate::model::{Channel, Phone};
use crate::outbound::{Content, OutboundKind, OutboundMessage, Recipient};
use crate::ports::{
    BookingChange, CalendarError, CommitOutcome, JobRecord, Lease, LeaseError, OutboxKind,
    OutboxMessage, TurnCommit, TurnRecord,
};
use crate::reminders;
use crate::reminders::ReminderReply;
use crate::understanding::{NluContext, Understanding};

/// How many recent provider message ids (with their replies) a conversation remembers, so a
/// provider's retry is answered from memory; older duplicates are caught by the store.
pub(crate) const RECENT_IDS: usize = 8;

/// The persisted state of a conversation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConversationState {
    #[serde(rename = "d")]
    pub dialogue: DialogueState,
    /// (provider id, reply) of the last few turns, newest last.
    #[serde(rename = "r", default, skip_serializing_if = "VecDeque::is_empty")]
    pub recent: VecDeque<(String, Remembered)>,
}

/// A reply as a conversation remembers it for a provider's retry: its text alone when
/// that is all it is (the form states had before whole replies were kept, and the
/// smallest), else the whole reply, so a retried delivery is answered with the same
/// buttons, hand-over or hang-up as the first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Remembered {
    Text(String),
    Whole(Reply),
}

impl Remembered {
    pub fn new(reply: &Reply) -> Remembered {
        let plain = Reply {
            text: reply.text.clone(),
            ..Reply::default()
        };
        if *reply == plain {
            Remembered::Text(plain.text)
        } else {
            Remembered::Whole(reply.clone())
        }
    }

    /// What Sara said, without the buttons or the call's next step.
    pub fn text(&self) -> &str {
        match self {
            Remembered::Text(text) => text,
            Remembered::Whole(reply) => &reply.text,
        }
    }

    pub fn reply(&self) -> Reply {
        match self {
            Remembered::Text(text) => Reply {
                text: text.clone(),
                ..Reply::default()
            },
            Remembered::Whole(reply) => reply.clone(),
        }
    }
}

impl ConversationState {
    fn replied(&self, provider_id: &str) -> Option<Reply> {
        self.recent
            .iter()
            .find(|(id, _)| id == provider_id)
            .map(|(_, r)| r.reply())
    }

    fn remember(&mut self, provider_id: &str, reply: &Reply) {
        if self.recent.len() == RECENT_IDS {
            self.recent.pop_front();
        }
        self.recent
            .push_back((provider_id.to_string(), Remembered::new(reply)));
    }
}

/// What a turn asks for beyond its reply: messages to compose into the outbox, jobs to
/// schedule and jobs it makes void.
#[derive(Default)]
struct TurnEffects {
    notices: Vec<OutboundMessage>,
    jobs: Vec<JobRecord>,
    void_jobs: Vec<String>,
}

pub struct ConversationActor;

pub enum ConversationMsg {
    /// A customer's message, with the instant it was sent to the engine (for the `queue` stage).
    Turn(Inbound, Instant, RpcReplyPort<Result<Reply, TurnError>>),
    /// Staff act on the conversation from the console.
    Staff(StaffAction, RpcReplyPort<Result<StaffOutcome, TurnError>>),
    /// The number opted out of SMS (`true`: STOP) or back in (START), at that time; answered
    /// with whether that changed anything.
    SmsOpt(bool, DateTime<Utc>, RpcReplyPort<Result<bool, TurnError>>),
    /// Fault injection: panic inside `handle` (to prove supervision).
    Panic,
}

/// What staff do to a conversation from the console. Each is committed like a turn (a
/// `staff` turn in the log), so it holds across restarts and instances.
#[derive(Clone, Debug, PartialEq)]
pub enum StaffAction {
    /// Sara stops answering: messages are still recorded, nothing is sent.
    TakeOver,
    /// A message from staff to the customer on `channel` (SMS or WhatsApp), sent through
    /// the outbox (kind `staff_reply`) in the same commit as its turn. `key` makes the row
    /// once-only: a form sent twice writes one message.
    Reply {
        channel: Channel,
        text: String,
        key: String,
    },
    /// Sara answers again (also lifts a hand-over and a quarantine).
    HandBack,
    /// A booking made, moved or cancelled for the customer: decided by the rules a
    /// customer's own request meets ([`dialogue::staff_change`]), written through the
    /// calendar actor, and committed with its confirmation to the customer on `notify` (SMS
    /// or WhatsApp, through the outbox; `None` = no text channel reaches them), the email
    /// confirmation when the booking has an address, and its reminders scheduled or voided.
    /// `key` makes it once-only, like a reply's.
    Change {
        change: StaffChange,
        notify: Option<Channel>,
        key: String,
    },
}

impl StaffAction {
    fn intent(&self) -> &'static str {
        match self {
            StaffAction::TakeOver => "take_over",
            StaffAction::Reply { .. } => "staff_reply",
            StaffAction::HandBack => "hand_back",
            StaffAction::Change { change, .. } => change.intent(),
        }
    }
}

/// What became of a staff action.
#[derive(Clone, Debug, PartialEq)]
pub enum StaffOutcome {
    Done,
    /// A booking held in the store whose calendar write failed for a moment: a job retries
    /// it and confirms it to the customer (or tells them it could not be made).
    Held,
    /// A change the rules or the calendar refused; nothing was written. `reason` is in
    /// Sara's words, `alternatives` the nearest free start times (may be empty).
    Refused {
        reason: String,
        alternatives: Vec<DateTime<Utc>>,
    },
}

pub struct ConversationArgs {
    pub phone: Phone,
    pub shared: Arc<EngineShared>,
}

pub struct Conversation {
    phone: Phone,
    shared: Arc<EngineShared>,
    state: ConversationState,
    /// The store version `state` was read at or last committed as (0 = never stored).
    version: i64,
    /// The stored fencing token of the last commit that carried one.
    owner_epoch: i64,
    /// The epoch of the last lease this actor was granted; 0 = none, or memory may be stale.
    lease_epoch: i64,
    /// Whether `state` has been read from the store. Activation does not read it, so the
    /// supervisor never waits on the store (an outage would stall every conversation); the
    /// first message does, and a failed read is retried by the next one.
    loaded: bool,
    /// Whether the number opted out of SMS, as stored: read with `state`, changed only
    /// through this actor (under the lease), so an SMS turn needs no look-up of its own.
    sms_opted_out: bool,
}

impl Actor for ConversationActor {
    type Msg = ConversationMsg;
    type State = Conversation;
    type Arguments = ConversationArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ConversationMsg>,
        args: ConversationArgs,
    ) -> Result<Conversation, ActorProcessingErr> {
        Ok(Conversation {
            phone: args.phone,
            shared: args.shared,
            state: ConversationState::default(),
            version: 0,
            owner_epoch: 0,
            lease_epoch: 0,
            loaded: false,
            sms_opted_out: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ConversationMsg>,
        message: ConversationMsg,
        conversation: &mut Conversation,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed, the whole of it: a turn's (or a staff action's) future is several KiB, and
        // whatever this future holds inline is part of every idle actor's task, i.e. of the
        // memory of each live conversation (an unboxed staff action once took it from 10 to
        // 16 KiB). Boxed, it is allocated while a message is handled and freed after.
        Box::pin(conversation.dispatch(message)).await;
        Ok(())
    }
}

impl Conversation {
    async fn dispatch(&mut self, message: ConversationMsg) {
        match message {
            ConversationMsg::Turn(inbound, queued, reply) => {
                super::record_stage("queue", queued.elapsed());
                let _ = reply.send(self.turn(inbound).await);
            }
            ConversationMsg::Staff(action, reply) => {
                let _ = reply.send(self.staff(action).await);
            }
            ConversationMsg::SmsOpt(out, at, reply) => {
                let _ = reply.send(self.sms_opt(out, at).await);
            }
            ConversationMsg::Panic => {
                panic!("fault injection: conversation actor asked to panic");
            }
        }
    }

    /// Reads the last committed state. A state that no longer parses (an old format) starts
    /// the dialogue over but keeps its version, so the next commit still checks it.
    async fn reload(&mut self) -> Result<(), TurnError> {
        let started = Instant::now();
        let contact = (self.shared.store.load_contact(&self.phone).await).map_err(|error| {
            tracing::warn!(%error, "conversation could not be read");
            error
        })?;
        self.sms_opted_out = contact.sms_opted_out;
        match contact.conversation {
            Some(stored) => {
                self.state = serde_json::from_str(&stored.state).unwrap_or_else(|error| {
                    tracing::warn!(%error, "stored conversation state unreadable; starting over");
                    ConversationState::default()
                });
                self.version = stored.version;
                self.owner_epoch = stored.owner_epoch;
            }
            None => {
                self.state = ConversationState::default();
                self.version = 0;
                self.owner_epoch = 0;
            }
        }
        self.loaded = true;
        super::record_stage("load", started.elapsed());
        Ok(())
    }

    async fn ensure_loaded(&mut self) -> Result<(), TurnError> {
        if self.loaded {
            return Ok(());
        }
        self.reload().await
    }

    /// Carries out a staff action and records it in the turn log: a staff reply as Sara's
    /// side of a turn without customer text (so the transcript shows it), the others as an
    /// empty staff turn named by its intent.
    async fn staff(&mut self, action: StaffAction) -> Result<StaffOutcome, TurnError> {
        self.ensure_loaded().await?;
        if let StaffAction::Change {
            change,
            notify,
            key,
        } = action
        {
            return self.staff_change(&change, notify, &key).await;
        }
        let (reply, outbox) = match &action {
            StaffAction::Reply { channel, text, key } => {
                let row = self.staff_reply_row(*channel, text, key)?;
                (dialogue::Reply::staff(text), vec![row])
            }
            _ => (Reply::default(), Vec::new()),
        };
        let record = TurnRecord {
            channel: Channel::Staff,
            // A staff reply's key dedups it like a provider's message id.
            provider_id: match &action {
                StaffAction::Reply { key, .. } => Some(format!("staff:{key}")),
                _ => None,
            },
            text: String::new(),
            reply,
            intent: action.intent().into(),
            nlu: "staff".into(),
            understood: "{}".into(),
            at: self.shared.clock.now(),
            elapsed_ms: 0,
        };
        let effects = TurnEffects::default();
        self.commit_staff(record, outbox, effects, |next| match &action {
            StaffAction::TakeOver => next.dialogue.take_over(),
            StaffAction::HandBack => next.dialogue.hand_back(),
            _ => {}
        })
        .await?;
        Ok(StaffOutcome::Done)
    }

    /// A booking change staff make for the customer: decided by the rules, written through
    /// the calendar actor, then committed with the customer's confirmation, the email
    /// notice and the reminder jobs. A refusal writes nothing.
    async fn staff_change(
        &mut self,
        change: &StaffChange,
        notify: Option<Channel>,
        key: &str,
    ) -> Result<StaffOutcome, TurnError> {
        let decide = |me: &Self, view: &CalendarView| {
            let ctx = TurnContext {
                now: me.shared.clock.now(),
                business: &me.shared.business,
                phone: &me.phone,
                channel: Channel::Staff,
                busy: &view.busy,
                bookings: &view.mine,
                fresh_id: Uuid::new_v4(),
                staff_alerts: false,
            };
            dialogue::staff_change(&me.state.dialogue, change, &ctx)
        };
        let refused = |reason: &str| StaffOutcome::Refused {
            reason: reason.to_string(),
            alternatives: Vec::new(),
        };
        let view = self.view();
        let effect = match decide(self, &view) {
            StaffDecision::Change { effect } => effect,
            StaffDecision::Refused {
                reason,
                alternatives,
            } => {
                return Ok(StaffOutcome::Refused {
                    reason,
                    alternatives,
                });
            }
        };
        match self.run_effect(&effect).await {
            Ok(()) => {}
            // Someone took the time between the check and the write: the rules again, on
            // the calendar as it is now, give the reason and the alternatives.
            Err(CalendarError::SlotTaken) => {
                return Ok(match decide(self, &self.view()) {
                    StaffDecision::Refused {
                        reason,
                        alternatives,
                    } => StaffOutcome::Refused {
                        reason,
                        alternatives,
                    },
                    StaffDecision::Change { .. } => refused("That time was just taken."),
                });
            }
            Err(CalendarError::NotFound) => {
                return Ok(refused(
                    "That booking can't be found any more; it may have been changed already.",
                ));
            }
            // Held, its write retried by a job that also tells the customer.
            Err(CalendarError::Deferred) => return Ok(StaffOutcome::Held),
            Err(CalendarError::Unavailable(error)) => {
                tracing::warn!(%error, "calendar refused a staff change");
                return Err(TurnError::CalendarUnavailable);
            }
        }
        let Some(booking) = changed_booking(&effect, &view) else {
            return Err(TurnError::Internal(
                "a staff change of a booking not in view".into(),
            ));
        };
        let message = dialogue::staff_change_message(&self.shared.business, &effect, &booking);
        let turn = format!("staff:{key}");
        let mut effects = TurnEffects::default();
        effects.notices.extend(self.notify(&effect, &view, &turn));
        if let Some(channel) = notify.filter(|c| matches!(c, Channel::Sms | Channel::WhatsApp)) {
            effects.notices.push(OutboundMessage {
                key: format!("{turn}:customer"),
                channel,
                to: Recipient::Phone(self.phone.clone()),
                kind: OutboundKind::Confirmation,
                content: Content::text(message.clone()),
            });
        }
        self.schedule_reminders(&effect, &view, &mut effects);
        let outbox: Vec<OutboxMessage> = std::mem::take(&mut effects.notices)
            .into_iter()
            .filter_map(|m| self.outbox_row(m))
            .collect();
        let record = TurnRecord {
            channel: Channel::Staff,
            provider_id: Some(turn),
            text: String::new(),
            reply: Reply::staff(message),
            intent: change.intent().into(),
            nlu: "staff".into(),
            understood: "{}".into(),
            at: self.shared.clock.now(),
            elapsed_ms: 0,
        };
        let name = match change {
            StaffChange::Book { name, .. } => name.clone(),
            _ => None,
        };
        self.commit_staff(record, outbox, effects, |next| {
            if next.dialogue.caller.is_none() {
                next.dialogue.caller = name.clone();
            }
        })
        .await?;
        Ok(StaffOutcome::Done)
    }

    /// Commits a staff turn with its outbox rows and jobs; `change` is applied to the state
    /// (again after a version conflict, on the state read afresh).
    async fn commit_staff(
        &mut self,
        record: TurnRecord,
        outbox: Vec<OutboxMessage>,
        effects: TurnEffects,
        change: impl Fn(&mut ConversationState),
    ) -> Result<(), TurnError> {
        for _ in 0..2 {
            let mut next = self.state.clone();
            change(&mut next);
            let commit = TurnCommit {
                phone: self.phone.clone(),
                expected_version: self.version,
                // Staff actions are rare and not fenced: the version check alone guards them.
                owner_epoch: 0,
                state: serde_json::to_string(&next)
                    .map_err(|e| TurnError::Internal(e.to_string()))?,
                turn: record.clone(),
                outbox: outbox.clone(),
                jobs: effects.jobs.clone(),
                void_jobs: effects.void_jobs.clone(),
                attendance: Vec::new(),
            };
            match self.shared.writer.commit(commit).await? {
                CommitOutcome::Committed { version } => {
                    if !outbox.is_empty() {
                        self.shared.wake_relay();
                    }
                    self.state = next;
                    self.version = version;
                    return Ok(());
                }
                // The same form sent twice: it was recorded (and sent) once.
                CommitOutcome::Duplicate { .. } => return Ok(()),
                _ => self.reload().await?,
            }
        }
        Err(TurnError::Conflict)
    }

    /// The outbox row of a staff message to this customer on `channel`.
    fn staff_reply_row(
        &self,
        channel: Channel,
        text: &str,
        key: &str,
    ) -> Result<OutboxMessage, TurnError> {
        if !matches!(channel, Channel::Sms | Channel::WhatsApp) {
            return Err(TurnError::Internal(format!(
                "staff replies go by SMS or WhatsApp, not {}",
                channel.as_str()
            )));
        }
        let key = format!("staff:{key}");
        let message = OutboundMessage {
            key: key.clone(),
            channel,
            to: Recipient::Phone(self.phone.clone()),
            kind: OutboundKind::StaffReply,
            content: Content::text(text),
        };
        Ok(OutboxMessage {
            contact: self.phone.clone(),
            recipient: self.phone.as_str().to_owned(),
            channel,
            kind: OutboxKind::StaffReply,
            payload: serde_json::to_string(&message)
                .map_err(|e| TurnError::Internal(e.to_string()))?,
            idempotency_key: key,
            not_before: self.shared.clock.now(),
        })
    }

    /// Takes the conversation's lease (when leases are configured), makes sure the state in
    /// memory is the newest committed one, and returns the lease to commit under.
    ///
    /// Outcomes, each bounded by `lease_wait` plus the lease service's own timeouts:
    /// granted → `Some(lease)`; held elsewhere for the whole wait → `TurnError::Busy` (nothing
    /// applied, the provider retries); lease service down → `None`, and the turn runs on the
    /// freshly reloaded state with the version check as its only guard.
    async fn take_lease(&mut self) -> Result<Option<Lease>, TurnError> {
        let Some(leases) = self.shared.leases.clone() else {
            return Ok(None);
        };
        // Two rounds: the second only after lifting a counter that went backwards.
        for _ in 0..2 {
            match leases
                .acquire(&self.phone, self.shared.settings.lease_wait)
                .await
            {
                Ok(lease) => {
                    // Epochs are handed out one by one per phone: the next number after ours
                    // means nobody else held the lease since our last turn, so memory is
                    // current; any other number means another instance may have committed.
                    if (self.lease_epoch == 0 || lease.epoch != self.lease_epoch + 1)
                        && let Err(error) = self.reload().await
                    {
                        leases.release(&self.phone, &lease).await;
                        return Err(error);
                    }
                    if self.owner_epoch >= lease.epoch {
                        // The store has seen a larger token than Redis just gave: Redis lost
                        // its counter (restart without persistence). Lift it and ask again.
                        tracing::warn!("lease epoch behind the store's; raising it");
                        leases.release(&self.phone, &lease).await;
                        self.lease_epoch = 0;
                        if let Err(error) = leases.raise(&self.phone, self.owner_epoch).await {
                            tracing::warn!(%error, "could not raise the lease epoch");
                            return Err(TurnError::Busy);
                        }
                        continue;
                    }
                    self.lease_epoch = lease.epoch;
                    return Ok(Some(lease));
                }
                Err(LeaseError::Busy) => {
                    tracing::info!("conversation lease stayed taken; giving up this delivery");
                    return Err(TurnError::Busy);
                }
                Err(LeaseError::Unavailable(error)) => {
                    tracing::warn!(%error, "lease service unavailable; turn runs unfenced");
                    self.lease_epoch = 0;
                    self.reload().await?;
                    return Ok(None);
                }
            }
        }
        Err(TurnError::Busy)
    }

    #[tracing::instrument(skip_all, fields(conversation = %self.phone.masked(), channel = inbound.channel.as_str(), turn = %Uuid::new_v4()))]
    async fn turn(&mut self, inbound: Inbound) -> Result<Reply, TurnError> {
        let lease = self.lease_and_load().await?;
        let epoch = lease.as_ref().map_or(0, |l| l.epoch);
        let result = if inbound.channel == Channel::Sms && self.sms_opted_out {
            // Nothing may be sent to the number, and nothing is applied: its messages wait
            // for it to opt in again.
            Err(TurnError::SmsOptedOut)
        } else {
            self.turn_under(inbound, epoch).await
        };
        self.release(lease).await;
        result
    }

    /// Records an SMS opt-out (`out`) or opt-in under the lease, so that another instance's
    /// actor for this phone sees the epoch move on and reads it afresh.
    async fn sms_opt(&mut self, out: bool, at: DateTime<Utc>) -> Result<bool, TurnError> {
        let lease = self.lease_and_load().await?;
        let result = self
            .shared
            .store
            .set_sms_opt_out(&self.phone, out, at)
            .await;
        if result.is_ok() {
            self.sms_opted_out = out;
        }
        self.release(lease).await;
        Ok(result?)
    }

    /// Takes the lease (see [`Self::take_lease`]) and makes sure the state is read; a
    /// failed read gives the lease back.
    async fn lease_and_load(&mut self) -> Result<Option<Lease>, TurnError> {
        let asked = Instant::now();
        let lease = self.take_lease().await?;
        if self.shared.leases.is_some() {
            super::record_stage("lease", asked.elapsed());
        }
        if let Err(error) = self.ensure_loaded().await {
            self.release(lease).await;
            return Err(error);
        }
        Ok(lease)
    }

    /// Gives the lease back early, so the next turn (maybe on another instance) need not
    /// wait for it to expire.
    async fn release(&self, lease: Option<Lease>) {
        if let (Some(leases), Some(lease)) = (&self.shared.leases, &lease) {
            leases.release(&self.phone, lease).await;
        }
    }

    /// One turn, the lease (if any) already held with fencing token `epoch`.
    async fn turn_under(&mut self, inbound: Inbound, epoch: i64) -> Result<Reply, TurnError> {
        let started = Instant::now();
        if let Some(id) = &inbound.provider_id
            && let Some(reply) = self.state.replied(id)
        {
            tracing::info!("duplicate delivery answered from memory");
            return Ok(reply);
        }
        // A version conflict means another writer got there first (another instance, or an
        // actor that was passivated while we activated): read again and redo the turn once.
        for attempt in 0..2 {
            let (decision, understood, nlu, effects) = self.decide(&inbound).await?;
            let TurnEffects {
                notices,
                jobs,
                void_jobs,
            } = effects;
            let mut next = ConversationState {
                dialogue: decision.state.clone(),
                recent: self.state.recent.clone(),
            };
            if let Some(id) = &inbound.provider_id {
                next.remember(id, &decision.reply);
            }
            let commit = TurnCommit {
                phone: self.phone.clone(),
                expected_version: self.version,
                owner_epoch: epoch,
                state: serde_json::to_string(&next)
                    .map_err(|e| TurnError::Internal(e.to_string()))?,
                turn: TurnRecord {
                    channel: inbound.channel,
                    provider_id: inbound.provider_id.clone(),
                    text: inbound.text.clone(),
                    reply: decision.reply.clone(),
                    intent: decision.intent.as_str().to_string(),
                    nlu: nlu.to_string(),
                    understood: serde_json::to_string(&understood).unwrap_or_default(),
                    at: inbound.at,
                    elapsed_ms: started.elapsed().as_millis().min(u32::MAX as u128) as u32,
                },
                outbox: (self.reply_outbox(&inbound, &decision.reply).into_iter())
                    .chain(notices.into_iter().filter_map(|m| self.outbox_row(m)))
                    .collect(),
                jobs,
                void_jobs,
                attendance: match decision.effect {
                    Some(Effect::Attend { id }) => vec![id],
                    _ => Vec::new(),
                },
            };
            let sends = !commit.outbox.is_empty();
            match self.shared.writer.commit(commit).await? {
                CommitOutcome::Committed { version } => {
                    if sends {
                        self.shared.wake_relay();
                    }
                    self.state = next;
                    self.version = version;
                    self.owner_epoch = self.owner_epoch.max(epoch);
                    self.shared.record_turn(started.elapsed());
                    return Ok(decision.reply);
                }
                CommitOutcome::Duplicate { reply } => {
                    tracing::info!("duplicate delivery answered from the store");
                    return Ok(reply);
                }
                CommitOutcome::VersionConflict => {
                    tracing::info!(attempt, "version conflict; reloading the conversation");
                    self.reload().await?;
                }
                CommitOutcome::Fenced => {
                    // Our lease expired and a newer owner has committed: this turn must not
                    // be applied. The provider's retry will find the new owner's state.
                    tracing::warn!("commit fenced off by a newer lease owner");
                    self.lease_epoch = 0;
                    return Err(TurnError::Busy);
                }
            }
        }
        Err(TurnError::Conflict)
    }

    /// The outbox row of a reply that does not travel in the webhook's HTTP answer
    /// (WhatsApp), keyed by the message's provider id so that a re-delivered webhook never
    /// writes, or sends, it twice.
    fn reply_outbox(&self, inbound: &Inbound, reply: &Reply) -> Vec<OutboxMessage> {
        if inbound.channel != Channel::WhatsApp || reply.silent || reply.text.is_empty() {
            return Vec::new();
        }
        let key = format!("{}:reply", turn_key(inbound));
        let message = OutboundMessage {
            key: key.clone(),
            channel: Channel::WhatsApp,
            to: Recipient::Phone(self.phone.clone()),
            kind: OutboundKind::Reply,
            content: Content::from_reply(reply),
        };
        let Ok(payload) = serde_json::to_string(&message) else {
            return Vec::new();
        };
        vec![OutboxMessage {
            contact: self.phone.clone(),
            recipient: self.phone.as_str().to_owned(),
            channel: Channel::WhatsApp,
            kind: OutboxKind::Reply,
            payload,
            idempotency_key: key,
            not_before: self.shared.clock.now(),
        }]
    }

    /// Understands the message, runs the policy and carries out its effect.
    async fn decide(
        &self,
        inbound: &Inbound,
    ) -> Result<(Decision, Understanding, &'static str, TurnEffects), TurnError> {
        if inbound.text.trim().is_empty() {
            // A picture, a voice note or a sticker without words (WhatsApp media, an MMS): no
            // understanding can read it, and the form stays as it was.
            let decision = Decision {
                state: self.state.dialogue.clone(),
                reply: dialogue::text_only(),
                effect: None,
                intent: crate::understanding::Act::OutOfScope,
                then: None,
            };
            return Ok((
                decision,
                Understanding::default(),
                "none",
                TurnEffects::default(),
            ));
        }
        let shared = &self.shared;
        let business = &*shared.business;
        let tz = business.timezone;
        // The model reads one message; what the conversation holds goes with it as data.
        let facts = dialogue::facts(&self.state.dialogue, &self.view().mine, tz);
        let ctx = NluContext {
            now: inbound.at.with_timezone(&tz),
            services: business.services.iter().map(|s| s.name.clone()).collect(),
            expecting: self.state.dialogue.expecting(),
            prompt: self
                .state
                .recent
                .back()
                .map(|(_, reply)| reply.text().to_owned()),
            facts,
        };
        let understanding = Instant::now();
        let mut understood = if let Some((nlu, knowledge)) = &shared.instant_nlu {
            let understood = nlu
                .understand(&inbound.text, &ctx)
                .await
                .unwrap_or_default();
            super::ai::with_faq_answer(understood, &**knowledge, &inbound.text)
        } else {
            self.understand_through_ai(inbound, ctx).await
        };
        understood.reminder = ReminderReply::read(&inbound.text);
        if understood.staff.is_none() {
            understood.staff = business.staff_named(&inbound.text).map(|s| s.name.clone());
        }
        super::record_stage("understand", understanding.elapsed());
        let nlu = match understood.source {
            crate::understanding::NluSource::Rules => "rules",
            crate::understanding::NluSource::Llm => "llm",
        };
        let view = self.view();
        let fresh_id = Uuid::new_v4();
        let decision = {
            let ctx = self.turn_context(inbound, &view, fresh_id);
            dialogue::step(&self.state.dialogue, &understood, &ctx)
        };
        let mut effects = TurnEffects::default();
        let notices = &mut effects.notices;
        let decision = match &decision.effect {
            None => decision,
            // Attendance is written with the turn's commit; nothing to do in the world.
            Some(Effect::Attend { .. }) => decision,
            Some(Effect::Handover) => {
                if let Some(notifier) = &self.shared.notifier {
                    let key = format!("{}:staff_alert", turn_key(inbound));
                    notices.extend(notifier.handover_requested(&self.phone, inbound.channel, key));
                }
                decision
            }
            Some(effect) => match self.timed_effect(effect).await {
                Ok(()) => {
                    notices.extend(self.notify(effect, &view, &turn_key(inbound)));
                    self.schedule_reminders(effect, &view, &mut effects);
                    self.then_second(decision, inbound, fresh_id, &mut effects)
                        .await
                }
                // The time is held; the calendar write is retried in the background, and
                // the customer hears so (no reminders or confirmation until it goes through).
                Err(CalendarError::Deferred) if matches!(effect, Effect::Book(_)) => {
                    tracing::info!("booking held; its calendar write will be retried");
                    let ctx = self.turn_context(inbound, &view, fresh_id);
                    dialogue::write_deferred(decision, &ctx)
                }
                Err(error) => {
                    let again = match (&error, effect) {
                        (CalendarError::SlotTaken, Effect::Book(first)) => {
                            self.book_with_someone_else(inbound, &understood, fresh_id, first)
                                .await
                        }
                        _ => None,
                    };
                    match again {
                        Some((decision, view)) => {
                            if let Some(effect) = &decision.effect {
                                notices.extend(self.notify(effect, &view, &turn_key(inbound)));
                                self.schedule_reminders(effect, &view, &mut effects);
                            }
                            self.then_second(decision, inbound, fresh_id, &mut effects)
                                .await
                        }
                        None => {
                            tracing::info!(%error, "calendar refused the effect");
                            let view = self.view();
                            let ctx = self.turn_context(inbound, &view, fresh_id);
                            dialogue::effect_failed(&self.state.dialogue, effect, &error, &ctx)
                        }
                    }
                }
            },
        };
        Ok((decision, understood, nlu, effects))
    }

    /// The second write one "yes" covered ([`Decision::then`]), once the first is done: its
    /// notices and reminders join the turn's, or the policy decides again on its failure.
    async fn then_second(
        &self,
        mut decision: Decision,
        inbound: &Inbound,
        fresh_id: Uuid,
        effects: &mut TurnEffects,
    ) -> Decision {
        let Some(then) = decision.then.take() else {
            return decision;
        };
        let view = self.view();
        match self.timed_effect(&then.effect).await {
            Ok(()) => {
                let key = format!("{}:second", turn_key(inbound));
                effects
                    .notices
                    .extend(self.notify(&then.effect, &view, &key));
                self.schedule_reminders(&then.effect, &view, effects);
                decision
            }
            Err(CalendarError::Deferred) if matches!(then.effect, Effect::Book(_)) => {
                tracing::info!("second booking held; its calendar write will be retried");
                let ctx = self.turn_context(inbound, &view, fresh_id);
                then.deferred(decision, &ctx)
            }
            Err(error) => {
                tracing::info!(%error, "calendar refused the second effect");
                let view = self.view();
                let ctx = self.turn_context(inbound, &view, fresh_id);
                then.failed(&error, &ctx)
            }
        }
    }

    /// The reminder jobs of a change the calendar accepted: a booking's, a moved booking's
    /// for its new time (its old ones void), none for a cancelled one (its old ones void).
    fn schedule_reminders(&self, effect: &Effect, view: &CalendarView, effects: &mut TurnEffects) {
        let business = &self.shared.business;
        let settings = &self.shared.settings.reminders;
        let now = self.shared.clock.now();
        let jobs = |b: &crate::model::Booking| {
            reminders::reminder_jobs(b, business.timezone, now, settings)
        };
        match effect {
            Effect::Book(b) => effects.jobs.extend(jobs(b)),
            Effect::Reschedule { id, start, end } => {
                effects.void_jobs.push(reminders::reminder_key_prefix(*id));
                if let Some(mut b) = view.mine.iter().find(|b| b.id == *id).cloned() {
                    b.start = *start;
                    b.end = *end;
                    effects.jobs.extend(jobs(&b));
                }
            }
            Effect::Cancel { id } => effects.void_jobs.push(reminders::reminder_key_prefix(*id)),
            Effect::Attend { .. } | Effect::Handover => {}
        }
    }

    /// Asks the AI actor, which applies the deadline and the fallback itself.
    async fn understand_through_ai(&self, inbound: &Inbound, ctx: NluContext) -> Understanding {
        let shared = &self.shared;
        let deadline = match inbound.channel {
            Channel::Voice => shared.settings.voice_deadline,
            _ => shared.settings.chat_deadline,
        };
        let text = inbound.text.clone();
        // The outer bound only covers an AI actor that is gone.
        let asked = shared
            .ask_ai(
                |reply| super::ai::AiMsg::Understand {
                    text,
                    ctx: Box::new(ctx),
                    deadline,
                    reply,
                },
                deadline + Duration::from_secs(2),
            )
            .await;
        asked.unwrap_or_else(|error| {
            tracing::warn!(%error, "AI actor did not answer; treating the message as not understood");
            Understanding::default()
        })
    }

    fn turn_context<'a>(
        &'a self,
        inbound: &Inbound,
        view: &'a CalendarView,
        fresh_id: Uuid,
    ) -> TurnContext<'a> {
        TurnContext {
            now: self.shared.clock.now(),
            business: &self.shared.business,
            phone: &self.phone,
            channel: inbound.channel,
            busy: &view.busy,
            bookings: &view.mine,
            fresh_id,
            staff_alerts: self
                .shared
                .notifier
                .as_ref()
                .is_some_and(|n| n.alerts_staff()),
        }
    }

    /// What the notifier (email confirmations) sends about a change the calendar accepted.
    fn notify(&self, effect: &Effect, view: &CalendarView, turn: &str) -> Option<OutboundMessage> {
        let notifier = self.shared.notifier.as_ref()?;
        let key = format!("{turn}:confirmation");
        let now = self.shared.clock.now();
        let mine = |id| view.mine.iter().find(|b| b.id == id).cloned();
        match effect {
            Effect::Book(b) => notifier.booking_changed(b, BookingChange::Booked, key, now),
            Effect::Reschedule { id, start, end } => {
                let mut b = mine(*id)?;
                b.start = *start;
                b.end = *end;
                b.sequence = b.sequence.saturating_add(1);
                notifier.booking_changed(&b, BookingChange::Moved, key, now)
            }
            Effect::Cancel { id } => {
                let mut b = mine(*id)?;
                b.status = crate::model::BookingStatus::Cancelled;
                b.sequence = b.sequence.saturating_add(1);
                notifier.booking_changed(&b, BookingChange::Cancelled, key, now)
            }
            Effect::Attend { .. } | Effect::Handover => None,
        }
    }

    /// The outbox row of a composed message about this conversation's customer.
    fn outbox_row(&self, message: OutboundMessage) -> Option<OutboxMessage> {
        let recipient = match &message.to {
            Recipient::Phone(p) => p.as_str().to_owned(),
            Recipient::Email(address) => address.clone(),
        };
        let kind = OutboxKind::parse(message.kind.as_str())?;
        Some(OutboxMessage {
            contact: self.phone.clone(),
            recipient,
            channel: message.channel,
            kind,
            payload: serde_json::to_string(&message).ok()?,
            idempotency_key: message.key.clone(),
            not_before: self.shared.clock.now(),
        })
    }

    /// What the calendar shows now: read from the calendar's board, not asked of the actor.
    fn view(&self) -> CalendarView {
        self.shared
            .calendar_board
            .view(&self.phone, self.shared.clock.now())
    }

    /// The booking's time was taken between the policy's check and the write (another
    /// caller got that staff member first): the policy decides again on the calendar as it
    /// is now, and when it books the same time with another capable, free staff member (the
    /// customer named none, or the one they named is free after all), that is written. One
    /// try per staff member; `None` when the time is gone for everyone, and the usual
    /// "just taken" answer with alternatives follows.
    async fn book_with_someone_else(
        &self,
        inbound: &Inbound,
        understood: &Understanding,
        fresh_id: Uuid,
        first: &crate::model::Booking,
    ) -> Option<(Decision, CalendarView)> {
        for _ in 0..self.shared.business.staff.len() {
            let view = self.view();
            let decision = {
                let ctx = self.turn_context(inbound, &view, fresh_id);
                dialogue::step(&self.state.dialogue, understood, &ctx)
            };
            let Some(effect @ Effect::Book(again)) = &decision.effect else {
                return None;
            };
            if again.start != first.start || again.service != first.service {
                return None;
            }
            match self.timed_effect(effect).await {
                Ok(()) => return Some((decision, view)),
                Err(CalendarError::SlotTaken) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// [`Self::run_effect`], its time recorded as the turn's `calendar` stage.
    async fn timed_effect(&self, effect: &Effect) -> Result<(), CalendarError> {
        let started = Instant::now();
        let result = self.run_effect(effect).await;
        super::record_stage("calendar", started.elapsed());
        result
    }

    async fn run_effect(&self, effect: &Effect) -> Result<(), CalendarError> {
        let shared = &self.shared;
        let timeout = shared.settings.calendar_timeout;
        let result = match effect.clone() {
            Effect::Book(booking) => {
                shared
                    .ask_calendar(|reply| CalendarMsg::Book { booking, reply }, timeout)
                    .await
            }
            Effect::Reschedule { id, start, end } => {
                shared
                    .ask_calendar(
                        |reply| CalendarMsg::Reschedule {
                            id,
                            start,
                            end,
                            reply,
                        },
                        timeout,
                    )
                    .await
            }
            Effect::Cancel { id } => {
                shared
                    .ask_calendar(|reply| CalendarMsg::Cancel { id, reply }, timeout)
                    .await
            }
            Effect::Attend { .. } | Effect::Handover => return Ok(()),
        };
        result.unwrap_or_else(|error| {
            Err(CalendarError::Unavailable(format!(
                "calendar actor: {error}"
            )))
        })
    }
}

/// What a turn's outbox keys start with: the provider's message id, so that a re-delivered
/// webhook writes no second row; a fresh id for a turn without one.
fn turn_key(inbound: &Inbound) -> String {
    match &inbound.provider_id {
        Some(id) => id.clone(),
        None => Uuid::new_v4().to_string(),
    }
}

/// The booking a change leaves behind, as the customer's confirmation describes it.
fn changed_booking(effect: &Effect, view: &CalendarView) -> Option<crate::model::Booking> {
    let mine = |id| view.mine.iter().find(|b| b.id == id).cloned();
    match effect {
        Effect::Book(b) => Some(b.clone()),
        Effect::Reschedule { id, start, end } => mine(*id).map(|mut b| {
            b.start = *start;
            b.end = *end;
            b
        }),
        Effect::Cancel { id } => mine(*id),
        Effect::Attend { .. } | Effect::Handover => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `make` would return, without calling it.
    fn returned_size<A, F, M: FnOnce(A) -> F>(_make: &M) -> usize {
        std::mem::size_of::<F>()
    }

    /// The handler's future lives inside every conversation actor's task for as long as the
    /// actor lives, idle or not; what it awaits inline would be paid per live conversation.
    #[test]
    fn an_idle_conversation_does_not_carry_a_turns_future() {
        let handle = |(actor, myself, message, state): (
            &'static ConversationActor,
            ActorRef<ConversationMsg>,
            ConversationMsg,
            &'static mut Conversation,
        )| actor.handle(myself, message, state);
        let turn = |(conversation, inbound): (&'static mut Conversation, Inbound)| {
            conversation.turn(inbound)
        };
        let staff = |(conversation, action): (&'static mut Conversation, StaffAction)| {
            conversation.staff(action)
        };
        let idle = returned_size(&handle);
        assert!(idle <= 256, "the handler's future takes {idle} bytes");
        // The two it boxes are far larger: what the box saves.
        assert!(returned_size(&turn) > 1024 && returned_size(&staff) > 1024);
    }
}
