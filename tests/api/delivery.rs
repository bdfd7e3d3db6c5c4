//! Delivery reports of the messages Sara sent: Twilio's message status callbacks on
//! `POST /webhook/sms/status`.

use crate::helpers::Sara;

const PATH: &str = "/webhook/sms/status";

fn callback<'a>(sid: &'a str, status: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("To", "+15550001111"),
        ("From", "+15550100000"),
        ("ApiVersion", "2010-04-01"),
    ]
}

#[tokio::test]
async fn signed_status_callbacks_get_204_and_count_as_delivery_reports() {
    let sara = Sara::start().await;
    let sid = "SM0123456789abcdef0123456789abcdef";
    for status in ["queued", "sent", "delivered"] {
        let (code, body) = sara.twilio(PATH, &callback(sid, status)).await;
        assert_eq!(code, 204, "{status}: {body}");
    }
    let mut failed = callback("SMffffffffffffffffffffffffffffffff", "undelivered");
    failed.push(("ErrorCode", "30003"));
    assert_eq!(sara.twilio(PATH, &failed).await.0, 204);
    let count =
        |status: &str| format!(r#"sara_delivery_reports_total{{channel="sms",status="{status}"}}"#);
    assert_eq!(sara.metric(&count("sent")).await, 1.0);
    assert_eq!(sara.metric(&count("delivered")).await, 1.0);
    assert_eq!(sara.metric(&count("failed")).await, 1.0);
    let (_, stats) = sara.admin_get("/admin/stats").await;
    assert_eq!(stats["turns"], 0, "a status callback is not a message");
    // Reports about messages Sara does not know create no outbox rows.
    let (code, outbox) = sara.admin_get("/admin/outbox").await;
    assert_eq!((code, outbox), (200, serde_json::json!([])));
    let anonymous = sara
        .client
        .get(format!("{}/admin/outbox", sara.base))
        .send()
        .await
        .expect("request reaches sara");
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
async fn forged_or_malformed_status_callbacks_are_refused_clearly() {
    let sara = Sara::start().await;
    let params: Vec<(String, String)> = callback("SM1", "delivered")
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (code, _) = sara.post_form(PATH, &params, Some("forged")).await;
    assert_eq!(code, 403);
    let (code, _) = sara.post_form(PATH, &params, None).await;
    assert_eq!(code, 403);
    let (code, body) = sara.twilio(PATH, &[("MessageStatus", "delivered")]).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("MessageSid"), "{body}");
    let (code, body) = sara
        .twilio(PATH, &[("MessageSid", "SM<1>"), ("MessageStatus", "sent")])
        .await;
    assert_eq!(code, 400, "{body}");
}
