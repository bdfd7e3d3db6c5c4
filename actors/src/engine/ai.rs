//! The AI actor: understands messages through the `Nlu` port with a deadline, falls back to
//! the rules when the primary NLU fails or is late, and looks answers up in the knowledge base.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::ports::{KnowledgeBase, Nlu};
use crate::understanding::{Act, NluContext, Understanding};

pub struct AiActor;

#[derive(Clone)]
pub struct AiArgs {
    pub primary: Arc<dyn Nlu>,
    /// Used when the primary fails or misses its deadline; `None` when the primary is the rules.
    pub fallback: Option<Arc<dyn Nlu>>,
    pub knowledge: Arc<dyn KnowledgeBase>,
}

pub enum AiMsg {
    Understand {
        text: String,
        ctx: NluContext,
        deadline: Duration,
        reply: RpcReplyPort<Understanding>,
    },
    /// Fault injection: the actor panics (its supervisor starts a new one).
    Panic,
}

impl Actor for AiActor {
    type Msg = AiMsg;
    type State = AiArgs;
    type Arguments = AiArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<AiMsg>,
        args: AiArgs,
    ) -> Result<AiArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<AiMsg>,
        message: AiMsg,
        state: &mut AiArgs,
    ) -> Result<(), ActorProcessingErr> {
        let (text, ctx, deadline, reply) = match message {
            AiMsg::Understand {
                text,
                ctx,
                deadline,
                reply,
            } => (text, ctx, deadline, reply),
            AiMsg::Panic => panic!("fault injection: AI actor panic"),
        };
        let primary = state.primary.clone();
        let fallback = state.fallback.clone();
        let knowledge = state.knowledge.clone();
        // Understanding runs beside the actor so a slow model call never holds up the
        // other conversations' turns.
        tokio::spawn(async move {
            let understood =
                understand(&*primary, fallback.as_deref(), &text, &ctx, deadline).await;
            let _ = reply.send(with_faq_answer(understood, &*knowledge, &text));
        });
        Ok(())
    }
}

/// Looks a question up in the knowledge base, unless the NLU already answered it.
pub fn with_faq_answer(
    mut understood: Understanding,
    knowledge: &dyn KnowledgeBase,
    text: &str,
) -> Understanding {
    if understood.has(Act::Question) && understood.faq_answer.is_none() {
        understood.faq_answer = knowledge.answer(text);
    }
    understood
}

/// Understands `text` with `primary` within `deadline`; on its error or lateness counts
/// `sara_nlu_fallbacks_total` and answers with `fallback`. Public so `sara eval` measures the
/// same composition a turn gets.
pub async fn understand(
    primary: &dyn Nlu,
    fallback: Option<&dyn Nlu>,
    text: &str,
    ctx: &NluContext,
    deadline: Duration,
) -> Understanding {
    let first = tokio::time::timeout(deadline, primary.understand(text, ctx)).await;
    match first {
        Ok(Ok(u)) => return u,
        Ok(Err(error)) => tracing::warn!(%error, nlu = primary.name(), "understanding failed"),
        Err(_) => tracing::warn!(nlu = primary.name(), "understanding missed its deadline"),
    }
    metrics::counter!("sara_nlu_fallbacks_total").increment(1);
    match fallback {
        Some(rules) => rules.understand(text, ctx).await.unwrap_or_default(),
        None => Understanding::default(),
    }
}
