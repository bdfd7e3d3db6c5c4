//! A booking over SMS with `calendar.provider = "google"`, against a local stand-in for Google
//! (token endpoint + Calendar API): the event Sara inserts carries the booking.

use chrono::{TimeZone, Utc, Weekday};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    Sara, business, phone, sms_sent, temp_dir, twilio_rest_env, twilio_rest_stand_in, upcoming,
};

const CALENDAR: &str = "clinic@group.calendar.google.com";
const EVENTS: &str = "/calendar/v3/calendars/clinic@group.calendar.google.com/events";
const ACCOUNT: &str = "AC00000000000000000000000000000gsync";

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

/// Google refuses the insert once for good (a 403, not an outage): the hold in the store is
/// released at once (nothing half there) and the caller hears nothing was booked; their "yes"
/// again books the same booking id, row and event.
#[tokio::test]
async fn a_refused_google_write_releases_the_hold_at_once_and_a_retry_books_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (google, key) = google_stand_in(dir.path()).await;
    Mock::given(method("POST"))
        .and(path(EVENTS))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(
                json!({"error": {"code": 403, "message": "Forbidden", "errors": []}}),
            ),
        )
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

/// The settings that point Sara at a Google stand-in (`base`, the key file `key`).
fn google_env<'a>(base: &'a str, key: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("SARA_CALENDAR__PROVIDER", "google"),
        ("SARA_CALENDAR__GOOGLE_BASE_URL", base),
        ("SARA_CALENDAR__CALENDAR_ID", CALENDAR),
        ("SARA_CALENDAR__CREDENTIALS", key),
    ]
}

/// Google answers every insert with `status` (an outage) from now on, before the stand-in's
/// default answer; `times` = how many inserts fail (`None`: all).
/// Sara on the Google stand-in (`key` its service-account file) with the Twilio REST stand-in
/// (answering with message sid `sid`) for the texts she starts; `extra` adds settings.
async fn sara_on_google_texting(
    google: &MockServer,
    key: &std::path::Path,
    sid: &str,
    extra: &[(&str, &str)],
) -> (Sara, MockServer) {
    let twilio = twilio_rest_stand_in(ACCOUNT, sid).await;
    let (base, key) = (
        format!("{}/calendar/v3/", google.uri()),
        key.display().to_string(),
    );
    let mut env = google_env(&base, &key);
    env.extend_from_slice(extra);
    let sara = Sara::start_with(&twilio_rest_env(ACCOUNT, &twilio.uri(), &env)).await;
    (sara, twilio)
}

async fn inserts_fail(google: &MockServer, status: u16, times: Option<u64>) {
    let mock = Mock::given(method("POST")).and(path(EVENTS)).respond_with(
        ResponseTemplate::new(status).set_body_json(
            json!({"error": {"code": status, "message": "Backend Error", "errors": []}}),
        ),
    );
    let mock = match times {
        Some(n) => mock.up_to_n_times(n),
        None => mock,
    };
    mock.with_priority(1).mount(google).await;
}

/// The ids of the events Sara asked Google to insert, in order.
async fn inserted_ids(google: &MockServer) -> Vec<String> {
    google
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == EVENTS)
        .map(|r| {
            let event: Value = r.body_json().expect("an event in JSON");
            event["id"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

/// Books `service` on `day_text` at `time` for `name` over SMS; Sara's answer to the "yes".
async fn book(sara: &Sara, me: &str, day_text: &str, time: &str, name: &str) -> String {
    let ask = sara
        .text(
            me,
            &format!("Book a cleaning on {day_text} at {time} please. I'm {name}"),
        )
        .await;
    assert!(ask.contains(name), "{ask}");
    sara.text(me, "yes").await
}

/// The booking rows of `phone` in `/admin/bookings`.
async fn bookings_of(sara: &Sara, phone: &str) -> Vec<Value> {
    (sara.bookings().await.into_iter())
        .filter(|b| b["phone"] == phone)
        .collect()
}

/// Moves Sara's clock a minute at a time (at most `minutes`) until `phone`'s booking has
/// `status`; whether it got there.
async fn advance_until(sara: &Sara, phone: &str, status: &str, minutes: u32) -> bool {
    for _ in 0..minutes {
        sara.advance(1).await;
        if bookings_of(sara, phone).await[0]["status"] == status {
            return true;
        }
    }
    false
}

/// Google is down when the customer says yes (a 503, then a 429 on the first retry): the
/// time stays held as `pending`, the customer hears the truth, and the retry job writes the
/// same event (same client id) until it goes through; then the booking is confirmed and the
/// customer gets one text saying so.
#[tokio::test]
async fn a_google_outage_keeps_the_booking_held_and_the_customer_is_texted_once_it_is_confirmed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (google, key) = google_stand_in(dir.path()).await;
    inserts_fail(&google, 503, Some(1)).await;
    inserts_fail(&google, 429, Some(1)).await;
    let (sara, twilio) = sara_on_google_texting(&google, &key, "SMgsync0001", &[]).await;
    let me = phone(62);
    let (_, day_text) = upcoming(Weekday::Thu);

    let held = book(&sara, &me, &day_text, "11am", "Ana Diaz").await;
    assert!(held.contains("couldn't reach the calendar"), "{held}");
    assert!(held.contains("text you once it's confirmed"), "{held}");
    assert!(!held.to_lowercase().contains("you're booked"), "{held}");
    let rows = bookings_of(&sara, &me).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "pending", "held, not confirmed");
    assert_eq!(rows[0]["calendar"], "google");

    assert!(
        advance_until(&sara, &me, "confirmed", 10).await,
        "confirmed once Google is back"
    );
    let ids = inserted_ids(&google).await;
    assert_eq!(ids.len(), 3, "two failed inserts and one that went through");
    assert!(ids.iter().all(|id| *id == ids[0]), "one client id: {ids:?}");
    assert_eq!(rows[0]["event_id"], ids[0].as_str());
    sara.advance(5).await;
    let texts: Vec<String> = (sms_sent(&twilio).await.into_iter())
        .filter(|(to, _)| *to == me)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(texts.len(), 1, "told once: {texts:?}");
    assert!(texts[0].contains("is confirmed"), "{texts:?}");
    assert!(texts[0].contains("cleaning"), "{texts:?}");
    assert_eq!(bookings_of(&sara, &me).await[0]["status"], "confirmed");
}

/// Google stays down past `calendar.write_give_up_minutes`: the hold is released and the
/// customer is told it could not be booked (and how to try again).
#[tokio::test]
async fn when_google_stays_down_past_the_give_up_time_the_hold_is_released_and_the_customer_told() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (google, key) = google_stand_in(dir.path()).await;
    inserts_fail(&google, 503, None).await;
    let give_up = [("SARA_CALENDAR__WRITE_GIVE_UP_MINUTES", "5")];
    let (sara, twilio) = sara_on_google_texting(&google, &key, "SMgsync0002", &give_up).await;
    let me = phone(63);
    let (_, day_text) = upcoming(Weekday::Fri);

    let held = book(&sara, &me, &day_text, "10am", "Bo Chen").await;
    assert!(held.contains("couldn't reach the calendar"), "{held}");
    sara.advance(2).await;
    assert_eq!(bookings_of(&sara, &me).await[0]["status"], "pending");
    assert!(sms_sent(&twilio).await.is_empty(), "nothing to tell yet");

    assert!(
        advance_until(&sara, &me, "cancelled", 10).await,
        "released after the give-up time"
    );
    sara.settle().await;
    let texts: Vec<String> = (sms_sent(&twilio).await.into_iter())
        .filter(|(to, _)| *to == me)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("not booked"), "{texts:?}");
    assert!(texts[0].contains("try another time"), "{texts:?}");
    assert!(inserted_ids(&google).await.len() >= 3, "retried meanwhile");
}

/// Answers the sync's events.list (`showDeleted=true`; the availability reads don't ask for
/// deleted events) with `items` and `next` as the next sync token, for requests that carry
/// sync token `token` (`None`: the full read without one).
async fn sync_answers(google: &MockServer, token: Option<&str>, items: Value, next: &str) {
    let mock = Mock::given(method("GET"))
        .and(path(EVENTS))
        .and(query_param("showDeleted", "true"));
    let mock = match token {
        Some(t) => mock.and(query_param("syncToken", t)),
        None => mock.and(query_param_is_missing("syncToken")),
    };
    mock.respond_with(ResponseTemplate::new(200).set_body_json(json!({
        "kind": "calendar#events",
        "nextSyncToken": next,
        "items": items,
    })))
    .with_priority(1)
    .mount(google)
    .await;
}

/// The sync's events.list queries Google received, in order.
async fn sync_queries(google: &MockServer) -> Vec<std::collections::HashMap<String, String>> {
    (google
        .received_requests()
        .await
        .expect("recording is on")
        .iter())
    .filter(|r| r.method.as_str() == "GET" && r.url.path() == EVENTS)
    .map(|r| {
        r.url
            .query_pairs()
            .into_owned()
            .collect::<std::collections::HashMap<_, _>>()
    })
    .filter(|q| q.get("showDeleted").is_some_and(|v| v == "true"))
    .collect()
}

/// An event of a booking row as Google lists it, at `start`..`end`.
fn event_of(row: &Value, start: &str, end: &str) -> Value {
    json!({
        "id": row["event_id"],
        "status": "confirmed",
        "summary": "cleaning",
        "start": {"dateTime": start, "timeZone": "America/New_York"},
        "end": {"dateTime": end, "timeZone": "America/New_York"},
        "extendedProperties": {"private": {"sara_booking_id": row["id"]}},
    })
}

/// Staff delete one of Sara's events and move another in Google: the sync cancels the one
/// and moves the other (the customer of each told on their channel, the moved one with the
/// new day and time), leaves the booking whose event only echoes Sara's own write alone, and
/// imports no event made by hand. Reading the same changes again tells nobody twice.
#[tokio::test]
async fn staff_deleting_and_moving_saras_events_in_google_cancels_and_moves_the_bookings_and_tells_the_customers()
 {
    let dir = tempfile::tempdir().expect("temp dir");
    let (google, key) = google_stand_in(dir.path()).await;
    let (sara, twilio) = sara_on_google_texting(&google, &key, "SMgsync0003", &[]).await;
    let (ana, ben, cy) = (phone(64), phone(65), phone(66));
    let (_, thursday) = upcoming(Weekday::Thu);
    for (who, time, name) in [
        (&ana, "10am", "Ana Diaz"),
        (&ben, "2pm", "Ben Okafor"),
        (&cy, "3pm", "Cy Young"),
    ] {
        let done = book(&sara, who, &thursday, time, name).await;
        assert!(done.to_lowercase().contains("booked"), "{done}");
    }
    let row = |rows: Vec<Value>| rows.into_iter().next().expect("a booking");
    let (ana_row, ben_row, cy_row) = (
        row(bookings_of(&sara, &ana).await),
        row(bookings_of(&sara, &ben).await),
        row(bookings_of(&sara, &cy).await),
    );
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
            .expect("RFC 3339")
            .with_timezone(&Utc)
    };
    let (new_start, new_end) = (
        at(&ben_row["start"]) + chrono::Duration::days(1),
        at(&ben_row["end"]) + chrono::Duration::days(1),
    );
    let rfc = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let changes = json!([
        // Deleted events come back bare: Sara knows its own by the id it chose.
        {"id": ana_row["event_id"], "status": "cancelled"},
        event_of(&ben_row, &rfc(new_start), &rfc(new_end)),
        event_of(
            &cy_row,
            cy_row["start"].as_str().expect("start"),
            cy_row["end"].as_str().expect("end"),
        ),
        {
            "id": "teamlunch1",
            "status": "confirmed",
            "summary": "Team lunch",
            "start": {"dateTime": rfc(new_start + chrono::Duration::hours(2))},
            "end": {"dateTime": rfc(new_start + chrono::Duration::hours(3))},
        },
    ]);
    // Whatever the token, the same changes: as if Google listed them again.
    sync_answers(&google, None, changes.clone(), "tok-1").await;
    sync_answers(&google, Some("tok-1"), changes, "tok-1").await;

    sara.advance(2).await;

    assert_eq!(bookings_of(&sara, &ana).await[0]["status"], "cancelled");
    let moved = row(bookings_of(&sara, &ben).await);
    assert_eq!(moved["status"], "confirmed");
    assert_eq!(at(&moved["start"]), new_start);
    assert_eq!(at(&moved["end"]), new_end);
    let unchanged = row(bookings_of(&sara, &cy).await);
    assert_eq!(unchanged["start"], cy_row["start"]);
    assert_eq!(unchanged["status"], "confirmed");
    assert_eq!(
        sara.bookings().await.len(),
        3,
        "a hand-made event is no booking"
    );

    let texts = |to: String| {
        let twilio = &twilio;
        async move {
            (sms_sent(twilio).await.into_iter())
                .filter(|(t, _)| *t == to)
                .map(|(_, body)| body)
                .collect::<Vec<_>>()
        }
    };
    let told_ana = texts(ana.clone()).await;
    assert_eq!(told_ana.len(), 1, "{told_ana:?}");
    assert!(
        told_ana[0].contains("has cancelled your cleaning"),
        "{told_ana:?}"
    );
    let told_ben = texts(ben.clone()).await;
    assert_eq!(told_ben.len(), 1, "{told_ben:?}");
    let new_when = sara_actors::dialogue::spoken_when(business().timezone, new_start);
    assert!(
        told_ben[0].contains("has moved your cleaning"),
        "{told_ben:?}"
    );
    assert!(
        told_ben[0].contains(&new_when),
        "{new_when} in {told_ben:?}"
    );
    assert!(
        texts(cy.clone()).await.is_empty(),
        "Sara's own write is no change"
    );

    // The same changes read again change and tell nothing.
    sara.advance(2).await;
    sara.advance(2).await;
    assert!(sync_queries(&google).await.len() >= 3);
    assert_eq!(texts(ana).await.len(), 1);
    assert_eq!(texts(ben).await.len(), 1);
    let (_, outbox) = sara.admin_get("/admin/outbox").await;
    let notices = (outbox.as_array().into_iter().flatten())
        .filter(|row| row["kind"] == "notice")
        .count();
    assert_eq!(notices, 2, "{outbox}");
    assert!(sara.metric("sara_calendar_sync_changes_total").await >= 2.0);
}

/// The first sync reads in full from now (no token), each later one continues from the token
/// the last one stored, a restart included; a token Google no longer knows (410 Gone) is
/// dropped and the calendar read in full again.
#[tokio::test]
async fn the_sync_token_survives_a_restart_and_an_expired_one_means_a_full_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (google, key) = google_stand_in(dir.path()).await;
    sync_answers(&google, None, json!([]), "t1").await;
    sync_answers(&google, Some("t1"), json!([]), "t2").await;
    Mock::given(method("GET"))
        .and(path(EVENTS))
        .and(query_param("syncToken", "t2"))
        .respond_with(ResponseTemplate::new(410).set_body_json(json!({
            "error": {"code": 410, "message": "Sync token is no longer valid, a full sync is required.",
                      "errors": [{"domain": "calendar", "reason": "fullSyncRequired"}]},
        })))
        .with_priority(1)
        .mount(&google)
        .await;
    let (base, key) = (
        format!("{}/calendar/v3/", google.uri()),
        key.display().to_string(),
    );
    let mut env = google_env(&base, &key);
    // Ten minutes between syncs: only the debug clock makes one due, however slow the machine.
    env.push(("SARA_CALENDAR__SYNC_SECS", "600"));
    let store = temp_dir();
    let db_url = format!("sqlite://{}", store.path().join("sara.db").display());
    let sara = Sara::launch(store, db_url, &env).await;

    sara.settle().await;
    sara.advance(11).await;
    let token_of = |q: &std::collections::HashMap<String, String>| q.get("syncToken").cloned();
    let before: Vec<Option<String>> = sync_queries(&google).await.iter().map(token_of).collect();
    assert_eq!(
        before,
        vec![None, Some("t1".to_string())],
        "full, then from t1"
    );
    let first = &sync_queries(&google).await[0];
    assert!(
        first.contains_key("timeMin"),
        "a full read starts from now: {first:?}"
    );

    let (store, db_url) = sara.kill9();
    let sara = Sara::launch(store, db_url, &env).await;
    // The restarted clock is real time again; the sync job is due ten minutes after the last.
    sara.advance(25).await;
    let after: Vec<Option<String>> = sync_queries(&google).await.iter().map(token_of).collect();
    assert_eq!(
        after.get(2).cloned().flatten().as_deref(),
        Some("t2"),
        "the restart continued from the stored token: {after:?}"
    );
    assert_eq!(
        after.get(3),
        Some(&None),
        "410: a full read at once: {after:?}"
    );
    sara.advance(11).await;
    let last = sync_queries(&google).await;
    assert_eq!(
        last.last().and_then(token_of).as_deref(),
        Some("t1"),
        "the full read's token is kept"
    );
    assert!(sara.metric("sara_calendar_sync_errors_total").await == 0.0);
}
