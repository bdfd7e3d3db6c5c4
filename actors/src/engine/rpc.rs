//! Asking an actor and waiting for its answer, with the two ways it can go wrong kept apart:
//! the actor was too slow, or it is gone (stopped, or died with the question in hand).

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};

/// Why an [`ask`] got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// No answer within the deadline; the actor may still be working on it.
    #[error("no answer in time")]
    Timeout,
    /// The actor is not running, or stopped (or failed) before it answered.
    #[error("the actor is gone")]
    Gone,
}

/// Sends the message `make` builds around a reply port to `actor` and waits at most
/// `timeout` for the answer.
pub async fn ask<M, T>(
    actor: &ActorRef<M>,
    make: impl FnOnce(RpcReplyPort<T>) -> M,
    timeout: Duration,
) -> Result<T, AskError>
where
    M: ractor::Message,
    T: Send + 'static,
{
    match actor.call(make, Some(timeout)).await {
        Ok(CallResult::Success(answer)) => Ok(answer),
        Ok(CallResult::Timeout) => Err(AskError::Timeout),
        // The reply port was dropped unanswered: the actor died with the message in hand or
        // in its mailbox.
        Ok(CallResult::SenderError) => Err(AskError::Gone),
        // The message could not even be sent.
        Err(_) => Err(AskError::Gone),
    }
}
