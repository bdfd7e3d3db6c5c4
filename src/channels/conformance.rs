//! Tests only: runs `scripts/conformance.py` with the reference libraries (Python's `email`,
//! `icalendar`, Twilio's `twilio`), so the wire formats Sara writes are checked by code other
//! than her own.
//!
//! Which Python: `SARA_CONFORMANCE_PYTHON` when set, else `.venv-conformance/bin/python` in the
//! repository (scripts/test creates it). When neither exists the check is skipped with a note
//! on stderr on a developer's machine, and FAILS when `CI` or `SARA_CONFORMANCE_PYTHON` is
//! set: CI never passes without having run it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The interpreter to use, or `None` (skip) on a machine without the venv outside CI.
pub fn python() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SARA_CONFORMANCE_PYTHON") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "SARA_CONFORMANCE_PYTHON={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-conformance/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: scripts/test creates it (CI must run the conformance checks)",
        venv.display()
    );
    eprintln!(
        "conformance check skipped: no {} (run scripts/test once to create it)",
        venv.display()
    );
    None
}

/// Runs `conformance.py ARGS` with `stdin`; its JSON answer, or `None` when skipped. A
/// failing script fails the test with its stderr.
pub fn run(args: &[&str], stdin: &[u8]) -> Option<serde_json::Value> {
    let python = python()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/conformance.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(stdin)
        .expect("stdin written");
    let out = child.wait_with_output().expect("python ran");
    assert!(
        out.status.success(),
        "conformance.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("conformance.py prints JSON"))
}

/// [`run`] off the async runtime, for a script that calls a stand-in served by this test.
pub async fn run_async(args: Vec<String>, stdin: Vec<u8>) -> Option<serde_json::Value> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &stdin)
    })
    .await
    .expect("conformance task")
}
