//! Configuration: `config.toml`, then `SARA_SECTION__KEY` environment variables on top.
//! Secrets (tokens, keys) belong in the environment; the file in the repo has none.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use sara_actors::business::{Business, Faq, Resource, Service, Staff, WeeklyHours};
use sara_actors::engine::EngineSettings;
use sara_actors::model::Phone;
use sara_actors::outbound::RetryPolicy;
use sara_actors::reminders::{QuietHours, ReminderSettings, ReminderTemplate};
use sara_actors::retention::RetentionSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

/// A setting that must never be printed (a token, a key, a URL that may hold a password):
/// `Debug` shows `[REDACTED]`, and the value is only read through [`Secret::expose`]. It is
/// never serialized (each such field is `skip_serializing`).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        Ok(Secret::new(lenient_string(d)?))
    }
}

/// `ai.provider`: who understands messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiProvider {
    /// The rule NLU alone; no key needed.
    Rules,
    /// The rules plus an OpenAI-compatible model (key from `OPENAI_API_KEY`).
    #[serde(rename = "openai")]
    OpenAi,
}

/// `ai.routing`: with a model, when it is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiRouting {
    /// Only when the rules are below `ai.confidence_threshold`.
    Hybrid,
    /// For every message.
    Always,
}

/// `calendar.provider`: where bookings live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalendarProvider {
    /// The bookings table of Sara's own database.
    Local,
    /// A Google Calendar (service account).
    Google,
}

/// The database `storage.database_url` names, by its scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageBackend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub business: BusinessConfig,
    pub faq: Vec<Faq>,
    pub storage: StorageConfig,
    pub ai: AiConfig,
    pub calendar: CalendarConfig,
    pub twilio: TwilioConfig,
    pub whatsapp: WhatsAppConfig,
    pub email: EmailConfig,
    pub admin: AdminConfig,
    pub debug: DebugConfig,
    pub engine: EngineConfig,
    pub limits: LimitsConfig,
    pub reminders: RemindersConfig,
    pub outbox: OutboxConfig,
    pub voice: VoiceConfig,
    pub privacy: PrivacyConfig,
}

/// `[privacy]`: how long Sara keeps personal data that is not a booking.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PrivacyConfig {
    /// Message text (customers', Sara's, staff's) older than this many days is redacted by a
    /// daily job; bookings and counts stay. 0 = kept until the caller is forgotten.
    pub retention_days: u32,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            retention_days: 365,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub bind: String,
    /// The base URL providers call; signatures are checked against it, never the Host header.
    pub public_url: String,
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight turns.
    pub shutdown_grace_secs: u64,
    /// Timeouts and the cap of inbound connections (keys of `[server]` too).
    #[serde(flatten)]
    pub connections: ConnectionLimits,
}

/// How long and how many inbound connections may stay open (`[server]` keys; see
/// `http::server`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionLimits {
    /// A request head (and, on a kept-alive connection, the next one) must arrive within this.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight and no byte moving for this long is closed.
    pub idle_timeout_ms: u64,
    /// Open connections at most; lowered at start when the open-file limit is too small.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
            max_connections: 1024,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 20,
            connections: ConnectionLimits::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct BusinessConfig {
    pub name: String,
    pub timezone: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub phone: Option<String>,
    pub slot_minutes: u32,
    pub buffer_minutes: u32,
    pub min_notice_minutes: u32,
    pub horizon_days: u32,
    /// Weekday (`mon`..`sun`) → `"HH:MM-HH:MM,..."`; absent = closed.
    pub hours: BTreeMap<String, String>,
    /// `"HH:MM-HH:MM"` ranges of every open day that are never offered (lunch).
    pub breaks: Vec<String>,
    /// Whole days the business is closed: `"YYYY-MM-DD"`, or `"A..B"` for a range (both
    /// ends closed).
    pub closures: Vec<String>,
    pub services: Vec<Service>,
    pub resources: Vec<Resource>,
    pub staff: Vec<StaffConfig>,
    /// Per customer (phone), held bookings on one local day; 0 = no limit.
    pub max_bookings_per_day: u32,
    /// Per customer, held upcoming bookings in all; 0 = no limit.
    pub max_upcoming_bookings: u32,
    /// Cancels and moves later than this before the appointment go to staff; 0 = none.
    pub cancel_notice_minutes: u32,
    pub form_expiry_minutes: u32,
    pub handover_minutes: u32,
    pub cancellation_policy: Option<String>,
}

/// One `[[business.staff]]` entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StaffConfig {
    pub name: String,
    /// Service names they do; absent = every service.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Weekday → ranges, like `[business.hours]`; absent = the business hours.
    #[serde(default)]
    pub hours: Option<BTreeMap<String, String>>,
}

/// The longest closure range accepted (a typo such as 2026..2062 must not expand forever).
const MAX_CLOSURE_DAYS: i64 = 366;

/// Parses `[business.hours]`-shaped weekday ranges; `key` names the table in errors.
fn weekly_hours(table: &BTreeMap<String, String>, key: &str) -> Result<WeeklyHours, ConfigError> {
    let mut hours = WeeklyHours::default();
    for (day, spec) in table {
        let index = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .position(|d| d.eq_ignore_ascii_case(day))
            .ok_or_else(|| {
                ConfigError::Invalid(format!("{key}.{day}: not a weekday (mon..sun)"))
            })?;
        hours.days[index] = WeeklyHours::parse_day(spec)
            .map_err(|e| ConfigError::Invalid(format!("{key}.{day}: {e}")))?;
    }
    Ok(hours)
}

/// `"2026-12-25"` or `"2026-12-24..2026-12-26"` as the days it closes.
fn closure_days(spec: &str) -> Result<Vec<NaiveDate>, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "business.closures: {spec:?} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"
        ))
    };
    let date = |s: &str| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad());
    let (first, last) = match spec.split_once("..") {
        Some((a, b)) => (date(a)?, date(b)?),
        None => (date(spec)?, date(spec)?),
    };
    let days = (last - first).num_days();
    if !(0..MAX_CLOSURE_DAYS).contains(&days) {
        return Err(ConfigError::Invalid(format!(
            "business.closures: {spec:?} must run forwards and span at most {MAX_CLOSURE_DAYS} days"
        )));
    }
    Ok((0..=days)
        .map(|d| first + chrono::Duration::days(d))
        .collect())
}

impl Default for BusinessConfig {
    fn default() -> Self {
        BusinessConfig {
            name: "Sara".into(),
            timezone: "UTC".into(),
            phone: None,
            slot_minutes: 15,
            buffer_minutes: 0,
            min_notice_minutes: 60,
            horizon_days: 60,
            hours: BTreeMap::new(),
            breaks: vec![],
            closures: vec![],
            services: vec![],
            resources: vec![],
            staff: vec![],
            max_bookings_per_day: 0,
            max_upcoming_bookings: 0,
            cancel_notice_minutes: 0,
            form_expiry_minutes: 7 * 24 * 60,
            handover_minutes: 24 * 60,
            cancellation_policy: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// May hold a password (`postgres://user:password@host/db`).
    #[serde(skip_serializing)]
    pub database_url: Secret,
    /// May hold a password (`redis://:password@host`).
    #[serde(skip_serializing)]
    pub redis_url: Option<Secret>,
    #[serde(skip_serializing)]
    pub encryption_key: Option<Secret>,
    pub max_connections: u32,
    /// How long a request waits for a pooled database connection before it is answered 503.
    pub acquire_timeout_ms: u64,
    /// PostgreSQL `statement_timeout`: no query holds a connection longer than this.
    pub statement_timeout_ms: u64,
    /// Prefix of every Redis key, so that several deployments (or test runs) can share one.
    pub redis_prefix: String,
    /// Deadline of every Redis call; past it Sara carries on without Redis.
    pub redis_timeout_ms: u64,
    /// How long a conversation's lease lasts unless released (longer than a turn takes).
    pub lease_ttl_ms: u64,
    /// How long a turn waits for a lease another instance holds before answering 503.
    pub lease_wait_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database_url: Secret::new("sqlite://sara.db"),
            redis_url: None,
            encryption_key: None,
            max_connections: 16,
            acquire_timeout_ms: 2000,
            statement_timeout_ms: 10_000,
            redis_prefix: "sara".into(),
            redis_timeout_ms: 250,
            lease_ttl_ms: 15_000,
            lease_wait_ms: 5000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AiConfig {
    pub provider: AiProvider,
    pub api_base: Option<String>,
    pub model: Option<String>,
    pub routing: AiRouting,
    pub chat_deadline_ms: u64,
    pub voice_deadline_ms: u64,
    /// With `routing = "hybrid"`, the rules' confidence at or above which the model is not asked.
    pub confidence_threshold: f32,
    /// Consecutive model failures or timeouts that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the open breaker skips the model before probing it again.
    pub breaker_cooldown_ms: u64,
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            provider: AiProvider::Rules,
            api_base: None,
            model: None,
            routing: AiRouting::Hybrid,
            chat_deadline_ms: 6000,
            voice_deadline_ms: 2500,
            confidence_threshold: 0.8,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CalendarConfig {
    pub provider: CalendarProvider,
    pub google_base_url: String,
    pub calendar_id: Option<String>,
    pub credentials: Option<String>,
    /// Deadline of each Google Calendar API call.
    pub google_deadline_ms: u64,
    /// With Google: how often the calendar's changes are read back (events.list with a sync
    /// token); one instance at a time does it.
    pub sync_secs: u64,
    /// With Google: how long a held booking's write is retried while Google cannot be
    /// reached before the hold is released and the customer told.
    pub write_give_up_minutes: u64,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            provider: CalendarProvider::Local,
            google_base_url: "https://www.googleapis.com/calendar/v3/".into(),
            calendar_id: None,
            credentials: None,
            google_deadline_ms: 10_000,
            sync_secs: 60,
            write_give_up_minutes: 60,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TwilioConfig {
    #[serde(skip_serializing)]
    pub auth_token: Option<Secret>,
    /// The secret of a Twilio Webhooks SharedKey, for webhooks a Webhook Rule signs with it
    /// (they carry `X-Twilio-Webhooks-Signature-Settings`).
    #[serde(skip_serializing)]
    pub shared_key_secret: Option<Secret>,
    /// The account (`AC…`) that sends SMS by REST; with `from` it enables messages Sara starts.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub account_sid: Option<String>,
    /// An E.164 number of the account, or a Messaging Service SID (`MG…`).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub from: Option<String>,
    /// Where Twilio's REST API lives (a local stand-in in tests).
    pub api_base: String,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        TwilioConfig {
            auth_token: None,
            shared_key_secret: None,
            account_sid: None,
            from: None,
            api_base: "https://api.twilio.com".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WhatsAppConfig {
    #[serde(skip_serializing)]
    pub app_secret: Option<Secret>,
    #[serde(skip_serializing)]
    pub verify_token: Option<Secret>,
    #[serde(skip_serializing)]
    pub access_token: Option<Secret>,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub phone_number_id: Option<String>,
    /// Where the Graph API lives (a local stand-in in tests).
    pub graph_base_url: String,
    pub graph_version: String,
    /// The approved template sent when the 24-hour customer-service window is closed; body
    /// parameters {{1}} first name, {{2}} service, {{3}} day and time.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub reminder_template: Option<String>,
    pub template_language: String,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        WhatsAppConfig {
            app_secret: None,
            verify_token: None,
            access_token: None,
            phone_number_id: None,
            graph_base_url: "https://graph.facebook.com".into(),
            graph_version: "v21.0".into(),
            reminder_template: None,
            template_language: "en_US".into(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailConfig {
    /// May carry SMTP credentials.
    #[serde(skip_serializing)]
    pub smtp_url: Option<Secret>,
    pub from: Option<String>,
    /// Where hand-over alerts go (the front desk's address).
    pub staff: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    #[serde(skip_serializing)]
    pub token: Option<Secret>,
    /// How long a console login lasts before the admin token must be given again.
    pub session_hours: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: None,
            session_hours: 12,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DebugConfig {
    pub faults: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// A conversation with no message for this long leaves memory (its state stays stored).
    pub idle_timeout_secs: u64,
    pub turn_timeout_secs: u64,
    /// Failures of one conversation within the window that hand it over to staff.
    pub max_failures: u32,
    pub failure_window_secs: u64,
    pub quarantine_secs: u64,
    /// Most turns committed in one transaction.
    pub max_batch: usize,
    /// Group commits that may run at once; 0 picks for the backend: 1 on SQLite (one writer
    /// at a time anyway), half the pool on PostgreSQL (commits overlap there, and each waits
    /// for its WAL flush).
    pub commits_in_flight: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            idle_timeout_secs: 600,
            turn_timeout_secs: 20,
            max_failures: 3,
            failure_window_secs: 300,
            quarantine_secs: 3600,
            max_batch: 512,
            commits_in_flight: 0,
        }
    }
}

/// Rate limits (fixed one-minute windows). Generous by default: they stop floods, not people.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Signed webhooks per caller phone per minute.
    pub phone_per_minute: u32,
    /// Requests that fail the signature check, per source IP per minute (signed traffic is
    /// never limited per IP: providers send everyone's webhooks from a few addresses).
    pub bad_signature_per_ip_per_minute: u32,
    /// Failed admin requests (401) per source IP per minute; past it every admin request
    /// from there gets 429 until the minute is over. 0 = no limit.
    pub admin_failures_per_ip_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            phone_per_minute: 120,
            bad_signature_per_ip_per_minute: 60,
            admin_failures_per_ip_per_minute: 10,
        }
    }
}

/// `[reminders]`: when reminders go out before each confirmed booking.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RemindersConfig {
    /// Minutes before the appointment; a whole number of days keeps the local time (DST too).
    pub offsets_minutes: Vec<u32>,
    /// Local hours with no reminder, `"HH:MM-HH:MM"` (may wrap midnight); `""` = none.
    pub quiet_hours: String,
}

impl Default for RemindersConfig {
    fn default() -> Self {
        RemindersConfig {
            offsets_minutes: vec![1440, 120],
            quiet_hours: "21:00-08:00".into(),
        }
    }
}

impl RemindersConfig {
    /// The checked settings: offsets of at least one minute and readable quiet hours.
    pub fn settings(&self) -> Result<ReminderSettings, ConfigError> {
        if self.offsets_minutes.contains(&0) {
            return Err(ConfigError::Invalid(
                "reminders.offsets_minutes: every offset must be at least 1 minute".into(),
            ));
        }
        let quiet_hours = match self.quiet_hours.trim() {
            "" => None,
            spec => Some(
                QuietHours::parse(spec)
                    .map_err(|e| ConfigError::Invalid(format!("reminders.quiet_hours: {e}")))?,
            ),
        };
        Ok(ReminderSettings {
            offsets_minutes: self.offsets_minutes.clone(),
            quiet_hours,
        })
    }
}

/// `[voice]`: how phone calls are carried (`SARA_VOICE__…`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceConfig {
    /// `gather` (one `<Gather input="speech">` per turn) or `relay` (ConversationRelay).
    pub mode: VoiceMode,
    /// A Gather transcript below this `Confidence` is asked again (twice at most).
    pub min_confidence: f32,
    /// Relay: a turn whose answer is not ready after this long gets a filler line first.
    pub filler_ms: u64,
    /// Relay: the text-to-speech voice and language Twilio speaks with (`voice` unset =
    /// Twilio's default for the provider).
    pub language: String,
    pub tts_provider: String,
    pub voice: Option<String>,
    pub transcription_provider: String,
    /// Voicemail: ask Twilio for a transcription of the recording.
    pub transcribe_voicemail: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoiceMode {
    #[default]
    Gather,
    Relay,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            mode: VoiceMode::Gather,
            min_confidence: 0.4,
            filler_ms: 700,
            language: "en-US".into(),
            tts_provider: "ElevenLabs".into(),
            voice: None,
            transcription_provider: "Deepgram".into(),
            transcribe_voicemail: true,
        }
    }
}

/// `[outbox]`: how long and how often a message that a provider refused for now is retried.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxConfig {
    /// Wait before the second attempt; doubled (with jitter) for each one after.
    pub first_backoff_ms: u64,
    /// The longest wait between two attempts (a provider's `Retry-After` may ask for more).
    pub max_backoff_secs: u64,
    /// After this long since the message was written it is given up (`dead`).
    pub give_up_minutes: u64,
    /// How long an instance's claim on a message it is sending keeps others off it (a
    /// killed instance's claim is taken over after this).
    pub claim_lease_secs: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            first_backoff_ms: 500,
            max_backoff_secs: 300,
            give_up_minutes: 24 * 60,
            claim_lease_secs: 30,
        }
    }
}

impl OutboxConfig {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_millis(self.first_backoff_ms.max(1)),
            max: Duration::from_secs(self.max_backoff_secs.max(1)),
            give_up_after: Duration::from_secs(self.give_up_minutes.saturating_mul(60)),
        }
    }
}

/// A TOML or environment value read as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    S(String),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

impl Raw {
    fn text(self) -> String {
        match self {
            Raw::S(s) => s,
            Raw::I(i) => i.to_string(),
            Raw::U(u) => u.to_string(),
            Raw::F(f) => f.to_string(),
            Raw::B(b) => b.to_string(),
        }
    }
}

/// Environment values are parsed like TOML, so a token such as `12345` arrives as a number;
/// string settings accept either.
fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Raw>::deserialize(d)?.map(Raw::text))
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Raw::deserialize(d)?.text())
}

impl StorageConfig {
    /// The backend `database_url` names; a clear error for any other scheme.
    pub fn backend(&self) -> Result<StorageBackend, ConfigError> {
        let url = self.database_url.expose();
        if url.starts_with("sqlite:") {
            Ok(StorageBackend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(StorageBackend::Postgres)
        } else {
            Err(ConfigError::Invalid(
                "storage.database_url must start with sqlite:, postgres:// or postgresql://".into(),
            ))
        }
    }

    /// The Redis URL when one is set (an empty value means none).
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url
            .as_ref()
            .map(Secret::expose)
            .filter(|u| !u.is_empty())
    }
}

impl Config {
    /// Loads `path` (if it exists) and then the `SARA_` environment on top.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config: Config = Self::figment(path)
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.storage.backend()?;
        Ok(config)
    }

    pub fn figment(path: &Path) -> Figment {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(Env::prefixed("SARA_").split("__").ignore(&["config"]))
    }

    /// The business, checked: a bad time zone or opening hours stop the start with a clear
    /// message instead of a receptionist that offers wrong times.
    pub fn business(&self) -> Result<Business, ConfigError> {
        let b = &self.business;
        let timezone: Tz = b.timezone.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "business.timezone {:?} is not an IANA time zone",
                b.timezone
            ))
        })?;
        let hours = weekly_hours(&b.hours, "business.hours")?;
        let phone = match &b.phone {
            Some(p) => Some(Phone::parse(p).ok_or_else(|| {
                ConfigError::Invalid("business.phone is not a phone number".into())
            })?),
            None => None,
        };
        if b.slot_minutes == 0 {
            return Err(ConfigError::Invalid(
                "business.slot_minutes must be at least 1".into(),
            ));
        }
        if b.services.is_empty() || b.services.iter().any(|s| s.minutes == 0) {
            return Err(ConfigError::Invalid(
                "business.services: list at least one service with minutes > 0".into(),
            ));
        }
        let breaks = b
            .breaks
            .iter()
            .map(|spec| {
                WeeklyHours::parse_day(spec)
                    .map_err(|e| ConfigError::Invalid(format!("business.breaks: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        let mut closures = Vec::new();
        for spec in &b.closures {
            closures.extend(closure_days(spec)?);
        }
        closures.sort();
        closures.dedup();
        let mut staff = Vec::with_capacity(b.staff.len());
        for s in &b.staff {
            if s.name.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "business.staff: every staff member needs a name".into(),
                ));
            }
            if staff
                .iter()
                .any(|o: &Staff| o.name.eq_ignore_ascii_case(s.name.trim()))
            {
                return Err(ConfigError::Invalid(format!(
                    "business.staff: {:?} is listed twice",
                    s.name
                )));
            }
            for service in s.services.iter().flatten() {
                if !b
                    .services
                    .iter()
                    .any(|x| x.name.eq_ignore_ascii_case(service))
                {
                    return Err(ConfigError::Invalid(format!(
                        "business.staff {:?}: {service:?} is not one of business.services",
                        s.name
                    )));
                }
            }
            let hours = match &s.hours {
                Some(table) => Some(weekly_hours(
                    table,
                    &format!("business.staff {:?} hours", s.name),
                )?),
                None => None,
            };
            staff.push(Staff {
                name: s.name.trim().to_string(),
                services: s.services.clone(),
                hours,
            });
        }
        for service in &b.services {
            for need in &service.needs {
                if !b
                    .resources
                    .iter()
                    .any(|r| r.name.eq_ignore_ascii_case(need))
                {
                    return Err(ConfigError::Invalid(format!(
                        "business.services {:?}: needs {need:?}, which is not in business.resources",
                        service.name
                    )));
                }
            }
        }
        if let Some(r) = b.resources.iter().find(|r| r.count == 0) {
            return Err(ConfigError::Invalid(format!(
                "business.resources {:?}: count must be at least 1",
                r.name
            )));
        }
        Ok(Business {
            name: b.name.clone(),
            timezone,
            phone,
            slot_minutes: b.slot_minutes,
            buffer_minutes: b.buffer_minutes,
            min_notice_minutes: b.min_notice_minutes,
            horizon_days: b.horizon_days,
            hours,
            breaks,
            closures,
            services: b.services.clone(),
            resources: b.resources.clone(),
            staff,
            max_bookings_per_day: b.max_bookings_per_day,
            max_upcoming_bookings: b.max_upcoming_bookings,
            cancel_notice_minutes: b.cancel_notice_minutes,
            faq: self.faq.clone(),
            form_expiry_minutes: b.form_expiry_minutes,
            handover_minutes: b.handover_minutes,
            cancellation_policy: b.cancellation_policy.clone(),
        })
    }

    /// The engine's settings; `Invalid` when `[reminders]` is.
    pub fn engine_settings(&self) -> Result<EngineSettings, ConfigError> {
        let e = &self.engine;
        let reminder_template = (self.whatsapp.reminder_template.as_deref())
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| ReminderTemplate {
                name: name.to_string(),
                language: self.whatsapp.template_language.clone(),
            });
        Ok(EngineSettings {
            idle_timeout: Duration::from_secs(e.idle_timeout_secs.max(1)),
            chat_deadline: Duration::from_millis(self.ai.chat_deadline_ms),
            voice_deadline: Duration::from_millis(self.ai.voice_deadline_ms),
            turn_timeout: Duration::from_secs(e.turn_timeout_secs.max(1)),
            max_failures: e.max_failures.max(1),
            failure_window: Duration::from_secs(e.failure_window_secs),
            quarantine: Duration::from_secs(e.quarantine_secs),
            max_batch: e.max_batch.max(1),
            commits_in_flight: match e.commits_in_flight {
                0 if self.storage.backend().ok() == Some(StorageBackend::Postgres) => {
                    (self.storage.max_connections as usize / 2).max(1)
                }
                0 => 1,
                n => n,
            },
            lease_wait: Duration::from_millis(self.storage.lease_wait_ms),
            delivery_retry: self.outbox.retry_policy(),
            outbox_lease: Duration::from_secs(self.outbox.claim_lease_secs.max(1)),
            reminders: self.reminders.settings()?,
            reminder_template,
            job_lease: Duration::from_secs(self.outbox.claim_lease_secs.max(1)),
            retention: (self.privacy.retention_days > 0).then_some(RetentionSettings {
                days: self.privacy.retention_days,
            }),
            calendar_sync: Duration::from_secs(self.calendar.sync_secs.max(1)),
            ..EngineSettings::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn business_from(toml: &str) -> Result<Business, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.business()
    }

    const WEEK: &str = r#"
[business]
timezone = "America/New_York"
breaks = ["12:00-13:00"]
closures = ["2026-12-24..2026-12-26", "2027-01-01"]
max_bookings_per_day = 1
max_upcoming_bookings = 3
cancel_notice_minutes = 1440
[business.hours]
mon = "09:00-17:00"
[[business.services]]
name = "Cleaning"
minutes = 45
[[business.services]]
name = "Whitening"
minutes = 60
buffer_before_minutes = 5
buffer_after_minutes = 15
min_notice_minutes = 1440
horizon_days = 30
needs = ["chair"]
[[business.resources]]
name = "chair"
count = 2
[[business.staff]]
name = "Anna"
services = ["Cleaning", "Whitening"]
[business.staff.hours]
mon = "09:00-13:00"
wed = "13:00-17:00"
[[business.staff]]
name = "Ben"
"#;

    #[test]
    fn the_rules_of_a_clinics_week_load_as_the_contract_names_them() {
        let b = business_from(WEEK).expect("valid");
        let t = |h| chrono::NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        assert_eq!(b.breaks, [(t(12), t(13))]);
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        assert_eq!(
            b.closures,
            [
                d(12, 24),
                d(12, 25),
                d(12, 26),
                NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
            ]
        );
        assert_eq!(
            (
                b.max_bookings_per_day,
                b.max_upcoming_bookings,
                b.cancel_notice_minutes
            ),
            (1, 3, 1440)
        );
        let w = b.service("whitening").unwrap();
        assert_eq!(
            (
                w.buffer_before_minutes,
                w.buffer_after_minutes,
                w.min_notice_minutes,
                w.horizon_days
            ),
            (5, Some(15), Some(1440), Some(30))
        );
        assert_eq!(w.needs, ["chair"]);
        assert_eq!(b.resource("chair").map(|r| r.count), Some(2));
        let anna = b.staff_member("anna").unwrap();
        assert!(anna.does("cleaning") && !anna.does("Consultation"));
        let hours = anna.hours.as_ref().unwrap();
        assert_eq!(hours.on(chrono::Weekday::Mon), [(t(9), t(13))]);
        assert!(hours.on(chrono::Weekday::Tue).is_empty());
        let ben = b.staff_member("Ben").unwrap();
        assert!(ben.services.is_none() && ben.hours.is_none());
    }

    #[test]
    fn nonsense_in_the_rules_is_refused_at_start() {
        for (bad, why) in [
            (r#"breaks = ["noon"]"#, "business.breaks"),
            (r#"closures = ["2026-12-26..2026-12-24"]"#, "forwards"),
            (r#"closures = ["2026-01-01..2036-01-01"]"#, "at most"),
            (r#"closures = ["Christmas"]"#, "YYYY-MM-DD"),
        ] {
            let toml = WEEK.replacen("[business]\n", &format!("[business]\n{bad}\n"), 1);
            let toml = if bad.starts_with("breaks") {
                toml.replacen("breaks = [\"12:00-13:00\"]\n", "", 1)
            } else {
                toml.replacen(
                    "closures = [\"2026-12-24..2026-12-26\", \"2027-01-01\"]\n",
                    "",
                    1,
                )
            };
            let err = business_from(&toml).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        for (from, to, why) in [
            (r#"needs = ["chair"]"#, r#"needs = ["laser"]"#, "laser"),
            ("count = 2", "count = 0", "count"),
            (
                r#"services = ["Cleaning", "Whitening"]"#,
                r#"services = ["Botox"]"#,
                "Botox",
            ),
            (r#"name = "Ben""#, r#"name = "anna""#, "twice"),
            (
                r#"wed = "13:00-17:00""#,
                r#"someday = "13:00-17:00""#,
                "someday",
            ),
        ] {
            let err = business_from(&WEEK.replacen(from, to, 1))
                .expect_err(to)
                .to_string();
            assert!(err.contains(why), "{to}: {err}");
        }
    }

    #[test]
    fn the_repository_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&path))
            .extract()
            .expect("config.toml parses");
        let business = config.business().expect("config.toml business is valid");
        assert_eq!(business.timezone, chrono_tz::America::New_York);
        assert!(business.services.len() >= 3);
        assert!(config.faq.len() >= 4);
        let reminders = config
            .reminders
            .settings()
            .expect("config.toml reminders are valid");
        assert_eq!(reminders, ReminderSettings::default());
        assert!(
            config.twilio.auth_token.is_none(),
            "no secret in the repository config"
        );
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed"
    )]
    fn environment_overrides_the_file_and_numeric_tokens_stay_strings() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[server]\nbind = \"0.0.0.0:1\"\n")?;
            jail.set_env("SARA_SERVER__BIND", "127.0.0.1:0");
            jail.set_env("SARA_TWILIO__AUTH_TOKEN", "12345");
            jail.set_env("SARA_DEBUG__FAULTS", "true");
            let config = Config::load(Path::new("c.toml")).expect("loads");
            assert_eq!(config.server.bind, "127.0.0.1:0");
            assert_eq!(
                config.twilio.auth_token.as_ref().map(Secret::expose),
                Some("12345")
            );
            assert!(config.debug.faults);
            Ok(())
        });
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed"
    )]
    fn reminders_and_twilio_rest_come_from_the_file_or_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[reminders]\noffsets_minutes = [2880, 60]\nquiet_hours = \"22:00-07:30\"\n",
            )?;
            jail.set_env("SARA_TWILIO__ACCOUNT_SID", "AC0123");
            jail.set_env("SARA_TWILIO__FROM", "+15550100000");
            jail.set_env("SARA_WHATSAPP__REMINDER_TEMPLATE", "appointment_reminder");
            let config = Config::load(Path::new("c.toml")).expect("loads");
            let settings = config.reminders.settings().expect("valid");
            assert_eq!(settings.offsets_minutes, [2880, 60]);
            let quiet = settings.quiet_hours.expect("quiet hours");
            assert_eq!(quiet.start.to_string(), "22:00:00");
            assert_eq!(quiet.end.to_string(), "07:30:00");
            assert_eq!(config.twilio.account_sid.as_deref(), Some("AC0123"));
            // The environment reads "+15550100000" as a number; the sender is the same.
            let from = config.twilio.from.as_deref().expect("from");
            assert_eq!(
                crate::channels::twilio_rest::TwilioSender::parse(from).expect("sender"),
                crate::channels::twilio_rest::TwilioSender::Number(
                    Phone::parse("+15550100000").expect("phone")
                )
            );
            assert_eq!(config.twilio.api_base, "https://api.twilio.com");
            assert_eq!(
                config.whatsapp.reminder_template.as_deref(),
                Some("appointment_reminder")
            );
            assert_eq!(config.whatsapp.template_language, "en_US");
            jail.set_env("SARA_REMINDERS__OFFSETS_MINUTES", "[1440]");
            jail.set_env("SARA_REMINDERS__QUIET_HOURS", "");
            let config = Config::load(Path::new("c.toml")).expect("loads");
            let settings = config.reminders.settings().expect("valid");
            assert_eq!(settings.offsets_minutes, [1440]);
            assert_eq!(settings.quiet_hours, None);
            Ok(())
        });
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed"
    )]
    fn a_bad_provider_routing_or_database_is_a_clear_error_at_load() {
        for (key, value, names) in [
            ("SARA_AI__PROVIDER", "anthropic", "ai.provider"),
            ("SARA_AI__ROUTING", "sometimes", "ai.routing"),
            ("SARA_CALENDAR__PROVIDER", "outlook", "calendar.provider"),
            (
                "SARA_STORAGE__DATABASE_URL",
                "mysql://x/y",
                "storage.database_url",
            ),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env(key, value);
                let error = Config::load(Path::new("absent.toml"))
                    .expect_err("refused")
                    .to_string();
                assert!(error.to_lowercase().contains(names), "{key}: {error}");
                Ok(())
            });
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("SARA_AI__PROVIDER", "openai");
            jail.set_env("SARA_CALENDAR__PROVIDER", "google");
            let config = Config::load(Path::new("absent.toml")).expect("loads");
            assert_eq!(config.ai.provider, AiProvider::OpenAi);
            assert_eq!(config.calendar.provider, CalendarProvider::Google);
            Ok(())
        });
    }

    #[test]
    fn bad_reminder_settings_stop_the_start_with_a_clear_message() {
        let bad = |offsets: Vec<u32>, quiet: &str| {
            RemindersConfig {
                offsets_minutes: offsets,
                quiet_hours: quiet.into(),
            }
            .settings()
            .expect_err("refused")
            .to_string()
        };
        assert!(bad(vec![0], "21:00-08:00").contains("offsets_minutes"));
        assert!(bad(vec![60], "9pm-8am").contains("reminders.quiet_hours"));
        let defaults = RemindersConfig::default().settings().expect("valid");
        assert_eq!(defaults, ReminderSettings::default());
        let policy = OutboxConfig::default().retry_policy();
        assert_eq!(policy.first, Duration::from_millis(500));
        assert_eq!(policy.give_up_after, Duration::from_secs(86_400));
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment::Jail's closure signature is fixed"
    )]
    fn debug_output_never_shows_a_secret() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SARA_ADMIN__TOKEN", "admin-s3cret");
            jail.set_env("SARA_TWILIO__AUTH_TOKEN", "twilio-s3cret");
            jail.set_env("SARA_WHATSAPP__ACCESS_TOKEN", "graph-s3cret");
            jail.set_env(
                "SARA_STORAGE__DATABASE_URL",
                "postgres://sara:db-s3cret@db/sara",
            );
            jail.set_env("SARA_STORAGE__REDIS_URL", "redis://:redis-s3cret@cache");
            jail.set_env("SARA_EMAIL__SMTP_URL", "smtp://desk:mail-s3cret@mail");
            let config = Config::load(Path::new("absent.toml")).expect("loads");
            let printed = format!("{config:?}");
            assert!(!printed.contains("s3cret"), "{printed}");
            assert_eq!(
                config.storage.backend().ok(),
                Some(StorageBackend::Postgres)
            );
            assert_eq!(
                config.storage.redis_url(),
                Some("redis://:redis-s3cret@cache")
            );
            Ok(())
        });
    }
}
