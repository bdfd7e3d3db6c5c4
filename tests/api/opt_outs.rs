//! SMS opt-outs over the real webhook: STOP (any of Twilio's keywords alone, or Twilio's
//! `OptOutType`) is recorded and not answered; Sara answers that number nothing until it opts
//! in again (START, UNSTOP, YES, or `OptOutType=START`).

use crate::helpers::{message_of, phone, sid, spawn_app};

#[tokio::test]
async fn stop_silences_the_number_until_start_and_none_of_them_is_answered() {
    let sara = spawn_app().await;
    let me = phone(7201);
    let hello = sara.text(&me, "hello").await;
    assert!(hello.contains("Sara"), "{hello}");
    for keyword in ["STOP", "stop", "Unsubscribe", "CANCEL"] {
        let (code, xml) = sara.sms_with_sid(&me, keyword, &sid()).await;
        assert_eq!(code, 200, "{xml}");
        assert_eq!(
            message_of(&xml),
            "",
            "Twilio answers {keyword}, Sara does not: {xml}"
        );
    }
    let (_, xml) = sara
        .sms_with_sid(&me, "hi, can I book a cleaning?", &sid())
        .await;
    assert_eq!(
        message_of(&xml),
        "",
        "nothing is sent to a number that opted out: {xml}"
    );
    let (_, xml) = sara.sms_with_sid(&me, "START", &sid()).await;
    assert_eq!(message_of(&xml), "", "Twilio answers START: {xml}");
    let again = sara.text(&me, "hello").await;
    assert!(
        again.contains("Sara"),
        "answered again after START: {again}"
    );
    // Another number was never affected; "please stop the reminders" is not a keyword.
    let other = phone(7202);
    let answered = sara.text(&other, "please stop the reminders").await;
    assert!(!answered.is_empty(), "{answered}");
}

#[tokio::test]
async fn twilio_opt_out_type_is_honoured_whatever_the_words_and_help_gets_no_second_answer() {
    let sara = spawn_app().await;
    let me = phone(7203);
    let send = |body: &'static str, kind: &'static str| {
        let (sara, me) = (&sara, me.clone());
        async move {
            let id = sid();
            let (code, xml) = sara
                .twilio(
                    "/webhook/sms",
                    &[
                        ("From", me.as_str()),
                        ("To", "+15550100000"),
                        ("Body", body),
                        ("MessageSid", id.as_str()),
                        ("OptOutType", kind),
                    ],
                )
                .await;
            assert_eq!(code, 200, "{xml}");
            message_of(&xml)
        }
    };
    assert_eq!(send("info", "HELP").await, "");
    assert_eq!(send("arrête", "STOP").await, "");
    let (_, xml) = sara.sms_with_sid(&me, "hello", &sid()).await;
    assert_eq!(message_of(&xml), "", "{xml}");
    // YES opts a number that opted out in again (one of Twilio's default opt-in words).
    let (_, xml) = sara.sms_with_sid(&me, "yes", &sid()).await;
    assert_eq!(message_of(&xml), "", "{xml}");
    let hello = sara.text(&me, "hello").await;
    assert!(hello.contains("Sara"), "{hello}");
    assert_eq!(send("oui", "STOP").await, "");
    assert_eq!(send("d'accord", "START").await, "");
    let hello = sara.text(&me, "hello").await;
    assert!(hello.contains("Sara"), "{hello}");
}
