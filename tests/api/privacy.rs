//! Personal data at rest: after a booking over SMS, the SQLite files on disk hold neither
//! the caller's phone number nor their name, and the generated key file is private.

use chrono::Weekday;

use crate::helpers::{Sara, message_of, phone, sid, upcoming};

const NAME: &str = "Imogen Radcliffe";

fn database_path(sara: &Sara) -> std::path::PathBuf {
    let path = sara
        .db_url
        .strip_prefix("sqlite://")
        .expect("the tests run on a SQLite file");
    std::path::PathBuf::from(path)
}

#[tokio::test]
async fn after_a_booking_over_sms_the_database_files_hold_no_phone_or_name_in_clear() {
    let sara = Sara::start().await;
    let me = phone(41);
    let (_, day_text) = upcoming(Weekday::Wed);

    sara.text(&me, &format!("my name is {NAME}")).await;
    sara.text(&me, &format!("a cleaning on {day_text} at 2pm please"))
        .await;
    let last_sid = sid();
    let (status, xml) = sara.sms_with_sid(&me, "yes", &last_sid).await;
    assert_eq!(status, 200);
    let done = message_of(&xml);
    assert!(done.to_lowercase().contains("booked"), "{done}");
    // The admin still sees everything in clear: the store decrypts.
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    assert_eq!(bookings[0]["phone"], me.as_str());
    assert_eq!(bookings[0]["name"], NAME);
    let (status, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(status, 200);
    assert_eq!(log["turns"][0]["text"], format!("my name is {NAME}"));

    // The bytes on disk: the database file and its write-ahead log (where recent pages are
    // until a checkpoint).
    let db = database_path(&sara);
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let mut on_disk = std::fs::read(&db).expect("the database file");
    on_disk.extend(std::fs::read(&wal).unwrap_or_default());
    let on_disk = String::from_utf8_lossy(&on_disk);
    let digits = me.trim_start_matches('+');
    for secret in [me.as_str(), digits, NAME, "Imogen", "Radcliffe"] {
        assert!(
            !on_disk.contains(secret),
            "{secret:?} is in the database files in clear"
        );
    }
    // A provider id is not personal data and stays clear: proof that the scan sees the turns.
    assert!(
        on_disk.contains(&last_sid),
        "the turn log is in the files read"
    );

    let mut key_file = db.into_os_string();
    key_file.push(".key");
    let meta = std::fs::metadata(&key_file).expect("Sara created a key file beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let _ = meta;
}

/// The retention window (`[privacy] retention_days`, 365 in config.toml): once the clock is
/// past it, the daily retention job has removed the words of the old turns (the turns, the
/// booking and its name stay), the console says so, `/logs/audit` records the run, and what
/// the customer writes afterwards is kept.
#[tokio::test]
async fn past_the_retention_window_old_message_text_is_redacted_and_the_run_audited() {
    let sara = Sara::start().await;
    let me = phone(42);
    let (_, day_text) = upcoming(Weekday::Thu);
    sara.text(
        &me,
        &format!("I'd like a cleaning on {day_text} at 2pm, my name is {NAME}"),
    )
    .await;
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
    let (_, audit) = sara.admin_get("/logs/audit").await;
    assert_eq!(audit, serde_json::json!([]), "nothing run yet");

    // Just inside the window (plus the day to the next 03:00 run) nothing is touched.
    sara.advance(364 * 24 * 60).await;
    let (_, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert!(
        log["turns"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(NAME)),
        "{log}"
    );

    sara.advance(3 * 24 * 60).await;
    let (status, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(status, 200, "the conversation and its turns stay");
    let turns = log["turns"].as_array().cloned().unwrap_or_default();
    assert_eq!(turns.len(), 2, "{log}");
    for turn in &turns {
        assert_eq!(turn["text"], "", "{turn}");
        assert_eq!(turn["reply"], "", "{turn}");
        assert_eq!(turn["redacted"], true, "{turn}");
        assert!(
            turn["intent"].is_string() && turn["at"].is_string(),
            "{turn}"
        );
    }
    assert!(!log.to_string().contains(NAME), "{log}");
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1, "bookings are kept: {bookings:?}");
    assert_eq!(bookings[0]["name"], NAME);

    let (_, audit) = sara.admin_get("/logs/audit").await;
    let runs: Vec<&serde_json::Value> = (audit.as_array().into_iter().flatten())
        .filter(|a| a["action"] == "retention")
        .collect();
    assert!(!runs.is_empty(), "{audit}");
    assert!(
        runs.iter()
            .any(|r| r["detail"].as_str().is_some_and(|d| d.contains("2 turns"))),
        "{audit}"
    );
    assert!(runs.iter().all(|r| r["contact_key"].is_null()), "{audit}");

    let page = sara
        .client
        .get(format!("{}/admin/conversations/{me}", sara.base))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .expect("reaches sara")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        page.contains("removed after the retention window"),
        "{page}"
    );

    sara.text(&me, "hello again").await;
    let (_, log) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(log["turns"][2]["text"], "hello again", "{log}");
    assert!(log["turns"][2].get("redacted").is_none(), "{log}");
}
