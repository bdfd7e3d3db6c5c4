//! Email confirmations with a calendar invite, through a local SMTP stand-in that speaks the
//! protocol (lettre talks to it exactly as to a real relay).

use std::time::Duration;

use chrono::Weekday;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::helpers::{Sara, phone, upcoming};

/// A minimal SMTP server: accepts every message and hands (recipients, data) to the test.
pub(crate) async fn smtp_stand_in() -> (String, mpsc::UnboundedReceiver<(Vec<String>, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 stand-in ESMTP\r\n").await;
                let mut rcpt = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let answer: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250-stand-in\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        rcpt.push(line[8..].trim().trim_matches(['<', '>']).to_string());
                        b"250 OK\r\n"
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        let _ = tx.send((std::mem::take(&mut rcpt), data));
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    let _ = write.write_all(answer).await;
                }
            });
        }
    });
    (format!("smtp://{addr}"), rx)
}

#[tokio::test]
async fn a_booking_with_an_email_address_gets_a_confirmation_with_an_invite() {
    let (url, mut mail) = smtp_stand_in().await;
    let sara = Sara::start_with(&[
        ("SARA_EMAIL__SMTP_URL", &url),
        (
            "SARA_EMAIL__FROM",
            "Harbor Street Clinic <desk@harbor.example>",
        ),
    ])
    .await;
    let me = phone(50);
    let (day, day_text) = upcoming(Weekday::Tue);
    let ask = sara
        .text(
            &me,
            &format!(
                "Book a cleaning on {day_text} at 10am please. I'm Ana Diaz, ana.diaz@example.com"
            ),
        )
        .await;
    assert!(ask.contains("Ana Diaz"), "{ask}");
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");

    let (to, data) = tokio::time::timeout(Duration::from_secs(15), mail.recv())
        .await
        .expect("a confirmation before the deadline")
        .expect("stand-in alive");
    assert_eq!(to, ["ana.diaz@example.com"]);
    assert!(
        data.contains("BEGIN:VCALENDAR") && data.contains("METHOD:REQUEST"),
        "{data}"
    );
    let booking = &sara.bookings().await[0];
    assert!(
        data.contains(&format!("UID:{}@sara", booking["id"].as_str().unwrap())),
        "{data}"
    );
    // The calendar part may travel quoted-printable: soft breaks out, "=3D" back to "=".
    let data = data
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    // The local time in the business time zone, which the invite carries with its VTIMEZONE.
    let dtstart = format!(
        "DTSTART;TZID=America/New_York:{}T100000",
        day.format("%Y%m%d")
    );
    assert!(data.contains(&dtstart), "{dtstart} in {data}");
    assert!(data.contains("BEGIN:VTIMEZONE"), "{data}");
    assert!(data.contains("Message-ID: <"), "{data}");
    // It went through the outbox: one confirmation row, sent, its Message-ID recorded.
    let outbox = sara.settled_outbox().await;
    let rows: Vec<_> = (outbox.as_array().into_iter().flatten())
        .filter(|r| r["kind"] == "confirmation")
        .collect();
    assert_eq!(rows.len(), 1, "{outbox}");
    assert_eq!(rows[0]["channel"], "email");
    assert_eq!(rows[0]["phone"], "ana.diaz@example.com");
    assert_eq!(rows[0]["status"], "sent", "{outbox}");
    let id = rows[0]["provider_id"].as_str().unwrap_or_default();
    assert!(id.starts_with('<') && data.contains(id), "{id} in {data}");
}

#[tokio::test]
async fn asking_for_a_person_alerts_the_staff_by_email() {
    let (url, mut mail) = smtp_stand_in().await;
    let sara = Sara::start_with(&[
        ("SARA_EMAIL__SMTP_URL", &url),
        ("SARA_EMAIL__FROM", "Sara <sara@harbor.example>"),
        ("SARA_EMAIL__STAFF", "front@harbor.example"),
    ])
    .await;
    let me = phone(51);
    let reply = sara.text(&me, "can I talk to a real person please").await;
    assert!(reply.contains("team"), "{reply}");
    let (to, data) = tokio::time::timeout(Duration::from_secs(15), mail.recv())
        .await
        .expect("an alert before the deadline")
        .expect("stand-in alive");
    assert_eq!(to, ["front@harbor.example"]);
    assert!(data.contains(&me), "the alert names the customer: {data}");
    assert_eq!(
        sara.text(&me, "hello?").await,
        "",
        "Sara stays quiet after a hand-over"
    );
    let resp = sara
        .client
        .post(format!("{}/admin/conversations/{me}/hand-back", sara.base))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 200);
    let back = sara.text(&me, "hello").await;
    assert!(
        back.contains("Harbor Street Clinic"),
        "Sara answers again: {back}"
    );
}
