//! The AI actor: understands messages through the `Nlu` port with a deadline, falls back to
//! the rules when the primary NLU fails or is late, and looks answers up in the knowledge base.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Counts the messages the fallback answered (the engine's `/admin/stats` figure).
    pub fallbacks: Arc<AtomicU64>,
}

pub enum AiMsg {
    Understand {
        text: String,
        /// Boxed: with the conversation's facts it is far larger than the other variant.
        ctx: Box<NluContext>,
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
        let fallbacks = state.fallbacks.clone();
        // Understanding runs beside the actor so a slow model call never holds up the
        // other conversations' turns.
        tokio::spawn(async move {
            let (understood, fell_back) =
                understand_noting(&*primary, fallback.as_deref(), &text, &ctx, deadline).await;
            if fell_back {
                fallbacks.fetch_add(1, Ordering::Relaxed);
            }
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
    understand_noting(primary, fallback, text, ctx, deadline)
        .await
        .0
}

/// [`understand`], and whether the fallback had to answer.
async fn understand_noting(
    primary: &dyn Nlu,
    fallback: Option<&dyn Nlu>,
    text: &str,
    ctx: &NluContext,
    deadline: Duration,
) -> (Understanding, bool) {
    let first = tokio::time::timeout(deadline, primary.understand(text, ctx)).await;
    match first {
        Ok(Ok(u)) => return (u, false),
        Ok(Err(error)) => tracing::warn!(%error, nlu = primary.name(), "understanding failed"),
        Err(_) => tracing::warn!(nlu = primary.name(), "understanding missed its deadline"),
    }
    metrics::counter!("sara_nlu_fallbacks_total").increment(1);
    let understood = match fallback {
        Some(rules) => rules.understand(text, ctx).await.unwrap_or_default(),
        None => Understanding::default(),
    };
    (understood, true)
}
