//! The load generator end to end on a tiny load against an in-process Sara: every dialog
//! must end in a booking and the summary must carry every key. Timings are never asserted.

use std::path::Path;

use super::*;

fn config() -> Config {
    Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .expect("the repository config loads")
}

#[tokio::test]
async fn five_dialogs_all_end_in_a_booking_and_the_summary_has_every_key() {
    let options = BenchOptions {
        dialogs: 5,
        concurrency: 2,
        ..BenchOptions::default()
    };
    let report = run(config(), options).await.expect("bench runs");
    assert_eq!(report.load.dialogs_started, 5);
    assert_eq!(report.dialogs_booked, 5, "{}", report.table());
    assert_eq!(report.summary.errors, 0, "{}", report.table());
    assert!(
        report.summary.turns >= 5 * 6,
        "at least six turns per dialog"
    );
    let limit = report.limit.as_ref().expect("the bare route was measured");
    assert_eq!(limit.failed_turns, 0);

    let json: serde_json::Value = serde_json::from_str(&report.json()).expect("valid JSON");
    let keys = [
        "backend",
        "dialogs",
        "concurrency",
        "turns",
        "errors",
        "turns_per_s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "server_rss_mib",
        "limit_turns_per_s",
        "ratio",
    ];
    let object = json.as_object().expect("an object");
    for key in keys {
        assert!(object.contains_key(key), "missing {key}");
    }
    assert_eq!(object.len(), keys.len(), "no other keys");
    assert_eq!(json["backend"], "sqlite");
    assert_eq!(json["dialogs"], 5);
}
