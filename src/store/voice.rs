//! What a phone call leaves beside its turns: what the caller heard of a reply they
//! interrupted (`turns.heard`), and voicemails (`voicemails`). Both backends run the same SQL
//! (SQLite's busy timeout covers the rare overlap with the group commit on its one writer).

use chrono::{DateTime, Utc};
use sara_actors::ports::OutboxMessage;
use serde::{Deserialize, Serialize};
use sqlx::{Executor, FromRow};

use super::crypto::{Field, Sealer};
use super::sql::Dialect;
use super::{StoreError, unavailable};

/// A voicemail as Twilio's callbacks report it; each callback knows a part.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VoicemailReport {
    pub recording_sid: String,
    pub call_sid: String,
    /// The caller's contact key, when the caller's number is known.
    pub contact_key: Option<String>,
    pub recording_url: Option<String>,
    pub duration_s: Option<i64>,
    pub transcription: Option<String>,
}

/// A voicemail in `/logs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoicemailView {
    pub recording_sid: String,
    pub call_sid: String,
    pub recording_url: Option<String>,
    pub duration_s: Option<i64>,
    pub transcription: Option<String>,
    pub at: DateTime<Utc>,
}

const SET_HEARD: &str = "UPDATE turns SET heard = $1 WHERE provider_id = $2";
const HEARD_OF: &str = "SELECT provider_id, heard FROM turns \
     WHERE contact_key = $1 AND heard IS NOT NULL";
const NEW_VOICEMAIL: &str = "INSERT INTO voicemails (recording_sid, call_sid, contact_key, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (recording_sid) DO NOTHING";
const FILL_VOICEMAIL: &str = "UPDATE voicemails SET \
     recording_url = COALESCE($2, recording_url), \
     duration_s = COALESCE($3, duration_s), \
     transcription = COALESCE($4, transcription), \
     contact_key = COALESCE(contact_key, $5) \
     WHERE recording_sid = $1";
/// Marks the voicemail alerted once its recording is known; one row changes only the first
/// time.
const MARK_ALERTED: &str = "UPDATE voicemails SET alerted = TRUE \
     WHERE recording_sid = $1 AND alerted = FALSE AND recording_url IS NOT NULL";
const ALERT: &str = "INSERT INTO outbox (contact_key, recipient, channel, kind, payload, \
     idempotency_key, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (idempotency_key) DO NOTHING";
const VOICEMAILS: &str = "SELECT recording_sid, call_sid, recording_url, duration_s, transcription, created_at \
     FROM voicemails WHERE call_sid = $1 OR contact_key = $2 ORDER BY created_at, recording_sid";

#[derive(FromRow)]
pub(super) struct VoicemailRow<T> {
    recording_sid: String,
    call_sid: String,
    recording_url: Option<Vec<u8>>,
    duration_s: Option<i64>,
    transcription: Option<Vec<u8>>,
    created_at: T,
}

/// Records what the caller heard of the reply of turn `provider_id`; whether such a turn
/// exists.
pub(super) async fn record_heard<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    provider_id: &str,
    heard: &str,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let sealed = sealer.seal_str(Field::TurnHeard, heard);
    let done = sqlx::query::<DB>(SET_HEARD)
        .bind(sealed.as_slice())
        .bind(provider_id)
        .execute(pool)
        .await
        .map_err(unavailable)?;
    Ok(DB::rows_affected(&done) > 0)
}

/// What the callers of conversation `key` heard of interrupted replies, by provider id.
pub(super) async fn heard_of<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    key: &str,
) -> Result<Vec<(String, String)>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String, Vec<u8>): for<'r> FromRow<'r, DB::Row>,
{
    let rows = sqlx::query_as::<DB, (String, Vec<u8>)>(HEARD_OF)
        .bind(key)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|(id, heard)| Ok((id, sealer.open_str(Field::TurnHeard, &heard)?)))
        .collect()
}

/// Stores what one of Twilio's voicemail callbacks reported; `true` when this recording was
/// not known before (the first of its callbacks). `alert` (the staff alert about it) is
/// written to the outbox in the same transaction, once: by the first report that leaves the
/// voicemail with a recording URL.
pub(super) async fn store_voicemail<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    report: &VoicemailReport,
    alert: Option<&OutboxMessage>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q [u8]>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let url = report
        .recording_url
        .as_deref()
        .map(|u| sealer.seal_str(Field::VoicemailUrl, u));
    let transcription = report
        .transcription
        .as_deref()
        .map(|t| sealer.seal_str(Field::VoicemailTranscription, t));
    let mut tx = pool.begin().await.map_err(unavailable)?;
    let created = sqlx::query::<DB>(NEW_VOICEMAIL)
        .bind(report.recording_sid.as_str())
        .bind(report.call_sid.as_str())
        .bind(report.contact_key.as_deref())
        .bind(DB::time(now))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    sqlx::query::<DB>(FILL_VOICEMAIL)
        .bind(report.recording_sid.as_str())
        .bind(url.as_deref())
        .bind(report.duration_s)
        .bind(transcription.as_deref())
        .bind(report.contact_key.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    if let Some(alert) = alert {
        let marked = sqlx::query::<DB>(MARK_ALERTED)
            .bind(report.recording_sid.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if DB::rows_affected(&marked) > 0 {
            let recipient = sealer.seal_str(Field::OutboxRecipient, &alert.recipient);
            let payload = sealer.seal_str(Field::OutboxPayload, &alert.payload);
            sqlx::query::<DB>(ALERT)
                .bind(sealer.contact_key(&alert.contact))
                .bind(recipient.as_slice())
                .bind(alert.channel.as_str())
                .bind(alert.kind.as_str())
                .bind(payload.as_slice())
                .bind(alert.idempotency_key.as_str())
                .bind(DB::time(alert.not_before))
                .bind(DB::time(now))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(DB::rows_affected(&created) > 0)
}

/// The voicemails of call `call_sid` or of conversation `key`, oldest first.
pub(super) async fn voicemails<DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    sealer: &Sealer,
    call_sid: &str,
    key: &str,
) -> Result<Vec<VoicemailView>, StoreError>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    VoicemailRow<DB::Time>: for<'r> FromRow<'r, DB::Row>,
{
    let rows = sqlx::query_as::<DB, VoicemailRow<DB::Time>>(VOICEMAILS)
        .bind(call_sid)
        .bind(key)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| {
            Ok(VoicemailView {
                recording_sid: row.recording_sid,
                call_sid: row.call_sid,
                recording_url: row
                    .recording_url
                    .map(|u| sealer.open_str(Field::VoicemailUrl, &u))
                    .transpose()?,
                duration_s: row.duration_s,
                transcription: row
                    .transcription
                    .map(|t| sealer.open_str(Field::VoicemailTranscription, &t))
                    .transpose()?,
                at: DB::read_time(row.created_at)?,
            })
        })
        .collect()
}
