//! A booking over SMS with `calendar.provider = "google"`, against a local stand-in for Google
//! (token endpoint + Calendar API): the event Sara inserts carries the booking.

use chrono::{TimeZone, Utc, Weekday};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Sara, phone, upcoming};

const CALENDAR: &str = "clinic@group.calendar.google.com";
const EVENTS: &str = "/calendar/v3/calendars/clinic@group.calendar.google.com/events";

/// A Google stand-in with an empty calendar that accepts every insert, and the key file that
/// points Sara's token requests at it.
async fn google_stand_in(dir: &std::path::Path) -> (MockServer, std::path::PathBuf) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "t", "expires_in": 3600, "token_type": "Bearer"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(EVENTS))
        .and(header("authorization", "Bearer t"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"kind": "calendar#events", "items": []})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .and(header("authorization", "Bearer t"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "calendar#freeBusy",
            "calendars": { CALENDAR: { "busy": [] } },
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(EVENTS))
        .and(header("authorization", "Bearer t"))
        .respond_with(|request: &wiremock::Request| {
            // Google answers with the event it stored.
            ResponseTemplate::new(200)
                .set_body_json(request.body_json::<Value>().unwrap_or(Value::Null))
        })
        .mount(&server)
        .await;
    // A throwaway key made for the tests (see tests/data/README.md).
    let key = json!({
        "type": "service_account",
        "private_key": include_str!("../data/google/throwaway-service-account-key.pem"),
        "client_email": "sara@sara-test.iam.gserviceaccount.com",
        "token_uri": format!("{}/token", server.uri()),
    });
    let file = dir.join("google-key.json");
    std::fs::write(&file, key.to_string()).expect("write the key file");
    (server, file)
}

#[tokio::test]
async fn a_booking_over_sms_becomes_an_event_in_the_google_calendar() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (google, key) = google_stand_in(dir.path()).await;
    let base = format!("{}/calendar/v3/", google.uri());
    let key = key.display().to_string();
    let sara = Sara::start_with(&[
        ("SARA_CALENDAR__PROVIDER", "google"),
        ("SARA_CALENDAR__GOOGLE_BASE_URL", &base),
        ("SARA_CALENDAR__CALENDAR_ID", CALENDAR),
        ("SARA_CALENDAR__CREDENTIALS", &key),
    ])
    .await;
    let me = phone(60);
    let (day, day_text) = upcoming(Weekday::Tue);

    let ask = sara
        .text(
            &me,
            &format!("Book a cleaning on {day_text} at 10am please. I'm Ana Diaz"),
        )
        .await;
    assert!(ask.contains("Ana Diaz"), "{ask}");
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");

    let requests = google.received_requests().await.expect("recording is on");
    let inserted: Vec<Value> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == EVENTS)
        .map(|r| r.body_json().expect("an event in JSON"))
        .collect();
    assert_eq!(inserted.len(), 1, "{inserted:?}");
    let event = &inserted[0];
    let start = chrono_tz::America::New_York
        .from_local_datetime(&day.and_hms_opt(10, 0, 0).expect("time"))
        .single()
        .expect("10:00 exists")
        .with_timezone(&Utc);
    assert_eq!(
        event["start"],
        json!({"dateTime": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "timeZone": "America/New_York"})
    );
    assert_eq!(event["end"]["timeZone"], "America/New_York");
    let private = &event["extendedProperties"]["private"];
    let booking_id = private["sara_booking_id"].as_str().expect("a booking id");
    let booking_id = uuid::Uuid::parse_str(booking_id).expect("the booking id is a UUID");
    assert_eq!(event["id"], booking_id.simple().to_string());
    assert!(
        private["sara_service"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("cleaning")),
        "{private}"
    );
    assert_eq!(private["sara_phone"], me.as_str());
    // The slot was checked first.
    assert!(
        requests
            .iter()
            .any(|r| r.url.path() == "/calendar/v3/freeBusy"),
        "no freeBusy query before the insert"
    );
    // The store stays the record: the booking is a row like a local one, with its event.
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    assert_eq!(bookings[0]["id"], booking_id.to_string());
    assert_eq!(bookings[0]["calendar"], "google");
    assert_eq!(bookings[0]["event_id"], booking_id.simple().to_string());
    assert_eq!(bookings[0]["status"], "confirmed");
}

/// Google fails the insert once: the hold in the store is released (nothing half there) and
/// the caller hears the calendar could not be reached; their "yes" again books the same
/// booking id, row and event.
#[tokio::test]
async fn a_failed_google_write_releases_the_hold_and_a_retry_books_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (google, key) = google_stand_in(dir.path()).await;
    Mock::given(method("POST"))
        .and(path(EVENTS))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            json!({"error": {"code": 503, "message": "Backend Error", "errors": []}}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&google)
        .await;
    let base = format!("{}/calendar/v3/", google.uri());
    let key = key.display().to_string();
    let sara = Sara::start_with(&[
        ("SARA_CALENDAR__PROVIDER", "google"),
        ("SARA_CALENDAR__GOOGLE_BASE_URL", &base),
        ("SARA_CALENDAR__CALENDAR_ID", CALENDAR),
        ("SARA_CALENDAR__CREDENTIALS", &key),
    ])
    .await;
    let me = phone(61);
    let (_, day_text) = upcoming(Weekday::Wed);
    sara.text(
        &me,
        &format!("Book a cleaning on {day_text} at 10am please. I'm Ana Diaz"),
    )
    .await;
    let failed = sara.text(&me, "yes").await;
    assert!(failed.contains("can't reach the calendar"), "{failed}");
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    assert_eq!(bookings[0]["status"], "cancelled", "the hold is released");

    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
    let again = sara.bookings().await;
    assert_eq!(
        again.len(),
        1,
        "the same booking, not a second one: {again:?}"
    );
    assert_eq!(again[0]["id"], bookings[0]["id"]);
    assert_eq!(again[0]["status"], "confirmed");
    assert_eq!(again[0]["calendar"], "google");
    let inserts = google
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == EVENTS)
        .count();
    assert_eq!(inserts, 2, "one failed insert, one that went through");
}

/// 200 callers race for ten slots with Google configured: exactly ten bookings in the store,
/// exactly ten events inserted in Google (one per booking, each with its booking's id), and
/// "booked" said to exactly the winners.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_callers_racing_for_ten_slots_with_google_get_ten_bookings_and_ten_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (google, key) = google_stand_in(dir.path()).await;
    let base = format!("{}/calendar/v3/", google.uri());
    let key = key.display().to_string();
    let sara = std::sync::Arc::new(
        Sara::start_with(&[
            ("SARA_CALENDAR__PROVIDER", "google"),
            ("SARA_CALENDAR__GOOGLE_BASE_URL", &base),
            ("SARA_CALENDAR__CALENDAR_ID", CALENDAR),
            ("SARA_CALENDAR__CREDENTIALS", &key),
        ])
        .await,
    );
    let slots = crate::helpers::distinct_slots(10, 30);
    let (bookings, told) = crate::rules::race(sara, &slots, 200).await;
    assert_eq!(bookings.len(), 10, "exactly ten bookings: {bookings:?}");
    assert!(bookings.iter().all(|b| b["calendar"] == "google"));
    assert_eq!(told, crate::rules::phones(&bookings));
    let mut inserted: Vec<String> = google
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == EVENTS)
        .map(|r| {
            let event: Value = r.body_json().expect("an event in JSON");
            event["id"]
                .as_str()
                .expect("a client-chosen id")
                .to_string()
        })
        .collect();
    inserted.sort();
    let mut events: Vec<String> = bookings
        .iter()
        .map(|b| b["event_id"].as_str().expect("an event id").to_string())
        .collect();
    events.sort();
    assert_eq!(inserted, events, "Google's view and the store agree");
}
