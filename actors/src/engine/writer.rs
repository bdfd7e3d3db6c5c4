//! The turn writer: gathers the turns that are ready across conversations and commits them
//! together in one store transaction (group commit). Each conversation replies only after
//! the batch holding its turn has committed.
//!
//! It is a task behind a channel rather than a ractor actor because it must take many
//! messages at once: ractor hands an actor one message at a time.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::ports::{CommitOutcome, ConversationStore, StoreError, TurnCommit};

type Pending = (
    TurnCommit,
    oneshot::Sender<Result<CommitOutcome, StoreError>>,
);

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct TurnWriter {
    tx: mpsc::Sender<Pending>,
}

impl TurnWriter {
    /// Starts the writer. `max_batch` bounds one transaction; the channel holds a few
    /// batches so that a burst waits here instead of in the database.
    pub fn spawn(store: Arc<dyn ConversationStore>, max_batch: usize) -> TurnWriter {
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tokio::spawn(run(store, rx, max_batch));
        TurnWriter { tx }
    }

    /// Queues a turn and waits until its batch has committed (or failed).
    pub async fn commit(&self, turn: TurnCommit) -> Result<CommitOutcome, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((turn, done))
            .await
            .map_err(|_| StoreError::Unavailable("turn writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("turn writer dropped the turn".into()))?
    }
}

async fn run(store: Arc<dyn ConversationStore>, mut rx: mpsc::Receiver<Pending>, max_batch: usize) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let (turns, waiters): (Vec<TurnCommit>, Vec<_>) = batch.drain(..).unzip();
        let size = turns.len();
        metrics::histogram!("sara_commit_batch_size").record(size as f64);
        match store.commit(turns).await {
            Ok(outcomes) if outcomes.len() == size => {
                for (waiter, outcome) in waiters.into_iter().zip(outcomes) {
                    // The conversation may have given up waiting; its turn is committed anyway.
                    let _ = waiter.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                tracing::error!(
                    expected = size,
                    got = outcomes.len(),
                    "store returned a wrong number of outcomes"
                );
                for waiter in waiters {
                    let _ = waiter.send(Err(StoreError::Corrupt("commit outcome count".into())));
                }
            }
            Err(error) => {
                tracing::warn!(%error, size, "group commit failed");
                for waiter in waiters {
                    let _ = waiter.send(Err(StoreError::Unavailable(error.to_string())));
                }
            }
        }
    }
}
