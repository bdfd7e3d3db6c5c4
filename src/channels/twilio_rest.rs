//! Twilio's REST API for the SMS Sara starts herself (confirmations to callers, reminders,
//! staff replies), the message status callbacks Twilio sends back about them, and the opt-out
//! keywords a customer texts in.
//!
//! A message is `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json` with the form
//! fields `To`, `From` (or `MessagingServiceSid` for an `MG…` sender), `Body` and
//! `StatusCallback`, under HTTP basic auth AccountSid:auth token; Twilio answers 201 with the
//! message resource, whose `sid` Sara records.

use std::time::Duration;

use chrono::Utc;
use sara_actors::model::{Channel, Phone};
use sara_actors::outbound::{
    ChannelSender, DeliveryState, OutboundMessage, Recipient, SendError, Sent, StatusUpdate,
};
use sara_actors::ports::BoxFuture;
use serde::Deserialize;

use crate::config::Config;

/// Twilio cuts a message body at 1,600 characters.
const MAX_BODY_CHARS: usize = 1600;

/// Where the status callbacks of Sara's messages arrive (under the public URL).
pub const STATUS_CALLBACK_PATH: &str = "/webhook/sms/status";

#[derive(Debug, thiserror::Error)]
pub enum TwilioRestError {
    #[error("twilio.{0} is not set")]
    Missing(&'static str),
    #[error("twilio.from {0:?} is neither an E.164 number nor a Messaging Service SID (MG…)")]
    From(String),
    #[error("twilio client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Who a message is from: a number of the account, or a Messaging Service that picks one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TwilioSender {
    Number(Phone),
    MessagingService(String),
}

impl TwilioSender {
    /// `twilio.from`: an `MG…` sid is a Messaging Service, anything else must be a number.
    pub fn parse(from: &str) -> Result<TwilioSender, TwilioRestError> {
        let from = from.trim();
        if let Some(hex) = from.strip_prefix("MG") {
            let sid_ok = hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            return if sid_ok {
                Ok(TwilioSender::MessagingService(from.to_string()))
            } else {
                Err(TwilioRestError::From(from.to_string()))
            };
        }
        Phone::parse(from)
            .map(TwilioSender::Number)
            .ok_or_else(|| TwilioRestError::From(from.to_string()))
    }
}

/// What the client needs, from `[twilio]` and `server.public_url`.
#[derive(Clone, Debug)]
pub struct TwilioRestSettings {
    pub api_base: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: TwilioSender,
    /// `server.public_url`; the status callback is this plus [`STATUS_CALLBACK_PATH`].
    pub public_url: String,
    pub timeout: Duration,
}

/// Sends SMS through Twilio's Messages resource, one attempt per call.
#[derive(Clone)]
pub struct TwilioRest {
    http: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: String,
    from: TwilioSender,
    status_callback: String,
}

/// The parts of Twilio's answer Sara reads: the message sid on success, the error otherwise.
#[derive(Debug, Deserialize)]
struct MessageResource {
    sid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TwilioErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioRest {
    /// The client `[twilio]` describes: `None` unless `account_sid`, `from` and `auth_token`
    /// are all set (Sara then starts no SMS); a bad `from` stops the start.
    /// Whether `config` sets up SMS sending (what [`TwilioRest::from_config`] needs), without
    /// building a client: the console says where a staff message will go.
    pub fn configured(config: &Config) -> bool {
        let t = &config.twilio;
        t.account_sid.is_some() && t.from.is_some() && t.auth_token.is_some()
    }

    pub fn from_config(config: &Config) -> Result<Option<TwilioRest>, TwilioRestError> {
        let t = &config.twilio;
        let (Some(account_sid), Some(from), Some(auth_token)) = (
            t.account_sid.as_deref(),
            t.from.as_deref(),
            t.auth_token.as_ref().map(crate::config::Secret::expose),
        ) else {
            return Ok(None);
        };
        TwilioRest::new(TwilioRestSettings {
            api_base: t.api_base.clone(),
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
            from: TwilioSender::parse(from)?,
            public_url: config.server.public_url.clone(),
            timeout: Duration::from_secs(10),
        })
        .map(Some)
    }

    pub fn new(settings: TwilioRestSettings) -> Result<TwilioRest, TwilioRestError> {
        if settings.account_sid.trim().is_empty() {
            return Err(TwilioRestError::Missing("account_sid"));
        }
        if settings.auth_token.is_empty() {
            return Err(TwilioRestError::Missing("auth_token"));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()?;
        let account_sid = settings.account_sid.trim().to_string();
        Ok(TwilioRest {
            http,
            url: format!(
                "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                settings.api_base.trim_end_matches('/')
            ),
            account_sid,
            auth_token: settings.auth_token,
            from: settings.from,
            status_callback: format!(
                "{}{STATUS_CALLBACK_PATH}",
                settings.public_url.trim_end_matches('/')
            ),
        })
    }

    /// The form Twilio's Messages resource takes for one SMS.
    pub fn form(&self, to: &Phone, body: &str) -> Vec<(&'static str, String)> {
        let mut form = vec![("To", to.as_str().to_string())];
        match &self.from {
            TwilioSender::Number(number) => form.push(("From", number.as_str().to_string())),
            TwilioSender::MessagingService(sid) => form.push(("MessagingServiceSid", sid.clone())),
        }
        form.push(("Body", body.chars().take(MAX_BODY_CHARS).collect()));
        form.push(("StatusCallback", self.status_callback.clone()));
        form
    }

    /// One attempt to send `body` to `to`.
    #[tracing::instrument(skip_all, fields(channel = "sms"))]
    pub async fn send_sms(&self, to: &Phone, body: &str) -> Result<Sent, SendError> {
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&self.form(to, body))
            .send()
            .await
            .map_err(|e| SendError::retryable(transport_error(e)))?;
        let status = response.status();
        let retry_after = super::retry_after(&response);
        // A body that breaks off is a network problem; before a 2xx nothing was accepted, and
        // after one the message is out (below), so only a failure status is retried on it.
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let sid = serde_json::from_str::<MessageResource>(&text)
                .ok()
                .and_then(|m| m.sid)
                .unwrap_or_default();
            if sid.is_empty() {
                // Accepted all the same: sending again would send twice.
                tracing::warn!(%status, "twilio accepted a message but named no sid");
            }
            return Ok(Sent { provider_id: sid });
        }
        let detail = serde_json::from_str::<TwilioErrorBody>(&text)
            .ok()
            .map(|e| match (e.code, e.message) {
                (Some(code), Some(message)) => format!("{code} {message}"),
                (Some(code), None) => code.to_string(),
                (None, Some(message)) => message,
                (None, None) => String::new(),
            })
            .unwrap_or_default();
        // A Retry-After date is the provider's real time, so it is read against the system
        // clock (not the debug clock); the relay adds the resulting wait to its own clock.
        let error =
            SendError::from_http(status.as_u16(), retry_after.as_deref(), Utc::now(), &detail);
        tracing::warn!(%status, error = %error, "twilio refused a message");
        Err(error)
    }
}

/// A transport failure, described without the URL (it holds the account sid).
fn transport_error(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("twilio {what}: {}", e.without_url())
}

impl ChannelSender for TwilioRest {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(async move {
            let Recipient::Phone(to) = &message.to else {
                return Err(SendError::permanent("an SMS needs a phone number"));
            };
            let Some(body) = message
                .content
                .plain_text()
                .filter(|b| !b.trim().is_empty())
            else {
                return Err(SendError::permanent("nothing an SMS can carry"));
            };
            self.send_sms(to, body).await
        })
    }
}

/// A Twilio message status callback (`MessageSid`, `MessageStatus`, `ErrorCode`) as a delivery
/// report. `Ok(None)` for the steps before the carrier's answer (`accepted`, `queued`,
/// `sending`, `scheduled`), inbound states and statuses Twilio may add later: nothing changes.
pub fn status_update(params: &[(String, String)]) -> Result<Option<StatusUpdate>, &'static str> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let sid = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .ok_or("MessageSid is missing")?;
    if sid.len() > 64 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("MessageSid is not a Twilio sid");
    }
    let status = get("MessageStatus")
        .or_else(|| get("SmsStatus"))
        .ok_or("MessageStatus is missing")?;
    let state = match status.to_ascii_lowercase().as_str() {
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "read" => DeliveryState::Read,
        "failed" | "undelivered" | "canceled" => DeliveryState::Failed,
        _ => return Ok(None),
    };
    let error = get("ErrorCode")
        .filter(|code| *code != "0")
        .map(|code| code.chars().take(16).collect());
    Ok(Some(StatusUpdate {
        channel: Channel::Sms,
        provider_id: sid.to_string(),
        state,
        error,
        at: None,
    }))
}

/// A change of a number's SMS subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptChange {
    /// No more SMS to this number.
    OptOut,
    /// SMS may go to this number again.
    OptIn,
}

/// Twilio's default opt-out keywords (the message alone, any case).
const OPT_OUT_WORDS: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const OPT_IN_WORDS: [&str; 2] = ["START", "UNSTOP"];

/// Whether an inbound SMS changes the number's subscription: Twilio's `OptOutType` (`STOP`,
/// `START`; `HELP` changes nothing) when it sent one, else the body being one keyword alone
/// (spaces and a final `.` or `!` aside, any case). "Please cancel it" or "stop by at 3" are
/// messages, not keywords.
pub fn opt_change(opt_out_type: Option<&str>, body: &str) -> Option<OptChange> {
    match opt_out_type
        .map(|t| t.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("STOP") => return Some(OptChange::OptOut),
        Some("START") => return Some(OptChange::OptIn),
        Some("HELP") => return None,
        _ => {}
    }
    let word = body.trim().trim_end_matches(['.', '!']).trim();
    if word.is_empty() || word.contains(char::is_whitespace) {
        return None;
    }
    let word = word.to_ascii_uppercase();
    if OPT_OUT_WORDS.contains(&word.as_str()) {
        Some(OptChange::OptOut)
    } else if OPT_IN_WORDS.contains(&word.as_str()) {
        Some(OptChange::OptIn)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
