//! The conversation supervisor: the registry of live conversation actors (phone → actor).
//! It activates a conversation on its first message (state loaded from the store), passivates
//! it after an idle timeout, restarts it from its last committed state when it fails, and
//! quarantines a conversation that fails too often (hand-over instead of a crash loop).
//!
//! ractor has no restart strategies and its default `handle_supervisor_evt` stops the
//! supervisor when any child exits; this actor overrides it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use super::conversation::{ConversationActor, ConversationArgs, ConversationMsg, StaffAction};
use super::{EngineShared, TurnError};
use crate::dialogue;
use crate::model::Phone;

pub struct ConversationSupervisor;

pub enum SupervisorMsg {
    /// Hands a message to the phone's conversation, activating it if needed.
    Deliver(Phone, ConversationMsg),
    /// Passivates conversations idle for longer than the idle timeout.
    Sweep,
    Live(RpcReplyPort<usize>),
    /// The phones whose conversation is quarantined now.
    Quarantined(RpcReplyPort<Vec<Phone>>),
    /// Lets go of the phone's conversation now (its memory is about to be erased in the
    /// store); queued turns are still answered first.
    Passivate(Phone, RpcReplyPort<()>),
}

struct Child {
    actor: ActorRef<ConversationMsg>,
    last_used: Instant,
}

pub struct SupervisorState {
    shared: Arc<EngineShared>,
    children: HashMap<Phone, Child>,
    /// Which phone a child actor serves, to find it again from a supervision event.
    by_id: HashMap<ActorId, Phone>,
    /// Recent failure times per phone, for the quarantine window.
    failures: HashMap<Phone, VecDeque<Instant>>,
    /// Phones whose conversation keeps failing, until when they stay handed over.
    quarantined: HashMap<Phone, Instant>,
}

impl SupervisorState {
    async fn activate(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        phone: &Phone,
    ) -> Result<ActorRef<ConversationMsg>, TurnError> {
        if let Some(child) = self.children.get_mut(phone) {
            child.last_used = Instant::now();
            return Ok(child.actor.clone());
        }
        let args = ConversationArgs {
            phone: phone.clone(),
            shared: self.shared.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, ConversationActor, args, myself.get_cell())
            .await
            .map_err(|error| {
                tracing::warn!(%error, "conversation could not be activated");
                TurnError::StoreUnavailable
            })?;
        self.by_id.insert(actor.get_id(), phone.clone());
        self.children.insert(
            phone.clone(),
            Child {
                actor: actor.clone(),
                last_used: Instant::now(),
            },
        );
        metrics::gauge!("sara_live_conversations").set(self.children.len() as f64);
        Ok(actor)
    }

    fn forget(&mut self, cell: &ActorCell) -> Option<Phone> {
        let phone = self.by_id.remove(&cell.get_id())?;
        if self
            .children
            .get(&phone)
            .is_some_and(|c| c.actor.get_id() == cell.get_id())
        {
            self.children.remove(&phone);
        }
        metrics::gauge!("sara_live_conversations").set(self.children.len() as f64);
        Some(phone)
    }

    fn is_quarantined(&mut self, phone: &Phone) -> bool {
        match self.quarantined.get(phone) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.quarantined.remove(phone);
                self.failures.remove(phone);
                false
            }
            None => false,
        }
    }

    /// Records a failure; true when the phone has now failed too often and is quarantined.
    fn record_failure(&mut self, phone: &Phone) -> bool {
        let settings = &self.shared.settings;
        let now = Instant::now();
        let window = self.failures.entry(phone.clone()).or_default();
        window.push_back(now);
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) > settings.failure_window)
        {
            window.pop_front();
        }
        if window.len() as u32 >= settings.max_failures {
            self.quarantined
                .insert(phone.clone(), now + settings.quarantine);
            true
        } else {
            false
        }
    }
}

impl Actor for ConversationSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<EngineShared>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        shared: Arc<EngineShared>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let every = (shared.settings.idle_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
        myself.send_interval(every, || SupervisorMsg::Sweep);
        Ok(SupervisorState {
            shared,
            children: HashMap::new(),
            by_id: HashMap::new(),
            failures: HashMap::new(),
            quarantined: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Deliver(phone, msg) => {
                if matches!(msg, ConversationMsg::Staff(StaffAction::HandBack, _)) {
                    // Staff taking a quarantined conversation back lift the quarantine too.
                    state.quarantined.remove(&phone);
                    state.failures.remove(&phone);
                }
                // Staff reach a quarantined conversation: it is theirs to answer. An SMS
                // opt-out (or opt-in) is recorded whatever state the conversation is in.
                let passes = matches!(
                    msg,
                    ConversationMsg::Staff(..) | ConversationMsg::SmsOpt(..)
                );
                if !passes && state.is_quarantined(&phone) {
                    if let ConversationMsg::Turn(_, _, reply) = msg {
                        let _ = reply.send(Ok(dialogue::quarantine_reply(&state.shared.business)));
                    }
                    return Ok(());
                }
                match state.activate(&myself, &phone).await {
                    Ok(actor) => {
                        if let Err(ractor::MessagingErr::SendErr(ConversationMsg::Turn(
                            _,
                            _,
                            reply,
                        ))) = actor.send_message(msg)
                        {
                            // The actor stopped between lookup and send (it is being
                            // passivated); the caller may simply send again.
                            let _ = reply.send(Err(TurnError::Interrupted));
                        }
                    }
                    Err(error) => {
                        if let ConversationMsg::Turn(_, _, reply) = msg {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            }
            SupervisorMsg::Sweep => {
                let idle = state.shared.settings.idle_timeout;
                let now = Instant::now();
                for child in state.children.values() {
                    if now.duration_since(child.last_used) >= idle {
                        // Drain: turns already queued are still answered, then it stops and
                        // `ActorTerminated` removes it from the registry.
                        let _ = child.actor.drain();
                    }
                }
                state
                    .children
                    .retain(|_, c| now.duration_since(c.last_used) < idle);
                metrics::gauge!("sara_live_conversations").set(state.children.len() as f64);
            }
            SupervisorMsg::Live(reply) => {
                let _ = reply.send(state.children.len());
            }
            SupervisorMsg::Passivate(phone, reply) => {
                if let Some(child) = state.children.remove(&phone) {
                    let _ = child.actor.drain();
                }
                state.quarantined.remove(&phone);
                state.failures.remove(&phone);
                metrics::gauge!("sara_live_conversations").set(state.children.len() as f64);
                let _ = reply.send(());
            }
            SupervisorMsg::Quarantined(reply) => {
                let now = Instant::now();
                let phones = (state.quarantined.iter())
                    .filter(|(_, until)| **until > now)
                    .map(|(phone, _)| phone.clone())
                    .collect();
                let _ = reply.send(phones);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.forget(&cell);
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(phone) = state.forget(&cell) else {
                    return Ok(());
                };
                state.shared.record_restart("conversation");
                if state.record_failure(&phone) {
                    tracing::error!(conversation = %phone.masked(), %error, "conversation keeps failing; quarantined");
                    return Ok(());
                }
                tracing::warn!(conversation = %phone.masked(), %error, "conversation failed; restarting from its last committed state");
                // Restart at once so the next message finds it warm; if the store is down the
                // next message activates it instead.
                if let Err(error) = state.activate(&myself, &phone).await {
                    tracing::warn!(conversation = %phone.masked(), ?error, "restart deferred to the next message");
                }
            }
            _ => {}
        }
        Ok(())
    }
}
