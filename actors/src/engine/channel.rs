//! The channel actor: delivers replies that do not travel in the HTTP response (WhatsApp via
//! the Graph API) through an `Outbound` port, retrying temporary failures with exponential
//! backoff. Each delivery runs beside the actor so one slow provider call holds up no other.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::dialogue::Reply;
use crate::model::Phone;
use crate::ports::{Outbound, OutboundError};

pub struct ChannelActor;

#[derive(Clone)]
pub struct ChannelArgs {
    pub outbound: Arc<dyn Outbound>,
    /// Attempts per message, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each one after.
    pub first_backoff: Duration,
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
        let (attempts, first_backoff) = (state.args.max_attempts.max(1), state.args.first_backoff);
        let backlog = state.backlog.clone();
        let channel = outbound.name();
        metrics::gauge!("sara_outbox_backlog", "channel" => channel)
            .set(backlog.fetch_add(1, Ordering::Relaxed) as f64 + 1.0);
        tokio::spawn(async move {
            let mut wait = first_backoff;
            for attempt in 1..=attempts {
                match outbound.send(&to, &reply).await {
                    Ok(()) => {
                        metrics::counter!("sara_outbound_sent_total", "channel" => channel)
                            .increment(1);
                        break;
                    }
                    Err(OutboundError::Retryable(error)) if attempt < attempts => {
                        tracing::warn!(%error, attempt, channel, "delivery failed; will retry");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(error) => {
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
