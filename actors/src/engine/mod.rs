//! The actors of the engine.
