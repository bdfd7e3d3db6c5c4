//! Rate limits: per caller phone for signed webhooks, per source IP only for requests that
//! fail the signature check; both a 429 JSON with `Retry-After`.
//!
//! The windows are fixed minutes, so a run that straddles a minute boundary may pass up to
//! twice the limit: the tests look for the 429 within `2 × limit + 1` requests.

use crate::helpers::{Sara, phone, sid};

async fn limited_sara() -> Sara {
    let dir = crate::helpers::temp_dir();
    let db_url = format!("sqlite://{}", dir.path().join("sara.db").display());
    Sara::launch(
        dir,
        db_url,
        &[
            ("SARA_LIMITS__PHONE_PER_MINUTE", "3"),
            ("SARA_LIMITS__BAD_SIGNATURE_PER_IP_PER_MINUTE", "2"),
        ],
    )
    .await
}

fn unsigned(from: &str) -> Vec<(String, String)> {
    vec![
        ("Body".to_string(), "hello".to_string()),
        ("From".to_string(), from.to_string()),
        ("MessageSid".to_string(), sid()),
    ]
}

#[tokio::test]
async fn failed_signatures_are_limited_per_ip_but_signed_traffic_from_that_ip_is_not() {
    let sara = limited_sara().await;
    let me = phone(700);
    let mut resp = None;
    for _ in 0..5 {
        let r = sara
            .client
            .post(format!("{}/webhook/sms", sara.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(unsigned(&me))
                    .finish(),
            )
            .send()
            .await
            .expect("request reaches sara");
        match r.status().as_u16() {
            403 => continue,
            429 => {
                resp = Some(r);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let resp = resp.expect("a 429 within twice the limit");
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = resp.json().await.expect("JSON error");
    assert_eq!(body["error"], "rate_limited");
    // The same address sending signed webhooks (as Twilio does for everyone) still gets in.
    assert!(!sara.text(&phone(701), "hello").await.is_empty());
}

#[tokio::test]
async fn a_caller_over_the_per_phone_limit_gets_429_and_others_are_unaffected() {
    let sara = limited_sara().await;
    let me = phone(702);
    let mut answered = 0;
    let mut limited = false;
    for _ in 0..7 {
        let (status, body) = sara.sms_with_sid(&me, "hello", &sid()).await;
        match status {
            200 => answered += 1,
            429 => {
                limited = true;
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(limited, "a 429 within twice the limit");
    let (status, _) = sara.sms_with_sid(&phone(703), "hello", &sid()).await;
    assert_eq!(status, 200, "another caller is not limited");
    let (_, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(
        log["turns"].as_array().map(Vec::len),
        Some(answered),
        "the limited message was not applied"
    );
}
