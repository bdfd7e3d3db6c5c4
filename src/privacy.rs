//! Forgetting a caller everywhere Sara keeps them: the conversation's actor lets go of its
//! memory, the store erases the conversation and keeps the bookings as anonymous time blocks
//! ([`crate::store::forget`], audited), and the cache drops the replies it remembers for
//! the caller's messages. Used by `sara forget +15551234567` and the console's "Forget this
//! caller" button.

use chrono::{DateTime, Utc};
use sara_actors::engine::Engine;
use sara_actors::model::Phone;

use crate::cache::Cache;
use crate::store::forget::Forgotten;
use crate::store::{Database, StoreError};

/// Forgets `phone` at `at`. `engine` is the running engine of this process, if any (the
/// CLI has none: a live conversation in a running server then finds its stored state gone
/// at its next commit and starts afresh).
pub async fn forget_caller(
    db: &Database,
    cache: &Cache,
    engine: Option<&Engine>,
    phone: &Phone,
    at: DateTime<Utc>,
) -> Result<Forgotten, StoreError> {
    if let Some(engine) = engine
        && !engine.passivate(phone.clone()).await
    {
        tracing::warn!("conversation supervisor did not answer; erasing anyway");
    }
    let forgotten = db.privacy().forget(phone, at).await?;
    if let Err(error) = cache.forget_replies(&forgotten.provider_ids).await {
        // The store is erased; what the cache still holds expires with its TTL.
        tracing::warn!(%error, "remembered replies could not be dropped from the cache");
    }
    tracing::info!(
        turns = forgotten.turns,
        bookings = forgotten.bookings,
        "caller forgotten"
    );
    Ok(forgotten)
}
