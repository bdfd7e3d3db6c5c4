//! The rules of a clinic's week through the HTTP front door: staff ("with Anna"), limits
//! per customer and the notice for late cancels, configured as an operator would.

use std::collections::BTreeMap;

use chrono::{DateTime, Weekday};
use sara::config::StaffConfig;

use crate::helpers::{phone, spawn_app, spawn_app_with, upcoming};

fn start_of(booking: &serde_json::Value) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(booking["start"].as_str().expect("start is a string"))
        .expect("start is RFC 3339")
}

/// Anna cleans in the mornings only; Ben does everything whenever the clinic is open.
fn anna_and_ben(config: &mut sara::config::Config) {
    let mornings: BTreeMap<String, String> = ["mon", "tue", "wed", "thu", "fri"]
        .into_iter()
        .map(|d| (d.to_string(), "09:00-12:00".to_string()))
        .collect();
    config.business.staff = vec![
        StaffConfig {
            name: "Anna".into(),
            services: Some(vec!["Cleaning".into()]),
            hours: Some(mornings),
        },
        StaffConfig {
            name: "Ben".into(),
            services: None,
            hours: None,
        },
    ];
}

#[tokio::test]
async fn with_anna_is_kept_and_two_staff_share_a_time_shown_in_admin_bookings() {
    let sara = spawn_app_with(anna_and_ben).await;
    let (a, b) = (phone(31), phone(32));
    let (_, day) = upcoming(Weekday::Tue);
    let out = sara
        .text(
            &a,
            &format!("I'd like a cleaning with Anna on {day} at 2pm, my name is Ann Lee"),
        )
        .await;
    assert!(out.contains("Anna isn't in at 2:00 PM"), "{out}");
    let asked = sara.text(&a, "10am then").await;
    assert!(asked.contains("10:00 AM"), "{asked}");
    let done = sara.text(&a, "yes").await;
    assert!(done.contains("booked"), "{done}");

    // Another caller at the same time, naming nobody: Ben is free beside Anna.
    let asked = sara
        .text(
            &b,
            &format!("I'd like a cleaning on {day} at 10am, my name is Bob Ray"),
        )
        .await;
    assert!(asked.contains("10:00 AM"), "{asked}");
    let done = sara.text(&b, "yes").await;
    assert!(done.contains("booked"), "{done}");

    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 2, "{bookings:?}");
    assert_eq!(start_of(&bookings[0]), start_of(&bookings[1]));
    let mut staff: Vec<&str> = bookings
        .iter()
        .map(|b| b["staff"].as_str().expect("staff is named"))
        .collect();
    staff.sort();
    assert_eq!(staff, ["Anna", "Ben"]);
    assert!(bookings.iter().all(|b| b["calendar"] == "local"));
}

#[tokio::test]
async fn one_number_cannot_hold_more_than_the_day_limit() {
    // The shipped config.toml: at most 2 bookings per customer and day.
    let sara = spawn_app().await;
    let me = phone(33);
    let (_, day) = upcoming(Weekday::Wed);
    for at in ["9am", "10am"] {
        let asked = sara
            .text(
                &me,
                &format!("I'd like a consultation on {day} at {at}, my name is Ann Lee"),
            )
            .await;
        assert!(asked.contains("AM"), "{asked}");
        let done = sara.text(&me, "yes").await;
        assert!(done.contains("booked"), "{done}");
    }
    let third = sara
        .text(
            &me,
            &format!("I'd like a consultation on {day} at 11am, my name is Ann Lee"),
        )
        .await;
    assert!(
        third.contains("You already have two bookings on"),
        "{third}"
    );
    let yes = sara.text(&me, "yes").await;
    assert!(!yes.contains("booked"), "{yes}");
    assert_eq!(sara.bookings().await.len(), 2);
}

#[tokio::test]
async fn a_cancel_later_than_the_notice_goes_to_staff_and_cancels_nothing() {
    let sara = spawn_app_with(|c| c.business.cancel_notice_minutes = 1440).await;
    let me = phone(34);
    let (_, day) = upcoming(Weekday::Thu);
    sara.text(
        &me,
        &format!("I'd like a consultation on {day} at 3pm, my name is Ann Lee"),
    )
    .await;
    let done = sara.text(&me, "yes").await;
    assert!(done.contains("booked"), "{done}");
    let start = start_of(&sara.bookings().await[0]).with_timezone(&chrono::Utc);
    // Two hours before the appointment.
    let clock = sara
        .clock
        .as_ref()
        .expect("the in-process app has a test clock");
    let now = sara_actors::ports::Clock::now(&**clock);
    clock.advance(start - chrono::Duration::hours(2) - now);
    let out = sara.text(&me, "please cancel my appointment").await;
    assert!(out.contains("so I can't cancel it myself"), "{out}");
    let bookings = sara.bookings().await;
    assert_eq!(bookings[0]["status"], "confirmed", "{bookings:?}");
}
