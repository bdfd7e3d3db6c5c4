//! `GET /openapi.json` against the server that serves it: the document lists exactly the
//! routes the router has (probed over HTTP, and no route registered around the
//! documentation), and schemathesis (PyPI, in the conformance venv) fuzzes every operation
//! with signed webhooks (scripts/schemathesis_hooks.py) and finds no 5xx and no answer the
//! document does not describe.
//!
//! The fuzz run needs schemathesis in `SARA_CONFORMANCE_PYTHON` or `.venv-conformance`
//! (scripts/test installs it); without it the run is skipped with a note on a developer's
//! machine and FAILS when `CI` or `SARA_CONFORMANCE_PYTHON` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, AUTH_TOKEN, Sara, distinct_slots, phone, spawn_app};

/// A value for each path parameter, so a templated path becomes one the router matches.
fn concrete(path: &str) -> String {
    path.replace("{phone}", "%2B15550001234")
        .replace("{id}", "CA00000000000000000000000000000001")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(sara: &Sara) -> Value {
    let response = sara
        .client
        .get(format!("{}/openapi.json", sara.base))
        .send()
        .await
        .expect("request reaches sara");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/json")
    );
    response.json().await.expect("the document is JSON")
}

/// Every documented operation reaches a handler (neither the fallback's "no such route" nor
/// a 405), and every method a path does not document is a 405: the router and the document
/// agree in both directions for each documented path. (The probes carry the admin token:
/// the admin throttle is per process, and wrong tokens here would throttle other tests.)
#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_server_answers() {
    let sara = spawn_app().await;
    let doc = document(&sara).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let url = format!("{}{}", sara.base, concrete(path));
        for method in METHODS {
            let documented = item.get(method).is_some();
            let response = sara
                .client
                .request(method.to_uppercase().parse().expect("method"), &url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("request reaches sara");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            if documented {
                assert_ne!(status, 405, "{method} {path} is documented but not routed");
                assert!(
                    !(status == 404 && body["detail"] == "no such route"),
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not documented");
            }
        }
    }
    // The routes of the contract (CONTRACT.md's HTTP table, README's additions) are there.
    for (method, path) in [
        ("post", "/webhook/sms"),
        ("post", "/webhook/sms/status"),
        ("post", "/webhook/voice"),
        ("post", "/webhook/voice/gather"),
        ("post", "/webhook/voice/status"),
        ("get", "/webhook/voice/relay"),
        ("post", "/webhook/voice/relay/end"),
        ("get", "/webhook/whatsapp"),
        ("post", "/webhook/whatsapp"),
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/logs/{id}"),
        ("get", "/admin/stats"),
        ("get", "/admin/bookings"),
        ("get", "/admin/outbox"),
        ("get", "/admin"),
        ("get", "/admin/conversations/{phone}"),
        ("post", "/admin/debug/clock"),
        ("post", "/admin/debug/panic/{phone}"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from the document"
        );
    }
    // What the contract promises about errors and signatures is in the document.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["admin_bearer"]["scheme"], "bearer");
    assert_eq!(schemes["twilio_signature"]["name"], "X-Twilio-Signature");
    assert_eq!(schemes["meta_signature"]["name"], "X-Hub-Signature-256");
    for (path, method) in [
        ("/webhook/sms", "post"),
        ("/webhook/whatsapp", "post"),
        ("/webhook/voice/gather", "post"),
    ] {
        let forbidden = &doc["paths"][path][method]["responses"]["403"];
        assert_eq!(
            forbidden["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{method} {path}: the 403 on a bad signature is documented"
        );
    }
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error", "detail"]));
}

/// No route is registered except through `utoipa_axum::routes!`, which documents it: a
/// plain axum `.route(…)` or a nested router would answer without being in the document.
#[test]
fn every_route_is_registered_with_its_documentation() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("src/http") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        let code: String = source
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("OpenApiRouter::new()", "");
        for registration in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            "Router::new()",
        ] {
            assert!(
                !code.contains(registration),
                "{} registers a route with `{registration}`: use `.routes(routes!(handler))` \
                 with a #[utoipa::path] on the handler so /openapi.json lists it",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} files under src/http");
}

/// The Python with schemathesis, or `None` (skip with a note) outside CI.
fn schemathesis_python() -> Option<PathBuf> {
    let python = sara::channels::conformance::python()?;
    let importable = Command::new(&python)
        .args(["-c", "import schemathesis, twilio"])
        .status()
        .is_ok_and(|s| s.success());
    if importable {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os("SARA_CONFORMANCE_PYTHON").is_none(),
        "{} has no schemathesis: scripts/test installs it (CI must run the fuzz check)",
        python.display()
    );
    eprintln!(
        "schemathesis check skipped: {} has no schemathesis (run scripts/test once)",
        python.display()
    );
    None
}

const APP_SECRET: &str = "test-whatsapp-app-secret";
const VERIFY_TOKEN: &str = "test-whatsapp-verify-token";

/// schemathesis against the running server, 20 examples per operation (plus its coverage
/// phase), signed webhooks and the admin token: no 5xx, every status documented, every
/// body and content type as documented. The rate limits are lifted so the run reaches the
/// handlers rather than the limiter (the 429s stay documented).
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let Some(python) = schemathesis_python() else {
        return;
    };
    let sara = Sara::start_with(&[
        ("SARA_WHATSAPP__APP_SECRET", APP_SECRET),
        ("SARA_WHATSAPP__VERIFY_TOKEN", VERIFY_TOKEN),
        ("SARA_LIMITS__PHONE_PER_MINUTE", "1000000"),
        ("SARA_LIMITS__BAD_SIGNATURE_PER_IP_PER_MINUTE", "1000000"),
        ("SARA_LIMITS__ADMIN_FAILURES_PER_IP_PER_MINUTE", "1000000"),
        ("SARA_LOG", "error"),
        ("RUST_BACKTRACE", "0"),
    ])
    .await;
    // A caller with a booking, so the admin routes have rows to answer with.
    let me = phone(7901);
    let (_, day, time) = distinct_slots(1, 60).remove(0);
    let offer = sara
        .text(
            &me,
            &format!("I'd like a consultation on {day} at {time}, my name is Ann Lee"),
        )
        .await;
    assert!(offer.contains("Ann"), "{offer}");
    let booked = sara.text(&me, "yes").await;
    assert!(booked.to_lowercase().contains("booked"), "{booked}");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let hooks = root.join("scripts/schemathesis_hooks.py");
    let work = tempfile::tempdir().expect("temp dir");
    let schema = format!("{}/openapi.json", sara.base);
    let known = me.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "schemathesis.cli", "run", &schema])
            .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,response_headers_conformance,unsupported_method,\
                 allow_header_conformance",
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            // It only makes actors panic on purpose (supervision has its own tests).
            .args(["--exclude-path", "/admin/debug/panic/{phone}"])
            // One worker: with two, hypothesis parses its own sources in two threads at once,
            // and CPython 3.11's ast module then fails now and then ("AST constructor recursion
            // depth mismatch", a runtime error in schemathesis, not an answer of Sara's).
            .args(["--max-examples", "20", "--workers", "1"])
            .args(["--generation-database", "none", "--no-color"])
            .args(["--request-timeout", "30"])
            .env("SCHEMATHESIS_HOOKS", &hooks)
            .env("SARA_FUZZ_PUBLIC_URL", "https://sara.example.com")
            .env("SARA_FUZZ_TWILIO_TOKEN", AUTH_TOKEN)
            .env("SARA_FUZZ_APP_SECRET", APP_SECRET)
            .env("SARA_FUZZ_VERIFY_TOKEN", VERIFY_TOKEN)
            .env("SARA_FUZZ_PHONE", &known)
            .current_dir(work.path())
            .output()
            .expect("schemathesis runs")
    })
    .await
    .expect("schemathesis task");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    let summary = report
        .lines()
        .find(|line| line.contains("generated,"))
        .unwrap_or_default();
    assert!(
        summary.contains("passed") && !summary.contains("failed"),
        "unexpected summary {summary:?}:\n{report}"
    );
    eprintln!("schemathesis: {}", summary.trim());
    // The signed webhooks got past the signature check into the engine.
    let (status, stats) = sara.admin_get("/admin/stats").await;
    assert_eq!(status, 200);
    assert!(
        stats["turns"].as_i64().is_some_and(|turns| turns > 0),
        "no fuzzed webhook reached a turn: {stats}"
    );
}
