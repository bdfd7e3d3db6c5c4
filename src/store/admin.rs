//! The admin read model: what `/logs/{id}`, `/admin/bookings`, `/admin/stats` and the
//! dashboard show, read the same way on both backends.

use chrono::{DateTime, Utc};
use sara_actors::model::{Booking, BookingId, BookingStatus, Channel};
use sara_actors::ports::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::{Executor, FromRow};

use super::crypto::{Field, Sealer};
use super::sql::Dialect;
use super::{StoreError, parse_channel, parse_status, unavailable};

/// `GET /logs/{id}`: one conversation's turns in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationLog {
    /// The contact's phone (E.164).
    pub conversation: String,
    pub turns: Vec<TurnView>,
}

/// One turn as the admin sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnView {
    /// 1, 2, 3… per conversation, without gaps.
    pub seq: i64,
    /// `sms`, `voice`, `whatsapp`, `email`, `chat` or `staff`.
    #[schema(value_type = String)]
    pub channel: Channel,
    pub provider_id: Option<String>,
    pub text: String,
    pub reply: String,
    pub intent: String,
    /// Which understanding read the message ("rules", "llm", "staff").
    pub nlu: String,
    pub at: DateTime<Utc>,
    /// What the NLU understood, as JSON (the console shows it; `/logs` does not).
    #[serde(skip)]
    pub understood: String,
    /// How long the turn took to answer (the console shows it; `/logs` does not).
    #[serde(skip)]
    pub elapsed_ms: i64,
    /// The retention window removed the turn's words (text, reply, understanding).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

/// One conversation for the console's list: its phone, its last committed state (the
/// engine's `ConversationState` as JSON) and when it last changed.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationSummary {
    pub phone: String,
    pub state: String,
    pub updated_at: DateTime<Utc>,
}

/// `GET /admin/bookings`: one booking, times in the business offset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BookingView {
    #[schema(value_type = String, format = "uuid")]
    pub id: BookingId,
    pub phone: String,
    pub name: Option<String>,
    pub service: String,
    /// RFC 3339 with the business's UTC offset at that instant.
    pub start: String,
    pub end: String,
    /// `confirmed`, `pending` or `cancelled`.
    pub status: String,
    /// `confirmed` once the customer confirmed in answer to a reminder, else null.
    pub attendance: Option<String>,
    /// `local` or `google`: which calendar holds the booking besides the store.
    pub calendar: String,
    /// The Google event id; `None` for a local booking.
    pub event_id: Option<String>,
    /// The staff member it is with (a configured name); `None` without staff.
    pub staff: Option<String>,
}

/// `GET /admin/stats`: what the store counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub conversations: i64,
    pub turns: i64,
    pub bookings: BookingCounts,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BookingCounts {
    pub confirmed: i64,
    pub pending: i64,
    pub cancelled: i64,
}

/// What the admin reads from a store.
pub trait AdminReadModel: Send + Sync {
    /// The conversation behind `id`: a provider message id (MessageSid, wamid; a CallSid
    /// also finds turns stored as the CallSid plus a suffix) or a phone number.
    fn turns_for<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConversationLog>, StoreError>>;

    /// Every booking, ordered by start.
    fn all_bookings(&self) -> BoxFuture<'_, Result<Vec<Booking>, StoreError>>;

    /// The ids of the bookings whose attendance the customer confirmed.
    fn attended_bookings(&self) -> BoxFuture<'_, Result<Vec<BookingId>, StoreError>>;

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>>;

    /// The `limit` conversations that changed last, newest first.
    fn conversations(
        &self,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<ConversationSummary>, StoreError>>;
}

const CONTACT_PHONE: &str = "SELECT phone FROM contacts WHERE contact_key = $1";
const TURN_LOG: &str = "SELECT seq, channel, provider_id, text, reply, intent, nlu, at, \
     understood, CAST(elapsed_ms AS BIGINT) AS elapsed_ms, \
     CAST(CASE WHEN redacted_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS redacted \
     FROM turns WHERE contact_key = $1 ORDER BY seq";
const CONVERSATIONS: &str = "SELECT c.phone, v.state, v.updated_at FROM conversations AS v \
     JOIN contacts AS c ON c.contact_key = v.contact_key ORDER BY v.updated_at DESC LIMIT $1";
const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM conversations) AS conversations, \
     (SELECT COUNT(*) FROM turns) AS turns";
const BOOKINGS_BY_STATUS: &str = "SELECT status, COUNT(*) AS n FROM bookings GROUP BY status";

/// A turn of the log, its text and reply still sealed.
#[derive(FromRow)]
pub(super) struct TurnRow<T> {
    seq: i64,
    channel: String,
    provider_id: Option<String>,
    text: Vec<u8>,
    reply: Vec<u8>,
    intent: String,
    nlu: String,
    at: T,
    understood: Vec<u8>,
    elapsed_ms: i64,
    redacted: i64,
}

/// A conversation of the list, its phone and state still sealed.
#[derive(FromRow)]
pub(super) struct ConversationListRow<T> {
    phone: Vec<u8>,
    state: Vec<u8>,
    updated_at: T,
}

#[derive(FromRow)]
pub(super) struct Counts {
    conversations: i64,
    turns: i64,
}

#[derive(FromRow)]
pub(super) struct StatusCount {
    pub(super) status: String,
    pub(super) n: i64,
}

/// The log of the conversation of contact `key`: its phone and its turns, opened.
pub(super) async fn conversation_log<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    key: &str,
) -> Result<Option<ConversationLog>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (Vec<u8>,): for<'r> FromRow<'r, DB::Row>,
    TurnRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let phone = sqlx::query_scalar::<DB, Vec<u8>>(CONTACT_PHONE)
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    let Some(phone) = phone else {
        return Ok(None);
    };
    let rows = sqlx::query_as::<DB, TurnRow<DB::Time>>(TURN_LOG)
        .bind(key)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    let turns = rows
        .into_iter()
        .map(|row| {
            Ok(TurnView {
                seq: row.seq,
                channel: parse_channel(&row.channel)?,
                provider_id: row.provider_id,
                text: sealer.open_str(Field::TurnText, &row.text)?,
                reply: sealer.open_str(Field::TurnReply, &row.reply)?,
                intent: row.intent,
                nlu: row.nlu,
                at: DB::read_time(row.at)?,
                understood: sealer.open_str(Field::TurnUnderstood, &row.understood)?,
                elapsed_ms: row.elapsed_ms,
                redacted: row.redacted != 0,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(ConversationLog {
        conversation: sealer.open_str(Field::ContactPhone, &phone)?,
        turns,
    }))
}

pub(super) async fn stats<DB: Dialect>(pool: &sqlx::Pool<DB>) -> Result<Stats, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    Counts: for<'r> FromRow<'r, DB::Row>,
    StatusCount: for<'r> FromRow<'r, DB::Row>,
{
    let counts = sqlx::query_as::<DB, Counts>(COUNTS)
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    let by_status = sqlx::query_as::<DB, StatusCount>(BOOKINGS_BY_STATUS)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    let mut bookings = BookingCounts::default();
    for row in by_status {
        match parse_status(&row.status)? {
            BookingStatus::Confirmed => bookings.confirmed = row.n,
            BookingStatus::Pending => bookings.pending = row.n,
            BookingStatus::Cancelled => bookings.cancelled = row.n,
        }
    }
    Ok(Stats {
        conversations: counts.conversations,
        turns: counts.turns,
        bookings,
    })
}

/// The conversation behind `id` (a provider message id, or a phone number), its log opened.
pub(super) async fn turns_for<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    id: &str,
) -> Result<Option<ConversationLog>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> FromRow<'r, DB::Row>,
    (Vec<u8>,): for<'r> FromRow<'r, DB::Row>,
    TurnRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let by_provider = super::sql::conversation_of_provider_id(pool, id).await?;
    let by_phone = || sara_actors::model::Phone::parse(id).map(|p| sealer.contact_key(&p));
    match by_provider.or_else(by_phone) {
        Some(key) => conversation_log(pool, sealer, &key).await,
        None => Ok(None),
    }
}

/// The `limit` conversations that changed last, opened.
pub(super) async fn conversations<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    limit: i64,
) -> Result<Vec<ConversationSummary>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    ConversationListRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let rows = sqlx::query_as::<DB, ConversationListRow<DB::Time>>(CONVERSATIONS)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| {
            Ok(ConversationSummary {
                phone: sealer.open_str(Field::ContactPhone, &row.phone)?,
                state: sealer.open_str(Field::ConversationState, &row.state)?,
                updated_at: DB::read_time(row.updated_at)?,
            })
        })
        .collect()
}
