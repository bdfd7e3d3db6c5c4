//! The turn writer: gathers the turns that are ready across conversations and commits them
//! together in one store transaction (group commit). Each conversation replies only after
//! the batch holding its turn has committed.
//!
//! It is a task behind a channel rather than a ractor actor because it must take many
//! messages at once: ractor hands an actor one message at a time.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

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
    /// one's round trips; a batch starts beside running ones only once it holds
    /// [`OVERLAPPING_BATCH`] turns, else when one of them ends. Batches in flight together
    /// never hold two turns of one conversation: a conversation's next turn starts only after
    /// its last one committed.
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

/// The fewest turns a batch needs to start while other batches are committing; a smaller
/// one waits for one of them to end. Each commit costs the database about the same whatever
/// its size, so at a steady rate a commit per turn or two (what free slots alone would start)
/// spends the CPU the turns need.
const OVERLAPPING_BATCH: usize = 8;

async fn run(
    store: Arc<dyn ConversationStore>,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let ended = Arc::new(Notify::new());
    loop {
        // A free slot first, then the batch: turns keep gathering while all slots commit.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
        if rx.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        // While other batches commit, this one gathers until it is worth a commit of its own
        // or one of them ends (a stale wake-up only starts it early).
        let min = OVERLAPPING_BATCH.min(max_batch);
        while batch.len() < min && in_flight - slots.available_permits() > 1 {
            let room = max_batch - batch.len();
            tokio::select! {
                () = ended.notified() => break,
                got = rx.recv_many(&mut batch, room) => {
                    if got == 0 {
                        break;
                    }
                }
            }
        }
        if in_flight == 1 {
            commit_batch(&*store, batch).await;
            drop(slot);
        } else {
            let (store, ended) = (store.clone(), ended.clone());
            tokio::spawn(async move {
                commit_batch(&*store, batch).await;
                drop(slot);
                ended.notify_one();
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::model::Phone;
    use crate::ports::{BoxFuture, StoredContact};

    /// A store whose first commit waits until it is let go; it records every batch's size.
    struct Gated {
        sizes: Mutex<Vec<usize>>,
        first: Semaphore,
    }

    impl Gated {
        fn new() -> Arc<Gated> {
            Arc::new(Gated {
                sizes: Mutex::new(Vec::new()),
                first: Semaphore::new(0),
            })
        }
    }

    impl ConversationStore for Gated {
        fn load_contact<'a>(
            &'a self,
            _: &'a Phone,
        ) -> BoxFuture<'a, Result<StoredContact, StoreError>> {
            Box::pin(async { Ok(StoredContact::default()) })
        }

        fn set_sms_opt_out<'a>(
            &'a self,
            _: &'a Phone,
            _: bool,
            _: chrono::DateTime<chrono::Utc>,
        ) -> BoxFuture<'a, Result<bool, StoreError>> {
            Box::pin(async { Ok(false) })
        }

        fn commit(
            &self,
            batch: Vec<TurnCommit>,
        ) -> BoxFuture<'_, Result<Vec<CommitOutcome>, StoreError>> {
            Box::pin(async move {
                let first = {
                    let mut sizes = self.sizes.lock().expect("sizes");
                    sizes.push(batch.len());
                    sizes.len() == 1
                };
                if first {
                    let _ = self.first.acquire().await;
                }
                Ok(vec![CommitOutcome::Committed { version: 1 }; batch.len()])
            })
        }

        fn processed_reply<'a>(
            &'a self,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Option<crate::dialogue::Reply>, StoreError>> {
            Box::pin(async { Ok(None) })
        }
    }

    fn turn(n: usize) -> TurnCommit {
        let phone = Phone::parse(&format!("+1555010{n:04}")).expect("a test number");
        super::super::tests::bare_commit(phone, 0, "hi")
    }

    /// A writer with four slots whose first commit (of one turn) is running, held by `store`.
    async fn first_commit_running(
        store: &Arc<Gated>,
    ) -> (
        TurnWriter,
        tokio::task::JoinHandle<Result<CommitOutcome, StoreError>>,
    ) {
        let writer = TurnWriter::spawn(store.clone(), 512, 4);
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.commit(turn(0)).await }
        });
        while store.sizes.lock().expect("sizes").is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (writer, first)
    }

    #[tokio::test]
    async fn turns_arriving_while_a_commit_runs_wait_for_it_and_commit_together() {
        let store = Gated::new();
        let (writer, first) = first_commit_running(&store).await;
        // Three free slots, but three turns are not worth a commit beside the running one.
        let rest: Vec<_> = (1..=3)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.commit(turn(n)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(*store.sizes.lock().expect("sizes"), vec![1]);
        store.first.add_permits(1);
        for task in std::iter::once(first).chain(rest) {
            let outcome = task.await.expect("task").expect("committed");
            assert_eq!(outcome, CommitOutcome::Committed { version: 1 });
        }
        assert_eq!(*store.sizes.lock().expect("sizes"), vec![1, 3]);
    }

    #[tokio::test]
    async fn a_batch_worth_its_own_commit_starts_beside_a_running_one() {
        let store = Gated::new();
        let (writer, first) = first_commit_running(&store).await;
        let rest: Vec<_> = (1..=OVERLAPPING_BATCH)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.commit(turn(n)).await })
            })
            .collect();
        for task in rest {
            task.await
                .expect("task")
                .expect("committed before the first ends");
        }
        store.first.add_permits(1);
        first.await.expect("task").expect("committed");
        let sizes = store.sizes.lock().expect("sizes").clone();
        assert_eq!(sizes.first(), Some(&1));
        assert_eq!(sizes.iter().sum::<usize>(), 1 + OVERLAPPING_BATCH);
    }
}
