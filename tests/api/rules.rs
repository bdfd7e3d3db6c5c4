//! The rules of a clinic's week through the HTTP front door: staff ("with Anna"), limits
//! per customer and the notice for late cancels, configured as an operator would.

use std::collections::BTreeMap;

use chrono::{DateTime, Weekday};
use sara::config::StaffConfig;

use crate::helpers::{Sara, phone, spawn_app, spawn_app_with, temp_dir, upcoming};
use crate::production::PgDatabase;

fn start_of(booking: &serde_json::Value) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(booking["start"].as_str().expect("start is a string"))
        .expect("start is RFC 3339")
}

/// Anna cleans in the mornings only; Ben does everything whenever the clinic is open.
pub fn anna_and_ben(config: &mut sara::config::Config) {
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

/// Delivers an SMS as Twilio does: a 503 is delivered again with the same MessageSid (200
/// callers at once can wait longer than the store's acquire timeout on PostgreSQL).
async fn deliver(sara: &Sara, from: &str, body: &str) -> String {
    let sid = crate::helpers::sid();
    loop {
        let (status, xml) = sara.sms_with_sid(from, body, &sid).await;
        match status {
            200 => return crate::helpers::message_of(&xml),
            503 => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            other => panic!("webhook answered {other}: {xml}"),
        }
    }
}

/// `callers` callers ask for `slots` (round robin) at once, then all confirm at once: the
/// bookings made and who was told "you're booked".
pub(crate) async fn race(
    sara: std::sync::Arc<Sara>,
    slots: &[(chrono::NaiveDate, String, String)],
    callers: usize,
) -> (Vec<serde_json::Value>, std::collections::HashSet<String>) {
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..callers {
        let sara = sara.clone();
        let (_, day, time) = slots[i % slots.len()].clone();
        asks.spawn(async move {
            let me = phone(600 + i as u32);
            let ask = format!("I'd like a consultation on {day} at {time}, my name is Ann Lee");
            let reply = deliver(&sara, &me, &ask).await;
            assert!(reply.contains('M'), "offered a time: {reply}");
            me
        });
    }
    let mut confirms = tokio::task::JoinSet::new();
    while let Some(me) = asks.join_next().await {
        let (sara, me) = (sara.clone(), me.expect("ask task"));
        confirms.spawn(async move {
            let reply = deliver(&sara, &me, "yes").await;
            (me, reply)
        });
    }
    let mut told = std::collections::HashSet::new();
    while let Some(done) = confirms.join_next().await {
        let (me, reply) = done.expect("confirm task");
        if reply.to_lowercase().contains("you're booked") {
            told.insert(me);
        }
    }
    let bookings: Vec<serde_json::Value> = sara
        .bookings()
        .await
        .into_iter()
        .filter(|b| b["status"] == "confirmed")
        .collect();
    (bookings, told)
}

pub(crate) fn phones(bookings: &[serde_json::Value]) -> std::collections::HashSet<String> {
    bookings
        .iter()
        .map(|b| b["phone"].as_str().expect("phone").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_callers_racing_for_ten_slots_get_exactly_ten_bookings_on_sqlite() {
    let sara = std::sync::Arc::new(spawn_app().await);
    let slots = crate::helpers::distinct_slots(10, 30);
    let (bookings, told) = race(sara, &slots, 200).await;
    assert_eq!(bookings.len(), 10, "exactly ten bookings: {bookings:?}");
    let mut starts: Vec<_> = bookings.iter().map(start_of).collect();
    starts.sort();
    starts.dedup();
    assert_eq!(starts.len(), 10, "one per slot");
    assert_eq!(
        told,
        phones(&bookings),
        "\"booked\" is said to exactly the winners"
    );
}

/// With two staff members each of five times can be booked twice — once with each — and
/// never a third time: the engine picks the free person and the store refuses the same
/// person twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_callers_racing_for_five_times_with_two_staff_get_ten_bookings() {
    let sara = std::sync::Arc::new(
        spawn_app_with(|c| {
            c.business.staff = ["Anna", "Ben"]
                .map(|name| StaffConfig {
                    name: name.into(),
                    services: None,
                    hours: None,
                })
                .to_vec();
        })
        .await,
    );
    let slots = crate::helpers::distinct_slots(5, 30);
    let (bookings, told) = race(sara, &slots, 200).await;
    assert_eq!(bookings.len(), 10, "exactly ten bookings: {bookings:?}");
    let mut per_time: BTreeMap<DateTime<chrono::FixedOffset>, Vec<String>> = BTreeMap::new();
    for b in &bookings {
        per_time
            .entry(start_of(b))
            .or_default()
            .push(b["staff"].as_str().expect("with someone").to_string());
    }
    assert_eq!(per_time.len(), 5);
    for (at, mut staff) in per_time {
        staff.sort();
        assert_eq!(staff, ["Anna", "Ben"], "at {at}");
    }
    assert_eq!(
        told,
        phones(&bookings),
        "\"booked\" is said to exactly the winners"
    );
}

/// The same race on PostgreSQL, through the `sara` binary: without staff ten times are
/// booked once each; with Anna and Ben (set as an operator would, in the environment) five
/// times are booked once with each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_callers_racing_for_ten_places_get_exactly_ten_bookings_on_postgres() {
    let db = PgDatabase::create().await;
    let sara = std::sync::Arc::new(Sara::launch(temp_dir(), db.url_on(5432), &[]).await);
    let (bookings, told) = race(sara, &crate::helpers::distinct_slots(10, 30), 200).await;
    assert_eq!(bookings.len(), 10, "exactly ten bookings: {bookings:?}");
    assert_eq!(told, phones(&bookings));

    let db = PgDatabase::create().await;
    let staff = [(
        "SARA_BUSINESS__STAFF",
        r#"[{name = "Anna"}, {name = "Ben"}]"#,
    )];
    let sara = std::sync::Arc::new(Sara::launch(temp_dir(), db.url_on(5432), &staff).await);
    let (bookings, told) = race(sara, &crate::helpers::distinct_slots(5, 30), 200).await;
    assert_eq!(bookings.len(), 10, "exactly ten bookings: {bookings:?}");
    let mut with: Vec<String> = bookings
        .iter()
        .map(|b| format!("{} {}", b["start"], b["staff"]))
        .collect();
    with.sort();
    with.dedup();
    assert_eq!(with.len(), 10, "each time once with each: {with:?}");
    assert_eq!(told, phones(&bookings));
}
