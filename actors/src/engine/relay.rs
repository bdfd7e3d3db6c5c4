//! The outbox relay: one per instance, supervised by the engine's root. It claims due outbox
//! rows (every message that does not travel in a webhook's HTTP answer, written in the turn's
//! commit), hands each to its channel's [`ChannelSender`], and writes the outcome back: the
//! provider's id, a retry at the [`RetryPolicy`]'s time (never before `Retry-After`), or
//! `dead` after the give-up time. The store hands out at most one row per customer (the oldest
//! pending), so one customer's messages leave in commit order while other customers' go at
//! once; a claim outlives a killed instance only until its lease runs out.
//!
//! It works in passes: one on every `poll` tick, and one as soon as a turn that wrote outbox
//! rows has committed (see [`RelayWake`]). A pass that fails (a panic in a sender) fails the
//! actor, and the root starts a new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::model::Channel;
use crate::outbound::{ChannelSender, OutboundKind, OutboxQueue, RetryPolicy, Settlement};
use crate::ports::Clock;

pub struct OutboxRelay;

#[derive(Clone)]
pub struct RelayArgs {
    pub queue: Arc<dyn OutboxQueue>,
    pub senders: HashMap<Channel, Arc<dyn ChannelSender>>,
    pub retry: RetryPolicy,
    pub clock: Arc<dyn Clock>,
    /// Who holds a claim: this instance, the same across relay restarts.
    pub owner: String,
    /// How long a claim keeps other instances off a row being sent.
    pub lease: Duration,
    /// How often the relay looks for due rows when nothing woke it.
    pub poll: Duration,
    /// Rows claimed per channel and pass.
    pub batch: i64,
    pub wake: Arc<RelayWake>,
}

/// Coalesces wake-ups: many commits between two passes cause one extra pass.
#[derive(Debug, Default)]
pub struct RelayWake {
    pending: AtomicBool,
}

impl RelayWake {
    /// True when the caller should send [`RelayMsg::Wake`] (no wake-up is pending yet).
    pub fn arm(&self) -> bool {
        !self.pending.swap(true, Ordering::AcqRel)
    }

    fn clear(&self) {
        self.pending.store(false, Ordering::Release);
    }
}

pub enum RelayMsg {
    /// The periodic pass; schedules the next one.
    Tick,
    /// A commit wrote outbox rows: a pass now.
    Wake,
    /// Runs a pass and answers with the number of rows it tried (tests, the debug clock).
    Flush(ractor::RpcReplyPort<usize>),
}

impl Actor for OutboxRelay {
    type Msg = RelayMsg;
    type State = RelayArgs;
    type Arguments = RelayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RelayMsg>,
        args: RelayArgs,
    ) -> Result<RelayArgs, ActorProcessingErr> {
        myself.send_message(RelayMsg::Tick)?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<RelayMsg>,
        message: RelayMsg,
        state: &mut RelayArgs,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RelayMsg::Tick => {
                pass(state).await?;
                myself.send_after(state.poll, || RelayMsg::Tick);
            }
            RelayMsg::Wake => {
                state.wake.clear();
                pass(state).await?;
            }
            RelayMsg::Flush(reply) => {
                let tried = pass(state).await?;
                let _ = reply.send(tried);
            }
        }
        Ok(())
    }
}

/// One pass: claims the due rows of every channel with a sender, sends them side by side
/// (they belong to different customers), and settles each; the number of rows tried.
async fn pass(state: &RelayArgs) -> Result<usize, ActorProcessingErr> {
    let mut sends = tokio::task::JoinSet::new();
    let mut tried = 0;
    for (&channel, sender) in &state.senders {
        let now = state.clock.now();
        let lease_until = now + chrono::Duration::from_std(state.lease).unwrap_or_default();
        let due = match (state.queue)
            .claim(channel, &state.owner, now, lease_until, state.batch)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, channel = channel.as_str(), "outbox claim failed");
                continue;
            }
        };
        tried += due.len();
        for row in due {
            let sender = sender.clone();
            let state = state.clone();
            sends.spawn(async move {
                let label = channel.as_str();
                let failed_before = row.attempts.saturating_sub(1);
                let settlement = match state.queue.withheld(&row.message).await {
                    // Never sent, never retried: the row is settled with the reason.
                    Ok(Some(reason)) => {
                        tracing::info!(channel = label, %reason, "outbound message withheld");
                        metrics::counter!("sara_outbox_withheld_total", "channel" => label)
                            .increment(1);
                        let now = state.clock.now();
                        if let Err(error) = (state.queue)
                            .settle(row.id, &state.owner, &Settlement::Dead { error: reason }, now)
                            .await
                        {
                            tracing::error!(%error, channel = label, "outbox settle failed");
                        }
                        return;
                    }
                    Ok(None) => {
                        let result = sender.send(&row.message).await;
                        let now = state.clock.now();
                        (state.retry).settle(result, failed_before, row.created_at, now, jitter())
                    }
                    // Whether the recipient opted out is unknown: not sent now, tried again.
                    Err(error) => (state.retry).settle(
                        Err(crate::outbound::SendError::retryable(format!(
                            "opt-out check failed: {error}"
                        ))),
                        failed_before,
                        row.created_at,
                        state.clock.now(),
                        jitter(),
                    ),
                };
                let now = state.clock.now();
                match &settlement {
                    Settlement::Sent { .. } => {
                        metrics::counter!("sara_outbox_sent_total", "channel" => label)
                            .increment(1);
                        if row.message.kind == OutboundKind::Reminder {
                            metrics::counter!("sara_reminders_sent_total").increment(1);
                        }
                    }
                    Settlement::Retry { error, at } => {
                        tracing::warn!(%error, attempt = row.attempts, retry_at = %at, channel = label,
                            "outbound message not accepted; will retry");
                    }
                    Settlement::Dead { error } => {
                        tracing::error!(%error, attempt = row.attempts, channel = label,
                            "outbound message given up");
                        metrics::counter!("sara_outbox_dead_total", "channel" => label)
                            .increment(1);
                    }
                }
                match state.queue.settle(row.id, &state.owner, &settlement, now).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(channel = label, "outbox claim was taken over before settling")
                    }
                    // The claim runs out and the row is tried again: a sent message may then go
                    // twice, the one window the outbox cannot close.
                    Err(error) => tracing::error!(%error, channel = label, "outbox settle failed"),
                }
            });
        }
    }
    while let Some(done) = sends.join_next().await {
        done.map_err(|e| format!("outbox send task failed: {e}"))?;
    }
    match state.queue.backlog().await {
        Ok(n) => metrics::gauge!("sara_outbox_backlog").set(n as f64),
        Err(error) => tracing::debug!(%error, "outbox backlog unknown"),
    }
    Ok(tried)
}

/// A uniform number in `[0, 1)` from a v4 UUID's random bits.
fn jitter() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 75) as u64;
    bits as f64 / (1u64 << 53) as f64
}
