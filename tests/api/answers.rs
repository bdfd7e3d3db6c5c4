//! Answers to a reminder (DIALOGS.md 13) over SMS: "C" records attendance, shown by
//! `/admin/bookings`; "X" cancels after the usual confirmation; a bare letter with nothing
//! to be about is asked about.

use crate::helpers::{Sara, phone, spawn_app, upcoming};
use chrono::Weekday;

/// Books Maria's cleaning on the first open Wednesday at 10 AM over SMS.
async fn book_cleaning(sara: &Sara, me: &str) {
    let (_, day) = upcoming(Weekday::Wed);
    let asked = sara
        .text(
            me,
            &format!("book a cleaning on {day} at 10am, my name is Maria Lopez"),
        )
        .await;
    assert!(asked.contains("Shall I confirm"), "{asked}");
    let done = sara.text(me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
}

#[tokio::test]
async fn c_confirms_attendance_and_the_admin_shows_it() {
    let sara = spawn_app().await;
    let me = phone(7101);
    book_cleaning(&sara, &me).await;
    assert_eq!(
        sara.bookings().await[0]["attendance"],
        serde_json::Value::Null
    );
    let thanks = sara.text(&me, "C").await;
    assert!(
        thanks.starts_with("Thanks, Maria — see you") && thanks.contains("10:00 AM"),
        "{thanks}"
    );
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    assert_eq!(bookings[0]["attendance"], "confirmed", "{bookings:?}");
    assert_eq!(bookings[0]["status"], "confirmed");
}

#[tokio::test]
async fn x_cancels_after_the_usual_confirmation_and_a_bare_letter_alone_is_asked_about() {
    let sara = spawn_app().await;
    let me = phone(7102);
    let asked = sara.text(&me, "X").await;
    assert!(asked.contains("not sure what \"X\" means"), "{asked}");
    book_cleaning(&sara, &me).await;
    let confirm = sara.text(&me, "X").await;
    assert!(confirm.starts_with("Cancel your cleaning on"), "{confirm}");
    assert_eq!(sara.bookings().await[0]["status"], "confirmed");
    let done = sara.text(&me, "yes").await;
    assert!(done.contains("cancelled"), "{done}");
    assert_eq!(sara.bookings().await[0]["status"], "cancelled");
}
