//! The channel actor: delivers replies that do not travel in the HTTP response (WhatsApp via
//! the Graph API) through an `Outbound` port, retrying temporary failures with exponential
//! backoff and jitter until the `[outbox]` give-up time. Each delivery runs beside the actor so one slow provider call holds up no other.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::dialogue::Reply;
use crate::model::Phone;
use crate::outbound::{NextAttempt, RetryPolicy};
use crate::ports::{Outbound, OutboundError};

pub struct ChannelActor;

#[derive(Clone)]
pub struct ChannelArgs {
    pub outbound: Arc<dyn Outbound>,
    /// When a temporary failure is tried again, and when a message is given up (`[outbox]`).
    pub retry: RetryPolicy,
}

pub enum ChannelMsg {
    Deliver { to: Phone, reply: Reply },
}

pub struct ChannelState {
    args: ChannelArgs,
    /// Messages accepted but not yet delivered or given up on.
    backlog: Arc<AtomicI64>,
}

impl Actor for ChannelActor {
    type Msg = ChannelMsg;
    type State = ChannelState;
    type Arguments = ChannelArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ChannelMsg>,
        args: ChannelArgs,
    ) -> Result<ChannelState, ActorProcessingErr> {
        Ok(ChannelState {
            args,
            backlog: Arc::new(AtomicI64::new(0)),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ChannelMsg>,
        message: ChannelMsg,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        let ChannelMsg::Deliver { to, reply } = message;
        let outbound = state.args.outbound.clone();
        let retry = state.args.retry;
        let backlog = state.backlog.clone();
        let channel = outbound.name();
        metrics::gauge!("sara_outbox_backlog", "channel" => channel)
            .set(backlog.fetch_add(1, Ordering::Relaxed) as f64 + 1.0);
        tokio::spawn(async move {
            let created = Utc::now();
            for attempt in 1u32.. {
                let error = match outbound.send(&to, &reply).await {
                    Ok(()) => {
                        metrics::counter!("sara_outbound_sent_total", "channel" => channel)
                            .increment(1);
                        break;
                    }
                    Err(OutboundError::Retryable(error)) => error,
                    Err(error) => {
                        tracing::error!(%error, attempt, channel, "delivery refused");
                        metrics::counter!("sara_outbound_failed_total", "channel" => channel)
                            .increment(1);
                        break;
                    }
                };
                match retry.next_attempt_jittered(attempt, created, Utc::now(), None) {
                    NextAttempt::At(at) => {
                        tracing::warn!(%error, attempt, channel, "delivery failed; will retry");
                        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                        tokio::time::sleep(wait).await;
                    }
                    NextAttempt::GiveUp => {
                        tracing::error!(%error, attempt, channel, "delivery given up");
                        metrics::counter!("sara_outbound_failed_total", "channel" => channel)
                            .increment(1);
                        break;
                    }
                }
            }
            let left = backlog.fetch_sub(1, Ordering::Relaxed) - 1;
            metrics::gauge!("sara_outbox_backlog", "channel" => channel).set(left as f64);
        });
        Ok(())
    }
}
