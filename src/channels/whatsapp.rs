//! WhatsApp Cloud API: the `X-Hub-Signature-256` check, the webhook payload (messages, and
//! the delivery statuses of Sara's own messages), and the Graph API client that sends text,
//! reply buttons, lists and templates and marks customers' messages as read.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Channel, Phone};
use sara_actors::outbound::{
    ChannelSender, Content, DeliveryState, OutboundMessage, Recipient, SendError, Sent,
    StatusUpdate,
};
use sara_actors::ports::BoxFuture;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

/// Meta's webhook signature: `sha256=` + hex(HMAC-SHA256(app secret, raw body)).
pub struct WhatsAppSignature<'a> {
    app_secret: &'a str,
}

impl<'a> WhatsAppSignature<'a> {
    pub fn new(app_secret: &'a str) -> Self {
        WhatsAppSignature { app_secret }
    }

    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.app_secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    /// Constant-time check of the header value Meta sent.
    pub fn verify(&self, body: &[u8], header: &str) -> bool {
        let Some(hex) = header.trim().strip_prefix("sha256=") else {
            return false;
        };
        let Some(received) = decode_hex(hex) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(self.app_secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body);
        mac.verify_slice(&received).is_ok()
    }
}

/// Hex digits only: `u8::from_str_radix` alone would also take a sign ("+a" as 0x0a).
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// The webhook body. Unknown fields are ignored; Meta adds them often.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WhatsAppWebhook {
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Change {
    #[serde(default)]
    pub value: ChangeValue,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ChangeValue {
    /// Which business number the change is for.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct Metadata {
    #[serde(default)]
    pub phone_number_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Message {
    pub from: String,
    pub id: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<TextBody>,
    #[serde(default)]
    pub interactive: Option<Interactive>,
    #[serde(default)]
    pub button: Option<TemplateButton>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TextBody {
    pub body: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Interactive {
    #[serde(default)]
    pub button_reply: Option<Choice>,
    #[serde(default)]
    pub list_reply: Option<Choice>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Choice {
    pub title: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TemplateButton {
    pub text: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Status {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub errors: Vec<StatusError>,
}

/// Why Meta could not deliver a message (`statuses[].errors[]`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StatusError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl Status {
    /// The delivery report this status is, or `None` for a status Sara does not track
    /// (`deleted`, `warning`, whatever Meta adds).
    pub fn update(&self) -> Option<StatusUpdate> {
        let state = match self.status.as_str() {
            "sent" => DeliveryState::Sent,
            "delivered" => DeliveryState::Delivered,
            "read" => DeliveryState::Read,
            "failed" => DeliveryState::Failed,
            _ => return None,
        };
        if self.id.is_empty() || self.id.len() > 256 {
            return None;
        }
        let error = self.errors.first().map(|e| {
            let what = e.title.as_deref().or(e.message.as_deref()).unwrap_or("");
            let text = match e.code {
                Some(code) if what.is_empty() => code.to_string(),
                Some(code) => format!("{code}: {what}"),
                None => what.to_string(),
            };
            text.chars().take(200).collect()
        });
        let at = self
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|secs| *secs >= 0)
            .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0));
        Some(StatusUpdate {
            channel: Channel::WhatsApp,
            provider_id: self.id.clone(),
            state,
            error,
            at,
        })
    }
}

impl Message {
    /// What the customer said: typed text, or the title of the button/list row they tapped.
    /// `None` for media, locations and other kinds Sara does not read.
    pub fn said(&self) -> Option<&str> {
        let tapped = self.interactive.as_ref().and_then(|i| {
            i.button_reply
                .as_ref()
                .or(i.list_reply.as_ref())
                .map(|c| c.title.as_str())
        });
        self.text
            .as_ref()
            .map(|t| t.body.as_str())
            .or(tapped)
            .or(self.button.as_ref().map(|b| b.text.as_str()))
    }

    /// The message's own time (Meta sends Unix seconds as a string). `None` for a time before
    /// 1970, which no message has: it would be read against a calendar chrono can barely
    /// represent (the caller also refuses times in the future).
    pub fn sent_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let secs: i64 = self.timestamp.as_deref()?.parse().ok()?;
        chrono::DateTime::from_timestamp(secs, 0).filter(|_| secs >= 0)
    }
}

impl WhatsAppWebhook {
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.entry
            .iter()
            .flat_map(|e| &e.changes)
            .flat_map(|c| &c.value.messages)
    }

    /// The messages sent to business number `ours` (every message when `None`): an app can
    /// be subscribed for several numbers, and a message to another one is not Sara's to
    /// answer through this one.
    pub fn messages_to<'a>(&'a self, ours: Option<&'a str>) -> impl Iterator<Item = &'a Message> {
        self.entry
            .iter()
            .flat_map(|e| &e.changes)
            .filter(move |c| {
                ours.is_none_or(|ours| {
                    c.value
                        .metadata
                        .as_ref()
                        .and_then(|m| m.phone_number_id.as_deref())
                        == Some(ours)
                })
            })
            .flat_map(|c| &c.value.messages)
    }

    pub fn statuses(&self) -> impl Iterator<Item = &Status> {
        self.entry
            .iter()
            .flat_map(|e| &e.changes)
            .flat_map(|c| &c.value.statuses)
    }

    /// The delivery reports of this webhook (see [`Status::update`]).
    pub fn status_updates(&self) -> Vec<StatusUpdate> {
        self.statuses().filter_map(Status::update).collect()
    }
}

/// Sends messages through the Graph API: `POST {base}/{version}/{phone_number_id}/messages`.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    url: String,
    token: String,
}

/// Meta's limits on what an interactive message may hold (longer text is cut, not refused).
const TEXT_CHARS: usize = 4096;
const INTERACTIVE_BODY_CHARS: usize = 1024;
const BUTTON_TITLE_CHARS: usize = 20;
const BUTTON_ID_CHARS: usize = 256;
const LIST_BUTTON_CHARS: usize = 20;
const ROW_TITLE_CHARS: usize = 24;
const ROW_DESCRIPTION_CHARS: usize = 72;
const ROW_ID_CHARS: usize = 200;

/// Graph API error codes that mean "later", whatever the HTTP status they come with: rate
/// limits (4, 80007, 130429, 131056) and Meta's own trouble (131000, 131016, 133004).
const RETRYABLE_CODES: [i64; 7] = [4, 80007, 130429, 131056, 131000, 131016, 133004];

fn cut(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

#[derive(Deserialize)]
struct SendAnswer {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<GraphErrorData>,
}

#[derive(Deserialize)]
struct GraphErrorData {
    #[serde(default)]
    details: Option<String>,
}

impl GraphClient {
    pub fn new(
        base_url: &str,
        version: &str,
        phone_number_id: &str,
        token: &str,
    ) -> Result<GraphClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(GraphClient {
            http,
            url: format!(
                "{}/{version}/{phone_number_id}/messages",
                base_url.trim_end_matches('/')
            ),
            token: token.to_string(),
        })
    }

    /// What a dialogue reply looks like on WhatsApp: reply buttons for 1–3 options of at most
    /// 20 characters, an interactive list for up to 10 (offered times), plain text otherwise.
    pub fn content(reply: &Reply) -> Content {
        Content::from_reply(reply)
    }

    /// The request body for a reply (see [`GraphClient::content`]).
    pub fn body(to: &Phone, reply: &Reply) -> serde_json::Value {
        Self::message_body(to, &Self::content(reply))
            .unwrap_or_else(|_| Self::text_body(to, &reply.text))
    }

    fn text_body(to: &Phone, text: &str) -> serde_json::Value {
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.as_str().trim_start_matches('+'),
            "type": "text",
            "text": {"preview_url": false, "body": cut(text, TEXT_CHARS)},
        })
    }

    /// The Graph API request body for one message, in Meta's format: `text`, `interactive`
    /// (`button` or `list`) or `template`. An email has no WhatsApp shape.
    pub fn message_body(to: &Phone, content: &Content) -> Result<serde_json::Value, SendError> {
        let wa_id = to.as_str().trim_start_matches('+');
        let envelope = |kind: &str, key: &str, value: serde_json::Value| {
            let mut body = json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": wa_id,
                "type": kind,
            });
            body[key] = value;
            body
        };
        Ok(match content {
            Content::Text { body } => Self::text_body(to, body),
            Content::Buttons { body, buttons } => {
                let buttons: Vec<_> = buttons
                    .iter()
                    .map(|b| {
                        json!({"type": "reply", "reply": {
                            "id": cut(&b.id, BUTTON_ID_CHARS),
                            "title": cut(&b.title, BUTTON_TITLE_CHARS),
                        }})
                    })
                    .collect();
                envelope(
                    "interactive",
                    "interactive",
                    json!({
                        "type": "button",
                        "body": {"text": cut(body, INTERACTIVE_BODY_CHARS)},
                        "action": {"buttons": buttons},
                    }),
                )
            }
            Content::List { body, button, rows } => {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        let mut row = json!({
                            "id": cut(&r.id, ROW_ID_CHARS),
                            "title": cut(&r.title, ROW_TITLE_CHARS),
                        });
                        if let Some(d) = &r.description {
                            row["description"] = json!(cut(d, ROW_DESCRIPTION_CHARS));
                        }
                        row
                    })
                    .collect();
                envelope(
                    "interactive",
                    "interactive",
                    json!({
                        "type": "list",
                        "body": {"text": cut(body, INTERACTIVE_BODY_CHARS)},
                        "action": {
                            "button": cut(button, LIST_BUTTON_CHARS),
                            "sections": [{"rows": rows}],
                        },
                    }),
                )
            }
            Content::Template {
                name,
                language,
                parameters,
            } => {
                let mut template = json!({"name": name, "language": {"code": language}});
                if !parameters.is_empty() {
                    let parameters: Vec<_> = parameters
                        .iter()
                        .map(|p| json!({"type": "text", "text": p}))
                        .collect();
                    template["components"] = json!([{"type": "body", "parameters": parameters}]);
                }
                envelope("template", "template", template)
            }
            Content::Email { .. } => {
                return Err(SendError::permanent("an email has no WhatsApp form"));
            }
        })
    }

    /// Marks a customer's message as read (the blue ticks): `{"status": "read", "message_id"}`.
    pub fn read_receipt_body(message_id: &str) -> serde_json::Value {
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": message_id})
    }

    /// One POST to the messages endpoint; the answer's body on success.
    async fn post(&self, body: &serde_json::Value) -> Result<String, SendError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                };
                SendError::retryable(format!("graph api {what}: {}", e.without_url()))
            })?;
        let status = response.status();
        let retry_after = super::retry_after(&response);
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        let error = serde_json::from_str::<GraphErrorBody>(&text)
            .ok()
            .map(|b| b.error);
        let code = error.as_ref().and_then(|e| e.code);
        let detail = error
            .map(|e| {
                let message = e.message.unwrap_or_default();
                let details = e.error_data.and_then(|d| d.details).unwrap_or_default();
                let code = code.map(|c| format!("{c} ")).unwrap_or_default();
                let text = if details.is_empty() {
                    format!("{code}{message}")
                } else {
                    format!("{code}{message} ({details})")
                };
                cut(text.trim(), 300)
            })
            .unwrap_or_default();
        // A Retry-After date is Meta's real time, so it is read against the system clock
        // (not the debug clock); the relay adds the resulting wait to its own clock.
        let error = match code {
            Some(code) if RETRYABLE_CODES.contains(&code) => SendError::Retryable {
                reason: format!("HTTP {}: {detail}", status.as_u16()),
                retry_after: retry_after
                    .as_deref()
                    .and_then(|v| sara_actors::outbound::parse_retry_after(v, Utc::now())),
            },
            _ => SendError::from_http(status.as_u16(), retry_after.as_deref(), Utc::now(), &detail),
        };
        tracing::warn!(%status, error = %error, "graph api refused a message");
        Err(error)
    }

    /// Sends one message; the WhatsApp message id (`wamid…`) Meta gave it.
    #[tracing::instrument(skip_all, fields(channel = "whatsapp"))]
    pub async fn send_content(&self, to: &Phone, content: &Content) -> Result<Sent, SendError> {
        let text = self.post(&Self::message_body(to, content)?).await?;
        let id = serde_json::from_str::<SendAnswer>(&text)
            .ok()
            .and_then(|a| a.messages.into_iter().next())
            .map(|m| m.id)
            .unwrap_or_default();
        if id.is_empty() {
            // Accepted all the same: sending again would send twice.
            tracing::warn!("graph api accepted a message but named no id");
        }
        Ok(Sent { provider_id: id })
    }

    /// Tells WhatsApp the customer's message was read. Best effort: the answer matters little,
    /// so the caller may ignore a failure.
    #[tracing::instrument(skip_all, fields(channel = "whatsapp"))]
    pub async fn mark_read(&self, message_id: &str) -> Result<(), SendError> {
        self.post(&Self::read_receipt_body(message_id))
            .await
            .map(|_| ())
    }
}

impl ChannelSender for GraphClient {
    fn channel(&self) -> Channel {
        Channel::WhatsApp
    }

    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(async move {
            let Recipient::Phone(to) = &message.to else {
                return Err(SendError::permanent(
                    "a WhatsApp message needs a phone number",
                ));
            };
            self.send_content(to, &message.content).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/data/whatsapp/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).expect("fixture exists")
    }

    fn payload(name: &str) -> WhatsAppWebhook {
        let v: serde_json::Value = serde_json::from_str(&fixture(name)).expect("json");
        serde_json::from_value(v["payload"].clone()).expect("payload parses")
    }

    #[test]
    fn verifies_a_body_meta_really_signed() {
        let vector: serde_json::Value =
            serde_json::from_str(&fixture("signed_webhook_vector.json")).expect("json");
        let body = fixture("signed_webhook_vector.body");
        let secret = vector["app_secret"].as_str().expect("secret");
        let header = vector["x_hub_signature_256"].as_str().expect("header");
        let sig = WhatsAppSignature::new(secret);
        assert!(sig.verify(body.as_bytes(), header));
        assert_eq!(sig.sign(body.as_bytes()), header);
        assert!(!sig.verify(format!("{body} ").as_bytes(), header));
        assert!(!WhatsAppSignature::new("other").verify(body.as_bytes(), header));
        assert!(!sig.verify(body.as_bytes(), "sha256=zz"));
        assert!(!sig.verify(body.as_bytes(), ""));
    }

    /// Found by `fuzz/whatsapp_signature`: a `+` in place of a `0` high nibble decoded to the
    /// same byte, so a header that is not the hex Meta sends still verified.
    #[test]
    fn a_sign_in_the_hex_is_refused() {
        assert_eq!(decode_hex("+6"), None);
        assert_eq!(decode_hex("-6"), None);
        assert_eq!(decode_hex("06"), Some(vec![6]));
        assert_eq!(decode_hex("Af"), Some(vec![0xaf]));
        // Some body's signature has a 0 as the high nibble of a byte: write it as "+".
        let signer = WhatsAppSignature::new("secret");
        let (body, header, at) = (0u32..)
            .map(|i| i.to_string())
            .find_map(|body| {
                let header = signer.sign(body.as_bytes());
                let at = ("sha256=".len()..header.len())
                    .step_by(2)
                    .find(|&i| header.as_bytes()[i] == b'0')?;
                Some((body, header, at))
            })
            .expect("a signature with a 0 high nibble");
        assert!(signer.verify(body.as_bytes(), &header));
        let mut forged = header.clone();
        forged.replace_range(at..=at, "+");
        assert!(!signer.verify(body.as_bytes(), &forged), "{forged}");
    }

    #[test]
    fn a_message_time_before_1970_is_not_believed() {
        let at = |timestamp: &str| {
            let message: Message = serde_json::from_value(json!({
                "from": "15551234567", "id": "wamid.1", "timestamp": timestamp, "type": "text"
            }))
            .expect("message");
            message.sent_at()
        };
        assert_eq!(at("1730231903").map(|t| t.timestamp()), Some(1730231903));
        assert_eq!(at("-1"), None);
        assert_eq!(at("-8334601228800"), None);
        assert_eq!(at("1e9"), None);
    }

    #[test]
    fn reads_text_buttons_lists_and_template_replies() {
        let said = |name: &str| {
            payload(name)
                .messages()
                .map(|m| m.said().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(said("incoming_text.json"), ["Body Text"]);
        assert_eq!(said("interactive_button_reply.json"), ["title"]);
        assert_eq!(said("interactive_list_reply.json"), ["title"]);
        assert_eq!(said("template_quick_reply_button.json"), ["title"]);
        let status = payload("status_delivered.json");
        assert_eq!(status.messages().count(), 0);
        assert_eq!(
            status.statuses().next().map(|s| s.status.as_str()),
            Some("delivered")
        );
        let m = payload("incoming_text.json");
        let m = m.messages().next().expect("one message");
        assert_eq!(m.sent_at().map(|t| t.timestamp()), Some(1697043223));
    }

    #[test]
    fn three_short_options_become_reply_buttons() {
        let to = Phone::parse("+15550001111").expect("phone");
        let reply = Reply {
            text: "Which suits you?".into(),
            options: vec!["9:30 AM".into(), "10:00 AM".into(), "11:15 AM".into()],
            ..Reply::default()
        };
        let body = GraphClient::body(&to, &reply);
        assert_eq!(body["to"], "15550001111");
        assert_eq!(body["type"], "interactive");
        assert_eq!(
            body["interactive"]["action"]["buttons"][1]["reply"]["title"],
            "10:00 AM"
        );
        let plain = GraphClient::body(
            &to,
            &Reply {
                text: "Hi".into(),
                ..Reply::default()
            },
        );
        assert_eq!(plain["type"], "text");
        assert_eq!(plain["text"]["body"], "Hi");
    }

    fn wa_phone() -> Phone {
        Phone::parse("+15550001111").expect("phone")
    }

    #[test]
    fn metas_statuses_become_delivery_reports() {
        let update = |name: &str| {
            let hook = payload(name);
            let updates = hook.status_updates();
            assert_eq!(updates.len(), 1, "{name}");
            updates.into_iter().next().expect("one")
        };
        let sent = update("status_sent.json");
        assert_eq!(
            (sent.channel, sent.provider_id.as_str(), sent.state),
            (Channel::WhatsApp, "wamid.xyzxyz", DeliveryState::Sent)
        );
        assert_eq!(sent.at.map(|t| t.timestamp()), Some(1698266945));
        assert_eq!(
            update("status_delivered.json").state,
            DeliveryState::Delivered
        );
        assert_eq!(update("status_read.json").state, DeliveryState::Read);
        let failed = update("status_failed.json");
        assert_eq!(failed.state, DeliveryState::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("130472: User's number is part of an experiment")
        );
        assert!(payload("incoming_text.json").status_updates().is_empty());
        let odd: Status =
            serde_json::from_value(json!({"id": "wamid.1", "status": "deleted"})).expect("status");
        assert_eq!(odd.update(), None);
        let no_id: Status =
            serde_json::from_value(json!({"id": "", "status": "sent"})).expect("status");
        assert_eq!(no_id.update(), None);
    }

    #[test]
    fn offered_times_become_buttons_a_list_or_text() {
        let reply = |options: Vec<String>| Reply {
            text: "Which suits you?".into(),
            options,
            ..Reply::default()
        };
        let times = |n: usize| {
            (0..n)
                .map(|i| format!("{}:00 AM", i + 1))
                .collect::<Vec<_>>()
        };
        assert!(matches!(
            GraphClient::content(&reply(times(3))),
            Content::Buttons { .. }
        ));
        let Content::List { rows, button, .. } = GraphClient::content(&reply(times(5))) else {
            panic!("five times are a list");
        };
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[4].id, "option-5");
        assert!(button.chars().count() <= 20);
        // A long option fits a row (24) but not a button (20).
        let long = vec!["Monday 10:00 AM to 11 AM".to_string()];
        assert!(matches!(
            GraphClient::content(&reply(long)),
            Content::List { .. }
        ));
        assert!(matches!(
            GraphClient::content(&reply(times(11))),
            Content::Text { .. }
        ));
        let too_long = vec!["Monday, March 9 at 10:00 AM".to_string()];
        assert!(matches!(
            GraphClient::content(&reply(too_long)),
            Content::Text { .. }
        ));
        assert!(matches!(
            GraphClient::content(&reply(vec![])),
            Content::Text { .. }
        ));
    }

    /// The shapes of Meta's Cloud API reference ("Interactive list messages", "Reply buttons",
    /// "Template messages", "Mark messages as read").
    #[test]
    fn request_bodies_are_in_metas_format() {
        let to = wa_phone();
        let body = |c: &Content| GraphClient::message_body(&to, c).expect("a whatsapp shape");
        assert_eq!(
            body(&Content::text("Hi")),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": "15550001111", "type": "text",
                   "text": {"preview_url": false, "body": "Hi"}})
        );
        let buttons = Content::buttons(
            "Which?",
            vec![
                sara_actors::outbound::Choice::new("a", "9:30 AM"),
                sara_actors::outbound::Choice::new("b", "A title longer than twenty"),
            ],
        )
        .expect("valid");
        assert_eq!(
            body(&buttons)["interactive"],
            json!({"type": "button", "body": {"text": "Which?"}, "action": {"buttons": [
                {"type": "reply", "reply": {"id": "a", "title": "9:30 AM"}},
                {"type": "reply", "reply": {"id": "b", "title": "A title longer than "}},
            ]}})
        );
        let mut row = sara_actors::outbound::Choice::new("slot-1", "Monday 9:00 AM");
        row.description = Some("with Anna".into());
        let list = Content::list("Which time?", "See times", vec![row]).expect("valid");
        let list = body(&list);
        assert_eq!(list["type"], "interactive");
        assert_eq!(
            list["interactive"],
            json!({"type": "list", "body": {"text": "Which time?"}, "action": {
                "button": "See times",
                "sections": [{"rows": [{"id": "slot-1", "title": "Monday 9:00 AM", "description": "with Anna"}]}],
            }})
        );
        let template = Content::Template {
            name: "appointment_reminder".into(),
            language: "en_US".into(),
            parameters: vec![
                "Maria".into(),
                "cleaning".into(),
                "Friday, March 6 at 2:00 PM".into(),
            ],
        };
        let template = body(&template);
        assert_eq!(template["type"], "template");
        assert_eq!(
            template["template"],
            json!({"name": "appointment_reminder", "language": {"code": "en_US"}, "components": [
                {"type": "body", "parameters": [
                    {"type": "text", "text": "Maria"},
                    {"type": "text", "text": "cleaning"},
                    {"type": "text", "text": "Friday, March 6 at 2:00 PM"},
                ]}
            ]})
        );
        let bare = Content::Template {
            name: "hello_world".into(),
            language: "en_US".into(),
            parameters: vec![],
        };
        assert!(body(&bare)["template"].get("components").is_none());
        assert_eq!(
            GraphClient::read_receipt_body("wamid.xyzxyz"),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.xyzxyz"})
        );
        let email = Content::Email {
            subject: "s".into(),
            text: "t".into(),
            invite: None,
        };
        assert!(GraphClient::message_body(&to, &email).is_err());
    }

    mod graph {
        use super::*;
        use wiremock::matchers::{body_json, header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};

        async fn graph(response: ResponseTemplate) -> (MockServer, GraphClient) {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/v21.0/1122334455667/messages"))
                .and(header("authorization", "Bearer token-1"))
                .respond_with(response)
                .mount(&server)
                .await;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = GraphClient::new(&server.uri(), "v21.0", "1122334455667", "token-1")
                .expect("client");
            (server, client)
        }

        fn meta_error(code: i64, message: &str) -> serde_json::Value {
            json!({"error": {"message": message, "type": "OAuthException", "code": code,
                   "error_data": {"messaging_product": "whatsapp", "details": "more"},
                   "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}})
        }

        #[tokio::test]
        async fn a_sent_message_returns_metas_message_id() {
            let (server, client) = graph(ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "15550001111", "wa_id": "15550001111"}],
                "messages": [{"id": "wamid.HBgLMTU1NTAwMDExMTEVAgARGBI"}]
            })))
            .await;
            let message = OutboundMessage {
                key: "k".into(),
                channel: Channel::WhatsApp,
                to: Recipient::Phone(wa_phone()),
                kind: sara_actors::outbound::OutboundKind::Reply,
                content: Content::text("Hi"),
            };
            let sent = ChannelSender::send(&client, &message).await.expect("sent");
            assert_eq!(sent.provider_id, "wamid.HBgLMTU1NTAwMDExMTEVAgARGBI");
            let requests = server.received_requests().await.expect("recorded");
            let sent_body: serde_json::Value =
                serde_json::from_slice(&requests[0].body).expect("json");
            assert_eq!(sent_body["text"]["body"], "Hi");
        }

        #[tokio::test]
        async fn metas_errors_are_sorted_by_code_as_well_as_status() {
            let cases = [
                (
                    ResponseTemplate::new(400)
                        .set_body_json(meta_error(131047, "Re-engagement message")),
                    false,
                ),
                (
                    ResponseTemplate::new(400)
                        .set_body_json(meta_error(131026, "Message undeliverable")),
                    false,
                ),
                (
                    ResponseTemplate::new(401)
                        .set_body_json(meta_error(190, "Invalid OAuth access token")),
                    false,
                ),
                (
                    ResponseTemplate::new(400).set_body_json(meta_error(130429, "Rate limit hit")),
                    true,
                ),
                (
                    ResponseTemplate::new(400)
                        .set_body_json(meta_error(131056, "Pair rate limit hit")),
                    true,
                ),
                (
                    ResponseTemplate::new(500)
                        .set_body_json(meta_error(131000, "Something went wrong")),
                    true,
                ),
                (ResponseTemplate::new(503), true),
                (
                    ResponseTemplate::new(429).insert_header("Retry-After", "12"),
                    true,
                ),
            ];
            for (response, retryable) in cases {
                let (_server, client) = graph(response).await;
                let error = client
                    .send_content(&wa_phone(), &Content::text("Hi"))
                    .await
                    .expect_err("refused");
                assert_eq!(error.is_retryable(), retryable, "{error}");
            }
            let (_server, client) = graph(
                ResponseTemplate::new(400)
                    .set_body_json(meta_error(131047, "Re-engagement message")),
            )
            .await;
            let error = client
                .send_content(&wa_phone(), &Content::text("Hi"))
                .await
                .expect_err("refused");
            assert_eq!(
                error.to_string(),
                "delivery refused: HTTP 400: 131047 Re-engagement message (more)"
            );
            let (_server, client) =
                graph(ResponseTemplate::new(429).insert_header("Retry-After", "12")).await;
            let error = client
                .send_content(&wa_phone(), &Content::text("Hi"))
                .await
                .expect_err("refused");
            assert_eq!(error.retry_after(), Some(Duration::from_secs(12)));
        }

        #[tokio::test]
        async fn a_read_receipt_names_the_customers_message() {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/v21.0/1122334455667/messages"))
                .and(body_json(json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in-1"})))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
                .expect(1)
                .mount(&server)
                .await;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = GraphClient::new(&server.uri(), "v21.0", "1122334455667", "token-1")
                .expect("client");
            client.mark_read("wamid.in-1").await.expect("marked");
        }
    }
}
