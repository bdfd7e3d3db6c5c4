//! Routing between the rules and the model: with `hybrid` the rules answer every turn they are
//! sure of and the model is asked only for the rest; with `always` every turn asks the model
//! (to measure it). Either way the rules are the fallback, applied by the caller together with
//! the deadline (the engine's AI actor; [`Guarded`] for `sara eval`), so a failing model call
//! is an `Err` here, never a silent rules answer.

use std::sync::Arc;
use std::time::Duration;

use sara_actors::ports::{BoxFuture, Nlu, NluError};
use sara_actors::understanding::{NluContext, Understanding};

use super::RuleNlu;

/// When the model is asked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Routing {
    /// Only when the rules' confidence is below the threshold.
    Hybrid { threshold: f32 },
    /// Every turn.
    Always,
}

/// Rules first, the model when they are not confident (or always).
pub struct HybridNlu {
    rules: RuleNlu,
    model: Arc<dyn Nlu>,
    routing: Routing,
}

impl HybridNlu {
    pub fn new(rules: RuleNlu, model: Arc<dyn Nlu>, routing: Routing) -> HybridNlu {
        // The rules build their patterns on first use; do it now, not inside the first turn's
        // deadline (in a debug build that alone can outlast a short one).
        let warm_up = NluContext {
            now: chrono::Utc::now().with_timezone(&chrono_tz::UTC),
            services: Vec::new(),
            expecting: None,
            prompt: None,
            facts: Default::default(),
        };
        let _ = rules.understand("hello, book me on Friday at 3pm", &warm_up);
        HybridNlu {
            rules,
            model,
            routing,
        }
    }
}

impl Nlu for HybridNlu {
    fn understand<'a>(
        &'a self,
        text: &'a str,
        ctx: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>> {
        Box::pin(async move {
            let rules = self.rules.understand(text, ctx);
            if let Routing::Hybrid { threshold } = self.routing
                && rules.confidence >= threshold
            {
                return Ok(rules);
            }
            let mut model = self.model.understand(text, ctx).await?;
            // The schema has no field for these two phrase flags; the rules read them exactly.
            model.same_time |= rules.same_time;
            model.next_week |= rules.next_week && model.date.is_none();
            Ok(model)
        })
    }

    fn name(&self) -> &'static str {
        self.model.name()
    }
}

/// An NLU with the engine's deadline and fallback around it, for callers outside the engine
/// (`sara eval`): the same function the AI actor uses, so eval measures what a turn gets.
pub struct Guarded {
    pub primary: Arc<dyn Nlu>,
    pub fallback: Option<Arc<dyn Nlu>>,
    pub deadline: Duration,
}

impl Nlu for Guarded {
    fn understand<'a>(
        &'a self,
        text: &'a str,
        ctx: &'a NluContext,
    ) -> BoxFuture<'a, Result<Understanding, NluError>> {
        Box::pin(async move {
            Ok(sara_actors::engine::ai::understand(
                &*self.primary,
                self.fallback.as_deref(),
                text,
                ctx,
                self.deadline,
            )
            .await)
        })
    }

    fn name(&self) -> &'static str {
        self.primary.name()
    }
}
