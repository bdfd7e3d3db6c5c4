//! Google Calendar behind the `Calendar` port: google-calendar3 over hyper + rustls (ring),
//! authenticated as a service account (JWT-bearer grant at the key's `token_uri`).
//!
//! - Each booking is one event whose id is the booking id's hex (valid base32hex), so a
//!   retried insert answers 409 Conflict and counts as done. Its private extended properties
//!   carry the booking (`sara_booking_id`, `sara_phone`, `sara_service`, `sara_name`,
//!   `sara_email`); `start`/`end` carry the business time zone.
//! - `upcoming` lists the calendar's single events in start order, page by page, and maps them
//!   back. Events staff made by hand have no booking id: they come back as confirmed bookings
//!   (id derived from the Google event id, service = their summary, a placeholder phone no
//!   customer has) so that they block their time like any booking.
//! - `book` and `reschedule` ask freeBusy first; a busy answer is checked against the events
//!   in the window, because freeBusy cannot say whose time it is and the booking's own event
//!   (a retry, or the booking being moved) must not count against itself.
//! - `cancel` deletes the event (Google keeps it as `cancelled`): 410 Gone means it was
//!   already deleted and is fine; 404 means it never existed (`NotFound`, as the local
//!   calendar answers for an unknown id).
//! - Network errors, timeouts, 5xx and any other refusal are `Unavailable`.
//!
//! Race: freeBusy-then-insert is check-then-act. The `CalendarActor` serialises bookings
//! within one instance, but two instances (or a person in the Google UI) can both see a slot
//! free and both write it; Google has no conditional insert on time. Where that matters, run
//! one instance per Google calendar or use the local calendar (PostgreSQL refuses overlaps).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use google_calendar3::CalendarHub;
use google_calendar3::api::{
    Event, EventDateTime, EventExtendedProperties, FreeBusyRequest, FreeBusyRequestItem,
};
use google_calendar3::hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use google_calendar3::hyper_util::client::legacy::Client;
use google_calendar3::hyper_util::client::legacy::connect::HttpConnector;
use google_calendar3::hyper_util::rt::TokioExecutor;
use google_calendar3::yup_oauth2;
use sara_actors::model::{Booking, BookingId, BookingStatus, Phone};
use sara_actors::ports::{BoxFuture, Calendar, CalendarError};
use uuid::Uuid;

/// The private extended property that names the booking an event is.
pub const BOOKING_ID: &str = "sara_booking_id";
const PHONE: &str = "sara_phone";
const SERVICE: &str = "sara_service";
const NAME: &str = "sara_name";
const EMAIL: &str = "sara_email";

/// Namespace of the booking ids given to events staff made by hand (UUID v5 of the event id),
/// so the same event gets the same id on every load.
const HAND_MADE: Uuid = Uuid::from_u128(0x6a0f_3c2e_9d41_4b8e_a5f7_21c4_d0e9_b313);

/// The phone of hand-made events: a well-formed number in an unassigned country code (+999),
/// so it never matches a customer and the event shows up in nobody's "my bookings".
const NO_CUSTOMER: &str = "+999000000000";

/// Pages of 250 events `upcoming` reads at most; far beyond any clinic's horizon.
const MAX_PAGES: usize = 40;

type Connector = HttpsConnector<HttpConnector>;

#[derive(Debug, thiserror::Error)]
pub enum GoogleSetupError {
    #[error("google calendar credentials {path}: {source}")]
    Credentials {
        path: String,
        source: std::io::Error,
    },
    #[error("google calendar TLS setup: {0}")]
    Tls(std::io::Error),
}

/// What `GoogleCalendar::connect` needs (from `[calendar]` and the business).
#[derive(Clone, Debug)]
pub struct GoogleSettings {
    /// The Calendar API base including `calendar/v3/`.
    pub base_url: String,
    pub calendar_id: String,
    /// A service-account JSON key file; tokens come from its `token_uri`.
    pub credentials: PathBuf,
    /// Written into every event's `start.timeZone` / `end.timeZone`; all-day events are read
    /// in it.
    pub timezone: Tz,
    /// How far past `from` `upcoming` looks (the booking horizon and a little).
    pub lookahead: chrono::Duration,
    /// Each API call, token fetch included, gives up after this long.
    pub deadline: Duration,
}

/// The `Calendar` port over one Google calendar.
pub struct GoogleCalendar {
    hub: CalendarHub<Connector>,
    calendar_id: String,
    timezone: Tz,
    lookahead: chrono::Duration,
    deadline: Duration,
}

impl std::fmt::Debug for GoogleCalendar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleCalendar")
            .field("calendar_id", &self.calendar_id)
            .field("timezone", &self.timezone)
            .finish_non_exhaustive()
    }
}

/// A failed API call: the HTTP status when there was an answer, and what to log.
struct Failure {
    status: Option<u16>,
    detail: String,
}

impl Failure {
    fn unavailable(self) -> CalendarError {
        CalendarError::Unavailable(self.detail)
    }
}

/// The Google event id of a booking: its UUID as 32 lowercase hex digits, which Google
/// accepts (base32hex, 5–1024 characters).
pub fn event_id(booking: BookingId) -> String {
    booking.simple().to_string()
}

/// The booking id `upcoming` gives an event staff made by hand.
pub fn hand_made_id(google_event_id: &str) -> BookingId {
    Uuid::new_v5(&HAND_MADE, google_event_id.as_bytes())
}

impl GoogleCalendar {
    /// Reads the service-account key and builds the client. No request is made yet: the first
    /// call fetches a token.
    pub async fn connect(settings: GoogleSettings) -> Result<GoogleCalendar, GoogleSetupError> {
        let credentials_error = |source| GoogleSetupError::Credentials {
            path: settings.credentials.display().to_string(),
            source,
        };
        let key = yup_oauth2::read_service_account_key(&settings.credentials)
            .await
            .map_err(credentials_error)?;
        // Explicitly ring, whatever provider the process installed (aws-lc-rs stays out).
        let connector = HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(GoogleSetupError::Tls)?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let token_client =
            Client::builder(TokioExecutor::new()).build::<_, String>(connector.clone());
        let auth = yup_oauth2::ServiceAccountAuthenticator::with_client(
            key,
            yup_oauth2::CustomHyperClientBuilder::from(token_client),
        )
        .build()
        .await
        .map_err(credentials_error)?;
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let mut hub = CalendarHub::new(client, auth);
        hub.base_url(settings.base_url.clone());
        if let Some(root) = settings.base_url.strip_suffix("calendar/v3/") {
            hub.root_url(root.to_string());
        }
        Ok(GoogleCalendar {
            hub,
            calendar_id: settings.calendar_id,
            timezone: settings.timezone,
            lookahead: settings.lookahead,
            deadline: settings.deadline,
        })
    }

    /// Runs one API call under the deadline and sorts out what went wrong.
    async fn send<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = google_calendar3::Result<T>>,
    ) -> Result<T, Failure> {
        let answer = tokio::time::timeout(self.deadline, call)
            .await
            .map_err(|_| Failure {
                status: None,
                detail: format!("{what}: no answer within {:?}", self.deadline),
            })?;
        answer.map_err(|error| {
            use google_calendar3::Error as E;
            let (status, detail) = match &error {
                // A JSON error body: Google's `{"error": {"code": 409, "message": ...}}`.
                E::BadRequest(body) => {
                    let status = body
                        .pointer("/error/code")
                        .and_then(|c| c.as_u64())
                        .and_then(|c| u16::try_from(c).ok());
                    let message = body
                        .pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("no message");
                    (status, format!("HTTP {} {message}", status.unwrap_or(0)))
                }
                E::Failure(response) => {
                    let status = response.status();
                    (Some(status.as_u16()), format!("HTTP {status}"))
                }
                other => (None, other.to_string()),
            };
            Failure {
                status,
                detail: format!("{what}: {detail}"),
            }
        })
    }

    fn when(&self, at: DateTime<Utc>) -> EventDateTime {
        EventDateTime {
            date: None,
            date_time: Some(at),
            time_zone: Some(self.timezone.name().to_string()),
        }
    }

    /// An instant of an event: its `dateTime`, or midnight of its `date` (all-day events) in
    /// the business time zone.
    fn instant(&self, at: &EventDateTime) -> Option<DateTime<Utc>> {
        if let Some(at) = at.date_time {
            return Some(at);
        }
        let day = at.date?;
        self.timezone
            .from_local_datetime(&day.and_time(NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    fn event_of(&self, booking: &Booking) -> Event {
        let mut private = HashMap::from([
            (BOOKING_ID.to_string(), booking.id.to_string()),
            (PHONE.to_string(), booking.phone.as_str().to_string()),
            (SERVICE.to_string(), booking.service.clone()),
        ]);
        if let Some(name) = &booking.name {
            private.insert(NAME.to_string(), name.clone());
        }
        if let Some(email) = &booking.email {
            private.insert(EMAIL.to_string(), email.clone());
        }
        // What staff see in their calendar.
        let summary = match &booking.name {
            Some(name) => format!("{} — {name}", booking.service),
            None => booking.service.clone(),
        };
        Event {
            id: Some(event_id(booking.id)),
            summary: Some(summary),
            status: Some(
                match booking.status {
                    BookingStatus::Pending => "tentative",
                    BookingStatus::Confirmed | BookingStatus::Cancelled => "confirmed",
                }
                .to_string(),
            ),
            start: Some(self.when(booking.start)),
            end: Some(self.when(booking.end)),
            extended_properties: Some(EventExtendedProperties {
                private: Some(private),
                shared: None,
            }),
            ..Event::default()
        }
    }

    /// The booking an event stands for; `None` for events that do not take time (cancelled,
    /// marked free, working-location markers) or that have no usable times.
    fn booking_of(&self, event: &Event) -> Option<Booking> {
        if event.status.as_deref() == Some("cancelled")
            || event.transparency.as_deref() == Some("transparent")
            || event.event_type.as_deref() == Some("workingLocation")
        {
            return None;
        }
        let start = self.instant(event.start.as_ref()?)?;
        let end = self.instant(event.end.as_ref()?)?;
        if end <= start {
            return None;
        }
        let private = event
            .extended_properties
            .as_ref()
            .and_then(|p| p.private.as_ref());
        let prop = |key: &str| private.and_then(|p| p.get(key));
        let sara = prop(BOOKING_ID)
            .and_then(|id| Uuid::parse_str(id).ok())
            .zip(prop(PHONE).and_then(|p| Phone::parse(p)));
        Some(match sara {
            Some((id, phone)) => Booking {
                id,
                phone,
                name: prop(NAME).cloned(),
                email: prop(EMAIL).cloned(),
                service: prop(SERVICE)
                    .cloned()
                    .or_else(|| event.summary.clone())
                    .unwrap_or_default(),
                start,
                end,
                status: if event.status.as_deref() == Some("tentative") {
                    BookingStatus::Pending
                } else {
                    BookingStatus::Confirmed
                },
            },
            None => Booking {
                id: hand_made_id(
                    event
                        .id
                        .as_deref()
                        .or(event.i_cal_uid.as_deref())
                        .unwrap_or_default(),
                ),
                phone: Phone::parse(NO_CUSTOMER).expect("the placeholder is a valid E.164 number"),
                name: None,
                email: None,
                service: event.summary.clone().unwrap_or_else(|| "busy".to_string()),
                start,
                end,
                status: BookingStatus::Confirmed,
            },
        })
    }

    /// The single events overlapping `[from, until)`, in start order, every page.
    async fn events(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Event>, CalendarError> {
        let mut events = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut call = self
                .hub
                .events()
                .list(&self.calendar_id)
                .single_events(true)
                .order_by("startTime")
                .time_min(from)
                .time_max(until)
                .max_results(250);
            if let Some(token) = &page {
                call = call.page_token(token);
            }
            let (_, answer) = self
                .send("events.list", call.doit())
                .await
                .map_err(Failure::unavailable)?;
            events.extend(answer.items.unwrap_or_default());
            match answer.next_page_token {
                Some(token) if !token.is_empty() => page = Some(token),
                _ => return Ok(events),
            }
        }
        tracing::warn!(
            pages = MAX_PAGES,
            "google calendar: too many events; the rest is not loaded"
        );
        Ok(events)
    }

    /// `Ok` when nothing but the event `own` takes time in `[start, end)`.
    async fn ensure_free(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        own: &str,
    ) -> Result<(), CalendarError> {
        let request = FreeBusyRequest {
            items: Some(vec![FreeBusyRequestItem {
                id: Some(self.calendar_id.clone()),
            }]),
            time_min: Some(start),
            time_max: Some(end),
            ..FreeBusyRequest::default()
        };
        let (_, answer) = self
            .send("freeBusy.query", self.hub.freebusy().query(request).doit())
            .await
            .map_err(Failure::unavailable)?;
        let calendar = answer
            .calendars
            .and_then(|mut c| c.remove(&self.calendar_id))
            .ok_or_else(|| {
                CalendarError::Unavailable(
                    "freeBusy.query: the calendar is not in the answer".into(),
                )
            })?;
        if let Some(errors) = calendar.errors.filter(|e| !e.is_empty()) {
            let reasons: Vec<_> = errors
                .iter()
                .map(|e| e.reason.as_deref().unwrap_or("unknown"))
                .collect();
            return Err(CalendarError::Unavailable(format!(
                "freeBusy.query: {}",
                reasons.join(", ")
            )));
        }
        let busy = calendar.busy.unwrap_or_default().iter().any(|period| {
            matches!((period.start, period.end), (Some(s), Some(e)) if s < end && start < e)
        });
        if !busy {
            return Ok(());
        }
        // freeBusy does not say whose time it is: look at the events themselves.
        let events = self.events(start, end).await?;
        let ours = events.iter().any(|e| e.id.as_deref() == Some(own));
        let others = events.iter().any(|e| {
            e.id.as_deref() != Some(own)
                && self
                    .booking_of(e)
                    .is_some_and(|b| b.start < end && start < b.end)
        });
        if ours && !others {
            Ok(())
        } else {
            Err(CalendarError::SlotTaken)
        }
    }
}

impl Calendar for GoogleCalendar {
    fn upcoming(&self, from: DateTime<Utc>) -> BoxFuture<'_, Result<Vec<Booking>, CalendarError>> {
        Box::pin(async move {
            let events = self.events(from, from + self.lookahead).await?;
            let mut bookings: Vec<Booking> =
                events.iter().filter_map(|e| self.booking_of(e)).collect();
            bookings.sort_by_key(|b| b.start);
            Ok(bookings)
        })
    }

    fn book<'a>(&'a self, booking: &'a Booking) -> BoxFuture<'a, Result<(), CalendarError>> {
        Box::pin(async move {
            let id = event_id(booking.id);
            self.ensure_free(booking.start, booking.end, &id).await?;
            let insert = self
                .hub
                .events()
                .insert(self.event_of(booking), &self.calendar_id);
            match self.send("events.insert", insert.doit()).await {
                Ok(_) => Ok(()),
                // The id exists: an earlier try of this same booking got through.
                Err(Failure {
                    status: Some(409), ..
                }) => Ok(()),
                Err(failure) => Err(failure.unavailable()),
            }
        })
    }

    fn reschedule(
        &self,
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), CalendarError>> {
        Box::pin(async move {
            let event = event_id(id);
            self.ensure_free(start, end, &event).await?;
            let moved = Event {
                start: Some(self.when(start)),
                end: Some(self.when(end)),
                ..Event::default()
            };
            let patch = self.hub.events().patch(moved, &self.calendar_id, &event);
            match self.send("events.patch", patch.doit()).await {
                // Google patches deleted events too; a cancelled booking cannot be moved.
                Ok((_, patched)) if patched.status.as_deref() == Some("cancelled") => {
                    Err(CalendarError::NotFound)
                }
                Ok(_) => Ok(()),
                Err(Failure {
                    status: Some(404 | 410),
                    ..
                }) => Err(CalendarError::NotFound),
                Err(failure) => Err(failure.unavailable()),
            }
        })
    }

    fn cancel(&self, id: BookingId) -> BoxFuture<'_, Result<(), CalendarError>> {
        Box::pin(async move {
            let delete = self.hub.events().delete(&self.calendar_id, &event_id(id));
            match self.send("events.delete", delete.doit()).await {
                Ok(_) => Ok(()),
                // Deleted already (by an earlier try, or by staff): that is what we wanted.
                Err(Failure {
                    status: Some(410), ..
                }) => Ok(()),
                Err(Failure {
                    status: Some(404), ..
                }) => Err(CalendarError::NotFound),
                Err(failure) => Err(failure.unavailable()),
            }
        })
    }
}
