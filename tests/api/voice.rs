//! A phone call: greeting, spoken turns through `<Gather>`, a booking, and a transfer to staff.

use chrono::Weekday;

use crate::helpers::{phone, spawn_app, upcoming};

fn says(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Say>") {
        let after = &rest[i + 5..];
        let end = after.find("</Say>").unwrap_or(after.len());
        out.push_str(&quick_xml::escape::unescape(&after[..end]).unwrap_or_default());
        out.push(' ');
        rest = &after[end..];
    }
    out
}

#[tokio::test]
async fn a_caller_books_by_voice_and_a_repeated_gather_is_answered_once() {
    let sara = spawn_app().await;
    let me = phone(40);
    let call = [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("From", me.as_str()),
        ("To", "+15550100000"),
    ];
    let (status, xml) = sara.twilio("/webhook/voice", &call).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<Gather input=\"speech\""), "{xml}");
    assert!(
        xml.contains("action=\"https://sara.example.com/webhook/voice/gather?n=1\""),
        "{xml}"
    );
    assert!(says(&xml).contains("Harbor Street Clinic"));

    let (_, day_text) = upcoming(Weekday::Wed);
    let ask = format!("I'd like a consultation on {day_text} at 11am, my name is Ana Ruiz");
    let mut first = call.to_vec();
    first.extend([("SpeechResult", ask.as_str()), ("Confidence", "0.92")]);
    let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &first).await;
    assert_eq!(status, 200, "{xml}");
    assert!(says(&xml).contains("Ana Ruiz"), "{xml}");
    assert!(xml.contains("gather?n=2"), "{xml}");

    let mut yes = call.to_vec();
    yes.extend([("SpeechResult", "Yes."), ("Confidence", "0.88")]);
    let (_, done) = sara.twilio("/webhook/voice/gather?n=2", &yes).await;
    assert!(says(&done).to_lowercase().contains("booked"), "{done}");
    let (_, again) = sara.twilio("/webhook/voice/gather?n=2", &yes).await;
    assert_eq!(says(&again), says(&done), "Twilio retried the same gather");
    assert_eq!(sara.bookings().await.len(), 1);

    let (status, log) = sara
        .admin_get("/logs/CA0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, 200);
    let turns = log["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2);
    assert!(turns.iter().all(|t| t["channel"] == "voice"));
}

#[tokio::test]
async fn asking_for_a_person_on_a_call_dials_the_staff_even_when_redelivered_and_silence_is_asked_again()
 {
    let sara = spawn_app().await;
    let me = phone(41);
    let call = [
        ("CallSid", "CAfeedface000000000000000000000000"),
        ("From", me.as_str()),
    ];
    let mut silent = call.to_vec();
    silent.push(("SpeechResult", ""));
    let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &silent).await;
    assert_eq!(status, 200);
    assert!(
        xml.contains("gather?n=1") && says(&xml).contains("didn't catch"),
        "{xml}"
    );

    let mut human = call.to_vec();
    human.push(("SpeechResult", "can I talk to a real person please"));
    let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &human).await;
    assert_eq!(status, 200);
    assert!(
        xml.contains("<Dial timeout=\"20\">+15550100000</Dial>"),
        "{xml}"
    );
    assert!(
        xml.contains("<Record"),
        "voicemail when nobody answers: {xml}"
    );

    // Twilio delivers the same gather again (a timeout on its side): the caller is put
    // through again, not asked for another turn.
    let (status, again) = sara.twilio("/webhook/voice/gather?n=1", &human).await;
    assert_eq!(status, 200);
    assert_eq!(again, xml, "a re-delivered gather gets the same TwiML");
    assert!(!again.contains("<Gather"), "{again}");

    let (status, _) = sara
        .twilio(
            "/webhook/voice/status",
            &[
                ("CallSid", "CAfeedface000000000000000000000000"),
                ("CallStatus", "completed"),
            ],
        )
        .await;
    assert_eq!(status, 204);
    let forged = sara
        .post_form(
            "/webhook/voice",
            &[("CallSid".into(), "CA1".into())],
            Some("Zm9yZ2Vk"),
        )
        .await;
    assert_eq!(forged.0, 403);
}
