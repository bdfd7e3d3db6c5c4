//! The PostgreSQL repository: the same tables as SQLite for several instances at once.
//!
//! Concurrency comes from the database itself: the conversation's version column is a
//! compare-and-swap (`UPDATE … WHERE version = $n`, which waits for a concurrent writer and
//! then re-checks), and the exclusion constraint `bookings_no_overlap` forbids two confirmed
//! bookings at once whichever instance writes them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingId, BookingStatus};
use sara_actors::ports::{CalendarError, CommitOutcome, StoredConversation, TurnCommit};
use sqlx::PgPool;
use uuid::Uuid;

use super::crypto::{Field, Sealer};
use super::{
    BookingCounts, ConversationLog, Stats, StoreError, describe, open_conversation, open_reply,
    open_turn, parse_phone, parse_status, seal_reply_extra, unavailable,
};

/// SQLSTATE for an exclusion-constraint violation: the slot is taken.
const EXCLUSION_VIOLATION: &str = "23P01";

/// The sealed key check value: the stored one, or `candidate` when this is the first start
/// (instances starting together agree on whichever row was inserted first).
pub(super) async fn key_check(pool: &PgPool, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
    sqlx::query(
        "INSERT INTO store_key_check (id, sealed, created_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(candidate)
    .bind(Utc::now())
    .execute(pool)
    .await
    .map_err(unavailable)?;
    sqlx::query_scalar("SELECT sealed FROM store_key_check WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(unavailable)
}

pub(super) async fn load(
    pool: &PgPool,
    sealer: &Sealer,
    key: &str,
) -> Result<Option<StoredConversation>, StoreError> {
    let row: Option<(Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT state, version, owner_epoch FROM conversations WHERE contact_key = $1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?;
    row.map(|(state, version, owner_epoch)| open_conversation(sealer, &state, version, owner_epoch))
        .transpose()
}

/// The whole batch in one transaction, in a handful of statements whatever its size: one
/// query finds the batch's already committed provider ids, one inserts the new contacts,
/// [`swap_all`] compare-and-swaps every conversation (lock, insert new, update existing,
/// and a look at the refused ones), and one inserts every committed turn. The lists travel
/// as arrays and come back as rows through `UNNEST`, so a batch of 300 turns is not 300
/// round trips inside one transaction (the commit of the next batch waits for those).
///
/// Two instances cannot both insert the same provider id: a provider id belongs to one
/// phone, and the compare-and-swap on that phone's conversation row makes the second writer
/// wait for the first and then see a version conflict.
///
/// Values are sealed before the transaction opens, so no row lock is held while AES runs.
pub(super) async fn commit(
    pool: &PgPool,
    sealer: &Sealer,
    batch: &[TurnCommit],
) -> Result<Vec<CommitOutcome>, StoreError> {
    let now = Utc::now();
    let keys: Vec<String> = batch
        .iter()
        .map(|item| sealer.contact_key(&item.phone))
        .collect();
    let sealed: Vec<SealedTurn> = batch
        .iter()
        .map(|item| SealedTurn {
            state: sealer.seal_str(Field::ConversationState, &item.state),
            text: sealer.seal_str(Field::TurnText, &item.turn.text),
            reply: sealer.seal_str(Field::TurnReply, &item.turn.reply.text),
            reply_extra: seal_reply_extra(sealer, &item.turn.reply),
            understood: sealer.seal_str(Field::TurnUnderstood, &item.turn.understood),
        })
        .collect();
    let mut tx = pool.begin().await.map_err(unavailable)?;

    let provider_ids: Vec<String> = batch
        .iter()
        .filter_map(|item| item.turn.provider_id.clone())
        .collect();
    let mut replies: HashMap<String, Reply> = HashMap::new();
    if !provider_ids.is_empty() {
        let seen: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT provider_id, reply, reply_extra FROM turns WHERE provider_id = ANY($1)",
        )
        .bind(&provider_ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        for (id, reply, extra) in seen {
            replies.insert(id, open_reply(sealer, &reply, extra.as_deref())?);
        }
    }

    // Contacts of conversations that may start here. Inserting one whose conversation then
    // conflicts writes nothing new: a conflict on version 0 means the contact exists.
    // Rows are locked in contact-key order (a stable sort keeps each conversation's items in
    // batch order), so two instances' batches cannot deadlock on each other's rows.
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    let (new_keys, new_phones): (Vec<&str>, Vec<Vec<u8>>) = order
        .iter()
        .filter(|&&i| batch[i].expected_version == 0)
        .map(|&i| {
            let phone = sealer.seal_str(Field::ContactPhone, batch[i].phone.as_str());
            (keys[i].as_str(), phone)
        })
        .unzip();
    if !new_keys.is_empty() {
        sqlx::query(
            "INSERT INTO contacts (contact_key, phone, created_at) \
             SELECT key, phone, $3 FROM UNNEST($1::text[], $2::bytea[]) AS c (key, phone) \
             ON CONFLICT (contact_key) DO NOTHING",
        )
        .bind(&new_keys)
        .bind(&new_phones)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }

    let mut outcomes: Vec<Option<CommitOutcome>> = vec![None; batch.len()];
    let mut turns = TurnColumns::default();
    // Items already committed (a provider's retry) are answered with their stored reply. The
    // rest are compare-and-swapped in rounds of at most one item per conversation: a second
    // item of the same conversation in one batch (rare: a conversation's turns are one at a
    // time) must see the first one's version, so it waits for the next round.
    let mut pending: Vec<usize> = order;
    while !pending.is_empty() {
        let mut round: Vec<usize> = Vec::with_capacity(pending.len());
        let mut next: Vec<usize> = Vec::new();
        let mut in_round: HashSet<&str> = HashSet::with_capacity(pending.len());
        for &i in &pending {
            if let Some(reply) = batch[i]
                .turn
                .provider_id
                .as_deref()
                .and_then(|id| replies.get(id))
            {
                outcomes[i] = Some(CommitOutcome::Duplicate {
                    reply: reply.clone(),
                });
            } else if in_round.insert(keys[i].as_str()) {
                round.push(i);
            } else {
                next.push(i);
            }
        }
        let swapped = swap_all(&mut tx, batch, &keys, &sealed, &round, now).await?;
        for &i in &round {
            match swapped.get(keys[i].as_str()) {
                Some(&Swap::Done { version, seq }) => {
                    turns.push(&batch[i], &keys[i], &sealed[i], seq);
                    if let Some(id) = &batch[i].turn.provider_id {
                        replies.insert(id.clone(), batch[i].turn.reply.clone());
                    }
                    outcomes[i] = Some(CommitOutcome::Committed { version });
                }
                Some(Swap::Refused { stored_epoch }) => {
                    outcomes[i] = Some(refusal(&batch[i], *stored_epoch));
                }
                None => outcomes[i] = Some(refusal(&batch[i], None)),
            }
        }
        pending = next;
    }
    if !turns.key.is_empty() {
        sqlx::query(
            "INSERT INTO turns (contact_key, seq, channel, provider_id, text, reply, intent, \
             nlu, understood, at, elapsed_ms, reply_extra) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], \
             $5::bytea[], $6::bytea[], $7::text[], $8::text[], $9::bytea[], \
             $10::timestamptz[], $11::bigint[], $12::bytea[])",
        )
        .bind(&turns.key)
        .bind(&turns.seq)
        .bind(&turns.channel)
        .bind(&turns.provider_id)
        .bind(&turns.text)
        .bind(&turns.reply)
        .bind(&turns.intent)
        .bind(&turns.nlu)
        .bind(&turns.understood)
        .bind(&turns.at)
        .bind(&turns.elapsed_ms)
        .bind(&turns.reply_extra)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every item of the batch gets an outcome"))
        .collect())
}

/// What the set-based compare-and-swap did to one conversation.
enum Swap {
    /// Swapped: the conversation's new version and its new turn's seq.
    Done { version: i64, seq: i64 },
    /// Refused; the stored fencing token, when the conversation exists.
    Refused { stored_epoch: Option<i64> },
}

/// A refused compare-and-swap: a fenced-off writer (a newer lease owner committed) is told
/// apart from a plain version conflict, since only the latter is worth redoing.
fn refusal(item: &TurnCommit, stored_epoch: Option<i64>) -> CommitOutcome {
    if item.owner_epoch > 0 && stored_epoch.is_some_and(|e| e > item.owner_epoch) {
        CommitOutcome::Fenced
    } else {
        CommitOutcome::VersionConflict
    }
}

/// The compare-and-swap of the items `which` (at most one per conversation) in a fixed number
/// of statements whatever their count: lock the existing rows in contact-key order (so two
/// instances' batches cannot deadlock), insert the new conversations, update the others
/// where version and fencing token allow, and read the stored token of the refused ones.
/// Each statement takes its items as arrays through `UNNEST`, so the round trips to the
/// database do not grow with the batch.
async fn swap_all<'k>(
    tx: &mut sqlx::PgConnection,
    batch: &[TurnCommit],
    keys: &'k [String],
    sealed: &[SealedTurn],
    which: &[usize],
    now: DateTime<Utc>,
) -> Result<HashMap<&'k str, Swap>, StoreError> {
    let mut result: HashMap<&'k str, Swap> = HashMap::with_capacity(which.len());
    if which.is_empty() {
        return Ok(result);
    }
    let all_keys: Vec<&str> = which.iter().map(|&i| keys[i].as_str()).collect();
    sqlx::query(
        "SELECT 1 FROM conversations WHERE contact_key = ANY($1) \
         ORDER BY contact_key FOR UPDATE",
    )
    .bind(&all_keys)
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;

    let (new, old): (Vec<usize>, Vec<usize>) =
        which.iter().partition(|&&i| batch[i].expected_version == 0);
    let mut done: Vec<(String, i64, i64)> = Vec::with_capacity(which.len());
    if !new.is_empty() {
        let new_keys: Vec<&str> = new.iter().map(|&i| keys[i].as_str()).collect();
        let states: Vec<&[u8]> = new.iter().map(|&i| sealed[i].state.as_slice()).collect();
        let epochs: Vec<i64> = new.iter().map(|&i| batch[i].owner_epoch).collect();
        let inserted: Vec<(String, i64, i64)> = sqlx::query_as(
            "INSERT INTO conversations (contact_key, state, version, last_seq, updated_at, \
             owner_epoch) \
             SELECT key, state, 1, 1, $4, epoch \
             FROM UNNEST($1::text[], $2::bytea[], $3::bigint[]) AS i (key, state, epoch) \
             ON CONFLICT (contact_key) DO NOTHING \
             RETURNING contact_key, version, last_seq",
        )
        .bind(&new_keys)
        .bind(&states)
        .bind(&epochs)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        done.extend(inserted);
    }
    if !old.is_empty() {
        let old_keys: Vec<&str> = old.iter().map(|&i| keys[i].as_str()).collect();
        let states: Vec<&[u8]> = old.iter().map(|&i| sealed[i].state.as_slice()).collect();
        let versions: Vec<i64> = old.iter().map(|&i| batch[i].expected_version).collect();
        let epochs: Vec<i64> = old.iter().map(|&i| batch[i].owner_epoch).collect();
        // A token of 0 is an unfenced commit: no lease was held, the version check decides.
        let updated: Vec<(String, i64, i64)> = sqlx::query_as(
            "UPDATE conversations AS c \
             SET state = i.state, version = c.version + 1, last_seq = c.last_seq + 1, \
             updated_at = $5, owner_epoch = GREATEST(c.owner_epoch, i.epoch) \
             FROM UNNEST($1::text[], $2::bytea[], $3::bigint[], $4::bigint[]) \
             AS i (key, state, expected, epoch) \
             WHERE c.contact_key = i.key AND c.version = i.expected \
             AND (i.epoch = 0 OR c.owner_epoch <= i.epoch) \
             RETURNING c.contact_key, c.version, c.last_seq",
        )
        .bind(&old_keys)
        .bind(&states)
        .bind(&versions)
        .bind(&epochs)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        done.extend(updated);
    }
    let mut by_key: HashMap<String, (i64, i64)> = done
        .into_iter()
        .map(|(key, version, seq)| (key, (version, seq)))
        .collect();
    let mut refused: Vec<&str> = Vec::new();
    for &i in which {
        let key = keys[i].as_str();
        match by_key.remove(key) {
            Some((version, seq)) => {
                result.insert(key, Swap::Done { version, seq });
            }
            None => refused.push(key),
        }
    }
    if !refused.is_empty() {
        let stored: Vec<(String, i64)> = sqlx::query_as(
            "SELECT contact_key, owner_epoch FROM conversations WHERE contact_key = ANY($1)",
        )
        .bind(&refused)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let stored: HashMap<String, i64> = stored.into_iter().collect();
        for key in refused {
            let stored_epoch = stored.get(key).copied();
            result.insert(key, Swap::Refused { stored_epoch });
        }
    }
    Ok(result)
}

/// The committed turns of a batch, column by column, for one `UNNEST` insert.
#[derive(Default)]
struct TurnColumns<'a> {
    key: Vec<&'a str>,
    seq: Vec<i64>,
    channel: Vec<&'a str>,
    provider_id: Vec<Option<&'a str>>,
    text: Vec<&'a [u8]>,
    reply: Vec<&'a [u8]>,
    intent: Vec<&'a str>,
    nlu: Vec<&'a str>,
    understood: Vec<&'a [u8]>,
    at: Vec<DateTime<Utc>>,
    elapsed_ms: Vec<i64>,
    reply_extra: Vec<Option<&'a [u8]>>,
}

impl<'a> TurnColumns<'a> {
    fn push(&mut self, item: &'a TurnCommit, key: &'a str, sealed: &'a SealedTurn, seq: i64) {
        let turn = &item.turn;
        self.key.push(key);
        self.seq.push(seq);
        self.channel.push(turn.channel.as_str());
        self.provider_id.push(turn.provider_id.as_deref());
        self.text.push(&sealed.text);
        self.reply.push(&sealed.reply);
        self.intent.push(&turn.intent);
        self.nlu.push(&turn.nlu);
        self.understood.push(&sealed.understood);
        self.at.push(turn.at);
        self.elapsed_ms.push(i64::from(turn.elapsed_ms));
        self.reply_extra.push(sealed.reply_extra.as_deref());
    }
}

/// One item's personal data, sealed.
struct SealedTurn {
    state: Vec<u8>,
    text: Vec<u8>,
    reply: Vec<u8>,
    /// The reply's parts beside its text, when it has any.
    reply_extra: Option<Vec<u8>>,
    understood: Vec<u8>,
}

pub(super) async fn processed_reply(
    pool: &PgPool,
    sealer: &Sealer,
    provider_id: &str,
) -> Result<Option<Reply>, StoreError> {
    let reply: Option<(Vec<u8>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT reply, reply_extra FROM turns WHERE provider_id = $1")
            .bind(provider_id)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    reply
        .map(|(text, extra)| open_reply(sealer, &text, extra.as_deref()))
        .transpose()
}

/// The contact key of the conversation that holds `id`: an exact provider id, else the
/// first one that starts with it (a CallSid whose turns carry a per-turn suffix).
pub(super) async fn conversation_of_provider_id(
    pool: &PgPool,
    id: &str,
) -> Result<Option<String>, StoreError> {
    if id.is_empty() {
        return Ok(None);
    }
    let exact: Option<String> =
        sqlx::query_scalar("SELECT contact_key FROM turns WHERE provider_id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    if exact.is_some() {
        return Ok(exact);
    }
    // Admin-only fallback: a scan, since the index's collation does not serve prefixes.
    sqlx::query_scalar("SELECT contact_key FROM turns WHERE starts_with(provider_id, $1) LIMIT 1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)
}

type TurnRow = (
    i64,
    String,
    Option<String>,
    Vec<u8>,
    Vec<u8>,
    String,
    String,
    DateTime<Utc>,
);

pub(super) async fn conversation_log(
    pool: &PgPool,
    sealer: &Sealer,
    key: &str,
) -> Result<Option<ConversationLog>, StoreError> {
    let phone: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT phone FROM contacts WHERE contact_key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?;
    let Some(phone) = phone else {
        return Ok(None);
    };
    let rows: Vec<TurnRow> = sqlx::query_as(
        "SELECT seq, channel, provider_id, text, reply, intent, nlu, at FROM turns \
         WHERE contact_key = $1 ORDER BY seq",
    )
    .bind(key)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let turns = rows
        .into_iter()
        .map(
            |(seq, channel, provider_id, text, reply, intent, nlu, at)| {
                let sealed = (seq, channel, provider_id, text, reply, intent, nlu);
                open_turn(sealer, sealed, at)
            },
        )
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(ConversationLog {
        conversation: sealer.open_str(Field::ContactPhone, &phone)?,
        turns,
    }))
}

pub(super) async fn stats(pool: &PgPool) -> Result<Stats, StoreError> {
    let (conversations, turns): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM conversations), (SELECT COUNT(*) FROM turns)")
            .fetch_one(pool)
            .await
            .map_err(unavailable)?;
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM bookings GROUP BY status")
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
    let mut bookings = BookingCounts::default();
    for (status, n) in by_status {
        match parse_status(&status)? {
            BookingStatus::Confirmed => bookings.confirmed = n,
            BookingStatus::Pending => bookings.pending = n,
            BookingStatus::Cancelled => bookings.cancelled = n,
        }
    }
    Ok(Stats {
        conversations,
        turns,
        bookings,
    })
}

type BookingRow = (
    Uuid,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    String,
);

const BOOKING_COLUMNS: &str = "id, phone, name, email, service, start, \"end\", status";

fn booking_from_row(sealer: &Sealer, row: BookingRow) -> Result<Booking, StoreError> {
    let (id, phone, name, email, service, start, end, status) = row;
    Ok(Booking {
        id,
        phone: parse_phone(&sealer.open_str(Field::BookingPhone, &phone)?)?,
        name: sealer.open_opt(Field::BookingName, name.as_deref())?,
        email: sealer.open_opt(Field::BookingEmail, email.as_deref())?,
        service,
        start,
        end,
        status: parse_status(&status)?,
    })
}

pub(super) async fn all_bookings(
    pool: &PgPool,
    sealer: &Sealer,
) -> Result<Vec<Booking>, StoreError> {
    let rows: Vec<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings ORDER BY start, id"
    )))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| booking_from_row(sealer, row))
        .collect()
}

pub(super) async fn upcoming_bookings(
    pool: &PgPool,
    sealer: &Sealer,
    from: DateTime<Utc>,
) -> Result<Vec<Booking>, StoreError> {
    let rows: Vec<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings \
         WHERE status <> 'cancelled' AND \"end\" > $1 ORDER BY start, id"
    )))
    .bind(from)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.into_iter()
        .map(|row| booking_from_row(sealer, row))
        .collect()
}

/// The exclusion constraint's verdict is `SlotTaken`; anything else is the database's fault.
fn calendar_db_error(e: sqlx::Error) -> CalendarError {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some(EXCLUSION_VIOLATION)
    {
        return CalendarError::SlotTaken;
    }
    CalendarError::Unavailable(describe(&e))
}

pub(super) async fn insert_booking(
    pool: &PgPool,
    sealer: &Sealer,
    booking: &Booking,
) -> Result<(), CalendarError> {
    let now = Utc::now();
    let phone = sealer.seal_str(Field::BookingPhone, booking.phone.as_str());
    let name = (booking.name.as_deref()).map(|n| sealer.seal_str(Field::BookingName, n));
    let email = (booking.email.as_deref()).map(|e| sealer.seal_str(Field::BookingEmail, e));
    // ON CONFLICT (id): a retried write of the same booking is a no-op, and the exclusion
    // constraint is not consulted for it.
    sqlx::query(
        "INSERT INTO bookings (id, contact_key, phone, name, email, service, start, \"end\", \
         status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(booking.id)
    .bind(sealer.contact_key(&booking.phone))
    .bind(phone)
    .bind(name)
    .bind(email)
    .bind(&booking.service)
    .bind(booking.start)
    .bind(booking.end)
    .bind(booking.status.as_str())
    .bind(now)
    .execute(pool)
    .await
    .map_err(calendar_db_error)?;
    Ok(())
}

/// Writes bookings as one statement in one transaction when none of them overlaps a
/// confirmed booking (the common case: one commit instead of one per booking); when the
/// exclusion constraint refuses the statement, nothing of it was written and each booking
/// is written on its own, in order, so that each gets its own verdict.
pub(super) async fn insert_bookings(
    pool: &PgPool,
    sealer: &Sealer,
    bookings: &[Booking],
) -> Result<Vec<Result<(), CalendarError>>, CalendarError> {
    if bookings.len() > 1 {
        match insert_all(pool, sealer, bookings).await {
            Err(CalendarError::SlotTaken) => {}
            Err(error) => return Err(error),
            Ok(()) => return Ok(vec![Ok(()); bookings.len()]),
        }
    }
    let mut results = Vec::with_capacity(bookings.len());
    for booking in bookings {
        results.push(insert_booking(pool, sealer, booking).await);
    }
    Ok(results)
}

/// All of `bookings` in one `INSERT … SELECT FROM UNNEST`, or none (`SlotTaken` when any
/// overlaps a confirmed booking, another of the batch included). An id already written is
/// skipped, as in [`insert_booking`].
async fn insert_all(
    pool: &PgPool,
    sealer: &Sealer,
    bookings: &[Booking],
) -> Result<(), CalendarError> {
    let ids: Vec<Uuid> = bookings.iter().map(|b| b.id).collect();
    let keys: Vec<String> = bookings
        .iter()
        .map(|b| sealer.contact_key(&b.phone))
        .collect();
    let phones: Vec<Vec<u8>> = bookings
        .iter()
        .map(|b| sealer.seal_str(Field::BookingPhone, b.phone.as_str()))
        .collect();
    let names: Vec<Option<Vec<u8>>> = bookings
        .iter()
        .map(|b| (b.name.as_deref()).map(|n| sealer.seal_str(Field::BookingName, n)))
        .collect();
    let emails: Vec<Option<Vec<u8>>> = bookings
        .iter()
        .map(|b| (b.email.as_deref()).map(|e| sealer.seal_str(Field::BookingEmail, e)))
        .collect();
    let services: Vec<&str> = bookings.iter().map(|b| b.service.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = bookings.iter().map(|b| b.start).collect();
    let ends: Vec<DateTime<Utc>> = bookings.iter().map(|b| b.end).collect();
    let statuses: Vec<&str> = bookings.iter().map(|b| b.status.as_str()).collect();
    sqlx::query(
        "INSERT INTO bookings (id, contact_key, phone, name, email, service, start, \"end\", \
         status, created_at, updated_at) \
         SELECT id, key, phone, name, email, service, s, e, status, $10, $10 \
         FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], \
         $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[]) \
         AS b (id, key, phone, name, email, service, s, e, status) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&keys)
    .bind(&phones)
    .bind(&names)
    .bind(&emails)
    .bind(&services)
    .bind(&starts)
    .bind(&ends)
    .bind(&statuses)
    .bind(Utc::now())
    .execute(pool)
    .await
    .map_err(calendar_db_error)?;
    Ok(())
}

pub(super) async fn move_booking(
    pool: &PgPool,
    id: BookingId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), CalendarError> {
    // One statement: if the new time is taken the constraint rejects it and the row keeps
    // its old time.
    let done = sqlx::query(
        "UPDATE bookings SET start = $1, \"end\" = $2, updated_at = $3 \
         WHERE id = $4 AND status <> 'cancelled'",
    )
    .bind(start)
    .bind(end)
    .bind(Utc::now())
    .bind(id)
    .execute(pool)
    .await
    .map_err(calendar_db_error)?;
    if done.rows_affected() == 0 {
        return Err(CalendarError::NotFound);
    }
    Ok(())
}

pub(super) async fn cancel_booking(pool: &PgPool, id: BookingId) -> Result<(), CalendarError> {
    let done =
        sqlx::query("UPDATE bookings SET status = 'cancelled', updated_at = $1 WHERE id = $2")
            .bind(Utc::now())
            .bind(id)
            .execute(pool)
            .await
            .map_err(calendar_db_error)?;
    if done.rows_affected() == 0 {
        return Err(CalendarError::NotFound);
    }
    Ok(())
}
