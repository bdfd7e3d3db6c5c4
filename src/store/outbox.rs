//! The outbox: messages Sara sends outside a webhook's HTTP answer, durable from the commit
//! of the turn that caused them (see `TurnCommit::outbox`) until their provider has them.
//!
//! A relay (one per channel and instance) drives each row:
//! 1. [`OutboxRepository::claim_outbox`] takes due rows for a lease: only the oldest pending
//!    row of each contact is ever due, so one customer's messages leave in commit order (the
//!    second waits while the first is retried). PostgreSQL claims with
//!    `FOR UPDATE SKIP LOCKED`, so instances never claim the same row; SQLite has one writer.
//!    A claim counts as an attempt. A claim whose lease ran out (a killed instance) is due
//!    again and is taken over.
//! 2. After sending: [`OutboxRepository::mark_sent`] with the provider's id; a temporary
//!    failure → [`OutboxRepository::reschedule`] at a later time (the relay picks the
//!    backoff); giving up → [`OutboxRepository::mark_dead`]. Each applies only while the
//!    caller still holds the claim (`false` otherwise: someone took it over).
//! 3. Delivery reports → [`OutboxRepository::update_status`] by the provider's id.
//!
//! `GET /admin/outbox` is [`OutboxRepository::list_outbox`].

use chrono::{DateTime, Utc};
use sara_actors::model::Channel;
use sara_actors::ports::{BoxFuture, OutboxKind};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::StoreError;
use super::crypto::{Field, Sealer};
use super::sql::Dialect;
use super::{corrupt, parse_channel};

/// Where a message is in its life, as `/admin/outbox` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Not yet accepted by the provider (a 5xx or 429 keeps it pending and retried).
    Pending,
    Sent,
    Delivered,
    Read,
    /// The provider reported it undeliverable.
    Failed,
    /// Given up.
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Read => "read",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        [
            OutboxStatus::Pending,
            OutboxStatus::Sent,
            OutboxStatus::Delivered,
            OutboxStatus::Read,
            OutboxStatus::Failed,
            OutboxStatus::Dead,
        ]
        .into_iter()
        .find(|s2| s2.as_str() == s)
    }
}

pub use sara_actors::outbound::DeliveryState as DeliveryReport;

/// A row claimed for sending.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedMessage {
    pub id: i64,
    pub recipient: String,
    pub channel: Channel,
    pub kind: OutboxKind,
    pub payload: String,
    pub idempotency_key: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
}

/// `GET /admin/outbox`: one message (CONTRACT.md's shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxView {
    pub id: i64,
    /// The recipient: a phone number, or an email address for email.
    pub phone: String,
    pub channel: String,
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub provider_id: Option<String>,
}

/// The outbox as the relays and the admin use it.
pub trait OutboxRepository: Send + Sync {
    /// Claims for `owner` until `lease_until` up to `limit` due rows of `channel`: pending,
    /// `next_attempt_at <= now`, not under a live claim, and the oldest pending row of their
    /// contact. Oldest first.
    fn claim_outbox<'a>(
        &'a self,
        channel: Channel,
        owner: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<ClaimedMessage>, StoreError>>;

    /// The provider accepted message `id` as `provider_id`. `false` when `owner` no longer
    /// holds the claim.
    fn mark_sent<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        provider_id: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// A temporary failure: try again at `next_attempt_at`; the claim is released.
    fn reschedule<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        next_attempt_at: DateTime<Utc>,
        error: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Given up: `dead`, never claimed again (the contact's next message becomes due).
    fn mark_dead<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        error: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// A delivery report for the message the provider knows as `provider_id` on `channel`,
    /// applied only when it supersedes the stored status (the engine's
    /// `DeliveryState::supersedes`: sent → delivered → read; a failure only before delivery),
    /// so a late `delivered` after `read` changes nothing; a failure keeps the provider's
    /// `error`. `false` when no row changed.
    fn update_status<'a>(
        &'a self,
        channel: Channel,
        provider_id: &'a str,
        report: DeliveryReport,
        error: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// How many messages are still pending (`sara_outbox_backlog`).
    fn backlog(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// The newest `limit` messages, newest first.
    fn list_outbox(&self, limit: i64) -> BoxFuture<'_, Result<Vec<OutboxView>, StoreError>>;
}

/// The claim's text, with the row lock clause PostgreSQL adds (`FOR UPDATE SKIP LOCKED`).
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET claim_owner = $1, claim_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT o.id FROM outbox AS o \
             WHERE o.status = 'pending' AND o.channel = $3 AND o.next_attempt_at <= $4 \
             AND (o.claim_until IS NULL OR o.claim_until <= $4) \
             AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.contact_key = o.contact_key \
             AND e.status = 'pending' AND e.id < o.id) \
             ORDER BY o.id LIMIT $5",
            $lock,
            ") RETURNING id, recipient, channel, kind, payload, idempotency_key, attempts, \
             created_at"
        )
    };
}
pub(super) use claim_sql;

const MARK_SENT: &str = "UPDATE outbox SET status = 'sent', provider_id = $1, sent_at = $2, \
     claim_owner = NULL, claim_until = NULL, last_error = NULL \
     WHERE id = $3 AND claim_owner = $4 AND status = 'pending'";
const RESCHEDULE: &str = "UPDATE outbox SET next_attempt_at = $1, last_error = $2, \
     claim_owner = NULL, claim_until = NULL \
     WHERE id = $3 AND claim_owner = $4 AND status = 'pending'";
const MARK_DEAD: &str = "UPDATE outbox SET status = 'dead', last_error = $1, \
     claim_owner = NULL, claim_until = NULL \
     WHERE id = $2 AND claim_owner = $3 AND status = 'pending'";
/// A status replaces the stored one when the stored one's rank is below `$4`: pending and
/// dead 0, sent 1, delivered 2, read 3, failed 4 (see [`supersedes_below`]).
const UPDATE_STATUS: &str = "UPDATE outbox SET status = $1, last_error = COALESCE($5, last_error) \
     WHERE channel = $2 AND provider_id = $3 \
     AND (CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 \
     WHEN 'failed' THEN 4 ELSE 0 END) < $4";

/// The rank a stored status must be below for `report` to replace it, as
/// `DeliveryState::supersedes` decides: a failure replaces pending or sent (rank < 2), any
/// other report a status behind it (and never a failure, rank 4).
fn supersedes_below(report: DeliveryReport) -> i64 {
    match report {
        DeliveryReport::Sent => 1,
        DeliveryReport::Delivered => 2,
        DeliveryReport::Read => 3,
        DeliveryReport::Failed => 2,
    }
}

const BACKLOG: &str = "SELECT status, COUNT(*) AS n FROM outbox WHERE status = 'pending' \
     GROUP BY status";
const LIST: &str = "SELECT id, recipient, channel, kind, status, attempts, created_at, sent_at, \
     provider_id FROM outbox ORDER BY id DESC LIMIT $1";

/// A claimed row, its recipient and payload still sealed.
#[derive(FromRow)]
pub(super) struct ClaimedRow<T> {
    id: i64,
    recipient: Vec<u8>,
    channel: String,
    kind: String,
    payload: Vec<u8>,
    idempotency_key: String,
    attempts: i64,
    created_at: T,
}

/// A row as `/admin/outbox` lists it, its recipient still sealed.
#[derive(FromRow)]
pub(super) struct ListedRow<T> {
    id: i64,
    recipient: Vec<u8>,
    channel: String,
    kind: String,
    status: String,
    attempts: i64,
    created_at: T,
    sent_at: Option<T>,
    provider_id: Option<String>,
}

fn parse_kind(s: &str) -> Result<OutboxKind, StoreError> {
    OutboxKind::parse(s).ok_or_else(|| corrupt("unknown outbox kind"))
}

pub(super) async fn claim<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    (channel, owner, now, lease_until, limit): (Channel, &str, DateTime<Utc>, DateTime<Utc>, i64),
) -> Result<Vec<ClaimedMessage>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    ClaimedRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let mut rows = sqlx::query_as::<DB, ClaimedRow<DB::Time>>(DB::CLAIM_OUTBOX)
        .bind(owner)
        .bind(DB::time(lease_until))
        .bind(channel.as_str())
        .bind(DB::time(now))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(super::unavailable)?;
    rows.sort_by_key(|row| row.id);
    rows.into_iter()
        .map(|row| {
            Ok(ClaimedMessage {
                id: row.id,
                recipient: sealer.open_str(Field::OutboxRecipient, &row.recipient)?,
                channel: parse_channel(&row.channel)?,
                kind: parse_kind(&row.kind)?,
                payload: sealer.open_str(Field::OutboxPayload, &row.payload)?,
                idempotency_key: row.idempotency_key,
                attempts: row.attempts,
                created_at: DB::read_time(row.created_at)?,
            })
        })
        .collect()
}

/// How the claim holder settles a row, in one statement.
pub(super) enum Settle<'a> {
    Sent {
        provider_id: &'a str,
        at: DateTime<Utc>,
    },
    Retry {
        at: DateTime<Utc>,
        error: &'a str,
    },
    Dead {
        error: &'a str,
    },
}

pub(super) async fn settle<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    id: i64,
    owner: &str,
    how: Settle<'_>,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let query = match how {
        Settle::Sent { provider_id, at } => sqlx::query::<DB>(MARK_SENT)
            .bind(provider_id)
            .bind(DB::time(at)),
        Settle::Retry { at, error } => sqlx::query::<DB>(RESCHEDULE).bind(DB::time(at)).bind(error),
        Settle::Dead { error } => sqlx::query::<DB>(MARK_DEAD).bind(error),
    };
    let done = query
        .bind(id)
        .bind(owner)
        .execute(pool)
        .await
        .map_err(super::unavailable)?;
    Ok(DB::rows_affected(&done) > 0)
}

pub(super) async fn update_status<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    channel: Channel,
    provider_id: &str,
    report: DeliveryReport,
    error: Option<&str>,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let done = sqlx::query::<DB>(UPDATE_STATUS)
        .bind(report.as_str())
        .bind(channel.as_str())
        .bind(provider_id)
        .bind(supersedes_below(report))
        .bind(error.filter(|_| report == DeliveryReport::Failed))
        .execute(pool)
        .await
        .map_err(super::unavailable)?;
    Ok(DB::rows_affected(&done) > 0)
}

pub(super) async fn list<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    limit: i64,
) -> Result<Vec<OutboxView>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    ListedRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let rows = sqlx::query_as::<DB, ListedRow<DB::Time>>(LIST)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(super::unavailable)?;
    rows.into_iter()
        .map(|row| {
            Ok(OutboxView {
                id: row.id,
                phone: sealer.open_str(Field::OutboxRecipient, &row.recipient)?,
                channel: row.channel,
                kind: row.kind,
                status: row.status,
                attempts: row.attempts,
                created_at: DB::read_time(row.created_at)?,
                sent_at: row.sent_at.map(DB::read_time).transpose()?,
                provider_id: row.provider_id,
            })
        })
        .collect()
}

pub(super) async fn backlog<DB: Dialect>(pool: &sqlx::Pool<DB>) -> Result<i64, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    super::admin::StatusCount: for<'r> FromRow<'r, DB::Row>,
{
    let rows = sqlx::query_as::<DB, super::admin::StatusCount>(BACKLOG)
        .fetch_all(pool)
        .await
        .map_err(super::unavailable)?;
    Ok(rows.iter().map(|r| r.n).sum())
}

#[cfg(test)]
mod tests {
    use super::{DeliveryReport, supersedes_below};

    /// The SQL's ranks decide as the engine's `DeliveryState::supersedes` does.
    #[test]
    fn the_sql_ranks_agree_with_the_engines_rule() {
        let rank = |s: &str| match s {
            "sent" => 1,
            "delivered" => 2,
            "read" => 3,
            "failed" => 4,
            _ => 0,
        };
        for report in [
            DeliveryReport::Sent,
            DeliveryReport::Delivered,
            DeliveryReport::Read,
            DeliveryReport::Failed,
        ] {
            for current in ["pending", "sent", "delivered", "read", "failed", "dead"] {
                assert_eq!(
                    rank(current) < supersedes_below(report),
                    report.supersedes(current),
                    "{report:?} over {current}"
                );
            }
        }
    }
}

/// A WhatsApp row Meta reported `failed`, its recipient and payload still sealed.
#[derive(FromRow)]
pub(super) struct FailedRow {
    contact_key: String,
    recipient: Vec<u8>,
    kind: String,
    payload: Vec<u8>,
    idempotency_key: String,
}

const FAILED_WHATSAPP: &str = "SELECT contact_key, recipient, kind, payload, idempotency_key \
     FROM outbox WHERE channel = 'whatsapp' AND provider_id = $1 AND status = 'failed'";
const KNOWN_ON_SMS: &str = "SELECT COUNT(*) FROM turns WHERE contact_key = $1 AND channel = 'sms'";
const INSERT_FALLBACK: &str = "INSERT INTO outbox (contact_key, recipient, channel, kind, \
     payload, idempotency_key, next_attempt_at, created_at) \
     VALUES ($1, $2, 'sms', $3, $4, $5, $6, $6) ON CONFLICT (idempotency_key) DO NOTHING";

/// What [`fall_back_to_sms`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// An SMS row now carries the message (written by this call).
    Queued,
    /// Nothing new: no failed WhatsApp message has that id, or its fallback was written
    /// before (a re-delivered report), so it goes once.
    Nothing,
    /// The customer has never written over SMS: no other channel they are known on.
    NotKnownOnSms,
    /// The message has no text an SMS can carry (a template).
    NoText,
}

/// The fallback of a WhatsApp message Meta reported undeliverable: the same text as an SMS
/// to the same number, when the customer is known on SMS (has written over it), once (its
/// idempotency key is the failed row's plus `:sms`). It queues behind the customer's other
/// pending messages like any row.
pub(super) async fn fall_back_to_sms<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    provider_id: &str,
    now: DateTime<Utc>,
) -> Result<Fallback, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    FailedRow: for<'r> FromRow<'r, DB::Row>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
{
    use sara_actors::outbound::{Content, OutboundMessage};
    let rows = sqlx::query_as::<DB, FailedRow>(FAILED_WHATSAPP)
        .bind(provider_id)
        .fetch_all(pool)
        .await
        .map_err(super::unavailable)?;
    let (mut outcome, mut queued) = (Fallback::Nothing, false);
    for row in rows {
        let (sms_turns,): (i64,) = sqlx::query_as(KNOWN_ON_SMS)
            .bind(row.contact_key.as_str())
            .fetch_one(pool)
            .await
            .map_err(super::unavailable)?;
        if sms_turns == 0 {
            outcome = Fallback::NotKnownOnSms;
            continue;
        }
        let payload = sealer.open_str(Field::OutboxPayload, &row.payload)?;
        let mut message: OutboundMessage = serde_json::from_str(&payload)
            .map_err(|_| corrupt("an outbox payload does not read"))?;
        let Some(text) = message.content.plain_text().map(str::to_owned) else {
            outcome = Fallback::NoText;
            continue;
        };
        let key = format!("{}:sms", row.idempotency_key);
        message.key = key.clone();
        message.channel = Channel::Sms;
        message.content = Content::text(text);
        let json = serde_json::to_string(&message).map_err(|e| corrupt(&e.to_string()))?;
        let sealed = sealer.seal_str(Field::OutboxPayload, &json);
        let done = sqlx::query::<DB>(INSERT_FALLBACK)
            .bind(row.contact_key.as_str())
            .bind(row.recipient.as_slice())
            .bind(row.kind.as_str())
            .bind(sealed.as_slice())
            .bind(key.as_str())
            .bind(DB::time(now))
            .execute(pool)
            .await
            .map_err(super::unavailable)?;
        if DB::rows_affected(&done) > 0 {
            queued = true;
        }
    }
    Ok(if queued { Fallback::Queued } else { outcome })
}
