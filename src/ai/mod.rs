//! Understanding without a model: the rule NLU and the FAQ knowledge base.

pub mod knowledge;
pub mod rules;

pub use knowledge::KnowledgeBase;
pub use rules::RuleNlu;
