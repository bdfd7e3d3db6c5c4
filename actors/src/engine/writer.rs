//! The turn writer: gathers the turns that are ready across conversations and commits them
//! together in one store transaction (group commit). Each conversation replies only after
//! the batch holding its turn has committed.
//!
//! It is a task behind a channel rather than a ractor actor because it must take many
//! messages at once: ractor hands an actor one message at a time.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::ports::{CommitOutcome, ConversationStore, StoreError, TurnCommit};

/// A turn waiting for its batch: the commit, when it was queued, and who waits for it.
type Pending = (
    TurnCommit,
    Instant,
    oneshot::Sender<Result<CommitOutcome, StoreError>>,
);

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct TurnWriter {
    tx: mpsc::Sender<Pending>,
}

impl TurnWriter {
    /// Starts the writer. `max_batch` bounds one transaction; the channel holds a few
    /// batches so that a burst waits here instead of in the database. Up to `in_flight`
    /// batches commit at once: 1 for SQLite (one writer at a time anyway), more for
    /// PostgreSQL, whose commits overlap and whose batch otherwise waits out the previous
    /// one's round trips. Batches in flight together never hold two turns of one
    /// conversation: a conversation's next turn starts only after its last one committed.
    pub fn spawn(
        store: Arc<dyn ConversationStore>,
        max_batch: usize,
        in_flight: usize,
    ) -> TurnWriter {
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tokio::spawn(run(store, rx, max_batch, in_flight.max(1)));
        TurnWriter { tx }
    }

    /// Queues a turn and waits until its batch has committed (or failed).
    pub async fn commit(&self, turn: TurnCommit) -> Result<CommitOutcome, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((turn, Instant::now(), done))
            .await
            .map_err(|_| StoreError::Unavailable("turn writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("turn writer dropped the turn".into()))?
    }
}

async fn run(
    store: Arc<dyn ConversationStore>,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    loop {
        // A free slot first, then the batch: turns keep gathering while all slots commit.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
        if rx.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        if in_flight == 1 {
            commit_batch(&*store, batch).await;
            drop(slot);
        } else {
            let store = store.clone();
            tokio::spawn(async move {
                commit_batch(&*store, batch).await;
                drop(slot);
            });
        }
    }
}

/// Commits one batch and tells each waiting conversation its outcome.
async fn commit_batch(store: &dyn ConversationStore, batch: Vec<Pending>) {
    let started = Instant::now();
    let mut turns = Vec::with_capacity(batch.len());
    let mut waiters = Vec::with_capacity(batch.len());
    for (turn, queued, waiter) in batch {
        super::record_stage("commit_wait", started.duration_since(queued));
        turns.push(turn);
        waiters.push(waiter);
    }
    let size = turns.len();
    metrics::histogram!("sara_commit_batch_size").record(size as f64);
    let committed = store.commit(turns).await;
    let took = started.elapsed();
    for _ in 0..size {
        super::record_stage("commit", took);
    }
    match committed {
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
