//! Outbound messages as the channel senders see them: one message to send (channel,
//! recipient, kind, content), the [`ChannelSender`] port that sends it and classifies what went
//! wrong, the [`RetryPolicy`] that says when to try again, and the delivery reports providers
//! send back later ([`StatusUpdate`], applied through [`DeliveryStatuses`]).
//!
//! The outbox relay puts these together: it claims a due outbox row, hands its message to the
//! channel's sender, and records the provider's id, or asks the policy for the next attempt.
//! Everything here is plain data or a trait, so the relay is testable with fakes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Booking, Channel, Phone};
use crate::ports::{BoxFuture, StoreError};

/// Why an outbound message exists (the outbox's `kind`, shown by `GET /admin/outbox`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundKind {
    /// The answer to a customer's message that does not travel in the webhook's HTTP reply.
    Reply,
    Confirmation,
    Reminder,
    Notice,
    StaffAlert,
    StaffReply,
}

impl OutboundKind {
    pub const ALL: [OutboundKind; 6] = [
        OutboundKind::Reply,
        OutboundKind::Confirmation,
        OutboundKind::Reminder,
        OutboundKind::Notice,
        OutboundKind::StaffAlert,
        OutboundKind::StaffReply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboundKind::Reply => "reply",
            OutboundKind::Confirmation => "confirmation",
            OutboundKind::Reminder => "reminder",
            OutboundKind::Notice => "notice",
            OutboundKind::StaffAlert => "staff_alert",
            OutboundKind::StaffReply => "staff_reply",
        }
    }

    pub fn parse(s: &str) -> Option<OutboundKind> {
        OutboundKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who receives a message: a phone (SMS, WhatsApp) or an email address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Phone(Phone),
    /// An address as the customer gave it (`ana@example.com` or `Ana <ana@example.com>`).
    Email(String),
}

/// One choice of reply buttons or an interactive list. `id` comes back in the provider's
/// webhook when the customer taps it; `title` is what they see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub title: String,
    /// Lists only: a second line under the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Choice {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Choice {
        Choice {
            id: id.into(),
            title: title.into(),
            description: None,
        }
    }
}

/// Whether an invite adds or updates the event (`METHOD:REQUEST`) or removes it (`CANCEL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteMethod {
    Request,
    Cancel,
}

/// A calendar invite for one booking (RFC 5545/5546).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub booking: Booking,
    pub method: InviteMethod,
    /// Grows by one with every change of the booking (0 when it was made), so a calendar
    /// applies a move or a cancel over the version it holds, and never the other way round.
    pub sequence: u32,
}

/// What a message says, in the shapes the channels know. Content that a channel cannot show
/// is refused by its sender as permanent (`SendError::Permanent`): the caller picks the shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        body: String,
    },
    /// Up to [`MAX_BUTTONS`] reply buttons under the text (WhatsApp); SMS sends the text alone,
    /// which already lists the choices.
    Buttons {
        body: String,
        buttons: Vec<Choice>,
    },
    /// An interactive list of up to [`MAX_LIST_ROWS`] rows (WhatsApp), opened by a button
    /// labelled `button`.
    List {
        body: String,
        button: String,
        rows: Vec<Choice>,
    },
    /// A pre-approved WhatsApp template: the only thing Meta delivers outside the 24-hour
    /// customer-service window. `parameters` fill the body's `{{1}}`, `{{2}}`, … in order.
    Template {
        name: String,
        language: String,
        parameters: Vec<String>,
    },
    Email {
        subject: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invite: Option<Invite>,
    },
}

/// WhatsApp shows at most three reply buttons.
pub const MAX_BUTTONS: usize = 3;
/// WhatsApp lists hold at most ten rows across their sections.
pub const MAX_LIST_ROWS: usize = 10;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ContentError {
    #[error("{0} choices: between 1 and {1} are allowed")]
    TooManyChoices(usize, usize),
    #[error("two choices share the id {0:?}")]
    DuplicateId(String),
}

impl Content {
    pub fn text(body: impl Into<String>) -> Content {
        Content::Text { body: body.into() }
    }

    /// Reply buttons; refused unless there are 1 to [`MAX_BUTTONS`] with distinct ids.
    pub fn buttons(body: impl Into<String>, buttons: Vec<Choice>) -> Result<Content, ContentError> {
        check_choices(&buttons, MAX_BUTTONS)?;
        Ok(Content::Buttons {
            body: body.into(),
            buttons,
        })
    }

    /// An interactive list; refused unless there are 1 to [`MAX_LIST_ROWS`] rows with
    /// distinct ids.
    pub fn list(
        body: impl Into<String>,
        button: impl Into<String>,
        rows: Vec<Choice>,
    ) -> Result<Content, ContentError> {
        check_choices(&rows, MAX_LIST_ROWS)?;
        Ok(Content::List {
            body: body.into(),
            button: button.into(),
            rows,
        })
    }

    /// What a dialogue reply looks like on a channel with buttons (WhatsApp): reply buttons
    /// for 1–3 options of at most 20 characters, an interactive list for up to 10 (offered
    /// times) of at most 24, plain text otherwise (the text already lists the choices).
    pub fn from_reply(reply: &crate::dialogue::Reply) -> Content {
        const BUTTON_TITLE_CHARS: usize = 20;
        const ROW_TITLE_CHARS: usize = 24;
        let choices: Vec<Choice> = (reply.options.iter().enumerate())
            .map(|(i, title)| Choice::new(format!("option-{}", i + 1), title.clone()))
            .collect();
        let fits = |max: usize| reply.options.iter().all(|o| o.chars().count() <= max);
        if fits(BUTTON_TITLE_CHARS)
            && let Ok(buttons) = Content::buttons(reply.text.clone(), choices.clone())
        {
            return buttons;
        }
        if fits(ROW_TITLE_CHARS)
            && let Ok(list) = Content::list(reply.text.clone(), "Choose", choices)
        {
            return list;
        }
        Content::text(reply.text.clone())
    }

    /// The words of the message for a channel that shows only text (SMS): the body, or the
    /// email's text. `None` for a template, whose words live at Meta.
    pub fn plain_text(&self) -> Option<&str> {
        match self {
            Content::Text { body } | Content::Buttons { body, .. } | Content::List { body, .. } => {
                Some(body)
            }
            Content::Email { text, .. } => Some(text),
            Content::Template { .. } => None,
        }
    }
}

fn check_choices(choices: &[Choice], max: usize) -> Result<(), ContentError> {
    if choices.is_empty() || choices.len() > max {
        return Err(ContentError::TooManyChoices(choices.len(), max));
    }
    for (i, c) in choices.iter().enumerate() {
        if choices[..i].iter().any(|earlier| earlier.id == c.id) {
            return Err(ContentError::DuplicateId(c.id.clone()));
        }
    }
    Ok(())
}

/// One message to send, as the outbox holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The outbox row's idempotency key (e.g. the turn's provider id + part): the same for
    /// every attempt, so a provider that dedups (email's `Message-ID`) sees one message.
    pub key: String,
    pub channel: Channel,
    pub to: Recipient,
    pub kind: OutboundKind,
    pub content: Content,
}

/// The provider accepted the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Twilio's message sid, the WhatsApp message id (`wamid…`), or the email's Message-ID.
    pub provider_id: String,
}

/// Why a send failed, sorted by what the relay should do about it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later: the provider's 5xx, 429, 408, a timeout, a refused or broken
    /// connection. `retry_after` is the provider's `Retry-After`, when it sent one.
    #[error("temporary delivery failure: {reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Trying again will not help: a bad recipient, bad credentials, content the channel
    /// refuses (any other 4xx).
    #[error("delivery refused: {reason}")]
    Permanent { reason: String },
}

impl SendError {
    pub fn retryable(reason: impl Into<String>) -> SendError {
        SendError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> SendError {
        SendError::Permanent {
            reason: reason.into(),
        }
    }

    /// Sorts a provider's non-success HTTP answer: 5xx, 429 and 408 are retryable (429 with its
    /// `Retry-After`, read against `now` when it is a date), every other status is permanent.
    pub fn from_http(
        status: u16,
        retry_after: Option<&str>,
        now: DateTime<Utc>,
        detail: &str,
    ) -> SendError {
        let reason = if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {detail}")
        };
        match status {
            429 | 408 | 500..=599 => SendError::Retryable {
                reason,
                retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
            },
            _ => SendError::Permanent { reason },
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
        }
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (RFC 9110 §10.2.3) read against
/// `now` (a date already past is no wait). `None` for anything else.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.to_utc();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Sends one message on one channel. Implementations do one attempt and never retry
/// themselves: retries, ordering and the give-up time belong to the outbox relay.
pub trait ChannelSender: Send + Sync + 'static {
    /// The channel this sender serves.
    fn channel(&self) -> Channel;

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>>;
}

/// When to try a failed message again: exponential backoff from `first` (doubling, capped at
/// `max`) with jitter, never sooner than the provider's `Retry-After`, and no attempt after
/// `give_up_after` has passed since the message was created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            give_up_after: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// What to do with a message whose attempt failed with a retryable error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextAttempt {
    At(DateTime<Utc>),
    /// The give-up time is reached (or the provider asks to wait past it): mark it dead.
    GiveUp,
}

impl RetryPolicy {
    /// The backoff before attempt `failed + 1`, without jitter: `first · 2^(failed-1)`, capped.
    pub fn base_delay(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(30);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.max.max(self.first))
    }

    /// When to try again after the `failed`-th failed attempt (1 for the first), at `now`, of
    /// a message created at `created`. `jitter` in `[0, 1)` spreads the wait over the upper
    /// half of the base delay ("equal jitter": never less than half, so a burst of failures
    /// does not come back at once, yet the backoff still grows). A `Retry-After` is a floor.
    /// The last attempt is clamped to the give-up time; past it, or when `Retry-After` points
    /// beyond it, the answer is [`NextAttempt::GiveUp`].
    pub fn next_attempt(
        &self,
        failed: u32,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> NextAttempt {
        let deadline = created + to_chrono(self.give_up_after);
        if now >= deadline {
            return NextAttempt::GiveUp;
        }
        let base = self.base_delay(failed.max(1));
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut wait = base.mul_f64(0.5 + jitter / 2.0);
        if let Some(floor) = retry_after {
            if now + to_chrono(floor) > deadline {
                return NextAttempt::GiveUp;
            }
            wait = wait.max(floor);
        }
        NextAttempt::At((now + to_chrono(wait)).min(deadline))
    }

    /// [`RetryPolicy::next_attempt`] with a random jitter.
    pub fn next_attempt_jittered(
        &self,
        failed: u32,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
    ) -> NextAttempt {
        // 53 random bits from a v4 UUID: a uniform f64 in [0, 1) without a rand dependency.
        let bits = (uuid::Uuid::new_v4().as_u128() >> 75) as u64;
        let jitter = bits as f64 / (1u64 << 53) as f64;
        self.next_attempt(failed, created, now, retry_after, jitter)
    }
}

/// What becomes of an outbox row after one attempt: the relay writes this back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Accepted: record the provider's id, status `sent`.
    Sent { provider_id: String },
    /// Still `pending`: try again at `at` (the row keeps its place in its customer's order).
    Retry { at: DateTime<Utc>, error: String },
    /// Given up (`dead`): a permanent refusal, or the give-up time reached.
    Dead { error: String },
}

impl RetryPolicy {
    /// Settles one attempt of a row created at `created` that had failed `failed_before` times
    /// already, with the attempt's `result` at `now`; `jitter` as in
    /// [`RetryPolicy::next_attempt`].
    pub fn settle(
        &self,
        result: Result<Sent, SendError>,
        failed_before: u32,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> Settlement {
        match result {
            Ok(sent) => Settlement::Sent {
                provider_id: sent.provider_id,
            },
            Err(SendError::Permanent { reason }) => Settlement::Dead { error: reason },
            Err(SendError::Retryable {
                reason,
                retry_after,
            }) => match self.next_attempt(
                failed_before.saturating_add(1),
                created,
                now,
                retry_after,
                jitter,
            ) {
                NextAttempt::At(at) => Settlement::Retry { at, error: reason },
                NextAttempt::GiveUp => Settlement::Dead {
                    error: format!("given up: {reason}"),
                },
            },
        }
    }
}

/// A [`ChannelSender`] for tests of whatever drives senders: it answers from a script (one
/// result per attempt, in order; `Sent` with `fake-N` ids once the script is used up) and
/// remembers every message it was handed.
pub struct ScriptedSender {
    channel: Channel,
    script: std::sync::Mutex<std::collections::VecDeque<Result<Sent, SendError>>>,
    attempts: std::sync::Mutex<Vec<OutboundMessage>>,
}

impl ScriptedSender {
    pub fn new(channel: Channel, script: Vec<Result<Sent, SendError>>) -> ScriptedSender {
        ScriptedSender {
            channel,
            script: std::sync::Mutex::new(script.into()),
            attempts: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Every message handed to [`ChannelSender::send`], in order, failed attempts included.
    pub fn attempts(&self) -> Vec<OutboundMessage> {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ChannelSender for ScriptedSender {
    fn channel(&self) -> Channel {
        self.channel
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        let n = {
            let mut attempts = self
                .attempts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            attempts.push(message.clone());
            attempts.len()
        };
        let next = self
            .script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front();
        let result = next.unwrap_or_else(|| {
            Ok(Sent {
                provider_id: format!("fake-{n}"),
            })
        });
        Box::pin(async move { result })
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What a provider says happened to a message it accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Sent,
    Delivered,
    Read,
    /// The provider reported it undeliverable (Twilio `failed`/`undelivered`/`canceled`,
    /// Meta `failed`).
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Failed => "failed",
        }
    }

    /// Providers report out of order (a late `sent` after `delivered`): a status replaces the
    /// stored one only when it is further along. `current` is the outbox row's status
    /// (`pending`, `sent`, `delivered`, `read`, `failed`, `dead`). A failure replaces
    /// `pending`/`sent` (it was never delivered), but not `delivered` or `read`.
    pub fn supersedes(self, current: &str) -> bool {
        let rank = |s: &str| match s {
            "pending" | "dead" => Some(0),
            "sent" => Some(1),
            "delivered" => Some(2),
            "read" => Some(3),
            "failed" => Some(4),
            _ => None,
        };
        let Some(now) = rank(current) else {
            return true;
        };
        match self {
            DeliveryState::Failed => now <= 1,
            other => now < 4 && rank(other.as_str()).is_some_and(|new| new > now),
        }
    }
}

/// A provider's delivery report for a message Sara sent, keyed by the provider's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusUpdate {
    pub channel: Channel,
    /// Twilio's `MessageSid` or the WhatsApp message id: the `provider_id` the outbox recorded.
    pub provider_id: String,
    pub state: DeliveryState,
    /// The provider's error, for a failure ("30003", "131026: Message undeliverable").
    pub error: Option<String>,
    /// When the provider says it happened, if it says.
    pub at: Option<DateTime<Utc>>,
}

/// Where delivery reports go: the store finds the outbox row by provider id and moves its
/// status on (see [`DeliveryState::supersedes`]); a failure may fall back to another channel.
pub trait DeliveryStatuses: Send + Sync + 'static {
    /// Applies one report. `Ok(false)` when no outbound message has that provider id (a
    /// webhook about a message Sara does not know is still acknowledged).
    fn record_status<'a>(
        &'a self,
        update: &'a StatusUpdate,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// One outbox row claimed for sending.
#[derive(Clone, Debug, PartialEq)]
pub struct DueMessage {
    pub id: i64,
    pub message: OutboundMessage,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// The outbox as the relay drives it (the store implements it; see `src/store/outbox.rs`).
pub trait OutboxQueue: Send + Sync + 'static {
    /// Claims for `owner` until `lease_until` up to `limit` due rows of `channel`, at most one
    /// per customer (the oldest pending), oldest first. A row whose payload no longer reads is
    /// given up by the store and not returned.
    fn claim<'a>(
        &'a self,
        channel: Channel,
        owner: &'a str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<DueMessage>, StoreError>>;

    /// Writes an attempt's outcome back; `false` when `owner` no longer holds the claim.
    fn settle<'a>(
        &'a self,
        id: i64,
        owner: &'a str,
        settlement: &'a Settlement,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Messages not yet accepted by their provider (`sara_outbox_backlog`).
    fn backlog(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// Why `message` must not be sent at all, if it must not: an SMS to a number that opted
    /// out (STOP). The relay then settles the row without sending, with this as its error.
    fn withheld<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let _ = message;
        Box::pin(async { Ok(None) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    #[test]
    fn provider_answers_are_sorted_into_retryable_and_permanent() {
        let now = at("2026-12-01T12:00:00Z");
        let cases: &[(u16, Option<&str>, bool, Option<u64>)] = &[
            (500, None, true, None),
            (502, Some("7"), true, Some(7)),
            (503, Some("Tue, 01 Dec 2026 12:00:30 GMT"), true, Some(30)),
            (429, Some("120"), true, Some(120)),
            (429, None, true, None),
            (429, Some("soon"), true, None),
            (429, Some("Tue, 01 Dec 2026 11:00:00 GMT"), true, Some(0)),
            (408, None, true, None),
            (400, Some("5"), false, None),
            (401, None, false, None),
            (403, None, false, None),
            (404, None, false, None),
            (422, None, false, None),
            (301, None, false, None),
        ];
        for &(status, header, retryable, wait) in cases {
            let e = SendError::from_http(status, header, now, "x");
            assert_eq!(e.is_retryable(), retryable, "{status} {header:?}");
            assert_eq!(
                e.retry_after(),
                wait.map(Duration::from_secs),
                "{status} {header:?}"
            );
        }
        assert_eq!(
            SendError::from_http(503, None, now, "").to_string(),
            "temporary delivery failure: HTTP 503"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_nothing_else() {
        let now = at("2026-12-01T12:00:00Z");
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            (" 42 ", Some(42)),
            ("-1", None),
            ("1.5", None),
            ("", None),
            ("+3", None),
            ("Tue, 01 Dec 2026 12:01:00 GMT", Some(60)),
            ("Tue, 01 Dec 2026 12:01:00 +0000", Some(60)),
            ("99999999999999999999999", None),
        ];
        for &(value, want) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                want.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_honours_retry_after_and_gives_up() {
        let policy = RetryPolicy {
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        };
        let created = at("2026-12-01T12:00:00Z");
        let secs = |n: i64| created + chrono::Duration::seconds(n);
        // (failed attempts, now (s after created), Retry-After, jitter, expected)
        type Case = (u32, i64, Option<u64>, f64, Option<i64>);
        let cases: &[Case] = &[
            // jitter 0 → half the base delay, jitter → 1 the whole base delay
            (1, 0, None, 0.0, Some(1)),
            (1, 0, None, 1.0, Some(2)),
            (2, 10, None, 0.0, Some(12)),
            (3, 10, None, 0.5, Some(16)),
            (4, 100, None, 1.0, Some(116)),
            // capped at max
            (9, 100, None, 1.0, Some(160)),
            (40, 100, None, 0.0, Some(130)),
            // Retry-After is a floor, even above max
            (1, 0, Some(30), 0.0, Some(30)),
            (1, 0, Some(120), 0.0, Some(120)),
            // ...but a shorter one does not shorten the backoff
            (5, 0, Some(1), 0.0, Some(16)),
            // the last attempt is clamped to the give-up time
            (9, 3590, None, 1.0, Some(3600)),
            // Retry-After past the give-up time, or the time already passed: give up
            (1, 3500, Some(200), 0.0, None),
            (1, 3600, None, 0.0, None),
            (1, 5000, None, 0.0, None),
            // nonsense jitter is treated as none
            (1, 0, None, f64::NAN, Some(1)),
            (1, 0, None, 7.0, Some(2)),
            // failed = 0 is read as the first failure
            (0, 0, None, 0.0, Some(1)),
        ];
        for &(failed, now, retry_after, jitter, want) in cases {
            let got = policy.next_attempt(
                failed,
                created,
                secs(now),
                retry_after.map(Duration::from_secs),
                jitter,
            );
            let want = want.map_or(NextAttempt::GiveUp, |s| NextAttempt::At(secs(s)));
            assert_eq!(
                got, want,
                "failed {failed} at +{now}s, {retry_after:?}, {jitter}"
            );
        }
    }

    #[test]
    fn random_jitter_stays_within_half_and_whole_delay() {
        let policy = RetryPolicy::default();
        let created = at("2026-12-01T12:00:00Z");
        for _ in 0..200 {
            let NextAttempt::At(t) = policy.next_attempt_jittered(3, created, created, None) else {
                panic!("not given up");
            };
            let wait = (t - created).num_milliseconds();
            assert!((2000..=4000).contains(&wait), "{wait}");
        }
    }

    #[test]
    fn an_attempt_settles_as_sent_retried_or_dead() {
        let policy = RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(600),
        };
        let created = at("2026-12-01T12:00:00Z");
        let secs = |n: i64| created + chrono::Duration::seconds(n);
        let sent = Ok(Sent {
            provider_id: "SM1".into(),
        });
        assert_eq!(
            policy.settle(sent, 3, created, secs(5), 0.0),
            Settlement::Sent {
                provider_id: "SM1".into()
            }
        );
        assert_eq!(
            policy.settle(
                Err(SendError::permanent("HTTP 400")),
                0,
                created,
                secs(0),
                0.0
            ),
            Settlement::Dead {
                error: "HTTP 400".into()
            }
        );
        // The third failure (two before): base 4 s, jitter 0 → 2 s.
        assert_eq!(
            policy.settle(
                Err(SendError::retryable("HTTP 503")),
                2,
                created,
                secs(10),
                0.0
            ),
            Settlement::Retry {
                at: secs(12),
                error: "HTTP 503".into()
            }
        );
        let later = Err(SendError::Retryable {
            reason: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(90)),
        });
        assert_eq!(
            policy.settle(later.clone(), 0, created, secs(10), 0.0),
            Settlement::Retry {
                at: secs(100),
                error: "HTTP 429".into()
            }
        );
        assert_eq!(
            policy.settle(later, 0, created, secs(550), 0.0),
            Settlement::Dead {
                error: "given up: HTTP 429".into()
            }
        );
    }

    #[tokio::test]
    async fn the_scripted_sender_answers_in_order_and_remembers_every_attempt() {
        let sender = ScriptedSender::new(Channel::Sms, vec![Err(SendError::retryable("HTTP 503"))]);
        let message = OutboundMessage {
            key: "k".into(),
            channel: Channel::Sms,
            to: Recipient::Phone(Phone::parse("+15550001111").expect("phone")),
            kind: OutboundKind::Reminder,
            content: Content::text("Hi"),
        };
        assert!(sender.send(&message).await.is_err());
        assert_eq!(
            sender.send(&message).await,
            Ok(Sent {
                provider_id: "fake-2".into()
            })
        );
        assert_eq!(sender.attempts().len(), 2);
        assert_eq!(sender.channel(), Channel::Sms);
    }

    #[test]
    fn choices_are_limited_to_what_whatsapp_shows() {
        let choices = |n: usize| {
            (0..n)
                .map(|i| Choice::new(format!("slot-{i}"), format!("{i}:00 PM")))
                .collect::<Vec<_>>()
        };
        assert!(Content::buttons("Which?", choices(3)).is_ok());
        assert_eq!(
            Content::buttons("Which?", choices(4)),
            Err(ContentError::TooManyChoices(4, 3))
        );
        assert_eq!(
            Content::buttons("Which?", vec![]),
            Err(ContentError::TooManyChoices(0, 3))
        );
        assert!(Content::list("Which?", "Times", choices(10)).is_ok());
        assert_eq!(
            Content::list("Which?", "Times", choices(11)),
            Err(ContentError::TooManyChoices(11, 10))
        );
        let twice = vec![Choice::new("a", "1"), Choice::new("a", "2")];
        assert_eq!(
            Content::buttons("Which?", twice),
            Err(ContentError::DuplicateId("a".into()))
        );
    }

    #[test]
    fn a_message_survives_the_outbox_as_json() {
        let message = OutboundMessage {
            key: "wamid.1:0".into(),
            channel: Channel::WhatsApp,
            to: Recipient::Phone(Phone::parse("+15550001111").expect("phone")),
            kind: OutboundKind::Reply,
            content: Content::list("Which?", "Times", vec![Choice::new("a", "9:00 AM")])
                .expect("valid"),
        };
        let json = serde_json::to_string(&message).expect("serializes");
        assert!(json.contains(r#""type":"list""#), "{json}");
        let back: OutboundMessage = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, message);
        for kind in OutboundKind::ALL {
            assert_eq!(OutboundKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(OutboundKind::parse("other"), None);
    }

    #[test]
    fn a_status_moves_the_row_only_forward() {
        use DeliveryState::*;
        let cases: &[(DeliveryState, &str, bool)] = &[
            (Sent, "pending", true),
            (Sent, "sent", false),
            (Sent, "delivered", false),
            (Delivered, "sent", true),
            (Delivered, "pending", true),
            (Read, "delivered", true),
            (Delivered, "read", false),
            (Failed, "pending", true),
            (Failed, "sent", true),
            (Failed, "delivered", false),
            (Failed, "failed", false),
            (Delivered, "failed", false),
            (Sent, "dead", true),
            (Read, "something new", true),
        ];
        for &(state, current, want) in cases {
            assert_eq!(state.supersedes(current), want, "{state:?} over {current}");
        }
    }
}
