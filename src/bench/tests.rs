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
        "stages",
    ];
    let object = json.as_object().expect("an object");
    for key in keys {
        assert!(object.contains_key(key), "missing {key}");
    }
    assert_eq!(object.len(), keys.len(), "no other keys");
    assert_eq!(json["backend"], "sqlite");
    assert_eq!(json["dialogs"], 5);
    // Every turn passes these stages. The recorder is the process's, which other tests
    // running beside this one share: at least this run's turns are counted.
    for stage in ["front", "queue", "understand", "commit_wait", "commit"] {
        let turns = json["stages"][stage]["turns"].as_u64().unwrap_or(0);
        assert!(
            turns >= report.summary.turns,
            "stage {stage}: {}",
            json["stages"]
        );
        for figure in ["mean_ms", "p50_ms", "p99_ms"] {
            assert!(json["stages"][stage][figure].is_f64(), "{stage} {figure}");
        }
    }
}

#[tokio::test]
async fn a_short_soak_samples_every_second_and_draws_the_plot() {
    let options = BenchOptions {
        // Three wishes cycled: the same slots are booked again and again, which only works
        // because every customer cancels the booking.
        dialogs: 3,
        rate: Some(40.0),
        duration: Some(Duration::from_secs(4)),
        sample_every: Duration::from_secs(1),
        skip_limit: true,
        idle_timeout: Some(Duration::from_secs(2)),
        ..BenchOptions::default()
    };
    let report = run(config(), options).await.expect("bench runs");
    assert!(
        report.load.dialogs_started > 3,
        "dialogs keep starting: {}",
        report.table()
    );
    assert!(report.dialogs_booked >= 1, "{}", report.table());
    assert_eq!(report.summary.errors, 0, "{}", report.table());
    let timeline = &report.load.timeline;
    assert!(timeline.len() >= 2, "{timeline:?}");
    assert!(
        timeline
            .iter()
            .all(|s| s.rss_mib.is_some() && s.live.is_some())
    );
    assert!(report.table().contains("RSS first 10 % → last 10 %"));

    let dir = tempfile::tempdir().expect("temp dir");
    let (csv, svg) = (dir.path().join("t.csv"), dir.path().join("t.svg"));
    crate::cli::write_timeline(&report, Some(&csv), Some(&svg)).expect("written");
    let csv = std::fs::read_to_string(csv).expect("csv");
    assert_eq!(csv.lines().count(), timeline.len() + 1);
    assert!(csv.starts_with(timeline::CSV_HEADER));
    let svg = std::fs::read_to_string(svg).expect("svg");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    assert_eq!(svg.matches("<polyline class=\"series\"").count(), 2);
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());

    // The JSON line keeps exactly its keys in a soak too.
    let json: serde_json::Value = serde_json::from_str(&report.json()).expect("valid JSON");
    assert_eq!(json.as_object().expect("an object").len(), 14);
}

#[test]
fn durations_read_plain_seconds_and_units() {
    let secs = |s: &str| parse_duration(s).map(|d| d.as_secs_f64());
    assert_eq!(secs("90"), Ok(90.0));
    assert_eq!(secs("2.5"), Ok(2.5));
    assert_eq!(secs("90s"), Ok(90.0));
    assert_eq!(secs("30m"), Ok(1800.0));
    assert_eq!(secs("1h"), Ok(3600.0));
    assert_eq!(secs("1h30m"), Ok(5400.0));
    assert_eq!(secs("1.5h"), Ok(5400.0));
    assert_eq!(secs("250ms"), Ok(0.25));
    assert_eq!(secs("10 min"), Ok(600.0));
    for bad in ["", "m", "30x", "-5", "1h-3m", "NaN", "1e400"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_tiny_relay_bench_books_every_call_and_reports_the_token_figures() {
    let options = BenchOptions {
        dialogs: 4,
        concurrency: 2,
        skip_limit: true,
        ..BenchOptions::default()
    };
    let report = relay::run(config(), &options, relay::Callers::default())
        .await
        .expect("bench runs");
    assert_eq!(report.summary.errors, 0, "{}", report.table());
    assert_eq!(report.booked, 4, "{}", report.table());
    assert!(
        report.summary.turns >= 4 * 7,
        "six scripted turns and the spelled-back name per call: {}",
        report.table()
    );

    let json: serde_json::Value = serde_json::from_str(&report.json()).expect("valid JSON");
    let object = json.as_object().expect("an object");
    assert_eq!(json["mode"], "relay");
    assert_eq!(json["calls"], 4);
    assert_eq!(json["concurrency"], 2);
    assert!(json["model_latency_ms"].is_null());
    assert_eq!(report.model_requests, None);
    for key in [
        "first_token_p50_ms",
        "first_token_p95_ms",
        "first_token_p99_ms",
        "first_token_max_ms",
        "last_token_p50_ms",
        "last_token_p95_ms",
        "last_token_p99_ms",
    ] {
        let ms = object
            .get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("{key} is a number: {json}"));
        assert!(ms > 0.0, "{key} measured: {json}");
    }
    assert!(
        json["first_token_p99_ms"].as_f64() <= json["last_token_p99_ms"].as_f64(),
        "the first token comes no later than the last: {json}"
    );
}

#[tokio::test]
async fn a_relay_bench_through_the_model_stand_in_books_every_call() {
    let options = BenchOptions {
        dialogs: 2,
        concurrency: 2,
        skip_limit: true,
        ..BenchOptions::default()
    };
    let report = relay::run(
        config(),
        &options,
        relay::Callers {
            model_latency: Some(Duration::from_millis(20)),
            pause: Duration::from_millis(5),
        },
    )
    .await
    .expect("bench runs");
    assert_eq!(report.summary.errors, 0, "{}", report.table());
    assert_eq!(report.booked, 2, "{}", report.table());
    assert_eq!(
        report.model_requests,
        Some(report.summary.turns),
        "every turn asked the model: {}",
        report.table()
    );
    let json: serde_json::Value = serde_json::from_str(&report.json()).expect("valid JSON");
    assert_eq!(json["model_latency_ms"], 20);
    assert_eq!(json["pause_ms"], 5);
    assert!(json["last_token_p50_ms"].as_f64().is_some(), "{json}");
}
