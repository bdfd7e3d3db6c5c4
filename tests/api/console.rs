//! The front-desk console over HTTP as a browser uses it: logging in trades the admin token
//! for a session cookie, every form carries a CSRF token, staff take a conversation over,
//! reply through the outbox to a local Twilio REST stand-in, and hand it back.

use chrono::Weekday;

use crate::helpers::{ADMIN_TOKEN, Sara, phone, spawn_app, upcoming};

const ACCOUNT: &str = "AC00000000000000000000000000000001";

/// A browser of one: the session cookie it was given, sent back by hand.
struct Browser<'a> {
    sara: &'a Sara,
    client: reqwest::Client,
    cookie: String,
}

impl<'a> Browser<'a> {
    /// `GET /admin?token=` once; returns the browser and the whole `Set-Cookie` it got.
    async fn log_in(sara: &'a Sara) -> (Browser<'a>, String) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let login = client
            .get(format!("{}/admin?token={ADMIN_TOKEN}", sara.base))
            .send()
            .await
            .expect("reaches sara");
        assert!(login.status().is_redirection(), "{}", login.status());
        assert_eq!(login.headers()["location"], "/admin");
        let set_cookie = login.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .to_string();
        let cookie = set_cookie
            .split(';')
            .next()
            .expect("name=value")
            .to_string();
        (
            Browser {
                sara,
                client,
                cookie,
            },
            set_cookie,
        )
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.sara.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("reaches sara");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let resp = self
            .client
            .post(format!("{}{path}", self.sara.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .expect("reaches sara");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp.text().await.unwrap_or_default();
        (status, if location.is_empty() { body } else { location })
    }
}

/// The value of the first hidden input named `name` on `page`.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field on the page"))
        + marker.len();
    page[start..]
        .split('"')
        .next()
        .expect("a value")
        .to_string()
}

#[tokio::test]
async fn logging_in_gives_a_session_cookie_that_is_not_the_token_and_logging_out_ends_it() {
    let sara = spawn_app().await;
    let (browser, set_cookie) = Browser::log_in(&sara).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(
        browser.cookie.starts_with("sara_session=") && !set_cookie.contains(ADMIN_TOKEN),
        "{set_cookie}"
    );

    let (status, page) = browser.get("/admin").await;
    assert_eq!(status, 200);
    assert!(page.contains("Log out"), "{page}");
    let (status, _) = browser.get("/admin/stats").await;
    assert_eq!(status, 200, "the session opens the other admin routes too");

    let csrf = hidden(&page, "csrf");
    let (status, _) = browser.post("/admin/logout", &[]).await;
    assert_eq!(status, 403, "logging out is a form like the others");
    let (status, _) = browser.post("/admin/logout", &[("csrf", "forged")]).await;
    assert_eq!(status, 403);
    let (status, to) = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, to.as_str()), (303, "/admin"));
    let (status, _) = browser.get("/admin/stats").await;
    assert_eq!(status, 401, "the session is over on the server");

    // A browser that never logged in gets the login form; the form logs in as well.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = anonymous
        .get(format!("{}/admin", sara.base))
        .send()
        .await
        .expect("reaches sara");
    assert_eq!(form.status().as_u16(), 200);
    assert!(form.text().await.expect("html").contains("Admin token"));
    let wrong = anonymous
        .post(format!("{}/admin/login", sara.base))
        .form(&[("token", "not-the-admin-token")])
        .send()
        .await
        .expect("reaches sara");
    assert_eq!(wrong.status().as_u16(), 401);
    let right = anonymous
        .post(format!("{}/admin/login", sara.base))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("reaches sara");
    assert_eq!(right.status().as_u16(), 303);
    assert!(
        right.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .starts_with("sara_session=")
    );
}

#[tokio::test]
async fn staff_take_over_reply_by_sms_through_the_outbox_and_hand_back() {
    let (sara, twilio) =
        crate::helpers::sara_with_twilio_rest(ACCOUNT, "SM5ta77e9f0000000000000000000000").await;
    let me = phone(71);
    let (_, day) = upcoming(Weekday::Tue);
    let offer = sara
        .text(
            &me,
            &format!("I'd like a consultation on {day} at 3pm, my name is Ann Lee"),
        )
        .await;
    assert!(offer.contains("3:00 PM"), "{offer}");
    let booked = sara.text(&me, "yes").await;
    assert!(booked.to_lowercase().contains("booked"), "{booked}");

    let (browser, _) = Browser::log_in(&sara).await;
    let (_, day_screen) = browser.get("/admin").await;
    assert!(
        day_screen.contains(&format!("/admin/conversations/{me}"))
            && day_screen.contains("Ann Lee"),
        "the conversation is listed with its caller's name: {day_screen}"
    );
    let page_path = format!("/admin/conversations/{me}");
    let (status, page) = browser.get(&page_path).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("consultation") && page.contains("Take over"),
        "{page}"
    );
    let csrf = hidden(&page, "csrf");

    let (status, _) = browser.post(&format!("{page_path}/take-over"), &[]).await;
    assert_eq!(status, 403, "no CSRF token, no take-over");
    assert!(
        !sara.text(&me, "hello?").await.is_empty(),
        "Sara still answers"
    );
    let (status, to) = browser
        .post(&format!("{page_path}/take-over"), &[("csrf", &csrf)])
        .await;
    assert_eq!((status, to.as_str()), (303, page_path.as_str()));
    assert_eq!(
        sara.text(&me, "is anyone there?").await,
        "",
        "Sara stays quiet while staff have the conversation"
    );

    let (_, page) = browser.get(&page_path).await;
    let key = hidden(&page, "key");
    let words = "Hi Ann, this is Maria at the front desk.";
    let form = [
        ("csrf", csrf.as_str()),
        ("text", words),
        ("key", key.as_str()),
    ];
    let (status, _) = browser.post(&format!("{page_path}/reply"), &form).await;
    assert_eq!(status, 303);
    let (status, _) = browser.post(&format!("{page_path}/reply"), &form).await;
    assert_eq!(status, 303, "the same form sent twice is fine");

    // The relay sends the staff reply once through Twilio's REST API.
    let sent = loop {
        let (_, rows) = sara.admin_get("/admin/outbox").await;
        let rows = rows.as_array().cloned().unwrap_or_default();
        let staff: Vec<_> = rows
            .iter()
            .filter(|r| r["kind"] == "staff_reply")
            .cloned()
            .collect();
        if staff.iter().any(|r| r["status"] == "sent") {
            break staff;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["channel"], "sms");
    let requests = twilio.received_requests().await.expect("recorded");
    let bodies: Vec<String> = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let ours: Vec<&String> = bodies.iter().filter(|b| b.contains("Maria")).collect();
    assert_eq!(ours.len(), 1, "{bodies:?}");
    let form: Vec<(String, String)> = form_urlencoded::parse(ours[0].as_bytes())
        .into_owned()
        .collect();
    assert!(form.contains(&("To".into(), me.clone())), "{form:?}");
    assert!(form.contains(&("Body".into(), words.into())), "{form:?}");

    let (_, page) = browser.get(&page_path).await;
    assert!(page.contains(words) && page.contains("Staff"), "{page}");
    let (_, log) = sara.admin_get(&format!("/logs/{me}")).await;
    let staff_turns = log["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .filter(|t| t["channel"] == "staff" && t["intent"] == "staff_reply")
        .count();
    assert_eq!(staff_turns, 1, "recorded once: {log}");

    let (status, _) = browser
        .post(&format!("{page_path}/hand-back"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    assert!(
        !sara.text(&me, "thanks!").await.is_empty(),
        "Sara answers again"
    );
}

#[tokio::test]
async fn a_customer_who_asked_for_a_person_is_listed_first_as_waiting_for_staff() {
    let (url, _mail) = crate::email::smtp_stand_in().await;
    let sara = Sara::start_with(&[
        ("SARA_EMAIL__SMTP_URL", &url),
        ("SARA_EMAIL__FROM", "Sara <sara@harbor.example>"),
        ("SARA_EMAIL__STAFF", "front@harbor.example"),
    ])
    .await;
    let (earlier, waiting) = (phone(72), phone(73));
    sara.text(&waiting, "hello").await;
    let promise = sara
        .text(&waiting, "can I talk to a real person please")
        .await;
    assert!(promise.contains("team"), "{promise}");
    sara.text(&earlier, "hello").await;

    let (browser, _) = Browser::log_in(&sara).await;
    let (_, page) = browser.get("/admin").await;
    let first_link = page
        .find("/admin/conversations/")
        .map(|at| &page[at..at + 40])
        .unwrap_or_default();
    assert!(first_link.contains(&waiting), "{first_link} in {page}");
    assert!(page.contains("class=\"badge waiting\""), "{page}");
    let (_, theirs) = browser
        .get(&format!("/admin/conversations/{waiting}"))
        .await;
    assert!(theirs.contains("Waiting for staff"), "{theirs}");
    let (_, other) = browser
        .get(&format!("/admin/conversations/{earlier}"))
        .await;
    assert!(!other.contains("Waiting for staff"), "{other}");

    // Scripts keep the bearer token and need no CSRF token.
    let resp = sara
        .client
        .post(format!(
            "{}/admin/conversations/{waiting}/hand-back",
            sara.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 200);
    let (_, page) = browser.get("/admin").await;
    assert!(!page.contains("span class=\"badge waiting\""), "{page}");
}

/// Books as `me` over SMS on the first open slot; returns the booking reply.
async fn book_over_sms(sara: &Sara, me: &str, name: &str) {
    let (_, day_text, time) = crate::helpers::distinct_slots(1, 60).remove(0);
    let offer = sara
        .text(
            me,
            &format!("I'd like a consultation on {day_text} at {time}, my name is {name}"),
        )
        .await;
    assert!(offer.contains(name), "{offer}");
    let booked = sara.text(me, "yes").await;
    assert!(booked.to_lowercase().contains("booked"), "{booked}");
}

#[tokio::test]
async fn forgetting_a_caller_from_the_console_erases_them_and_keeps_an_anonymous_time_block() {
    let sara = spawn_app().await;
    let me = phone(74);
    book_over_sms(&sara, &me, "Ann Lee").await;
    let (browser, _) = Browser::log_in(&sara).await;
    let page_path = format!("/admin/conversations/{me}");
    let (_, page) = browser.get(&page_path).await;
    assert!(page.contains("Forget this caller"), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, _) = browser.post(&format!("{page_path}/forget"), &[]).await;
    assert_eq!(status, 403);
    assert_eq!(
        sara.admin_get(&format!("/logs/{me}")).await.0,
        200,
        "nothing erased"
    );

    let (status, to) = browser
        .post(&format!("{page_path}/forget"), &[("csrf", &csrf)])
        .await;
    assert_eq!((status, to.as_str()), (303, "/admin"));
    assert_eq!(sara.admin_get(&format!("/logs/{me}")).await.0, 404);
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "the time block stays: {bookings:?}");
    assert_eq!(bookings[0]["phone"], "+10000000000");
    assert!(bookings[0]["name"].is_null(), "{bookings:?}");
    let (_, day_screen) = browser.get("/admin").await;
    assert!(
        !day_screen.contains(&me) && !day_screen.contains("Ann Lee"),
        "{day_screen}"
    );
    let (status, audit) = sara.admin_get("/logs/audit").await;
    assert_eq!(status, 200);
    assert_eq!(audit[0]["action"], "forget", "{audit}");
    assert!(
        !audit.to_string().contains(&me),
        "the audit names no number: {audit}"
    );

    // Sara has forgotten them too: the next message starts afresh, without their name.
    let hello = sara.text(&me, "hello").await;
    assert!(!hello.contains("Ann"), "{hello}");
}

#[tokio::test]
async fn sara_forget_on_the_command_line_erases_a_caller_and_records_it() {
    let sara = Sara::start().await;
    let me = phone(75);
    book_over_sms(&sara, &me, "Bo Kim").await;
    let (dir, db_url) = sara.kill9();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sara"))
        .args(["forget", &me])
        .env("SARA_CONFIG", &config)
        .env("SARA_STORAGE__DATABASE_URL", &db_url)
        .env("SARA_LOG", "warn")
        .output()
        .expect("sara forget runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("sara forget prints JSON");
    assert_eq!(report["turns"], 2, "{report}");
    assert_eq!(report["bookings"], 1, "{report}");

    let sara = Sara::start_on(dir, db_url).await;
    assert_eq!(sara.admin_get(&format!("/logs/{me}")).await.0, 404);
    let bookings = sara.bookings().await;
    assert_eq!(bookings[0]["phone"], "+10000000000", "{bookings:?}");
    let (_, audit) = sara.admin_get("/logs/audit").await;
    assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sara"))
        .args(["forget", "not-a-number"])
        .env("SARA_CONFIG", &config)
        .env("SARA_STORAGE__DATABASE_URL", "sqlite::memory:")
        .output()
        .expect("sara forget runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("+15551234567"));
}

/// `<input type="datetime-local">`'s value for an instant, in the business's time zone.
fn local_input(at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&crate::helpers::business().timezone)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// The SMS bodies the Twilio stand-in got for `to` that contain `words`, waiting for the
/// relay to send at least one.
async fn sms_to(twilio: &wiremock::MockServer, to: &str, words: &str) -> Vec<String> {
    loop {
        let requests = twilio.received_requests().await.expect("recorded");
        let bodies: Vec<String> = requests
            .iter()
            .map(|r| {
                form_urlencoded::parse(&r.body)
                    .into_owned()
                    .collect::<Vec<_>>()
            })
            .filter(|form| form.contains(&("To".to_string(), to.to_string())))
            .filter_map(|form| form.into_iter().find(|(k, _)| k == "Body").map(|(_, v)| v))
            .filter(|body| body.contains(words))
            .collect();
        if !bodies.is_empty() {
            return bodies;
        }
        tokio::task::yield_now().await;
    }
}

/// Staff book, move and cancel for a caller from the conversation's page: through the
/// engine (the customer is told by SMS through the outbox, the transcript marks it as
/// staff's), once per form; a time the rules refuse shows the reason and free times.
#[tokio::test]
async fn staff_book_move_and_cancel_for_a_caller_from_the_page_and_a_taken_time_is_refused() {
    let (sara, twilio) =
        crate::helpers::sara_with_twilio_rest(ACCOUNT, "SMb00c0000000000000000000000000000").await;
    let (me, other) = (phone(76), phone(77));
    assert!(!sara.text(&me, "hello").await.is_empty());
    assert!(!sara.text(&other, "hello").await.is_empty());
    let b = crate::helpers::business();
    let day = crate::helpers::open_days().next().expect("an open day");
    let opening = sara_actors::availability::Availability::new(b).opening(day);
    let first = opening[0].start;
    let later = first + chrono::Duration::hours(1);

    let (browser, _) = Browser::log_in(&sara).await;
    let page_path = format!("/admin/conversations/{me}");
    let (_, page) = browser.get(&page_path).await;
    for name in [
        "Book for this customer",
        "Day and time",
        "Service",
        "Consultation",
    ] {
        assert!(page.contains(name), "{name}: {page}");
    }
    let csrf = hidden(&page, "csrf");
    let when = local_input(first);
    let key = uuid::Uuid::new_v4().to_string();
    let form = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("service", "Consultation"),
        ("when", when.as_str()),
        ("name", "Ivy Chen"),
    ];
    let (status, _) = browser.post(&format!("{page_path}/book"), &form[1..]).await;
    assert_eq!(status, 403, "no CSRF token, no booking");
    let (status, to) = browser.post(&format!("{page_path}/book"), &form).await;
    assert_eq!((status, to.as_str()), (303, page_path.as_str()));
    let (status, _) = browser.post(&format!("{page_path}/book"), &form).await;
    assert_eq!(status, 303, "the same form sent twice is fine");

    let bookings = sara.bookings().await;
    let mine: Vec<_> = bookings
        .iter()
        .filter(|b| b["phone"] == me.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "booked once: {bookings:?}");
    assert_eq!(mine[0]["name"], "Ivy Chen");
    assert_eq!(mine[0]["service"], "Consultation");
    assert_eq!(mine[0]["status"], "confirmed");
    let start = chrono::DateTime::parse_from_rfc3339(mine[0]["start"].as_str().expect("start"))
        .expect("RFC 3339");
    assert_eq!(start, first);
    let id = mine[0]["id"].as_str().expect("id").to_string();
    let told = sms_to(&twilio, &me, "booked a consultation").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].starts_with("Hi Ivy, the front desk at "),
        "{told:?}"
    );
    let (_, page) = browser.get(&page_path).await;
    assert!(page.contains("Booked by staff:"), "{page}");
    assert!(
        page.contains("New time") && page.contains(">Move<"),
        "{page}"
    );

    // The other caller cannot have the same time: the reason and the nearest free times.
    let other_path = format!("/admin/conversations/{other}");
    let (_, page) = browser.get(&other_path).await;
    let taken = [
        ("csrf", csrf.as_str()),
        ("key", &hidden(&page, "key")),
        ("service", "Consultation"),
        ("when", when.as_str()),
    ];
    let (status, page) = browser.post(&format!("{other_path}/book"), &taken).await;
    assert_eq!(status, 200, "the page again, with the reason");
    assert!(
        page.contains("Not done:") && page.contains("is taken"),
        "{page}"
    );
    assert!(page.contains(">Book "), "a free time to pick: {page}");
    let resp = sara
        .client
        .post(format!("{}{other_path}/book", sara.base))
        .bearer_auth(ADMIN_TOKEN)
        .form(&taken[1..])
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 409);
    let refused: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(refused["status"], "refused", "{refused}");
    assert!(!refused["alternatives"].as_array().expect("list").is_empty());
    assert!(
        !sara
            .bookings()
            .await
            .iter()
            .any(|b| b["phone"] == other.as_str()),
        "nothing booked for the other caller"
    );

    let moved = local_input(later);
    let form = [
        ("csrf", csrf.as_str()),
        ("booking", id.as_str()),
        ("when", moved.as_str()),
    ];
    let (status, _) = browser.post(&format!("{page_path}/move"), &form).await;
    assert_eq!(status, 303);
    let bookings = sara.bookings().await;
    let mine = bookings
        .iter()
        .find(|b| b["id"] == id.as_str())
        .expect("kept");
    let start = chrono::DateTime::parse_from_rfc3339(mine["start"].as_str().expect("start"))
        .expect("RFC 3339");
    assert_eq!(start, later);
    sms_to(&twilio, &me, "moved your consultation").await;

    let form = [("csrf", csrf.as_str()), ("booking", id.as_str())];
    let (status, _) = browser.post(&format!("{page_path}/cancel"), &form).await;
    assert_eq!(status, 303);
    let bookings = sara.bookings().await;
    let mine = bookings
        .iter()
        .find(|b| b["id"] == id.as_str())
        .expect("kept");
    assert_eq!(mine["status"], "cancelled");
    sms_to(&twilio, &me, "cancelled your consultation").await;

    let (_, log) = sara.admin_get(&format!("/logs/{me}")).await;
    let intents: Vec<&str> = (log["turns"].as_array().into_iter().flatten())
        .filter(|t| t["channel"] == "staff")
        .filter_map(|t| t["intent"].as_str())
        .collect();
    assert_eq!(
        intents,
        ["staff_book", "staff_move", "staff_cancel"],
        "{log}"
    );
    let (_, outbox) = sara.admin_get("/admin/outbox").await;
    let confirmations = (outbox.as_array().into_iter().flatten())
        .filter(|r| r["kind"] == "confirmation" && r["phone"] == me.as_str())
        .count();
    assert_eq!(confirmations, 3, "{outbox}");
}

/// A form's fields, as a script posts them.
type Fields<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn console_booking_forms_refuse_hostile_input_with_a_clear_4xx() {
    let sara = spawn_app().await;
    let me = phone(78);
    sara.text(&me, "hello").await;
    let path = format!("{}/admin/conversations/{me}", sara.base);
    // (action, form): each a 400.
    let cases: [(&str, Fields); 6] = [
        ("book", &[("service", "Consultation")]),
        ("book", &[("service", "Consultation"), ("when", "tomorrow")]),
        ("book", &[("when", "2030-01-01T10:00")]),
        (
            "move",
            &[("booking", "not-a-uuid"), ("when", "2030-01-01T10:00")],
        ),
        ("cancel", &[]),
        ("reply", &[("text", "   ")]),
    ];
    for (action, form) in cases {
        let resp = sara
            .client
            .post(format!("{path}/{action}"))
            .bearer_auth(ADMIN_TOKEN)
            .form(form)
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status().as_u16(), 400, "{action} {form:?}");
    }
    let resp = sara
        .client
        .post(format!(
            "{}/admin/conversations/not-a-phone/book",
            sara.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 400);
}

/// The day screen shows each booking's status and, once the customer confirmed in answer
/// to a reminder ("C"), that they are attending.
#[tokio::test]
async fn the_day_screen_shows_a_bookings_status_and_the_attendance_the_customer_confirmed() {
    let sara = spawn_app().await;
    let me = phone(79);
    book_over_sms(&sara, &me, "Ole Berg").await;
    let (browser, _) = Browser::log_in(&sara).await;
    let (_, page) = browser.get("/admin").await;
    assert!(
        page.contains("Ole Berg") && page.contains(">confirmed<"),
        "{page}"
    );
    assert!(!page.contains("attending"), "{page}");
    let thanks = sara.text(&me, "C").await;
    assert!(thanks.starts_with("Thanks, Ole"), "{thanks}");
    let (_, page) = browser.get("/admin").await;
    assert!(page.contains("class=\"badge ok\">attending<"), "{page}");
}

/// A booking staff make from the console gets the reminders a customer's own booking gets.
#[tokio::test]
async fn a_booking_made_by_staff_gets_its_reminder_like_any_other() {
    let (sara, twilio) =
        crate::helpers::sara_with_twilio_rest(ACCOUNT, "SMb00c0000000000000000000000000001").await;
    let me = phone(80);
    sara.text(&me, "hello").await;
    let b = crate::helpers::business();
    let day = crate::helpers::open_days().next().expect("an open day");
    let start = sara_actors::availability::Availability::new(b).opening(day)[0].start
        + chrono::Duration::hours(1);
    let resp = sara
        .client
        .post(format!("{}/admin/conversations/{me}/book", sara.base))
        .bearer_auth(ADMIN_TOKEN)
        .form(&[
            ("service", "Cleaning"),
            ("when", local_input(start).as_str()),
            ("name", "Noor Haddad"),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 200);
    let done: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(done["status"], "booked", "{done}");
    sms_to(&twilio, &me, "booked a cleaning").await;
    assert!(
        twilio
            .received_requests()
            .await
            .expect("recorded")
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("reminder")),
        "no reminder yet"
    );
    sara.advance_to(start - chrono::Duration::minutes(1440))
        .await;
    let reminder = sms_to(&twilio, &me, "a reminder of your cleaning tomorrow").await;
    assert_eq!(reminder.len(), 1, "{reminder:?}");
    assert!(reminder[0].starts_with("Hi Noor, "), "{reminder:?}");
}
