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

/// A Sara binary that sends its email, from the clinic's desk address, to a local SMTP
/// stand-in; the stand-in's received messages.
async fn sara_sending_email() -> (Sara, mpsc::UnboundedReceiver<(Vec<String>, String)>) {
    let (url, mail) = smtp_stand_in().await;
    let sara = Sara::start_with(&[
        ("SARA_EMAIL__SMTP_URL", &url),
        (
            "SARA_EMAIL__FROM",
            "Harbor Street Clinic <desk@harbor.example>",
        ),
    ])
    .await;
    (sara, mail)
}

#[tokio::test]
async fn a_booking_with_an_email_address_gets_a_confirmation_with_an_invite() {
    let (sara, mut mail) = sara_sending_email().await;
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

/// Every change of a booking sends an invite whose SEQUENCE is one more than the last (RFC
/// 5545: a calendar applies an update only when its SEQUENCE is higher): 0 booked, 1 moved,
/// 2 cancelled, whatever second they happen in.
#[tokio::test]
async fn the_invites_sequence_grows_by_one_with_every_change_of_the_booking() {
    let (sara, mut mail) = sara_sending_email().await;
    let me = phone(51);
    let (_, tue) = upcoming(Weekday::Tue);
    let (_, thu) = upcoming(Weekday::Thu);
    let mut next_invite = async || {
        let (_, data) = tokio::time::timeout(Duration::from_secs(15), mail.recv())
            .await
            .expect("an email before the deadline")
            .expect("stand-in alive");
        data.replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=")
    };
    sara.text(
        &me,
        &format!("Book a cleaning on {tue} at 10am please. I'm Ana Diaz, ana.diaz@example.com"),
    )
    .await;
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
    let booked = next_invite().await;
    assert!(
        booked.contains("SEQUENCE:0\r\n") || booked.contains("SEQUENCE:0\n"),
        "{booked}"
    );

    let ask = sara
        .text(
            &me,
            &format!("I need to reschedule my cleaning to {thu} at 11am"),
        )
        .await;
    assert!(ask.contains("Move your cleaning"), "{ask}");
    let moved = sara.text(&me, "yes").await;
    assert!(moved.starts_with("Moved"), "{moved}");
    let moved = next_invite().await;
    assert!(
        moved.contains("SEQUENCE:1\n") || moved.contains("SEQUENCE:1\r\n"),
        "{moved}"
    );
    assert!(moved.contains("METHOD:REQUEST"), "{moved}");

    let ask = sara.text(&me, "please cancel my appointment").await;
    assert!(ask.starts_with("Cancel your cleaning"), "{ask}");
    let cancelled = sara.text(&me, "yes").await;
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    let cancelled = next_invite().await;
    assert!(
        cancelled.contains("SEQUENCE:2\n") || cancelled.contains("SEQUENCE:2\r\n"),
        "{cancelled}"
    );
    assert!(cancelled.contains("METHOD:CANCEL"), "{cancelled}");
}
