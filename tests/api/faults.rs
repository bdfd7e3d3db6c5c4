//! The fault suite: Sara is killed with SIGKILL at random moments while many dialogs run;
//! unanswered webhooks are delivered again, as Twilio would. Afterwards every dialog has
//! completed, no committed turn is lost or applied twice, and no slot is double-booked.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::DateTime;
use tokio::sync::{Mutex, Notify, watch};

use crate::helpers::{Sara, consecutive_open_days, day_text, message_of, phone, sid, signed_sms};

/// One caller's dialog: (text, MessageSid) in send order; the last turn confirms.
fn dialog(n: usize, day: &str) -> Vec<(String, String)> {
    let hour = [9, 10, 11, 13, 14, 15, 16][n % 7];
    let services = ["consultation", "cleaning", "whitening"];
    let texts = vec![
        "hello".to_string(),
        format!("I'd like a {} please", services[n % 3]),
        format!("{day} at {hour}:00"),
        "do you have parking?".to_string(),
        format!(
            "my name is Caller {}",
            ["Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus"][n % 7]
        ),
        "yes".to_string(),
    ];
    texts.into_iter().map(|t| (t, sid())).collect()
}

#[tokio::test]
async fn killing_sara_at_random_moments_loses_no_committed_turn_and_double_books_nothing() {
    fault_suite(Sara::start().await).await;
}

#[tokio::test]
async fn the_same_on_postgresql() {
    let db = crate::production::PgDatabase::create().await;
    let dir = crate::helpers::temp_dir();
    fault_suite(Sara::launch(dir, db.url_on(5432), &[]).await).await;
}

async fn fault_suite(sara: Sara) {
    const CALLERS: usize = 14;
    let client = sara.client.clone();
    // Two distinct days so 14 callers x 7 hours never need the same slot.
    let days: Vec<String> = consecutive_open_days(2).into_iter().map(day_text).collect();
    let dialogs: Vec<(String, Vec<(String, String)>)> = (0..CALLERS)
        .map(|n| (phone(300 + n as u32), dialog(n, &days[n / 7])))
        .collect();

    // The current server's address; a new value each time it comes back after a kill.
    let (base_tx, base_rx) = watch::channel(sara.base.clone());
    let server = Arc::new(Mutex::new(Some(sara)));
    let answered = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());
    let total: usize = dialogs.iter().map(|(_, d)| d.len()).sum();

    let mut callers = Vec::new();
    for (from, turns) in dialogs.clone() {
        let client = client.clone();
        let mut base_rx = base_rx.clone();
        let answered = answered.clone();
        let progress = progress.clone();
        callers.push(tokio::spawn(async move {
            let mut last = String::new();
            for (text, message_sid) in &turns {
                // Deliver until answered; a dead server means wait for the next one.
                loop {
                    let base = base_rx.borrow_and_update().clone();
                    match signed_sms(&client, &base, &from, text, message_sid).await {
                        Ok((200, xml)) => {
                            last = message_of(&xml);
                            answered.fetch_add(1, Ordering::SeqCst);
                            progress.notify_one();
                            break;
                        }
                        Ok((status, body)) => panic!("{text:?} got {status}: {body}"),
                        Err(_) => {
                            base_rx
                                .changed()
                                .await
                                .expect("the killer keeps a server up");
                        }
                    }
                }
            }
            last
        }));
    }

    // The killer: after a random number of answered turns, SIGKILL and restart.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    let mut next_kill = 5;
    while answered.load(Ordering::SeqCst) < total && kills < 5 {
        if answered.load(Ordering::SeqCst) >= next_kill {
            let old = server.lock().await.take().expect("a server runs");
            let (dir, db) = old.kill9();
            let fresh = Sara::start_on(dir, db).await;
            base_tx.send_replace(fresh.base.clone());
            *server.lock().await = Some(fresh);
            kills += 1;
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            next_kill = answered.load(Ordering::SeqCst) + 3 + (seed % 10) as usize;
        }
        progress.notified().await;
    }
    let mut finals = Vec::new();
    for c in callers {
        finals.push(c.await.expect("caller task"));
    }
    assert!(kills >= 3, "the server was killed {kills} times");
    for reply in &finals {
        assert!(reply.to_lowercase().contains("booked"), "{reply}");
    }

    let guard = server.lock().await;
    let sara = guard.as_ref().expect("a server runs");
    for (from, turns) in &dialogs {
        let (status, log) = sara.admin_get(&format!("/logs/{from}")).await;
        assert_eq!(status, 200);
        let logged: Vec<(String, String)> = log["turns"]
            .as_array()
            .expect("turns")
            .iter()
            .map(|t| {
                (
                    t["text"].as_str().unwrap_or_default().to_string(),
                    t["provider_id"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert_eq!(&logged, turns, "every turn exactly once, in order");
    }
    let bookings = sara.bookings().await;
    let confirmed: Vec<_> = bookings
        .iter()
        .filter(|b| b["status"] == "confirmed")
        .collect();
    assert_eq!(confirmed.len(), CALLERS, "{bookings:?}");
    let phones: HashSet<&str> = confirmed
        .iter()
        .map(|b| b["phone"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(phones.len(), CALLERS, "one booking per caller");
    let mut spans: Vec<(DateTime<chrono::FixedOffset>, DateTime<chrono::FixedOffset>)> = confirmed
        .iter()
        .map(|b| {
            let t = |k: &str| {
                DateTime::parse_from_rfc3339(b[k].as_str().unwrap_or_default()).expect("RFC 3339")
            };
            (t("start"), t("end"))
        })
        .collect();
    spans.sort();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "no overlaps: {spans:?}"
    );
}
