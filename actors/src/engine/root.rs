//! The root of the engine's supervision tree. It starts the long-lived actors linked to
//! itself — the AI actor, the calendar actor, the conversation supervisor and, when replies
//! an outbox is configured, the outbox relay — and starts a new one, from the same
//! arguments, whenever one fails (a panic in a port, say). Each restart is counted in
//! `sara_actor_restarts_total` (and by kind in `sara_actor_restarts_by_kind_total{actor=…}`). The rest of the engine reaches these actors through
//! [`ActorSlot`]s, so a restarted actor is found by the next message without anyone holding a
//! dead reference.
//!
//! ```text
//! EngineSupervisor ─┬─ AiActor
//!                   ├─ CalendarActor
//!                   ├─ ConversationSupervisor ── ConversationActor (one per phone)
//!                   ├─ OutboxRelay (optional)
//!                   └─ Scheduler (optional: due jobs, reminders)
//! ```

use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};

use super::EngineShared;
use super::ai::{AiActor, AiArgs, AiMsg};
use super::calendar::{CalendarActor, CalendarArgs, CalendarMsg};
use super::relay::{OutboxRelay, RelayArgs, RelayMsg};
use super::scheduler::{Scheduler, SchedulerArgs, SchedulerMsg};
use super::supervisor::{ConversationSupervisor, SupervisorMsg};

/// Where the current instance of a supervised actor is found; empty before it started and
/// after the engine stopped.
pub struct ActorSlot<M: ractor::Message> {
    current: RwLock<Option<ActorRef<M>>>,
}

impl<M: ractor::Message> Default for ActorSlot<M> {
    fn default() -> Self {
        ActorSlot {
            current: RwLock::new(None),
        }
    }
}

impl<M: ractor::Message> ActorSlot<M> {
    /// The running actor, if any.
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set(&self, actor: Option<ActorRef<M>>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = actor;
    }

    fn is(&self, cell: &ActorCell) -> bool {
        self.get().is_some_and(|a| a.get_id() == cell.get_id())
    }
}

/// The slots of the actors the root supervises.
#[derive(Default)]
pub struct Slots {
    pub ai: ActorSlot<AiMsg>,
    pub calendar: ActorSlot<CalendarMsg>,
    pub conversations: ActorSlot<SupervisorMsg>,
    pub relay: ActorSlot<RelayMsg>,
    pub scheduler: ActorSlot<SchedulerMsg>,
}

/// What the root needs to start (and start again) its children.
pub struct RootArgs {
    pub ai: AiArgs,
    pub calendar: CalendarArgs,
    pub relay: Option<RelayArgs>,
    pub scheduler: Option<SchedulerArgs>,
    pub shared: Arc<EngineShared>,
}

pub struct EngineSupervisor;

/// Which child a supervision event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Child {
    Ai,
    Calendar,
    Conversations,
    Relay,
    Scheduler,
}

impl Child {
    fn label(self) -> &'static str {
        match self {
            Child::Ai => "ai",
            Child::Calendar => "calendar",
            Child::Conversations => "conversations",
            Child::Relay => "relay",
            Child::Scheduler => "scheduler",
        }
    }
}

impl RootArgs {
    fn slots(&self) -> &Slots {
        &self.shared.slots
    }

    fn which(&self, cell: &ActorCell) -> Option<Child> {
        let slots = self.slots();
        if slots.ai.is(cell) {
            Some(Child::Ai)
        } else if slots.calendar.is(cell) {
            Some(Child::Calendar)
        } else if slots.conversations.is(cell) {
            Some(Child::Conversations)
        } else if slots.relay.is(cell) {
            Some(Child::Relay)
        } else if slots.scheduler.is(cell) {
            Some(Child::Scheduler)
        } else {
            None
        }
    }

    async fn start(&self, child: Child, myself: &ActorRef<()>) -> Result<(), SpawnErr> {
        let root = myself.get_cell();
        let slots = self.slots();
        match child {
            Child::Ai => {
                let (a, _) = Actor::spawn_linked(None, AiActor, self.ai.clone(), root).await?;
                slots.ai.set(Some(a));
            }
            Child::Calendar => {
                let args = self.calendar.clone();
                let (a, _) = Actor::spawn_linked(None, CalendarActor, args, root).await?;
                slots.calendar.set(Some(a));
            }
            Child::Conversations => {
                let args = self.shared.clone();
                let (a, _) = Actor::spawn_linked(None, ConversationSupervisor, args, root).await?;
                slots.conversations.set(Some(a));
            }
            Child::Relay => {
                if let Some(args) = &self.relay {
                    let (a, _) = Actor::spawn_linked(None, OutboxRelay, args.clone(), root).await?;
                    slots.relay.set(Some(a));
                }
            }
            Child::Scheduler => {
                if let Some(args) = &self.scheduler {
                    let args = (args.clone(), self.shared.clone());
                    let (a, _) = Actor::spawn_linked(None, Scheduler, args, root).await?;
                    slots.scheduler.set(Some(a));
                }
            }
        }
        Ok(())
    }
}

impl Actor for EngineSupervisor {
    /// The root takes no messages: it only supervises.
    type Msg = ();
    type State = RootArgs;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: RootArgs,
    ) -> Result<RootArgs, ActorProcessingErr> {
        // The conversations ask the AI and calendar actors, so those come first.
        for child in [
            Child::Ai,
            Child::Calendar,
            Child::Relay,
            Child::Scheduler,
            Child::Conversations,
        ] {
            args.start(child, &myself).await?;
        }
        Ok(args)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut RootArgs,
    ) -> Result<(), ActorProcessingErr> {
        let slots = state.slots();
        slots.conversations.set(None);
        slots.ai.set(None);
        slots.calendar.set(None);
        slots.relay.set(None);
        slots.scheduler.set(None);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut RootArgs,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, error) = event else {
            // A child that stopped normally (engine shutdown) is not replaced.
            return Ok(());
        };
        let Some(child) = state.which(&cell) else {
            return Ok(());
        };
        state.shared.record_restart(child.label());
        tracing::error!(actor = child.label(), %error, "engine actor failed; restarting it");
        if let Err(error) = state.start(child, &myself).await {
            // Without it the engine cannot work: fail the root so the failure is seen.
            tracing::error!(actor = child.label(), %error, "engine actor could not be restarted");
            return Err(Box::new(error));
        }
        Ok(())
    }
}
