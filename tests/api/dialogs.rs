//! DIALOGS.md over signed SMS against the real server: times in words and relative moves,
//! answers only to questions asked, two requests in one message, an unread time asked again,
//! and a polite close.

use chrono::{DateTime, NaiveTime, Weekday};

use crate::helpers::{Sara, phone, upcoming};

fn start_of(booking: &serde_json::Value) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(booking["start"].as_str().expect("start is a string"))
        .expect("start is RFC 3339")
}

fn confirmed(bookings: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    bookings
        .iter()
        .filter(|b| b["status"] == "confirmed")
        .collect()
}

#[tokio::test]
async fn a_time_in_words_and_an_hour_later_book_the_time_meant() {
    let sara = Sara::start().await;
    let me = phone(301);
    let (day, day_text) = upcoming(Weekday::Wed);
    let confirm = sara
        .text(
            &me,
            &format!("hi, could i get a cleening on {day_text} at ten fifteen? its Sam Ortiz"),
        )
        .await;
    assert!(
        confirm.contains("10:15 AM")
            && confirm.contains("Sam Ortiz")
            && confirm.contains("cleaning"),
        "{confirm}"
    );
    let moved = sara.text(&me, "hmm can we do an hour later").await;
    assert!(moved.contains("11:15 AM"), "{moved}");
    assert!(sara.bookings().await.is_empty(), "nothing written yet");
    let done = sara.text(&me, "great, thanks").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    let start = start_of(&bookings[0]);
    assert_eq!(start.date_naive(), day);
    assert_eq!(start.time(), NaiveTime::from_hms_opt(11, 15, 0).unwrap());
    let bye = sara.text(&me, "thanks, bye!").await;
    assert!(bye.contains("Goodbye"), "{bye}");
}

#[tokio::test]
async fn a_time_sara_cannot_read_is_asked_again_and_never_booked() {
    let sara = Sara::start().await;
    let me = phone(302);
    let (_, day_text) = upcoming(Weekday::Thu);
    let reply = sara
        .text(
            &me,
            &format!("book a whitening on {day_text} at 3 or maybe 4, my name is Ana Ruiz"),
        )
        .await;
    assert!(reply.contains("didn't catch the time"), "{reply}");
    let reply = sara.text(&me, "yes").await;
    assert!(!reply.to_lowercase().contains("booked"), "{reply}");
    assert!(sara.bookings().await.is_empty());
    let reply = sara.text(&me, "half past two").await;
    assert!(reply.contains("2:30 PM"), "{reply}");
}

#[tokio::test]
async fn faq_answers_only_the_questions_asked_and_each_of_two() {
    let sara = Sara::start().await;
    let me = phone(303);
    let (_, day_text) = upcoming(Weekday::Mon);
    let reply = sara
        .text(
            &me,
            &format!("Can I come in {day_text} at 9 for a consultation? Jo Park"),
        )
        .await;
    assert!(
        !reply.contains("Dock Lane") && !reply.contains("parking"),
        "{reply}"
    );
    assert!(reply.contains("9:00 AM"), "{reply}");
    let other = phone(304);
    let reply = sara
        .text(&other, &format!("any openings on {day_text}?"))
        .await;
    assert!(!reply.contains("Our hours"), "{reply}");
    let reply = sara
        .text(&other, "do you have a consultation that day?")
        .await;
    assert!(!reply.contains("$60"), "{reply}");
    let third = phone(305);
    let both = sara
        .text(&third, "where are you and is there parking?")
        .await;
    assert!(
        both.contains("Harbor Street") && both.contains("parking"),
        "two questions, two answers: {both}"
    );
}

#[tokio::test]
async fn cancel_and_book_in_one_message_are_both_done_on_one_yes() {
    let sara = Sara::start().await;
    let me = phone(306);
    let (first, first_text) = upcoming(Weekday::Tue);
    let (second, second_text) = upcoming(Weekday::Fri);
    sara.text(
        &me,
        &format!("book a cleaning on {first_text} at 2pm, my name is Lee Chan"),
    )
    .await;
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");

    let ask = sara
        .text(
            &me,
            &format!(
                "cancel my cleaning on {first_text} and book me a whitening on {second_text} at 11 instead"
            ),
        )
        .await;
    // One question covers both (DIALOGS.md 12), and one "yes" does both.
    assert!(
        ask.starts_with("Cancel your cleaning")
            && ask.contains(", and book a whitening on")
            && ask.contains("11:00 AM?"),
        "{ask}"
    );
    let done = sara.text(&me, "yes").await;
    assert!(
        done.starts_with("Done — the cleaning is cancelled and you're booked for a whitening on")
            && done.contains("11:00 AM"),
        "{done}"
    );
    let bookings = sara.bookings().await;
    let live = confirmed(&bookings);
    assert_eq!(live.len(), 1, "{bookings:?}");
    assert_eq!(live[0]["service"], "Whitening");
    assert_eq!(live[0]["name"], "Lee Chan");
    let start = start_of(live[0]);
    assert_eq!(start.date_naive(), second);
    assert_eq!(start.time(), NaiveTime::from_hms_opt(11, 0, 0).unwrap());
    assert!(
        !live.iter().any(|b| start_of(b).date_naive() == first),
        "the cleaning is cancelled"
    );
}
