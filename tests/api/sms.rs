//! Booking over SMS, signatures, duplicates and two callers racing for one slot.

use chrono::{DateTime, NaiveTime, Weekday};

use crate::helpers::{message_of, phone, sid, spawn_app, upcoming};

fn start_of(booking: &serde_json::Value) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(booking["start"].as_str().expect("start is a string"))
        .expect("start is RFC 3339")
}

#[tokio::test]
async fn a_booking_spread_over_turns_in_any_order_with_a_correction_lands_at_the_right_local_time()
{
    let sara = spawn_app().await;
    let me = phone(1);
    let (day, day_text) = upcoming(Weekday::Tue);

    let hello = sara.text(&me, "hello").await;
    assert!(hello.contains("Harbor Street Clinic"), "{hello}");
    // Name first, then the date and time, then the service: not the order Sara asks in.
    sara.text(&me, "my name is Sam Ortiz").await;
    sara.text(&me, &format!("could I come in on {day_text} at 10am?"))
        .await;
    let confirm = sara.text(&me, "a cleaning please").await;
    assert!(
        confirm.contains("Sam Ortiz") && confirm.contains("10:00 AM"),
        "{confirm}"
    );
    assert!(
        confirm.contains(&day.format("%A, %B %-d").to_string()),
        "reads the date back: {confirm}"
    );
    let corrected = sara.text(&me, "actually make it 10:30").await;
    assert!(corrected.contains("10:30 AM"), "{corrected}");
    assert!(
        sara.bookings().await.is_empty(),
        "nothing is written before the caller confirms"
    );
    let done = sara.text(&me, "yes please").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");

    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    let b = &bookings[0];
    assert_eq!(b["phone"], me.as_str());
    assert_eq!(b["name"], "Sam Ortiz");
    assert_eq!(b["service"], "Cleaning");
    assert_eq!(b["status"], "confirmed");
    let start = start_of(b);
    assert_eq!(start.date_naive(), day);
    assert_eq!(start.time(), NaiveTime::from_hms_opt(10, 30, 0).unwrap());
    let end = DateTime::parse_from_rfc3339(b["end"].as_str().unwrap()).unwrap();
    assert_eq!(
        (end - start).num_minutes(),
        45,
        "a cleaning lasts 45 minutes"
    );

    let (status, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(status, 200);
    let turns = log["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 6);
    let seqs: Vec<i64> = turns.iter().map(|t| t["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless: {seqs:?}"
    );
    assert_eq!(turns[5]["text"], "yes please");
    assert_eq!(
        turns[5]["nlu"], "rules",
        "the log says which understanding read it"
    );
}

#[tokio::test]
async fn a_forged_or_missing_signature_is_refused_and_nothing_is_stored() {
    let sara = spawn_app().await;
    let me = phone(2);
    let params = vec![
        ("Body".to_string(), "book a cleaning".to_string()),
        ("From".to_string(), me.clone()),
        ("MessageSid".to_string(), sid()),
    ];
    let (status, body) = sara.post_form("/webhook/sms", &params, None).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = sara
        .post_form("/webhook/sms", &params, Some("bm90IGEgc2lnbmF0dXJl"))
        .await;
    assert_eq!(status, 403);
    // Signed for another URL (a Host-header trick must not help).
    let other = sara::channels::twilio::TwilioSignature::new(crate::helpers::AUTH_TOKEN)
        .sign(&format!("{}/webhook/sms", sara.base), &params);
    let (status, _) = sara.post_form("/webhook/sms", &params, Some(&other)).await;
    assert_eq!(status, 403);
    let (status, _) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(status, 404, "no conversation was stored");
    let (_, stats) = sara.admin_get("/admin/stats").await;
    assert_eq!(stats["turns"], 0);
}

#[tokio::test]
async fn the_same_message_sid_twice_gives_the_same_reply_one_turn_and_one_booking() {
    let sara = spawn_app().await;
    let me = phone(3);
    let (_, day_text) = upcoming(Weekday::Wed);
    let ask = sara
        .text(
            &me,
            &format!("Book a consultation on {day_text} at 2pm, it's Maria Lopez"),
        )
        .await;
    assert!(ask.contains("Maria Lopez"), "{ask}");
    let yes_sid = sid();
    let (s1, first) = sara.sms_with_sid(&me, "yes", &yes_sid).await;
    let (s2, second) = sara.sms_with_sid(&me, "yes", &yes_sid).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(message_of(&first), message_of(&second));
    assert!(
        message_of(&first).to_lowercase().contains("booked"),
        "{first}"
    );
    let (_, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(log["turns"].as_array().unwrap().len(), 2);
    let (status, by_sid) = sara.admin_get(&format!("/logs/{yes_sid}")).await;
    assert_eq!(status, 200);
    assert_eq!(by_sid["conversation"], me.as_str());
    assert_eq!(sara.bookings().await.len(), 1);
}

#[tokio::test]
async fn two_callers_wanting_the_same_slot_get_one_booking_and_the_other_is_offered_alternatives() {
    let sara = spawn_app().await;
    let (a, b) = (phone(4), phone(5));
    let (_, day_text) = upcoming(Weekday::Thu);
    let ask = format!("I'd like a consultation on {day_text} at 3pm");
    let to_a = sara.text(&a, &format!("{ask}, my name is Ann Lee")).await;
    let to_b = sara.text(&b, &format!("{ask}, my name is Bob Ray")).await;
    assert!(
        to_a.contains("3:00 PM") && to_b.contains("3:00 PM"),
        "{to_a} / {to_b}"
    );
    let (ya, yb) = tokio::join!(sara.text(&a, "yes"), sara.text(&b, "yes"));
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "exactly one booking: {bookings:?}");
    let (winner, loser) = if ya.to_lowercase().contains("booked") {
        (ya, yb)
    } else {
        (yb, ya)
    };
    assert!(winner.to_lowercase().contains("booked"), "{winner}");
    assert!(!loser.to_lowercase().contains("you're booked"), "{loser}");
    assert!(
        loser.contains("AM") || loser.contains("PM"),
        "the other caller is offered times: {loser}"
    );
}

#[tokio::test]
async fn a_booking_left_unfinished_past_the_form_expiry_starts_over() {
    let sara = spawn_app().await;
    let clock = sara
        .clock
        .clone()
        .expect("an in-process app has a test clock");
    let me = phone(40);
    let asked = sara.text(&me, "I'd like a consultation").await;
    assert!(!asked.is_empty());
    // The engine's clock moves past the form's expiry; nobody waits for it.
    let minutes = i64::from(crate::helpers::business().form_expiry_minutes);
    clock.advance(chrono::Duration::minutes(minutes + 1));
    let again = sara.text(&me, "at 3pm").await;
    assert!(again.starts_with("It's been a while"), "{again}");
}
