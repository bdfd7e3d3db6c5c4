//! The front-desk console in a real headless Chromium (Debian's `chromium`), driven by
//! `scripts/console_browser.py` with Playwright by the accessible names CONTRACT.md lists,
//! while this test plays the customer over signed SMS and the Twilio REST API stand-in
//! records what staff send, including the confirmation of a booking staff make for the
//! caller from the page. Screenshots of every step are kept under
//! `$CARGO_TARGET_TMPDIR/console-browser/`.
//!
//! Needs the conformance venv with Playwright (scripts/test installs it) and Chromium
//! (`SARA_CHROMIUM`, else /usr/bin/chromium). Without them the test is skipped with a note
//! on a developer's machine and FAILS in CI (`CI` set): CI never passes without a browser.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::{Days, Utc};

use crate::helpers::{ADMIN_TOKEN, business, distinct_slots, phone};

const ACCOUNT: &str = "AC00000000000000000000000000000002";

/// The Python with Playwright and the Chromium binary, or `None` to skip (outside CI).
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let python = std::env::var_os("SARA_CONFORMANCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-conformance/bin/python")
        });
    let chromium = std::env::var_os("SARA_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let has_playwright = python.exists()
        && Command::new(&python)
            .args(["-c", "import playwright.sync_api"])
            .status()
            .is_ok_and(|s| s.success());
    if has_playwright && chromium.exists() {
        return Some((python, chromium));
    }
    let missing = format!(
        "{} with Playwright, or Chromium at {} (scripts/test installs both)",
        python.display(),
        chromium.display()
    );
    assert!(std::env::var_os("CI").is_none(), "missing {missing}");
    eprintln!("browser test skipped: missing {missing}");
    None
}

/// The script's side of the conversation: its step lines, and our go-aheads.
struct Script {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Script {
    async fn reached(&mut self, step: &str) {
        let line = tokio::task::block_in_place(|| self.lines.next());
        match line {
            Some(Ok(line)) if line == step => {}
            other => {
                let status = self.child.wait();
                panic!("the browser script stopped before {step:?}: {other:?}, {status:?}")
            }
        }
    }

    fn go_ahead(&mut self, word: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{word}").expect("the browser script reads its go-ahead");
        stdin.flush().expect("flush");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_desk_logs_in_sees_an_sms_booking_takes_over_replies_and_hands_back_in_a_browser() {
    let Some((python, chromium)) = browser_tools() else {
        return;
    };
    let (sara, twilio) =
        crate::helpers::sara_with_twilio_rest(ACCOUNT, "SMb70e5e00000000000000000000000000").await;
    let me = phone(81);
    let name = "Ann Lee";
    // A day of the coming week, so the booking shows in the day screen's schedule.
    let b = business();
    let today = Utc::now().with_timezone(&b.timezone).date_naive();
    let (day, day_text, time) = distinct_slots(1, 60).remove(0);
    assert!(
        day <= today + Days::new(7),
        "the first open day {day} is not within the coming week"
    );
    // Staff book a cleaning an hour after the customer's own consultation that day.
    let opening = sara_actors::availability::Availability::new(b).opening(day);
    let staff_at = (opening[0].start + chrono::Duration::hours(1))
        .with_timezone(&b.timezone)
        .format("%Y-%m-%dT%H:%M")
        .to_string();

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-browser");
    let mut child = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/console_browser.py"))
        .args([&sara.base, ADMIN_TOKEN, &me, name])
        .arg(&shots)
        .arg(&chromium)
        .arg(&staff_at)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the browser script starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut script = Script {
        child,
        lines: BufReader::new(stdout).lines(),
    };

    script.reached("logged-in").await;
    let offer = sara
        .text(
            &me,
            &format!("I'd like a consultation on {day_text} at {time}, my name is {name}"),
        )
        .await;
    assert!(offer.contains(name), "{offer}");
    let booked = sara.text(&me, "yes").await;
    assert!(booked.to_lowercase().contains("booked"), "{booked}");
    script.go_ahead("booked");

    script.reached("taken-over").await;
    assert_eq!(
        sara.text(&me, "hello, anyone?").await,
        "",
        "Sara is quiet once staff took over"
    );
    script.go_ahead("quiet");

    script.reached("sent").await;
    let sent = loop {
        let requests = twilio.received_requests().await.expect("recorded");
        let ours: Vec<String> = requests
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .filter(|body| body.contains("Maria"))
            .collect();
        if !ours.is_empty() {
            break ours;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(sent.len(), 1, "{sent:?}");
    let form: Vec<(String, String)> = form_urlencoded::parse(sent[0].as_bytes())
        .into_owned()
        .collect();
    assert!(form.contains(&("To".into(), me.clone())), "{form:?}");
    script.go_ahead("delivered");

    script.reached("handed-back").await;
    assert!(
        !sara.text(&me, "thanks!").await.is_empty(),
        "Sara answers again after the hand-back"
    );
    script.go_ahead("answered");

    script.reached("staff-booked").await;
    loop {
        let requests = twilio.received_requests().await.expect("recorded");
        if requests
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("booked+a+cleaning"))
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    let cleanings = sara
        .bookings()
        .await
        .into_iter()
        .filter(|b| b["phone"] == me.as_str() && b["service"] == "Cleaning")
        .count();
    assert_eq!(cleanings, 1, "booked once, for this caller");
    script.go_ahead("done");
    let status = tokio::task::block_in_place(|| script.child.wait()).expect("wait");
    assert!(status.success(), "the browser script failed: {status}");
    eprintln!("console screenshots in {}", shots.display());
}
