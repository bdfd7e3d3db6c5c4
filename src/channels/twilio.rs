//! Twilio: the `X-Twilio-Signature` check and the TwiML documents Sara answers with.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use quick_xml::escape::escape;
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Twilio's request signature: base64(HMAC-SHA1(auth token, URL + each POST parameter's name
/// and value, sorted by name)).
pub struct TwilioSignature<'a> {
    auth_token: &'a str,
}

impl<'a> TwilioSignature<'a> {
    pub fn new(auth_token: &'a str) -> Self {
        TwilioSignature { auth_token }
    }

    /// The signature Twilio would send for `url` (as Twilio called it, query included) and the
    /// form parameters of the body.
    pub fn sign(&self, url: &str, params: &[(String, String)]) -> String {
        let mut sorted: Vec<&(String, String)> = params.iter().collect();
        sorted.sort();
        let mut mac = Hmac::<Sha1>::new_from_slice(self.auth_token.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(url.as_bytes());
        for (name, value) in sorted {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
        BASE64.encode(mac.finalize().into_bytes())
    }

    /// Constant-time check of a received signature.
    pub fn verify(&self, url: &str, params: &[(String, String)], received: &str) -> bool {
        let expected = self.sign(url, params);
        expected.as_bytes().ct_eq(received.trim().as_bytes()).into()
    }
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
            .push_str(&format!("<Message>{}</Message>", escape(text)));
        self
    }

    pub fn say(mut self, text: &str) -> Self {
        self.body.push_str(&format!("<Say>{}</Say>", escape(text)));
        self
    }

    /// Listens for speech and posts the transcript to `action`, prompting with `prompt`.
    pub fn gather_speech(mut self, action: &str, prompt: &str) -> Self {
        self.body.push_str(&format!(
            "<Gather input=\"speech\" action=\"{}\" method=\"POST\" speechTimeout=\"auto\"><Say>{}</Say></Gather>",
            escape(action),
            escape(prompt)
        ));
        self
    }

    /// Rings `number`; when nobody answers within the timeout Twilio goes on to the next verb.
    pub fn dial(mut self, number: &str) -> Self {
        self.body
            .push_str(&format!("<Dial timeout=\"20\">{}</Dial>", escape(number)));
        self
    }

    /// Lets the caller leave a voicemail after the beep.
    pub fn record(mut self, max_seconds: u32) -> Self {
        self.body.push_str(&format!(
            "<Record maxLength=\"{max_seconds}\" playBeep=\"true\"/>"
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
    fn twiml_escapes_text() {
        let xml = TwiML::new().message("Tom & Jerry <3").render();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Tom &amp; Jerry &lt;3</Message></Response>"
        );
    }
}
