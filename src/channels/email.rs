//! Email: booking confirmations with a calendar invite (`.ics`) to customers who gave an
//! address, and hand-over alerts to the staff address; sent over SMTP with lettre in the
//! background and retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sara_actors::business::Business;
use sara_actors::dialogue::spoken_when;
use sara_actors::model::{Booking, Channel, Phone};
use sara_actors::outbound::{
    ChannelSender, Content, Invite, InviteMethod, OutboundKind, OutboundMessage, Recipient,
    SendError, Sent,
};
use sara_actors::ports::{BookingChange, BoxFuture, Clock, Notifier, SystemClock};

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
    /// The time a message is composed at (its Date and DTSTAMP): the process's one clock.
    clock: Arc<dyn Clock>,
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
            clock: Arc::new(SystemClock),
        })
    }

    /// Composes on `clock` instead of the system's (the app's one clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> EmailNotifier {
        self.clock = clock;
        self
    }

    /// The message for one change, or `None` when the booking has no usable address. The
    /// invite's SEQUENCE is the booking's change count ([`Booking::sequence`], counted with the
    /// change: 0 when made, one more with every move or cancel).
    pub fn message(
        &self,
        booking: &Booking,
        change: BookingChange,
        now: DateTime<Utc>,
    ) -> Option<Message> {
        let address = booking.email.clone()?;
        address.parse::<Mailbox>().ok()?;
        let sequence = booking.sequence;
        let outbound = OutboundMessage {
            key: format!("{}:{}:{sequence}", booking.id, change_name(change)),
            channel: Channel::Email,
            to: Recipient::Email(address),
            kind: OutboundKind::Confirmation,
            content: self.confirmation(booking, change, sequence),
        };
        self.compose(&outbound, now).ok()
    }

    /// The confirmation of one change of a booking, with its invite.
    pub fn confirmation(&self, booking: &Booking, change: BookingChange, sequence: u32) -> Content {
        let when = spoken_when(self.business.timezone, booking.start);
        let service = booking.service.to_lowercase();
        let name = &self.business.name;
        let (subject, text) = match change {
            BookingChange::Booked => (
                format!("Your {service} on {when}"),
                format!(
                    "You're booked for a {service} at {name} on {when}. Reply to our messages if you need to change it."
                ),
            ),
            BookingChange::Moved => (
                format!("Moved: your {service} is now on {when}"),
                format!("Your {service} at {name} is now on {when}."),
            ),
            BookingChange::Cancelled => (
                format!("Cancelled: your {service} on {when}"),
                format!("Your {service} at {name} on {when} is cancelled."),
            ),
        };
        let method = if change == BookingChange::Cancelled {
            InviteMethod::Cancel
        } else {
            InviteMethod::Request
        };
        Content::Email {
            subject,
            text,
            invite: Some(Invite {
                booking: booking.clone(),
                method,
                sequence,
            }),
        }
    }

    /// The email for one outbound message: its stable `Message-ID` (from the message's key,
    /// so every attempt is the same message to the receiving side), the text, and an invite
    /// as iMIP expects it (RFC 6047: a `text/calendar; method=…` alternative, and the same as
    /// an `invite.ics` attachment).
    pub fn compose(
        &self,
        message: &OutboundMessage,
        now: DateTime<Utc>,
    ) -> Result<Message, SendError> {
        let Recipient::Email(address) = &message.to else {
            return Err(SendError::permanent("an email needs an address"));
        };
        let to: Mailbox = address
            .parse()
            .map_err(|_| SendError::permanent("not an email address"))?;
        let Content::Email {
            subject,
            text,
            invite,
        } = &message.content
        else {
            return Err(SendError::permanent("only email content goes by email"));
        };
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(subject.clone())
            .message_id(Some(message_id(&message.key, &self.from)))
            .date(std::time::SystemTime::from(now));
        let built = match invite {
            None => builder.singlepart(SinglePart::plain(text.clone())),
            Some(invite) => {
                let ics = invite_ics(&self.business, &self.from, &to, invite, now);
                let method = match invite.method {
                    InviteMethod::Request => "REQUEST",
                    InviteMethod::Cancel => "CANCEL",
                };
                let calendar =
                    ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                        .map_err(|e| SendError::permanent(format!("content type: {e}")))?;
                let attachment = ContentType::parse("application/ics; name=\"invite.ics\"")
                    .map_err(|e| SendError::permanent(format!("content type: {e}")))?;
                builder.multipart(
                    MultiPart::mixed()
                        .multipart(
                            MultiPart::alternative()
                                .singlepart(SinglePart::plain(text.clone()))
                                .singlepart(
                                    SinglePart::builder().header(calendar).body(ics.clone()),
                                ),
                        )
                        .singlepart(Attachment::new("invite.ics".into()).body(ics, attachment)),
                )
            }
        };
        built.map_err(|e| SendError::permanent(format!("email: {e}")))
    }
}

/// The `Message-ID` of an outbound message: a name-based UUID of its key at the sender's
/// domain, the same for every attempt (RFC 5322 §3.6.4).
pub fn message_id(key: &str, from: &Mailbox) -> String {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes());
    let domain = from.email.domain();
    let domain = if domain.is_empty() {
        "sara.invalid"
    } else {
        domain
    };
    format!("<{id}@{domain}>")
}

fn change_name(change: BookingChange) -> &'static str {
    match change {
        BookingChange::Booked => "booked",
        BookingChange::Moved => "moved",
        BookingChange::Cancelled => "cancelled",
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

impl ChannelSender for EmailNotifier {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    /// One SMTP attempt. The provider id is the Message-ID: a retry after a lost answer sends
    /// the same Message-ID again, which receiving systems and mail clients treat as one message.
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(async move {
            let email = self.compose(message, self.clock.now())?;
            match self.mailer.send(email).await {
                Ok(_) => Ok(Sent {
                    provider_id: message_id(&message.key, &self.from),
                }),
                Err(error) if error.is_permanent() => Err(SendError::permanent(format!(
                    "smtp: {}",
                    without_addresses(&error.to_string())
                ))),
                Err(error) => Err(SendError::retryable(format!(
                    "smtp: {}",
                    without_addresses(&error.to_string())
                ))),
            }
        })
    }
}

impl Notifier for EmailNotifier {
    fn booking_changed(
        &self,
        booking: &Booking,
        change: BookingChange,
        key: String,
        at: DateTime<Utc>,
    ) -> Option<OutboundMessage> {
        let address = booking.email.clone()?;
        address.parse::<Mailbox>().ok()?;
        let _ = at;
        Some(OutboundMessage {
            key,
            channel: Channel::Email,
            to: Recipient::Email(address),
            kind: OutboundKind::Confirmation,
            content: self.confirmation(booking, change, booking.sequence),
        })
    }

    fn handover_requested(
        &self,
        phone: &Phone,
        channel: Channel,
        key: String,
    ) -> Option<OutboundMessage> {
        let staff = self.staff.clone()?;
        Some(OutboundMessage {
            key,
            channel: Channel::Email,
            to: Recipient::Email(staff.to_string()),
            kind: OutboundKind::StaffAlert,
            content: Content::Email {
                subject: format!("A customer asked for a person ({})", channel.as_str()),
                text: self.handover_text(phone, channel),
                invite: None,
            },
        })
    }

    fn alerts_staff(&self) -> bool {
        self.staff.is_some()
    }
}

/// An RFC 5545 calendar for the booking, as iTIP (RFC 5546) sends it: `METHOD:REQUEST` or
/// `CANCEL`, the business as ORGANIZER and the customer as ATTENDEE, the UID the booking id
/// (so calendars update one event), the SEQUENCE the caller's change count, DTSTART/DTEND in
/// the business time zone with its VTIMEZONE, every line folded at 75 octets.
pub fn invite_ics(
    business: &Business,
    organizer: &Mailbox,
    attendee: &Mailbox,
    invite: &Invite,
    now: DateTime<Utc>,
) -> String {
    let booking = &invite.booking;
    let tz = business.timezone;
    let tzid = tz.name();
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y%m%dT%H%M%S").to_string();
    let (method, status) = match invite.method {
        InviteMethod::Request => ("REQUEST", "CONFIRMED"),
        InviteMethod::Cancel => ("CANCEL", "CANCELLED"),
    };
    let attendee_name = booking
        .name
        .clone()
        .or_else(|| attendee.name.clone())
        .unwrap_or_default();
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "PRODID:-//Sara//Receptionist//EN".into(),
        "VERSION:2.0".into(),
        "CALSCALE:GREGORIAN".into(),
        format!("METHOD:{method}"),
    ];
    lines.extend(vtimezone(tz, booking.start, booking.end));
    lines.extend([
        "BEGIN:VEVENT".to_string(),
        format!("UID:{}@sara", booking.id),
        format!("SEQUENCE:{}", invite.sequence),
        format!("DTSTAMP:{}", now.format("%Y%m%dT%H%M%SZ")),
        format!("DTSTART;TZID={tzid}:{}", local(booking.start)),
        format!("DTEND;TZID={tzid}:{}", local(booking.end)),
        format!(
            "SUMMARY:{}",
            ics_text(&format!("{} at {}", booking.service, business.name))
        ),
        format!(
            "ORGANIZER;CN={}:mailto:{}",
            param_value(&business.name),
            organizer.email
        ),
        format!(
            "ATTENDEE;CN={};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:mailto:{}",
            param_value(&attendee_name),
            attendee.email
        ),
        format!("STATUS:{status}"),
        "TRANSP:OPAQUE".into(),
        "END:VEVENT".into(),
        "END:VCALENDAR".into(),
    ]);
    lines.iter().map(|l| fold(l) + "\r\n").collect()
}

/// The VTIMEZONE of `tz` for an event: every offset change from a year before it to a year
/// after (so a calendar can also show a move), each as a STANDARD or DAYLIGHT observance
/// with its onset in local time; a zone without changes then gets one observance.
fn vtimezone(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<String> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc());
    let seconds = |o: &<Tz as TimeZone>::Offset| o.fix().local_minus_utc();
    let from = start - chrono::Duration::days(366);
    let until = end + chrono::Duration::days(366);
    let mut changes: Vec<DateTime<Utc>> = Vec::new();
    let mut day = from;
    while day < until {
        let next = day + chrono::Duration::days(1);
        if seconds(&offset(day)) != seconds(&offset(next)) {
            // The first second with the new offset.
            let (mut lo, mut hi) = (day, next);
            while hi - lo > chrono::Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if seconds(&offset(mid)) == seconds(&offset(day)) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            changes.push(hi);
        }
        day = next;
    }
    let hhmm = |secs: i32| {
        let sign = if secs < 0 { '-' } else { '+' };
        let secs = secs.abs();
        if secs % 60 == 0 {
            format!("{sign}{:02}{:02}", secs / 3600, secs % 3600 / 60)
        } else {
            format!(
                "{sign}{:02}{:02}{:02}",
                secs / 3600,
                secs % 3600 / 60,
                secs % 60
            )
        }
    };
    let observance = |onset_local: String, before: i32, after: &<Tz as TimeZone>::Offset| {
        let kind = if after.dst_offset().is_zero() {
            "STANDARD"
        } else {
            "DAYLIGHT"
        };
        let mut lines = vec![
            format!("BEGIN:{kind}"),
            format!("DTSTART:{onset_local}"),
            format!("TZOFFSETFROM:{}", hhmm(before)),
            format!("TZOFFSETTO:{}", hhmm(seconds(after))),
        ];
        if let Some(name) = after.abbreviation().filter(|n| !n.is_empty()) {
            lines.push(format!("TZNAME:{}", ics_text(name)));
        }
        lines.push(format!("END:{kind}"));
        lines
    };
    let mut lines = vec!["BEGIN:VTIMEZONE".to_string(), format!("TZID:{}", tz.name())];
    if changes.is_empty() {
        let now = offset(start);
        lines.extend(observance("19700101T000000".into(), seconds(&now), &now));
    }
    for change in changes {
        let before = seconds(&offset(change - chrono::Duration::seconds(1)));
        let after = offset(change);
        let onset = (change.naive_utc() + chrono::Duration::seconds(i64::from(before)))
            .format("%Y%m%dT%H%M%S")
            .to_string();
        lines.extend(observance(onset, before, &after));
    }
    lines.push("END:VTIMEZONE".into());
    lines
}

/// Folds a content line at 75 octets (RFC 5545 §3.1): CRLF and a space before each further
/// piece, never inside a UTF-8 character.
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 64 * 3);
    let mut room = 75;
    let mut used = 0;
    for c in line.chars() {
        if used + c.len_utf8() > room {
            out.push_str("\r\n ");
            // The leading space is the first octet of the continuation line.
            room = 74;
            used = 0;
        }
        out.push(c);
        used += c.len_utf8();
    }
    out
}

/// Escapes a TEXT value (RFC 5545 §3.3.11).
fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
        .replace('\r', "")
}

/// A parameter value (RFC 5545 §3.2): quoted, without the double quotes and control
/// characters a quoted value cannot hold.
fn param_value(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{clean}\"")
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
            sequence: 0,
            staff: None,
            event_id: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn invite(booking: Booking, method: InviteMethod, sequence: u32) -> Invite {
        Invite {
            booking,
            method,
            sequence,
        }
    }

    fn mailbox(s: &str) -> Mailbox {
        s.parse().expect("mailbox")
    }

    fn ics(business: &Business, invite: &Invite) -> String {
        invite_ics(
            business,
            &mailbox("Desk <desk@harbor.example>"),
            &mailbox("ana@example.com"),
            invite,
            at("2026-11-25T12:00:00Z"),
        )
    }

    #[test]
    fn the_invite_names_the_event_by_booking_and_escapes_text() {
        let mut business = Business::example();
        business.name = "Smile; Co, Ltd".into();
        let text = ics(&business, &invite(booking(), InviteMethod::Request, 0));
        assert!(text.contains("UID:00000000-0000-0000-0000-000000000000@sara\r\n"));
        // 15:30Z on December 1 is 10:30 in New York (EST).
        assert!(text.contains(
            "DTSTART;TZID=America/New_York:20261201T103000\r\nDTEND;TZID=America/New_York:20261201T111500\r\n"
        ));
        assert!(text.contains("SUMMARY:Cleaning at Smile\\; Co\\, Ltd\r\n"));
        assert!(text.contains("ORGANIZER;CN=\"Smile; Co, Ltd\":mailto:desk@harbor.example\r\n"));
        assert!(text.contains("ATTENDEE;CN=\"Ana Diaz\";ROLE=REQ-PARTICIPANT;"));
        assert!(text.contains("SEQUENCE:0\r\n") && text.contains("METHOD:REQUEST\r\n"));
        let cancel = ics(&business, &invite(booking(), InviteMethod::Cancel, 3));
        assert!(cancel.contains("METHOD:CANCEL") && cancel.contains("STATUS:CANCELLED"));
        assert!(cancel.contains("SEQUENCE:3\r\n"));
    }

    #[test]
    fn the_time_zone_holds_the_offset_changes_around_the_event() {
        let text = ics(
            &Business::example(),
            &invite(booking(), InviteMethod::Request, 1),
        );
        // A year either side of December 1, 2026: March and November of 2026 and 2027.
        for onset in [
            "BEGIN:DAYLIGHT\r\nDTSTART:20260308T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\n",
            "BEGIN:STANDARD\r\nDTSTART:20261101T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\n",
            "BEGIN:DAYLIGHT\r\nDTSTART:20270314T020000\r\n",
            "BEGIN:STANDARD\r\nDTSTART:20271107T020000\r\n",
        ] {
            assert!(text.contains(onset), "{onset} in {text}");
        }
        let mut tokyo = Business::example();
        tokyo.timezone = chrono_tz::Asia::Tokyo;
        let text = ics(&tokyo, &invite(booking(), InviteMethod::Request, 1));
        assert!(
            text.contains("TZID:Asia/Tokyo\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0900\r\nTZOFFSETTO:+0900\r\n"),
            "{text}"
        );
        assert!(text.contains("DTSTART;TZID=Asia/Tokyo:20261202T003000"));
    }

    #[test]
    fn long_lines_are_folded_at_75_octets_without_splitting_a_character() {
        let mut business = Business::example();
        business.name = "Clínica Dental Sonrisa Brillante de la Calle del Puerto — Cirugía, Ortodoncia y Estética".into();
        let text = ics(&business, &invite(booking(), InviteMethod::Request, 0));
        for line in text.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
        }
        let unfolded = text.replace("\r\n ", "");
        assert!(unfolded.contains(&format!(
            "SUMMARY:Cleaning at {}",
            business.name.replace(',', "\\,")
        )));
        assert_eq!(fold("short"), "short");
        let exact = "x".repeat(75);
        assert_eq!(fold(&exact), exact);
        assert_eq!(fold(&"x".repeat(76)), format!("{}\r\n x", "x".repeat(75)));
        // 74 ASCII then a two-octet character: it moves whole to the next line.
        let folded = fold(&format!("{}é", "x".repeat(74)));
        assert_eq!(folded, format!("{}\r\n é", "x".repeat(74)));
    }

    #[tokio::test]
    async fn every_attempt_of_a_message_has_the_same_message_id() {
        let notifier = EmailNotifier::new(
            "smtp://127.0.0.1:2525",
            "Harbor Street Clinic <desk@harbor.example>",
            None,
            Arc::new(Business::example()),
        )
        .expect("valid settings");
        let outbound = OutboundMessage {
            key: "booking-1:moved:2".into(),
            channel: Channel::Email,
            to: Recipient::Email("Ana Diaz <ana@example.com>".into()),
            kind: OutboundKind::Confirmation,
            content: notifier.confirmation(&booking(), BookingChange::Moved, 2),
        };
        let raw = |now: &str| {
            let email = notifier.compose(&outbound, at(now)).expect("composed");
            String::from_utf8(email.formatted()).expect("utf-8")
        };
        let (first, retry) = (raw("2026-11-25T12:00:00Z"), raw("2026-11-25T12:05:00Z"));
        let id = message_id("booking-1:moved:2", &notifier.from);
        assert!(
            id.starts_with('<') && id.ends_with("@harbor.example>"),
            "{id}"
        );
        assert!(first.contains(&format!("Message-ID: {id}")), "{first}");
        assert!(retry.contains(&format!("Message-ID: {id}")), "{retry}");
        assert_ne!(id, message_id("booking-1:moved:3", &notifier.from));
        assert!(first.contains("method=REQUEST"), "{first}");
        let mut sms = outbound.clone();
        sms.to = Recipient::Phone(Phone::parse("+15550001111").expect("phone"));
        assert!(notifier.compose(&sms, Utc::now()).is_err());
    }

    /// Python's `email` package and the `icalendar` package read what Sara sends as mail
    /// clients and calendars do (scripts/conformance.py).
    #[tokio::test]
    async fn mail_clients_and_calendars_read_the_confirmation_as_sent() {
        let mut business = Business::example();
        business.name =
            "Harbor Street Clinic of Dentistry, Orthodontics & Oral Surgery — Dock Lane".into();
        let notifier = EmailNotifier::new(
            "smtp://127.0.0.1:2525",
            "Harbor Street Clinic <desk@harbor.example>",
            None,
            Arc::new(business.clone()),
        )
        .expect("valid settings");
        // A booking on the day DST ends, so the offsets matter.
        let start = at("2026-11-01T14:00:00Z");
        let mut b = booking();
        b.start = start;
        b.end = start + chrono::Duration::minutes(45);
        for (change, sequence, method, status) in [
            (BookingChange::Booked, 0, "REQUEST", "CONFIRMED"),
            (BookingChange::Moved, 1, "REQUEST", "CONFIRMED"),
            (BookingChange::Cancelled, 2, "CANCEL", "CANCELLED"),
        ] {
            let outbound = OutboundMessage {
                key: format!("{}:{sequence}", b.id),
                channel: Channel::Email,
                to: Recipient::Email("Ana Diaz <ana@example.com>".into()),
                kind: OutboundKind::Confirmation,
                content: notifier.confirmation(&b, change, sequence),
            };
            let email = notifier
                .compose(&outbound, at("2026-10-20T12:00:00Z"))
                .expect("composed");
            let Some(report) = crate::channels::conformance::run(&["email"], &email.formatted())
            else {
                return;
            };
            assert_eq!(report["defects"], serde_json::json!([]), "{report}");
            assert_eq!(
                report["message_id"].as_str(),
                Some(message_id(&outbound.key, &notifier.from).as_str())
            );
            let parts: Vec<&str> = report["parts"]
                .as_array()
                .expect("parts")
                .iter()
                .filter_map(|p| p["type"].as_str())
                .collect();
            assert_eq!(
                parts,
                [
                    "multipart/mixed",
                    "multipart/alternative",
                    "text/plain",
                    "text/calendar",
                    "application/ics"
                ],
                "{report}"
            );
            let calendar_part = report["parts"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["type"] == "text/calendar"))
                .expect("calendar part");
            assert_eq!(calendar_part["params"]["method"], method);
            assert!(
                report["longest_ics_line"].as_u64().expect("len") <= 75,
                "{report}"
            );
            assert_eq!(report["bare_lf"], false);
            let invites = report["invites"].as_array().expect("invites");
            assert_eq!(invites.len(), 2, "the alternative and the attachment");
            for invite in invites {
                assert_eq!(invite["method"], method);
                assert_eq!(invite["version"], "2.0");
                let tz = &invite["timezones"][0];
                assert_eq!(tz["tzid"], "America/New_York");
                assert_eq!(tz["zoneinfo_ok"], true);
                let event = &invite["events"][0];
                assert_eq!(event["uid"], format!("{}@sara", b.id));
                assert_eq!(event["sequence"], sequence);
                assert_eq!(event["status"], status);
                assert_eq!(event["dtstart_tzid"], "America/New_York");
                assert_eq!(event["dtend_tzid"], "America/New_York");
                assert_eq!(event["dtstart_utc"], "2026-11-01T14:00:00+00:00");
                assert_eq!(event["dtend_utc"], "2026-11-01T14:45:00+00:00");
                assert_eq!(event["dtstart_local"], "2026-11-01T09:00:00");
                assert_eq!(event["vtimezone_offsets_match"], true, "{event}");
                assert_eq!(event["organizer"], "mailto:desk@harbor.example");
                assert_eq!(event["organizer_cn"], business.name.as_str());
                assert_eq!(
                    event["attendees"],
                    serde_json::json!(["mailto:ana@example.com"])
                );
                assert_eq!(event["attendee_params"][0]["CN"], "Ana Diaz");
                assert_eq!(
                    event["summary"],
                    format!("Cleaning at {}", business.name).as_str()
                );
            }
        }
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
