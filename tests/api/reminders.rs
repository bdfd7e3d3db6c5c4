//! Reminders end to end: bookings made over signed SMS and WhatsApp webhooks to the real
//! server, time moved with `POST /admin/debug/clock`, and the reminders received by local
//! stand-ins that speak Twilio's REST API and Meta's Graph API. Dates come from the
//! business's hours (`open_days`), never from the day the test runs.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{
    ADMIN_TOKEN, AUTH_TOKEN, Sara, business, day_text, open_days, phone, spawn_app,
};

const ACCOUNT: &str = "AC0000000000000000000000000000remind";
const MESSAGES: &str = "/2010-04-01/Accounts/AC0000000000000000000000000000remind/Messages.json";

/// Answers a message as Twilio's REST API does (201 and the message resource).
struct Accept;

impl Respond for Accept {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        ResponseTemplate::new(201).set_body_json(json!({
            "account_sid": ACCOUNT,
            "sid": format!("SM{}", uuid::Uuid::new_v4().simple()),
            "status": "queued"
        }))
    }
}

/// A Twilio REST stand-in that accepts every message.
async fn twilio_rest() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(Accept)
        .mount(&server)
        .await;
    server
}

fn twilio_env(server: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("SARA_TWILIO__ACCOUNT_SID", ACCOUNT.to_string()),
        ("SARA_TWILIO__FROM", "+15550100000".to_string()),
        ("SARA_TWILIO__API_BASE", server.uri()),
    ]
}

/// Every SMS the stand-in was asked to send, as its form fields.
async fn sent_sms(server: &MockServer) -> Vec<HashMap<String, String>> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == MESSAGES)
        .map(|r| {
            let mut form: HashMap<String, String> = form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let auth = r
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            form.insert("authorization".into(), auth);
            form
        })
        .collect()
}

/// The instant of a local time of the business on `day`.
fn local(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    let t = day.and_time(NaiveTime::from_hms_opt(h, m, 0).expect("a time"));
    sara_actors::reminders::local_instant(business().timezone, t)
}

/// Two open weekdays (afternoon hours), the second after the first.
fn two_weekdays() -> (NaiveDate, NaiveDate) {
    let afternoon = |d: &NaiveDate| {
        sara_actors::availability::Availability::new(business())
            .opening(*d)
            .iter()
            .any(|r| r.start <= local(*d, 14, 0) && local(*d, 16, 0) <= r.end)
    };
    let mut days = open_days().filter(afternoon);
    let first = days.next().expect("an open weekday");
    let second = days.next().expect("a second open weekday");
    (first, second)
}

async fn book_by_sms(sara: &Sara, me: &str, day: NaiveDate, name: &str) {
    let ask = format!(
        "book a cleaning on {} at 2pm, my name is {name}",
        day_text(day)
    );
    let confirm = sara.text(me, &ask).await;
    assert!(confirm.contains("2:00 PM"), "{confirm}");
    let done = sara.text(me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
}

fn reminders_in(outbox: &Value) -> Vec<&Value> {
    (outbox.as_array().into_iter().flatten())
        .filter(|r| r["kind"] == "reminder")
        .collect()
}

#[tokio::test]
async fn sms_reminders_come_at_their_local_time_follow_a_move_and_are_dropped_on_cancel() {
    let twilio = twilio_rest().await;
    let env = twilio_env(&twilio);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sara = Sara::start_with(&env).await;
    let me = phone(910);
    let (day, later) = two_weekdays();
    book_by_sms(&sara, &me, day, "Maria Lopez").await;

    // Just before the day-before reminder (14:00 local the day before): nothing yet.
    let day_before = local(day.pred_opt().expect("a day"), 14, 0);
    sara.advance_to(day_before - chrono::Duration::minutes(10))
        .await;
    assert!(sent_sms(&twilio).await.is_empty(), "nothing due yet");

    sara.advance_to(day_before).await;
    let sent = sent_sms(&twilio).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let sms = &sent[0];
    assert_eq!(sms["To"], me);
    assert_eq!(sms["From"], "+15550100000");
    assert_eq!(
        sms["StatusCallback"],
        "https://sara.example.com/webhook/sms/status"
    );
    let basic = base64_basic(ACCOUNT, AUTH_TOKEN);
    assert_eq!(sms["authorization"], basic);
    let body = &sms["Body"];
    assert!(
        body.starts_with("Hi Maria, a reminder of your cleaning tomorrow, ")
            && body.contains("2:00 PM")
            && body.contains("Reply C to confirm, R to change it or X to cancel."),
        "{body}"
    );
    assert!(
        !body.contains("CANCEL") && !body.contains("STOP"),
        "no opt-out word over SMS: {body}"
    );
    // The same mark again (a second pass, the clock moved by nothing): not sent twice.
    sara.settle().await;
    assert_eq!(sent_sms(&twilio).await.len(), 1);

    // Moved to another day: the old two-hours-before reminder is void, the new ones follow.
    let asked = sara
        .text(
            &me,
            &format!(
                "I need to move my appointment to {} at 3pm",
                day_text(later)
            ),
        )
        .await;
    assert!(asked.contains("3:00 PM"), "{asked}");
    let moved = sara.text(&me, "yes").await;
    assert!(moved.to_lowercase().contains("moved"), "{moved}");
    sara.advance_to(local(day, 12, 30)).await;
    assert_eq!(
        sent_sms(&twilio).await.len(),
        1,
        "the old time's reminder is void"
    );

    sara.advance_to(local(later.pred_opt().expect("a day"), 15, 0))
        .await;
    let sent = sent_sms(&twilio).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[1]["Body"].contains("3:00 PM"), "{:?}", sent[1]);

    // Cancelled: its last reminder (13:00 on the day) is dropped.
    let ask = sara.text(&me, "please cancel my appointment").await;
    assert!(ask.starts_with("Cancel your cleaning"), "{ask}");
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("cancelled"), "{done}");
    sara.advance_to(local(later, 14, 0)).await;
    assert_eq!(sent_sms(&twilio).await.len(), 2, "nothing after the cancel");

    let (_, outbox) = sara.admin_get("/admin/outbox").await;
    let reminders = reminders_in(&outbox);
    assert_eq!(reminders.len(), 2, "{outbox}");
    for row in &reminders {
        assert_eq!(row["channel"], "sms");
        assert_eq!(row["status"], "sent");
        assert!(
            row["provider_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("SM"))
        );
    }
    assert_eq!(sara.metric("sara_reminders_sent_total").await, 2.0);
}

#[tokio::test]
async fn a_booking_made_inside_an_offset_skips_that_reminder() {
    let twilio = twilio_rest().await;
    let env = twilio_env(&twilio);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sara = Sara::start_with(&env).await;
    let me = phone(911);
    let (_, day) = two_weekdays();
    // Less than a day before the appointment (the evening before, 18:00 local).
    sara.advance_to(local(day.pred_opt().expect("a day"), 18, 0))
        .await;
    book_by_sms(&sara, &me, day, "Ola Berg").await;
    sara.advance_to(local(day, 13, 0)).await;
    let sent = sent_sms(&twilio).await;
    assert_eq!(
        sent.len(),
        1,
        "only the two-hours-before reminder: {sent:?}"
    );
    assert!(
        sent[0]["Body"].starts_with("Hi Ola, a reminder of your cleaning today, "),
        "{:?}",
        sent[0]
    );
}

#[tokio::test]
async fn a_reminder_due_in_the_quiet_hours_goes_at_their_end() {
    let twilio = twilio_rest().await;
    let env = twilio_env(&twilio);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sara = Sara::start_with(&env).await;
    let me = phone(912);
    let (day, _) = two_weekdays();
    let confirm = sara
        .text(
            &me,
            &format!(
                "book a cleaning on {} at 9am, my name is Ivy Moss",
                day_text(day)
            ),
        )
        .await;
    assert!(confirm.contains("9:00 AM"), "{confirm}");
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
    // Two hours before 9:00 is 07:00, inside the quiet hours (21:00-08:00): it waits for 08:00.
    sara.advance_to(local(day, 7, 45)).await;
    assert_eq!(
        sent_sms(&twilio).await.len(),
        1,
        "only the day-before reminder"
    );
    sara.advance_to(local(day, 8, 0)).await;
    let sent = sent_sms(&twilio).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[1]["Body"].starts_with("Hi Ivy, a reminder of your cleaning today, "),
        "{:?}",
        sent[1]
    );
}

#[tokio::test]
async fn the_debug_clock_needs_the_admin_and_a_sensible_advance() {
    let sara = spawn_app().await;
    let before = sara.settle().await;
    let after = sara.advance(90).await;
    assert!(
        after - before >= chrono::Duration::minutes(90),
        "{before} → {after}"
    );
    for bad in [
        json!({"advance_minutes": -1}),
        json!({"minutes": 5}),
        json!("soon"),
    ] {
        let resp = sara
            .client
            .post(format!("{}/admin/debug/clock", sara.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&bad)
            .send()
            .await
            .expect("request reaches sara");
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
    }
    let anonymous = sara
        .client
        .post(format!("{}/admin/debug/clock", sara.base))
        .json(&json!({"advance_minutes": 5}))
        .send()
        .await
        .expect("request reaches sara");
    assert_eq!(anonymous.status().as_u16(), 401);
    assert!(sara.settle().await >= after, "never backwards");
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

// --- WhatsApp: text inside the 24-hour window, the template outside it ----------------------

const WA_SECRET: &str = "wa-app-secret";

async fn graph() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v21\.0/1234567890/messages$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "messages": [{"id": "wamid.sent"}]
        })))
        .mount(&server)
        .await;
    server
}

/// The messages (not read receipts) Sara sent through the Graph stand-in.
async fn graph_messages(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|v| v["status"] != "read")
        .collect()
}

/// A signed WhatsApp text message, stamped (as Meta stamps it) with the time on Sara's clock.
async fn whatsapp(sara: &Sara, from: &str, id: &str, body: &str) {
    let sent_at = sara.settle().await.timestamp().to_string();
    let hook = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100000", "phone_number_id": "1234567890"},
        "contacts": [{"profile": {"name": "Test"}, "wa_id": from}],
        "messages": [{"from": from, "id": id, "timestamp": sent_at, "type": "text", "text": {"body": body}}]}}]}]});
    let raw = serde_json::to_vec(&hook).expect("json");
    let signature = sara::channels::whatsapp::WhatsAppSignature::new(WA_SECRET).sign(&raw);
    let resp = sara
        .client
        .post(format!("{}/webhook/whatsapp", sara.base))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(raw)
        .send()
        .await
        .expect("sara answers");
    assert_eq!(resp.status().as_u16(), 200);
    sara.settle().await;
}

#[tokio::test]
async fn whatsapp_reminders_use_the_template_outside_the_window_and_buttons_inside() {
    let graph = graph().await;
    let uri = graph.uri();
    let env = [
        ("SARA_WHATSAPP__APP_SECRET", WA_SECRET),
        ("SARA_WHATSAPP__VERIFY_TOKEN", "wa-verify"),
        ("SARA_WHATSAPP__ACCESS_TOKEN", "wa-access-token"),
        ("SARA_WHATSAPP__PHONE_NUMBER_ID", "1234567890"),
        ("SARA_WHATSAPP__GRAPH_BASE_URL", uri.as_str()),
        ("SARA_WHATSAPP__REMINDER_TEMPLATE", "appointment_reminder"),
    ];
    let sara = Sara::start_with(&env).await;
    let from = "15550009191";
    let (day, _) = two_weekdays();
    let ask = format!(
        "book a cleaning on {} at 2pm, my name is Nia Cole",
        day_text(day)
    );
    whatsapp(&sara, from, "wamid.r1", &ask).await;
    whatsapp(&sara, from, "wamid.r2", "yes").await;
    let replies = graph_messages(&graph).await.len();
    assert_eq!(replies, 2, "the two replies");

    // The day before, the customer last wrote days ago: only a template is delivered.
    sara.advance_to(local(day.pred_opt().expect("a day"), 14, 0))
        .await;
    let sent = graph_messages(&graph).await;
    assert_eq!(sent.len(), replies + 1, "{sent:?}");
    let template = &sent[replies];
    assert_eq!(template["to"], from);
    assert_eq!(template["type"], "template", "{template}");
    assert_eq!(template["template"]["name"], "appointment_reminder");
    assert_eq!(template["template"]["language"]["code"], "en_US");
    let params: Vec<&str> = template["template"]["components"][0]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert_eq!(params.len(), 3, "{template}");
    assert_eq!(&params[..2], ["Nia", "cleaning"]);
    assert!(params[2].contains("2:00 PM"), "{template}");

    // The customer writes back: the window is open, so the next reminder is text + buttons.
    whatsapp(&sara, from, "wamid.r3", "thanks").await;
    let before = graph_messages(&graph).await.len();
    sara.advance_to(local(day, 12, 0)).await;
    let sent = graph_messages(&graph).await;
    assert_eq!(sent.len(), before + 1, "{sent:?}");
    let text = &sent[before];
    assert_eq!(text["type"], "interactive", "{text}");
    let body = text["interactive"]["body"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        body.starts_with("Hi Nia, a reminder of your cleaning today, "),
        "{text}"
    );
    let (_, outbox) = sara.admin_get("/admin/outbox").await;
    let reminders = reminders_in(&outbox);
    assert_eq!(reminders.len(), 2, "{outbox}");
    assert!(
        reminders
            .iter()
            .all(|r| r["channel"] == "whatsapp" && r["status"] == "sent")
    );
}

// --- Several instances ------------------------------------------------------------------------

#[tokio::test]
async fn three_instances_on_postgresql_send_each_reminder_exactly_once() {
    let db = crate::production::PgDatabase::create().await;
    let twilio = twilio_rest().await;
    let env = twilio_env(&twilio);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let redis = crate::production::shared_redis_url();
    let instances = crate::production::cluster(3, &db.url_on(5432), &redis, &env).await;
    let (day, _) = two_weekdays();
    let callers: Vec<String> = (0..3).map(|i| phone(920 + i)).collect();
    let names = ["Ann Lee", "Bob Ray", "Cy Tan"];
    for (i, me) in callers.iter().enumerate() {
        let sara = &instances[i];
        let ask = format!(
            "book a cleaning on {} at {}pm, my name is {}",
            day_text(day),
            2 + i,
            names[i]
        );
        let confirm = sara.text(me, &ask).await;
        assert!(confirm.contains(":00 PM"), "{confirm}");
        let done = sara.text(me, "yes").await;
        assert!(done.to_lowercase().contains("booked"), "{done}");
    }
    // Every instance's clock jumps at once, in three steps (a jump past an appointment's
    // start would drop its reminder): past the day-before reminders, past the 12:00 and 13:00
    // ones, past the 14:00 one.
    let day_before = day.pred_opt().expect("a day");
    for target in [
        local(day_before, 17, 0),
        local(day, 13, 30),
        local(day, 14, 30),
    ] {
        let now = instances[0].settle().await;
        let m = crate::helpers::minutes_until(now, target);
        tokio::join!(
            instances[0].advance(m),
            instances[1].advance(m),
            instances[2].advance(m)
        );
    }
    for sara in &instances {
        sara.settle().await;
    }
    let sent = sent_sms(&twilio).await;
    let mut per_caller: HashMap<&str, usize> = HashMap::new();
    for sms in &sent {
        *per_caller.entry(sms["To"].as_str()).or_default() += 1;
    }
    for me in &callers {
        assert_eq!(per_caller.get(me.as_str()), Some(&2), "{me}: {sent:?}");
    }
    assert_eq!(sent.len(), 6, "two reminders each, once: {sent:?}");
    let mut total = 0.0;
    for sara in &instances {
        total += sara.metric("sara_reminders_sent_total").await;
    }
    assert_eq!(total, 6.0);
}
