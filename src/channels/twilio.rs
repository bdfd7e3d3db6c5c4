//! Twilio: the `X-Twilio-Signature` check and the TwiML documents Sara answers with.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use quick_xml::escape::escape;
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Twilio's request signature: base64(HMAC-SHA1(auth token, URL + each POST parameter's name
/// and value, sorted by name)). An account that signs with a Webhooks SharedKey uses that
/// key's secret and the algorithm named in `X-Twilio-Webhooks-Signature-Settings`
/// (`key=…,algorithm=HMAC_SHA256`) over the same string.
pub struct TwilioSignature<'a> {
    auth_token: &'a str,
    algorithm: SignatureAlgorithm,
}

/// The HMAC of a Twilio signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    HmacSha1,
    HmacSha256,
}

impl SignatureAlgorithm {
    /// The `algorithm=` of an `X-Twilio-Webhooks-Signature-Settings` header; `None` for one
    /// Sara does not know.
    pub fn from_settings(header: &str) -> Option<SignatureAlgorithm> {
        let value = header
            .split(',')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("algorithm"))
            .map(|(_, v)| v.trim())?;
        match value.to_ascii_uppercase().as_str() {
            "HMAC_SHA256" | "HMAC-SHA256" => Some(SignatureAlgorithm::HmacSha256),
            "HMAC_SHA1" | "HMAC-SHA1" => Some(SignatureAlgorithm::HmacSha1),
            _ => None,
        }
    }
}

impl<'a> TwilioSignature<'a> {
    pub fn new(auth_token: &'a str) -> Self {
        Self::with_algorithm(auth_token, SignatureAlgorithm::HmacSha1)
    }

    pub fn with_algorithm(key: &'a str, algorithm: SignatureAlgorithm) -> Self {
        TwilioSignature {
            auth_token: key,
            algorithm,
        }
    }

    /// The signature Twilio would send for `url` (as Twilio called it, query included) and the
    /// form parameters of the body.
    pub fn sign(&self, url: &str, params: &[(String, String)]) -> String {
        let mut sorted: Vec<&(String, String)> = params.iter().collect();
        sorted.sort();
        fn mac<M: Mac + hmac::digest::KeyInit>(
            key: &str,
            url: &str,
            sorted: &[&(String, String)],
        ) -> String {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key.as_bytes())
                .expect("HMAC takes a key of any length");
            mac.update(url.as_bytes());
            for (name, value) in sorted {
                mac.update(name.as_bytes());
                mac.update(value.as_bytes());
            }
            BASE64.encode(mac.finalize().into_bytes())
        }
        match self.algorithm {
            SignatureAlgorithm::HmacSha1 => mac::<Hmac<Sha1>>(self.auth_token, url, &sorted),
            SignatureAlgorithm::HmacSha256 => {
                mac::<Hmac<sha2::Sha256>>(self.auth_token, url, &sorted)
            }
        }
    }

    /// Whether `received` signs `url` in any of the forms Twilio may have signed (see
    /// [`signed_url_forms`]).
    pub fn verify_any_port(&self, url: &str, params: &[(String, String)], received: &str) -> bool {
        signed_url_forms(url)
            .iter()
            .fold(false, |ok, form| self.verify(form, params, received) | ok)
    }

    /// Constant-time check of a received signature.
    pub fn verify(&self, url: &str, params: &[(String, String)], received: &str) -> bool {
        let expected = self.sign(url, params);
        expected.as_bytes().ct_eq(received.trim().as_bytes()).into()
    }
}

/// The forms of `url` Twilio may have signed: without its port and with the scheme's default
/// port (`:443` for https and wss, `:80` for http and ws), as Twilio's own `RequestValidator`
/// checks both (Twilio's side is not consistent about the port). A URL without a scheme
/// is only itself.
pub fn signed_url_forms(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_string()];
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The port is what follows the last ':' after any user info and outside an IPv6 `[…]`.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port_at = host_port
        .rfind(':')
        .filter(|&i| !host_port[i..].contains(']'))
        .filter(|&i| host_port[i + 1..].bytes().all(|b| b.is_ascii_digit()));
    let host = match port_at {
        Some(i) => &authority[..host_start + i],
        None => authority,
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => "443",
        _ => "80",
    };
    let without = format!("{scheme}://{host}{tail}");
    let with = match port_at {
        Some(_) => url.to_string(),
        None => format!("{scheme}://{host}:{default_port}{tail}"),
    };
    if with == without {
        vec![without]
    } else {
        vec![without, with]
    }
}

/// `text` escaped for XML, without the characters XML 1.0 does not allow at all (control
/// characters other than tab and line breaks, U+FFFE, U+FFFF): a reply from the model or a
/// caller's name may carry them, and Twilio refuses a document that holds them (12100).
fn xml_text(text: &str) -> String {
    let allowed: String = text
        .chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect();
    escape(&allowed).into_owned()
}

/// The attributes of a `<ConversationRelay>` noun.
pub struct RelaySettings<'a> {
    /// The `wss://` URL Twilio opens the session's WebSocket to.
    pub url: &'a str,
    pub welcome_greeting: &'a str,
    /// Comma-separated words the recognizer should expect.
    pub hints: &'a str,
    pub language: &'a str,
    pub tts_provider: &'a str,
    pub voice: Option<&'a str>,
    pub transcription_provider: &'a str,
}

/// A TwiML `<Response>` built verb by verb; text is XML-escaped.
#[derive(Default)]
pub struct TwiML {
    body: String,
}

impl TwiML {
    pub fn new() -> Self {
        TwiML::default()
    }

    pub fn message(mut self, text: &str) -> Self {
        self.body
            .push_str(&format!("<Message>{}</Message>", xml_text(text)));
        self
    }

    pub fn say(mut self, text: &str) -> Self {
        self.body
            .push_str(&format!("<Say>{}</Say>", xml_text(text)));
        self
    }

    /// Listens for speech and posts the transcript to `action`, prompting with `prompt`;
    /// `hints` (comma-separated words and phrases) help the recognizer with names. When the
    /// caller says nothing, Twilio goes on to the verb after the `<Gather>`: callers of this
    /// put one there (see [`TwiML::redirect`]) so that silence never ends the call.
    pub fn gather_speech(mut self, action: &str, prompt: &str, hints: &str) -> Self {
        let hints = if hints.is_empty() {
            String::new()
        } else {
            format!(" hints=\"{}\"", xml_text(hints))
        };
        self.body.push_str(&format!(
            "<Gather input=\"speech\" action=\"{}\" method=\"POST\" speechTimeout=\"auto\"{hints}><Say>{}</Say></Gather>",
            xml_text(action),
            xml_text(prompt)
        ));
        self
    }

    /// Fetches the next TwiML from `url` (POST, with the call's parameters).
    pub fn redirect(mut self, url: &str) -> Self {
        self.body.push_str(&format!(
            "<Redirect method=\"POST\">{}</Redirect>",
            xml_text(url)
        ));
        self
    }

    /// Rings `number`; when the staff call ends (answered and hung up, or not answered within
    /// the timeout) Twilio posts `DialCallStatus` to `action`, whose TwiML decides what
    /// follows (voicemail only when nobody answered). Verbs after a `<Dial action>` are never
    /// reached.
    pub fn dial(mut self, number: &str, action: &str) -> Self {
        self.body.push_str(&format!(
            "<Dial timeout=\"20\" action=\"{}\" method=\"POST\">{}</Dial>",
            xml_text(action),
            xml_text(number)
        ));
        self
    }

    /// Lets the caller leave a voicemail after the beep. Twilio posts the recording to
    /// `action` when the caller stops (its TwiML ends the call), reports the finished
    /// recording to `status_callback`, and, with `transcribe_callback`, sends the transcription
    /// there. With no audio at all Twilio skips `action` and goes on to the next verb.
    pub fn record(
        mut self,
        max_seconds: u32,
        action: &str,
        status_callback: &str,
        transcribe_callback: Option<&str>,
    ) -> Self {
        let transcribe = transcribe_callback
            .map(|url| {
                format!(
                    " transcribe=\"true\" transcribeCallback=\"{}\"",
                    xml_text(url)
                )
            })
            .unwrap_or_default();
        self.body.push_str(&format!(
            "<Record maxLength=\"{max_seconds}\" playBeep=\"true\" action=\"{}\" method=\"POST\" \
             recordingStatusCallback=\"{}\" recordingStatusCallbackMethod=\"POST\"{transcribe}/>",
            xml_text(action),
            xml_text(status_callback)
        ));
        self
    }

    /// Hands the call to ConversationRelay: Twilio speaks `relay.welcome_greeting` at once,
    /// opens a WebSocket to `relay.url` for the conversation, and when the session ends
    /// (Sara sent `end`, or the socket closed) posts to `action`, whose TwiML goes on.
    pub fn connect_relay(mut self, action: &str, relay: &RelaySettings<'_>) -> Self {
        let mut attributes = format!(
            "url=\"{}\" welcomeGreeting=\"{}\" welcomeGreetingInterruptible=\"any\" \
             interruptible=\"any\" dtmfDetection=\"true\" language=\"{}\" \
             ttsProvider=\"{}\" transcriptionProvider=\"{}\"",
            xml_text(relay.url),
            xml_text(relay.welcome_greeting),
            xml_text(relay.language),
            xml_text(relay.tts_provider),
            xml_text(relay.transcription_provider),
        );
        if let Some(voice) = relay.voice {
            attributes.push_str(&format!(" voice=\"{}\"", xml_text(voice)));
        }
        if !relay.hints.is_empty() {
            attributes.push_str(&format!(" hints=\"{}\"", xml_text(relay.hints)));
        }
        self.body.push_str(&format!(
            "<Connect action=\"{}\" method=\"POST\"><ConversationRelay {attributes}/></Connect>",
            xml_text(action)
        ));
        self
    }

    pub fn hangup(mut self) -> Self {
        self.body.push_str("<Hangup/>");
        self
    }

    pub fn render(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{}</Response>",
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    /// Twilio's documented example.
    #[test]
    fn signs_twilios_documented_example() {
        let params = vec![
            p("CallSid", "CA1234567890ABCDE"),
            p("Caller", "+12349013030"),
            p("Digits", "1234"),
            p("From", "+12349013030"),
            p("To", "+18005551212"),
        ];
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = TwilioSignature::new("12345");
        assert_eq!(sig.sign(url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(sig.verify(url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!sig.verify(url, &params, "1/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!sig.verify(
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!TwilioSignature::new("54321").verify(
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!sig.verify(url, &params, ""));
    }

    #[test]
    fn a_url_is_signed_with_and_without_its_default_port() {
        assert_eq!(
            signed_url_forms("https://sara.example.com/webhook/voice?n=1"),
            [
                "https://sara.example.com/webhook/voice?n=1",
                "https://sara.example.com:443/webhook/voice?n=1"
            ]
        );
        assert_eq!(
            signed_url_forms("https://sara.example.com:443/x"),
            [
                "https://sara.example.com/x",
                "https://sara.example.com:443/x"
            ]
        );
        assert_eq!(
            signed_url_forms("wss://h.example/webhook/voice/relay"),
            [
                "wss://h.example/webhook/voice/relay",
                "wss://h.example:443/webhook/voice/relay"
            ]
        );
        assert_eq!(
            signed_url_forms("http://127.0.0.1:8080"),
            ["http://127.0.0.1", "http://127.0.0.1:8080"]
        );
        assert_eq!(
            signed_url_forms("http://[::1]/a"),
            ["http://[::1]/a", "http://[::1]:80/a"]
        );
        let params = vec![p("CallSid", "CA1")];
        let sig = TwilioSignature::new("12345");
        let with_port = sig.sign("https://sara.example.com:443/webhook/voice", &params);
        assert!(sig.verify_any_port(
            "https://sara.example.com/webhook/voice",
            &params,
            &with_port
        ));
        assert!(!sig.verify_any_port("https://sara.example.com/webhook/sms", &params, &with_port));
    }

    #[test]
    fn twiml_drops_characters_xml_does_not_allow() {
        let xml = TwiML::new()
            .say("a\u{0}b\u{1b}[31mc\u{FFFF}\td\ne")
            .render();
        assert!(xml.contains("<Say>ab[31mc\td\ne</Say>"), "{xml}");
        assert!(quick_xml::Reader::from_str(&xml).read_event().is_ok());
    }

    #[test]
    fn twiml_escapes_text() {
        let xml = TwiML::new().message("Tom & Jerry <3").render();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Tom &amp; Jerry &lt;3</Message></Response>"
        );
    }
}
