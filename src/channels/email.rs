//! Email: booking confirmations with a calendar invite (`.ics`) to customers who gave an
//! address, and hand-over alerts to the staff address; sent over SMTP with lettre in the
//! background and retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sara_actors::business::Business;
use sara_actors::dialogue::spoken_when;
use sara_actors::model::{Booking, Channel, Phone};
use sara_actors::ports::{BookingChange, Notifier};

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("email.smtp_url: {0}")]
    Url(String),
    #[error("not an email address: {0}")]
    Address(String),
}

/// Sends booking confirmations and hand-over alerts by email.
#[derive(Clone)]
pub struct EmailNotifier {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where hand-over alerts go; `None` = nobody is emailed.
    staff: Option<Mailbox>,
    business: Arc<Business>,
}

impl EmailNotifier {
    /// `smtp_url` as lettre reads it: `smtp://host:25` (plain), `smtp://host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`.
    pub fn new(
        smtp_url: &str,
        from: &str,
        staff: Option<&str>,
        business: Arc<Business>,
    ) -> Result<Self, EmailError> {
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| EmailError::Url(e.to_string()))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let address = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|_| EmailError::Address(s.to_string()))
        };
        Ok(EmailNotifier {
            mailer,
            from: address(from)?,
            staff: staff.map(address).transpose()?,
            business,
        })
    }

    /// The message for one change, or `None` when the booking has no usable address.
    pub fn message(
        &self,
        booking: &Booking,
        change: BookingChange,
        now: DateTime<Utc>,
    ) -> Option<Message> {
        let to: Mailbox = booking.email.as_deref()?.parse().ok()?;
        let when = spoken_when(self.business.timezone, booking.start);
        let service = booking.service.to_lowercase();
        let (subject, text) = match change {
            BookingChange::Booked => (
                format!("Your {service} on {when}"),
                format!(
                    "You're booked for a {service} at {} on {when}. Reply to our messages if you need to change it.",
                    self.business.name
                ),
            ),
            BookingChange::Moved => (
                format!("Moved: your {service} is now on {when}"),
                format!("Your {service} at {} is now on {when}.", self.business.name),
            ),
            BookingChange::Cancelled => (
                format!("Cancelled: your {service} on {when}"),
                format!(
                    "Your {service} at {} on {when} is cancelled.",
                    self.business.name
                ),
            ),
        };
        let invite = invite(&self.business, booking, change, now);
        let method = if change == BookingChange::Cancelled {
            "CANCEL"
        } else {
            "REQUEST"
        };
        let calendar =
            ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                .expect("a valid constant content type");
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(text))
                    .singlepart(Attachment::new("invite.ics".into()).body(invite, calendar)),
            )
            .ok()
    }
}

impl EmailNotifier {
    /// The alert telling staff that a customer wants a person.
    pub fn handover_message(&self, phone: &Phone, channel: Channel) -> Option<Message> {
        let staff = self.staff.clone()?;
        Message::builder()
            .from(self.from.clone())
            .to(staff)
            .subject(format!(
                "A customer asked for a person ({})",
                channel.as_str()
            ))
            .body(self.handover_text(phone, channel))
            .ok()
    }

    pub fn handover_text(&self, phone: &Phone, channel: Channel) -> String {
        format!(
            "A customer at {phone} asked to talk to someone ({channel}).\n\n\
             Sara told them the team will reply. On text channels she stays quiet on that \
             conversation until you hand it back (POST /admin/conversations/{phone}/hand-back) \
             or {hours} hours pass.",
            phone = phone.as_str(),
            channel = channel.as_str(),
            hours = self.business.handover_minutes / 60,
        )
    }

    fn send_in_background(&self, message: Message) {
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            for attempt in 1..=5 {
                match mailer.send(message.clone()).await {
                    Ok(_) => {
                        metrics::counter!("sara_outbound_sent_total", "channel" => "email")
                            .increment(1);
                        return;
                    }
                    Err(error) if attempt < 5 && !error.is_permanent() => {
                        let error = without_addresses(&error.to_string());
                        tracing::warn!(%error, attempt, "email failed; will retry");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(error) => {
                        let error = without_addresses(&error.to_string());
                        tracing::error!(%error, attempt, "email given up");
                        metrics::counter!("sara_outbound_failed_total", "channel" => "email")
                            .increment(1);
                        return;
                    }
                }
            }
        });
    }
}

/// `text` with every email address replaced: an SMTP server's refusal quotes the
/// recipient ("550 5.1.1 <ana@example.com>: Recipient address rejected"), and a customer's
/// address does not belong in the log.
pub fn without_addresses(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || "<>\"'(),;[]".contains(c))
        .map(|piece| {
            let word =
                piece.trim_end_matches(|c: char| c.is_whitespace() || "<>\"'(),;[]".contains(c));
            if word.contains('@') {
                piece.replacen(word, "[address]", 1)
            } else {
                piece.to_string()
            }
        })
        .collect()
}

impl Notifier for EmailNotifier {
    fn booking_changed(&self, booking: &Booking, change: BookingChange) {
        if let Some(message) = self.message(booking, change, Utc::now()) {
            self.send_in_background(message);
        }
    }

    fn handover_requested(&self, phone: &Phone, channel: Channel) {
        if let Some(message) = self.handover_message(phone, channel) {
            self.send_in_background(message);
        }
    }

    fn alerts_staff(&self) -> bool {
        self.staff.is_some()
    }
}

/// An RFC 5545 invite for the booking. The UID is the booking id, so calendars update the
/// same event when it moves or is cancelled; SEQUENCE grows with each change.
pub fn invite(
    business: &Business,
    booking: &Booking,
    change: BookingChange,
    now: DateTime<Utc>,
) -> String {
    let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let (method, status, sequence) = match change {
        BookingChange::Booked => ("REQUEST", "CONFIRMED", 0),
        BookingChange::Moved => ("REQUEST", "CONFIRMED", now.timestamp()),
        BookingChange::Cancelled => ("CANCEL", "CANCELLED", now.timestamp()),
    };
    let lines = [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//Sara//Receptionist//EN".into(),
        format!("METHOD:{method}"),
        "BEGIN:VEVENT".into(),
        format!("UID:{}@sara", booking.id),
        format!("SEQUENCE:{sequence}"),
        format!("DTSTAMP:{}", stamp(now)),
        format!("DTSTART:{}", stamp(booking.start)),
        format!("DTEND:{}", stamp(booking.end)),
        format!(
            "SUMMARY:{}",
            ics_text(&format!("{} at {}", booking.service, business.name))
        ),
        format!("STATUS:{status}"),
        "END:VEVENT".into(),
        "END:VCALENDAR".into(),
    ];
    lines.join("\r\n") + "\r\n"
}

/// Escapes a TEXT value (RFC 5545 §3.3.11).
fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
        .replace('\r', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_refusals_lose_the_addresses_they_quote() {
        assert_eq!(
            without_addresses(
                "permanent error (550): 5.1.1 <ana.ruiz@example.com>: Recipient address rejected"
            ),
            "permanent error (550): 5.1.1 <[address]>: Recipient address rejected"
        );
        assert_eq!(
            without_addresses("to ana@x.org, bob@y.org"),
            "to [address], [address]"
        );
        assert_eq!(
            without_addresses("connection refused"),
            "connection refused"
        );
    }
    use sara_actors::model::BookingStatus;

    fn booking() -> Booking {
        let start = DateTime::parse_from_rfc3339("2026-12-01T15:30:00Z")
            .expect("time")
            .to_utc();
        Booking {
            id: uuid::Uuid::nil(),
            phone: Phone::parse("+15550001111").expect("phone"),
            name: Some("Ana Diaz".into()),
            email: Some("ana@example.com".into()),
            service: "Cleaning".into(),
            start,
            end: start + chrono::Duration::minutes(45),
            status: BookingStatus::Confirmed,
        }
    }

    #[test]
    fn the_invite_names_the_event_by_booking_and_escapes_text() {
        let mut business = Business::example();
        business.name = "Smile; Co, Ltd".into();
        let now = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .expect("time")
            .to_utc();
        let ics = invite(&business, &booking(), BookingChange::Booked, now);
        assert!(ics.contains("UID:00000000-0000-0000-0000-000000000000@sara\r\n"));
        assert!(ics.contains("DTSTART:20261201T153000Z\r\nDTEND:20261201T161500Z\r\n"));
        assert!(ics.contains("SUMMARY:Cleaning at Smile\\; Co\\, Ltd\r\n"));
        let cancel = invite(&business, &booking(), BookingChange::Cancelled, now);
        assert!(cancel.contains("METHOD:CANCEL") && cancel.contains("STATUS:CANCELLED"));
    }

    /// The SMTP pool lives on the runtime, so this needs one.
    #[tokio::test]
    async fn a_booking_without_an_address_gets_no_email() {
        let notifier = EmailNotifier::new(
            "smtp://127.0.0.1:2525",
            "Desk <desk@example.com>",
            Some("Front desk <front@example.com>"),
            Arc::new(Business::example()),
        )
        .expect("valid settings");
        let mut b = booking();
        assert!(
            notifier
                .message(&b, BookingChange::Booked, Utc::now())
                .is_some()
        );
        b.email = Some("not an address".into());
        assert!(
            notifier
                .message(&b, BookingChange::Booked, Utc::now())
                .is_none()
        );
        b.email = None;
        assert!(
            notifier
                .message(&b, BookingChange::Booked, Utc::now())
                .is_none()
        );
    }

    #[tokio::test]
    async fn staff_are_told_who_asked_for_a_person_and_how_to_hand_back() {
        let business = Arc::new(Business::example());
        let with_staff = EmailNotifier::new(
            "smtp://127.0.0.1:2525",
            "Desk <desk@example.com>",
            Some("front@example.com"),
            business.clone(),
        )
        .expect("valid settings");
        let phone = sara_actors::model::Phone::parse("+15550001111").expect("phone");
        let message = with_staff
            .handover_message(&phone, Channel::Sms)
            .expect("an alert");
        let raw = String::from_utf8(message.formatted()).expect("utf-8");
        assert!(raw.contains("To: front@example.com"), "{raw}");
        let text = with_staff.handover_text(&phone, Channel::Sms);
        assert!(
            text.contains("/admin/conversations/+15550001111/hand-back"),
            "{text}"
        );
        let without =
            EmailNotifier::new("smtp://127.0.0.1:2525", "desk@example.com", None, business)
                .expect("valid settings");
        assert!(without.handover_message(&phone, Channel::Sms).is_none());
    }
}
