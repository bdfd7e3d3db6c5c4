//! Hostile input: random bytes, unicode and huge bodies never get a 5xx or crash Sara.

use crate::helpers::{AUTH_TOKEN, Sara, phone, sid};
use sara::channels::twilio::TwilioSignature;

/// A small deterministic generator so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn text(&mut self, n: usize) -> String {
        const PIECES: &[&str] = &[
            "book",
            "3pm",
            "tomorrow",
            "yes",
            "no",
            "cancel",
            "😀",
            "ñ",
            "\u{202e}",
            "\0",
            "<Message>",
            "&amp;",
            "9999999999",
            "the 2nd",
            "ß",
            "中文",
            "\r\n",
            "%",
            "+",
            "=",
            "'; DROP TABLE turns; --",
            "at",
            " ",
        ];
        (0..n)
            .map(|_| PIECES[(self.next() % PIECES.len() as u64) as usize])
            .collect()
    }
}

#[tokio::test]
async fn a_thousand_hostile_requests_get_no_5xx_and_sara_keeps_answering() {
    let sara = Sara::start().await;
    let signer = TwilioSignature::new(AUTH_TOKEN);
    let url = "https://sara.example.com/webhook/sms";
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in 0..1000u32 {
        let (status, body) = match i % 5 {
            // Random bytes, unsigned and signed over what they parse to.
            0 => {
                let n = (rng.next() % 2048) as usize;
                let raw = rng.bytes(n);
                let params: Vec<(String, String)> = form_urlencoded::parse(&raw)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let sig = signer.sign(url, &params);
                sara.post_raw("/webhook/sms", raw, Some(&sig)).await
            }
            // Signed unicode soup from a real phone.
            1 | 2 => {
                let n = (rng.next() % 60) as usize;
                let text = rng.text(n);
                let params = vec![
                    ("Body".to_string(), text),
                    ("From".to_string(), phone(100 + i % 7)),
                    ("MessageSid".to_string(), sid()),
                ];
                let sig = signer.sign(url, &params);
                sara.post_form("/webhook/sms", &params, Some(&sig)).await
            }
            // A huge body: refused with 413, or the connection is closed before it is read.
            3 => match sara
                .try_post_raw("/webhook/sms", vec![b'a'; 1 << 20], Some("x"))
                .await
            {
                Ok((status, body)) => {
                    assert_eq!(status, 413, "{body}");
                    (status, body)
                }
                Err(e) => {
                    assert!(!e.is_timeout(), "a huge body must not hang the server: {e}");
                    (413, String::new())
                }
            },
            // A signed message from something that is not a phone number.
            _ => {
                let params = vec![
                    ("Body".to_string(), rng.text(5)),
                    ("From".to_string(), rng.text(3)),
                    ("MessageSid".to_string(), sid()),
                ];
                let sig = signer.sign(url, &params);
                sara.post_form("/webhook/sms", &params, Some(&sig)).await
            }
        };
        assert!(status < 500, "request {i} got {status}: {body}");
    }
    let health = sara
        .client
        .get(format!("{}/health", sara.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let reply = sara.text(&phone(99), "hello").await;
    assert!(reply.contains("Harbor Street Clinic"), "{reply}");
}
