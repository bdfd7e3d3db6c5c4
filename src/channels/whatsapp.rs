//! WhatsApp Cloud API: the `X-Hub-Signature-256` check, the webhook payload (messages and
//! statuses), and the Graph API client that sends Sara's replies (text or reply buttons).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sara_actors::dialogue::Reply;
use sara_actors::model::Phone;
use sara_actors::ports::{BoxFuture, Outbound, OutboundError};
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
#[derive(Debug, Deserialize)]
pub struct WhatsAppWebhook {
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub value: ChangeValue,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChangeValue {
    /// Which business number the change is for.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub phone_number_id: Option<String>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
pub struct TextBody {
    pub body: String,
}

#[derive(Debug, Deserialize)]
pub struct Interactive {
    #[serde(default)]
    pub button_reply: Option<Choice>,
    #[serde(default)]
    pub list_reply: Option<Choice>,
}

#[derive(Debug, Deserialize)]
pub struct Choice {
    pub title: String,
}

#[derive(Debug, Deserialize)]
pub struct TemplateButton {
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct Status {
    pub id: String,
    pub status: String,
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
}

/// Sends messages through the Graph API: `POST {base}/{version}/{phone_number_id}/messages`.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    url: String,
    token: String,
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

    /// The request body for a reply: reply buttons when there are 1–3 short options,
    /// plain text otherwise (WhatsApp allows at most three buttons of 20 characters).
    pub fn body(to: &Phone, reply: &Reply) -> serde_json::Value {
        let to = to.as_str().trim_start_matches('+');
        let text: String = reply.text.chars().take(4096).collect();
        let buttons = (1..=3).contains(&reply.options.len())
            && reply.options.iter().all(|o| o.chars().count() <= 20);
        if buttons {
            let buttons: Vec<_> = reply
                .options
                .iter()
                .enumerate()
                .map(|(i, title)| json!({"type": "reply", "reply": {"id": format!("option-{}", i + 1), "title": title}}))
                .collect();
            let text: String = text.chars().take(1024).collect();
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "interactive",
                "interactive": {"type": "button", "body": {"text": text}, "action": {"buttons": buttons}},
            })
        } else {
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"preview_url": false, "body": text},
            })
        }
    }
}

impl Outbound for GraphClient {
    fn send<'a>(
        &'a self,
        to: &'a Phone,
        reply: &'a Reply,
    ) -> BoxFuture<'a, Result<(), OutboundError>> {
        Box::pin(async move {
            let response = self
                .http
                .post(&self.url)
                .bearer_auth(&self.token)
                .json(&Self::body(to, reply))
                .send()
                .await
                .map_err(|e| OutboundError::Retryable(format!("graph api unreachable: {e}")))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else if status.as_u16() == 429 || status.is_server_error() {
                Err(OutboundError::Retryable(format!(
                    "graph api answered {status}"
                )))
            } else {
                Err(OutboundError::Permanent(format!(
                    "graph api answered {status}"
                )))
            }
        })
    }

    fn name(&self) -> &'static str {
        "whatsapp"
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
}
