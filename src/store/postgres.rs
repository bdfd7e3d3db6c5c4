//! The PostgreSQL backend: the same tables as SQLite for several instances at once.
//!
//! Concurrency comes from the database itself: the conversation's version column is a
//! compare-and-swap (`UPDATE … WHERE version = $n`, which waits for a concurrent writer and
//! then re-checks), and the exclusion constraint `bookings_no_overlap` forbids two confirmed
//! bookings at once whichever instance writes them. What PostgreSQL does like SQLite is in
//! [`super::sql`] and [`super::admin`]; here are the group commit, the batched booking
//! insert and the connect options.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingId};
use sara_actors::ports::{BoxFuture, CalendarError, CalendarWrite, CommitOutcome, TurnCommit};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, PgPool, Postgres};
use uuid::Uuid;

use super::crypto::Sealer;
use super::sql::{self, Dialect, PgStore, ReplyRow, SealedBooking, SealedTurn, open_replies};
use super::{StoreError, describe, unavailable};

/// SQLSTATE for an exclusion-constraint violation: the slot is taken.
const EXCLUSION_VIOLATION: &str = "23P01";

impl Dialect for Postgres {
    type Time = DateTime<Utc>;
    type Id = Uuid;
    const BACKEND: &'static str = "postgres";
    // Admin-only fallback, a scan: the index's collation does not serve prefixes. Compared
    // in the "C" collation, which orders UTF-8 text by code point as the bounds need.
    const PROVIDER_PREFIX: &'static str = "SELECT contact_key FROM turns \
         WHERE provider_id COLLATE \"C\" >= $1 AND provider_id COLLATE \"C\" < $2 LIMIT 1";

    const CLAIM_OUTBOX: &'static str = super::outbox::claim_sql!(" FOR UPDATE SKIP LOCKED");

    const CLAIM_JOBS: &'static str = super::jobs::claim_jobs_sql!(" FOR UPDATE SKIP LOCKED");

    fn time(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn read_time(stored: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        Ok(stored)
    }

    fn id(id: BookingId) -> Uuid {
        id
    }

    fn read_id(stored: Uuid) -> Result<BookingId, StoreError> {
        Ok(stored)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    const SINGLE_WRITER: bool = false;

    fn migrator() -> &'static Migrator {
        static MIGRATOR: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| {
            super::sql::rollback_safe(sqlx::migrate!("./migrations/postgres"))
        });
        &MIGRATOR
    }

    fn commit<'a>(
        store: &'a PgStore,
        batch: &'a [TurnCommit],
    ) -> BoxFuture<'a, Result<Vec<CommitOutcome>, StoreError>> {
        Box::pin(commit(&store.pool, &store.sealer, batch))
    }

    fn write_bookings<'a>(
        store: &'a PgStore,
        writes: &'a [CalendarWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<(), CalendarError>>, CalendarError>> {
        Box::pin(write_bookings(&store.pool, &store.sealer, writes))
    }

    fn postgres_pool(pool: &PgPool) -> Option<&PgPool> {
        Some(pool)
    }
}

/// A pooled connection idle for this long is tested with a round trip before it is handed
/// out. One given back more recently was tested then (sqlx pings every connection it is
/// given back), so under load no acquire pays a round trip of its own (it was a third of a
/// small statement's), while a connection that sat idle through a server restart or a
/// failover is still found dead (and replaced) before a turn uses it.
const TEST_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens the pool for `storage.database_url`: its size, how long a request waits for a
/// connection, and each statement's `statement_timeout`.
pub(super) async fn connect(storage: &crate::config::StorageConfig) -> Result<PgPool, StoreError> {
    let statement_timeout = format!("{}ms", storage.statement_timeout_ms.max(1));
    let options = PgConnectOptions::from_str(storage.database_url.expose())
        .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {}", describe(&e))))?
        .options([("statement_timeout", statement_timeout.as_str())]);
    PgPoolOptions::new()
        .max_connections(storage.max_connections.max(1))
        .acquire_timeout(Duration::from_millis(storage.acquire_timeout_ms.max(1)))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= TEST_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(unavailable)
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

async fn insert_booking(
    pool: &PgPool,
    sealer: &Sealer,
    booking: &Booking,
) -> Result<(), CalendarError> {
    let sealed = SealedBooking::new(sealer, booking);
    let mut conn = pool.acquire().await.map_err(calendar_db_error)?;
    sql::insert_booking::<Postgres>(&mut conn, booking, &sealed)
        .await
        .map_err(calendar_db_error)
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
async fn commit(
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
        .map(|item| SealedTurn::new(sealer, item))
        .collect();
    let mut tx = pool.begin().await.map_err(unavailable)?;

    let provider_ids: Vec<String> = batch
        .iter()
        .filter_map(|item| item.turn.provider_id.clone())
        .collect();
    let mut replies: HashMap<String, Reply> = HashMap::new();
    if !provider_ids.is_empty() {
        let seen: Vec<ReplyRow> = sqlx::query_as(
            "SELECT provider_id, reply, reply_extra FROM turns WHERE provider_id = ANY($1)",
        )
        .bind(&provider_ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        replies = open_replies(sealer, seen)?;
    }

    // Contacts of conversations that may start here. Inserting one whose conversation then
    // conflicts writes nothing new: a conflict on version 0 means the contact exists.
    // Rows are locked in contact-key order (a stable sort keeps each conversation's items in
    // batch order), so two instances' batches cannot deadlock on each other's rows.
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    let (new_keys, new_phones): (Vec<&str>, Vec<&[u8]>) = order
        .iter()
        .filter_map(|&i| Some((keys[i].as_str(), sealed[i].phone.as_deref()?)))
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
    let mut effects = EffectColumns::default();
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
                    effects.push(&batch[i], &keys[i], &sealed[i]);
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
    // In the turns' transaction: a turn and its messages commit or vanish together.
    effects.insert(&mut tx, now).await?;
    tx.commit().await.map_err(unavailable)?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every item of the batch gets an outcome"))
        .collect())
}

/// A conversation the compare-and-swap wrote: its new version and its new turn's seq.
#[derive(sqlx::FromRow)]
struct Swapped {
    contact_key: String,
    version: i64,
    seq: i64,
}

/// The fencing token stored for a conversation whose compare-and-swap was refused.
#[derive(sqlx::FromRow)]
struct StoredEpoch {
    contact_key: String,
    owner_epoch: i64,
}

/// The committed turns' outbox rows and jobs, column by column, for one `UNNEST` insert
/// each.
#[derive(Default)]
struct EffectColumns<'a> {
    contact: Vec<&'a str>,
    recipient: Vec<&'a [u8]>,
    channel: Vec<&'a str>,
    kind: Vec<&'a str>,
    payload: Vec<&'a [u8]>,
    idempotency_key: Vec<&'a str>,
    not_before: Vec<DateTime<Utc>>,
    job_kind: Vec<&'a str>,
    job_due: Vec<DateTime<Utc>>,
    job_payload: Vec<&'a [u8]>,
    job_key: Vec<&'a str>,
    /// The key ranges ([`jobs::key_range`]) of the pending jobs the committed turns make
    /// void: their prefixes, and the first key after each.
    void_low: Vec<&'a str>,
    void_high: Vec<String>,
    /// Bookings whose attendance was confirmed, with their customer's contact key.
    attended: Vec<Uuid>,
    attended_contact: Vec<&'a str>,
}

impl<'a> EffectColumns<'a> {
    fn push(&mut self, item: &'a TurnCommit, key: &'a str, sealed: &'a SealedTurn) {
        for id in &item.attendance {
            self.attended.push(*id);
            self.attended_contact.push(key);
        }
        for ((contact, recipient, payload), message) in sealed.outbox.iter().zip(&item.outbox) {
            self.contact.push(contact);
            self.recipient.push(recipient);
            self.channel.push(message.channel.as_str());
            self.kind.push(message.kind.as_str());
            self.payload.push(payload);
            self.idempotency_key.push(&message.idempotency_key);
            self.not_before.push(message.not_before);
        }
        for prefix in &item.void_jobs {
            let (low, high) = super::jobs::key_range(prefix);
            self.void_low.push(low);
            self.void_high.push(high);
        }
        for (payload, job) in sealed.jobs.iter().zip(&item.jobs) {
            self.job_kind.push(&job.kind);
            self.job_due.push(job.due_at);
            self.job_payload.push(payload);
            self.job_key.push(&job.unique_key);
        }
    }

    async fn insert(
        &self,
        tx: &mut sqlx::PgConnection,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if !self.contact.is_empty() {
            sqlx::query(
                "INSERT INTO outbox (contact_key, recipient, channel, kind, payload, \
                 idempotency_key, next_attempt_at, created_at) \
                 SELECT o.*, o.not_before FROM UNNEST($1::text[], $2::bytea[], $3::text[], \
                 $4::text[], $5::bytea[], $6::text[], $7::timestamptz[]) \
                 AS o(contact_key, recipient, channel, kind, payload, idempotency_key, not_before) \
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&self.contact)
            .bind(&self.recipient)
            .bind(&self.channel)
            .bind(&self.kind)
            .bind(&self.payload)
            .bind(&self.idempotency_key)
            .bind(&self.not_before)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        // Before the new jobs: a moved booking's new reminders share the old ones' prefix.
        if !self.void_low.is_empty() {
            sqlx::query(
                "DELETE FROM jobs AS j USING UNNEST($1::text[], $2::text[]) AS v(low, high) \
                 WHERE j.status = 'pending' AND j.unique_key >= v.low AND j.unique_key < v.high",
            )
            .bind(&self.void_low)
            .bind(&self.void_high)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        if !self.job_kind.is_empty() {
            sqlx::query(
                "INSERT INTO jobs (kind, due_at, payload, unique_key, created_at) \
                 SELECT j.*, $5 FROM UNNEST($1::text[], $2::timestamptz[], $3::bytea[], \
                 $4::text[]) AS j ON CONFLICT (unique_key) DO NOTHING",
            )
            .bind(&self.job_kind)
            .bind(&self.job_due)
            .bind(&self.job_payload)
            .bind(&self.job_key)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        if !self.attended.is_empty() {
            // Only the customer's own confirmed booking: a turn cannot mark another's.
            sqlx::query(
                "UPDATE bookings SET attendance = 'confirmed', updated_at = $3 \
                 FROM UNNEST($1::uuid[], $2::text[]) AS a (id, contact_key) \
                 WHERE bookings.id = a.id AND bookings.contact_key = a.contact_key \
                 AND bookings.status = 'confirmed'",
            )
            .bind(&self.attended)
            .bind(&self.attended_contact)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        Ok(())
    }
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
    let mut done: Vec<Swapped> = Vec::with_capacity(which.len());
    if !new.is_empty() {
        let new_keys: Vec<&str> = new.iter().map(|&i| keys[i].as_str()).collect();
        let states: Vec<&[u8]> = new.iter().map(|&i| sealed[i].state.as_slice()).collect();
        let epochs: Vec<i64> = new.iter().map(|&i| batch[i].owner_epoch).collect();
        let inserted: Vec<Swapped> = sqlx::query_as(
            "INSERT INTO conversations (contact_key, state, version, last_seq, updated_at, \
             owner_epoch) \
             SELECT key, state, 1, 1, $4, epoch \
             FROM UNNEST($1::text[], $2::bytea[], $3::bigint[]) AS i (key, state, epoch) \
             ON CONFLICT (contact_key) DO NOTHING \
             RETURNING contact_key, version, last_seq AS seq",
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
        let updated: Vec<Swapped> = sqlx::query_as(
            "UPDATE conversations AS c \
             SET state = i.state, version = c.version + 1, last_seq = c.last_seq + 1, \
             updated_at = $5, owner_epoch = GREATEST(c.owner_epoch, i.epoch) \
             FROM UNNEST($1::text[], $2::bytea[], $3::bigint[], $4::bigint[]) \
             AS i (key, state, expected, epoch) \
             WHERE c.contact_key = i.key AND c.version = i.expected \
             AND (i.epoch = 0 OR c.owner_epoch <= i.epoch) \
             RETURNING c.contact_key, c.version, c.last_seq AS seq",
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
        .map(|row| (row.contact_key, (row.version, row.seq)))
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
        let stored: Vec<StoredEpoch> = sqlx::query_as(
            "SELECT contact_key, owner_epoch FROM conversations WHERE contact_key = ANY($1)",
        )
        .bind(&refused)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let stored: HashMap<String, i64> = stored
            .into_iter()
            .map(|row| (row.contact_key, row.owner_epoch))
            .collect();
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

/// Makes writes in order: each run of bookings as [`insert_bookings`] writes them (one
/// statement in the common case), each run of cancels in one statement ([`cancel_all`]), a
/// move in one statement of its own. PostgreSQL's writers do not queue for one lock, so one
/// transaction for the whole batch would gain little and cost a verdict per write on a
/// refused statement. Each write commits on its own, so a database error is the verdict of
/// the writes it failed, never of those made before it (a cancel that was made is never
/// reported as failed).
async fn write_bookings(
    pool: &PgPool,
    sealer: &Sealer,
    writes: &[CalendarWrite],
) -> Result<Vec<Result<(), CalendarError>>, CalendarError> {
    let mut results = Vec::with_capacity(writes.len());
    let mut rest = writes;
    while let Some((first, tail)) = rest.split_first() {
        let result = match first {
            CalendarWrite::Book(_) => {
                let run = rest
                    .iter()
                    .take_while(|w| matches!(w, CalendarWrite::Book(_)))
                    .count();
                let bookings: Vec<Booking> = rest[..run]
                    .iter()
                    .filter_map(|w| match w {
                        CalendarWrite::Book(b) => Some(b.clone()),
                        CalendarWrite::Move { .. } | CalendarWrite::Cancel(_) => None,
                    })
                    .collect();
                // The writes before this run are made already: an error here is this run's
                // verdict, not the whole batch's.
                match insert_bookings(pool, sealer, &bookings).await {
                    Ok(verdicts) => results.extend(verdicts),
                    Err(error) => results.extend(std::iter::repeat_n(Err(error), run)),
                }
                rest = &rest[run..];
                continue;
            }
            CalendarWrite::Cancel(_) => {
                let ids: Vec<Uuid> = rest
                    .iter()
                    .map_while(|w| match w {
                        CalendarWrite::Cancel(id) => Some(*id),
                        CalendarWrite::Book(_) | CalendarWrite::Move { .. } => None,
                    })
                    .collect();
                match cancel_all(pool, &ids).await {
                    Ok(cancelled) => results.extend(ids.iter().map(|id| {
                        if cancelled.contains(id) {
                            Ok(())
                        } else {
                            Err(CalendarError::NotFound)
                        }
                    })),
                    Err(error) => results.extend(std::iter::repeat_n(Err(error), ids.len())),
                }
                rest = &rest[ids.len()..];
                continue;
            }
            &CalendarWrite::Move { id, start, end } => move_one(pool, id, start, end).await,
        };
        results.push(result);
        rest = tail;
    }
    Ok(results)
}

/// A run of cancels in one statement: the ids it cancelled (a booking cancelled already
/// counts, as with one statement each); an id that is not there is not among them. Cancels
/// of one run do not depend on each other, so their order within the run does not matter.
async fn cancel_all(pool: &PgPool, ids: &[Uuid]) -> Result<HashSet<Uuid>, CalendarError> {
    let cancelled: Vec<(Uuid,)> =
        sqlx::query_as(sql::cancel_bookings_sql!("= ANY($2) RETURNING id"))
            .bind(Utc::now())
            .bind(ids)
            .fetch_all(pool)
            .await
            .map_err(calendar_db_error)?;
    Ok(cancelled.into_iter().map(|(id,)| id).collect())
}

/// A move in one statement: if its new time is taken the constraint rejects it and the
/// row keeps its old time; no row is `NotFound`.
async fn move_one(
    pool: &PgPool,
    id: BookingId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), CalendarError> {
    let mut conn = pool.acquire().await.map_err(calendar_db_error)?;
    match sql::move_booking::<Postgres>(&mut conn, id, start, end).await {
        Ok(0) => Err(CalendarError::NotFound),
        Ok(_) => Ok(()),
        Err(e) => Err(calendar_db_error(e)),
    }
}

/// Writes bookings as one statement in one transaction when none of them overlaps a
/// confirmed booking (the common case: one commit instead of one per booking); when the
/// exclusion constraint refuses the statement, nothing of it was written and each booking
/// is written on its own, in order, so that each gets its own verdict.
async fn insert_bookings(
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
    let sealed: Vec<SealedBooking> = bookings
        .iter()
        .map(|b| SealedBooking::new(sealer, b))
        .collect();
    let keys: Vec<&str> = sealed.iter().map(|s| s.contact_key.as_str()).collect();
    let phones: Vec<&[u8]> = sealed.iter().map(|s| s.phone.as_slice()).collect();
    let names: Vec<Option<&[u8]>> = sealed.iter().map(|s| s.name.as_deref()).collect();
    let emails: Vec<Option<&[u8]>> = sealed.iter().map(|s| s.email.as_deref()).collect();
    let services: Vec<&str> = bookings.iter().map(|b| b.service.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = bookings.iter().map(|b| b.start).collect();
    let ends: Vec<DateTime<Utc>> = bookings.iter().map(|b| b.end).collect();
    let statuses: Vec<&str> = bookings.iter().map(|b| b.status.as_str()).collect();
    let staff: Vec<&str> = bookings
        .iter()
        .map(|b| b.staff.as_deref().unwrap_or(""))
        .collect();
    let events: Vec<Option<&str>> = bookings.iter().map(|b| b.event_id.as_deref()).collect();
    // A cancelled row of the same id (a released hold) is booked again, as by INSERT_BOOKING.
    sqlx::query(
        "INSERT INTO bookings (id, contact_key, phone, name, email, service, start, \"end\", \
         status, created_at, updated_at, staff, event_id) \
         SELECT id, key, phone, name, email, service, s, e, status, $10, $10, staff, event \
         FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], \
         $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[], $11::text[], $12::text[]) \
         AS b (id, key, phone, name, email, service, s, e, status, staff, event) \
         ON CONFLICT (id) DO UPDATE SET start = excluded.start, \"end\" = excluded.\"end\", \
         status = excluded.status, staff = excluded.staff, event_id = excluded.event_id, \
         updated_at = excluded.updated_at WHERE bookings.status = 'cancelled'",
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
    .bind(&staff)
    .bind(&events)
    .execute(pool)
    .await
    .map_err(calendar_db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgConnection;

    use super::*;
    use crate::config::{Secret, StorageConfig};
    use crate::store::testing::postgres_url;

    /// A pooled connection the server dropped while it sat idle (a restart, a failover) is
    /// found dead before it is handed out: the next statement runs on a new connection
    /// instead of failing a turn.
    #[tokio::test]
    async fn a_connection_dropped_while_idle_is_replaced_before_it_is_used() {
        let storage = StorageConfig {
            database_url: Secret::new(postgres_url()),
            max_connections: 1,
            ..StorageConfig::default()
        };
        let pool = connect(&storage).await.expect("connect");
        let backend = || sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&pool);
        let pid = backend().await.expect("the first connection answers");
        let mut admin = PgConnection::connect(&postgres_url())
            .await
            .expect("an admin connection");
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .expect("end the pooled connection's backend");
        assert!(ended);
        tokio::time::sleep(TEST_IF_IDLE_FOR + Duration::from_millis(200)).await;
        let replaced = backend().await.expect("a new connection answers");
        assert_ne!(replaced, pid);
    }
}
