//! Understanding: the rule NLU, the OpenAI model NLU, the routing between them and the FAQ
//! knowledge base.

pub mod hybrid;
pub mod knowledge;
pub mod openai;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use sara_actors::business::Business;
use sara_actors::ports::Nlu;

pub use hybrid::{Guarded, HybridNlu, Routing};
pub use knowledge::KnowledgeBase;
pub use openai::{OpenAiNlu, OpenAiSettings};
pub use rules::RuleNlu;

use crate::config::{AiConfig, AiProvider, AiRouting};

/// The model used when `ai.model` is unset: small, fast and able to follow a strict schema.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_API_BASE: &str = "https://api.openai.com/v1";

#[derive(Debug, thiserror::Error)]
pub enum AiError {
    #[error("ai configuration: {0}")]
    Config(String),
    #[error("openai client: {0}")]
    Client(String),
}

/// The NLU the engine asks first and the one it falls back to on error or lateness.
pub struct NluPorts {
    pub primary: Arc<dyn Nlu>,
    pub fallback: Option<Arc<dyn Nlu>>,
}

/// Builds the NLU `ai.provider` names. `api_key` is `OPENAI_API_KEY` (a secret, so it is read
/// from the environment only, never from the config file).
pub fn configured(
    ai: &AiConfig,
    business: &Business,
    api_key: Option<String>,
) -> Result<NluPorts, AiError> {
    let services: Vec<String> = business.services.iter().map(|s| s.name.clone()).collect();
    let rules = RuleNlu::new(services.clone());
    match ai.provider {
        AiProvider::Rules => Ok(NluPorts {
            primary: Arc::new(rules),
            fallback: None,
        }),
        AiProvider::OpenAi => {
            let routing = match ai.routing {
                AiRouting::Hybrid => {
                    let threshold = ai.confidence_threshold;
                    if !(0.0..=1.0).contains(&threshold) {
                        return Err(AiError::Config(format!(
                            "ai.confidence_threshold {threshold} must be between 0 and 1"
                        )));
                    }
                    Routing::Hybrid { threshold }
                }
                AiRouting::Always => Routing::Always,
            };
            let api_key = api_key.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                AiError::Config("ai.provider \"openai\" needs OPENAI_API_KEY".into())
            })?;
            let deadline = ai.chat_deadline_ms.max(ai.voice_deadline_ms);
            let model = OpenAiNlu::new(OpenAiSettings {
                api_base: ai
                    .api_base
                    .clone()
                    .unwrap_or_else(|| DEFAULT_API_BASE.into()),
                api_key,
                model: ai.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into()),
                business: business.name.clone(),
                services,
                request_timeout: Duration::from_millis(deadline) + Duration::from_secs(1),
                breaker_failures: ai.breaker_failures,
                breaker_cooldown: Duration::from_millis(ai.breaker_cooldown_ms),
            })?;
            Ok(NluPorts {
                primary: Arc::new(HybridNlu::new(rules.clone(), Arc::new(model), routing)),
                fallback: Some(Arc::new(rules)),
            })
        }
    }
}
