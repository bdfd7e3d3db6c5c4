//! The store as the engine's outbox relay and the delivery webhooks see it:
//! [`OutboxQueue`] over [`OutboxRepository`](super::outbox::OutboxRepository) (delivery
//! reports are applied by the `DeliveryStatuses` impl in `mod.rs`), and as the scheduler
//! sees it: [`JobQueue`] over [`JobRepository`](super::jobs::JobRepository).

use chrono::{DateTime, Utc};
use sara_actors::model::Channel;
use sara_actors::model::Phone;
use sara_actors::outbound::{DueMessage, OutboundMessage, OutboxQueue, Recipient, Settlement};
use sara_actors::ports::{
    BoxFuture, DueJob, JobCompletion, JobQueue, JobRecord, LastInbound, OutboxMessage, StoreError,
};

use super::Database;

impl OutboxQueue for Database {
    fn claim<'a>(
        &'a self,
        channel: Channel,
        owner: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<DueMessage>, StoreError>> {
        Box::pin(async move {
            let outbox = self.outbox();
            let claimed = outbox
                .claim_outbox(channel, owner, now, lease_until, limit)
                .await?;
            let mut due = Vec::with_capacity(claimed.len());
            for row in claimed {
                match serde_json::from_str::<OutboundMessage>(&row.payload) {
                    Ok(message) => due.push(DueMessage {
                        id: row.id,
                        message,
                        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
                        created_at: row.created_at,
                    }),
                    Err(error) => {
                        // Never sendable: give it up so the customer's next message can go.
                        tracing::error!(%error, id = row.id, "outbox payload unreadable");
                        metrics::counter!("sara_outbox_dead_total", "channel" => channel.as_str())
                            .increment(1);
                        outbox
                            .mark_dead(row.id, owner, "payload unreadable")
                            .await?;
                    }
                }
            }
            Ok(due)
        })
    }

    fn settle<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        settlement: &'a Settlement,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let outbox = self.outbox();
        match settlement {
            Settlement::Sent { provider_id } => outbox.mark_sent(id, owner, provider_id, now),
            Settlement::Retry { at, error } => outbox.reschedule(id, owner, *at, error),
            Settlement::Dead { error } => outbox.mark_dead(id, owner, error),
        }
    }

    fn backlog(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.outbox().backlog()
    }

    fn withheld<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let (Channel::Sms, Recipient::Phone(phone)) = (message.channel, &message.to) else {
                return Ok(None);
            };
            Ok(self.sms_opted_out(phone).await?.then(|| {
                "not sent: the recipient opted out of SMS (STOP); nothing is sent to them \
                 until they opt in again (START)"
                    .to_string()
            }))
        })
    }
}

impl JobQueue for Database {
    fn claim_jobs<'a>(
        &'a self,
        owner: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<DueJob>, StoreError>> {
        Box::pin(async move {
            let claimed = (self.jobs())
                .claim_jobs(owner, now, lease_until, limit)
                .await?;
            Ok(claimed
                .into_iter()
                .map(|job| DueJob {
                    id: job.id,
                    kind: job.kind,
                    due_at: job.due_at,
                    payload: job.payload,
                    unique_key: job.unique_key,
                    attempts: job.attempts,
                })
                .collect())
        })
    }

    fn complete_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        outbox: Vec<OutboxMessage>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { self.jobs().complete_job(id, owner, &outbox, now).await })
    }

    fn retry_job<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.jobs().retry_job(id, owner, at)
    }

    fn complete_job_with<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        completion: JobCompletion,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            (self.jobs())
                .complete_job_with(id, owner, &completion, now)
                .await
        })
    }

    fn schedule_jobs(&self, jobs: Vec<JobRecord>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.jobs().schedule_jobs(&jobs, Utc::now()).await })
    }

    fn kill_job<'a>(&'a self, id: i64, owner: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.jobs().kill_job(id, owner)
    }

    fn next_job_due(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, StoreError>> {
        self.jobs().next_job_due()
    }

    fn last_inbound<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<Option<LastInbound>, StoreError>> {
        self.jobs().last_inbound(phone)
    }

    fn schedule_job(
        &self,
        job: JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.jobs().schedule_job(&job, now).await })
    }

    fn complete_retention<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        cutoff: DateTime<Utc>,
        next: JobRecord,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            (self.jobs())
                .complete_retention(id, owner, cutoff, &next, now)
                .await
        })
    }
}
