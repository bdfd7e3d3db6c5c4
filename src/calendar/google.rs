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
//! - Network errors, timeouts, 5xx and any other refusal are `Unavailable` to the port;
//!   [`GoogleCalendar::write`] tells the ones worth retrying (no answer, 5xx, 429) from a
//!   refusal for good (another 4xx), which the store-backed calendar needs.
//! - [`GoogleCalendar::changes`] reads what changed (events.list with a sync token, or in
//!   full from a time on), for the sync of staff's changes back into the store.
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
const STAFF: &str = "sara_staff";

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
    /// The store guards Sara's bookings against each other (per staff member): only events
    /// staff made by hand stand in a write's way here.
    store_is_record: bool,
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

    /// Worth trying again later: no answer (timeout, refused connection), a 5xx, or 429.
    fn transient(&self) -> bool {
        self.status.is_none_or(|s| s == 429 || s >= 500)
    }
}

/// Why an event could not be written.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteError {
    /// Something else takes the time in Google (an event staff made by hand).
    Taken,
    /// Google could not be reached or answered a 5xx or 429: the same write may go through
    /// later.
    Transient(String),
    /// Google refused the write (a 4xx other than 409 and 429): trying again will not help.
    Refused(String),
}

impl From<Failure> for WriteError {
    fn from(failure: Failure) -> WriteError {
        if failure.transient() {
            WriteError::Transient(failure.detail)
        } else {
            WriteError::Refused(failure.detail)
        }
    }
}

impl From<WriteError> for CalendarError {
    fn from(error: WriteError) -> CalendarError {
        match error {
            WriteError::Taken => CalendarError::SlotTaken,
            WriteError::Transient(detail) | WriteError::Refused(detail) => {
                CalendarError::Unavailable(detail)
            }
        }
    }
}

/// Why the calendar's changes could not be read.
#[derive(Debug, PartialEq)]
pub enum ChangesError {
    /// 410 Gone: the sync token expired; a full read without it is needed.
    Gone,
    Failed(String),
}

/// One changed event as the sync reads it: whose booking it is (Sara's events only) and
/// where it is now.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangedEvent {
    pub booking: BookingId,
    /// Deleted, or marked cancelled.
    pub cancelled: bool,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// What one read of the calendar's changes returned, every page.
#[derive(Clone, Debug, PartialEq)]
pub struct EventChanges {
    /// Sara's events that changed (hand-made events are left out: they only block time).
    pub events: Vec<ChangedEvent>,
    /// Where the next read continues.
    pub next_sync_token: Option<String>,
}

/// The Google event id of a booking: its UUID as 32 lowercase hex digits, which Google
/// accepts (base32hex, 5–1024 characters).
pub fn event_id(booking: BookingId) -> String {
    booking.simple().to_string()
}

/// Whether a booking `upcoming` returned is an event staff made by hand (no customer).
pub fn is_hand_made(booking: &Booking) -> bool {
    booking.phone.as_str() == NO_CUSTOMER
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
            store_is_record: false,
        })
    }

    /// The id of the calendar this client reads and writes.
    pub fn calendar_id(&self) -> &str {
        &self.calendar_id
    }

    /// For [`super::RecordedCalendar`]: Sara's own events no longer block a write (the
    /// store already decided, staff by staff), hand-made ones still do.
    pub fn with_store_as_record(mut self) -> GoogleCalendar {
        self.store_is_record = true;
        self
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
        if let Some(staff) = &booking.staff {
            private.insert(STAFF.to_string(), staff.clone());
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
                sequence: 0,
                staff: prop(STAFF).cloned(),
                event_id: event.id.clone(),
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
                sequence: 0,
                staff: None,
                event_id: event.id.clone(),
            },
        })
    }

    /// The single events overlapping `[from, until)`, in start order, every page.
    async fn events(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Event>, Failure> {
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
            let (_, answer) = self.send("events.list", call.doit()).await?;
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
    ) -> Result<(), WriteError> {
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
            .await?;
        let calendar = answer
            .calendars
            .and_then(|mut c| c.remove(&self.calendar_id))
            .ok_or_else(|| {
                WriteError::Refused("freeBusy.query: the calendar is not in the answer".into())
            })?;
        if let Some(errors) = calendar.errors.filter(|e| !e.is_empty()) {
            let reasons: Vec<_> = errors
                .iter()
                .map(|e| e.reason.as_deref().unwrap_or("unknown"))
                .collect();
            // Per-calendar errors ("backendError", "notFound"): only the first may pass.
            let detail = format!("freeBusy.query: {}", reasons.join(", "));
            return Err(if reasons.iter().all(|r| *r == "backendError") {
                WriteError::Transient(detail)
            } else {
                WriteError::Refused(detail)
            });
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
                && self.booking_of(e).is_some_and(|b| {
                    b.start < end && start < b.end && (!self.store_is_record || is_hand_made(&b))
                })
        });
        if ours && !others {
            Ok(())
        } else {
            Err(WriteError::Taken)
        }
    }

    /// Writes a booking's event (freeBusy first, then the insert with the client-chosen id;
    /// a 409 for that id means an earlier try got through) and says how a failure may be
    /// treated: a transient one is worth the same write later.
    pub async fn write(&self, booking: &Booking) -> Result<(), WriteError> {
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
            Err(failure) => Err(failure.into()),
        }
    }

    /// Reads what changed in the calendar: since `token` (Google's rule: a sync token goes
    /// without `timeMin`, `timeMax`, `orderBy` and the other filters), or, without one,
    /// every event that ends after `from`. Every page is read; the last one carries the
    /// token the next read continues from. Deleted events are included (`showDeleted`, the
    /// same on both kinds of read, as Google asks); recurring ones are expanded. Only Sara's
    /// events are returned: by `sara_booking_id`, or by the event id Sara chose (a deleted
    /// event may come back without its properties).
    pub async fn changes(
        &self,
        token: Option<&str>,
        from: DateTime<Utc>,
    ) -> Result<EventChanges, ChangesError> {
        let mut events = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut call = self
                .hub
                .events()
                .list(&self.calendar_id)
                .single_events(true)
                .show_deleted(true)
                .max_results(250);
            call = match token {
                Some(token) => call.sync_token(token),
                None => call.time_min(from),
            };
            if let Some(page) = &page {
                call = call.page_token(page);
            }
            let answer = match self.send("events.list", call.doit()).await {
                Ok((_, answer)) => answer,
                Err(Failure {
                    status: Some(410), ..
                }) => return Err(ChangesError::Gone),
                Err(failure) => return Err(ChangesError::Failed(failure.detail)),
            };
            events.extend(
                answer
                    .items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|e| self.changed_event(e)),
            );
            match answer.next_page_token {
                Some(next) if !next.is_empty() => page = Some(next),
                _ => {
                    return Ok(EventChanges {
                        events,
                        next_sync_token: answer.next_sync_token.filter(|t| !t.is_empty()),
                    });
                }
            }
        }
        Err(ChangesError::Failed(format!(
            "events.list: more than {MAX_PAGES} pages of changes"
        )))
    }

    /// One of Sara's events as the sync sees it; `None` for events staff made by hand.
    fn changed_event(&self, event: &Event) -> Option<ChangedEvent> {
        let by_property = event
            .extended_properties
            .as_ref()
            .and_then(|p| p.private.as_ref())
            .and_then(|p| p.get(BOOKING_ID))
            .and_then(|id| Uuid::parse_str(id).ok());
        // Sara's event ids are the booking id's 32 hex digits.
        let by_id = event
            .id
            .as_deref()
            .filter(|id| id.len() == 32)
            .and_then(|id| Uuid::try_parse(id).ok());
        let booking = by_property.or(by_id)?;
        Some(ChangedEvent {
            booking,
            cancelled: event.status.as_deref() == Some("cancelled"),
            start: event.start.as_ref().and_then(|t| self.instant(t)),
            end: event.end.as_ref().and_then(|t| self.instant(t)),
        })
    }
}

impl Calendar for GoogleCalendar {
    fn upcoming(&self, from: DateTime<Utc>) -> BoxFuture<'_, Result<Vec<Booking>, CalendarError>> {
        Box::pin(async move {
            let events =
                (self.events(from, from + self.lookahead).await).map_err(Failure::unavailable)?;
            let mut bookings: Vec<Booking> =
                events.iter().filter_map(|e| self.booking_of(e)).collect();
            bookings.sort_by_key(|b| b.start);
            Ok(bookings)
        })
    }

    fn book<'a>(&'a self, booking: &'a Booking) -> BoxFuture<'a, Result<(), CalendarError>> {
        Box::pin(async move { Ok(self.write(booking).await?) })
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

#[cfg(test)]
mod tests {
    //! Against a local stand-in for Google (token endpoint + Calendar API), through the same
    //! client as production; the received JSON is checked against Google's discovery document.

    use chrono::Duration as Minutes;
    use serde_json::{Value, json};
    use wiremock::matchers::{
        body_string_contains, header, method, path, query_param, query_param_is_missing,
    };
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const CALENDAR: &str = "clinic@group.calendar.google.com";
    const EVENTS: &str = "/calendar/v3/calendars/clinic@group.calendar.google.com/events";
    /// A throwaway 2048-bit RSA key made for these tests only (PKCS#8 PEM, as Google issues).
    const TEST_KEY: &str =
        include_str!("../../tests/data/google/throwaway-service-account-key.pem");

    struct StandIn {
        server: MockServer,
        calendar: GoogleCalendar,
        _dir: tempfile::TempDir,
    }

    /// A Google stand-in that hands out tokens, and a calendar client pointed at it.
    async fn stand_in() -> StandIn {
        let server = MockServer::start().await;
        let base = format!("{}/calendar/v3/", server.uri());
        stand_in_with(server, base, Duration::from_secs(10)).await
    }

    /// Tokens from `server`, the Calendar API at `base`.
    async fn stand_in_with(server: MockServer, base: String, deadline: Duration) -> StandIn {
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "t", "expires_in": 3600, "token_type": "Bearer"}),
            ))
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let key = json!({
            "type": "service_account",
            "project_id": "sara-test",
            "private_key_id": "throwaway",
            "private_key": TEST_KEY,
            "client_email": "sara@sara-test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": format!("{}/token", server.uri()),
        });
        let credentials = dir.path().join("key.json");
        std::fs::write(&credentials, key.to_string()).expect("write the key file");
        let calendar = GoogleCalendar::connect(GoogleSettings {
            base_url: base,
            calendar_id: CALENDAR.into(),
            credentials,
            timezone: chrono_tz::America::New_York,
            lookahead: chrono::Duration::days(60),
            deadline,
        })
        .await
        .expect("the client builds");
        StandIn {
            server,
            calendar,
            _dir: dir,
        }
    }

    impl StandIn {
        /// Answers freeBusy with these busy periods for our calendar.
        async fn free_busy(&self, busy: Value) {
            Mock::given(method("POST"))
                .and(path("/calendar/v3/freeBusy"))
                .and(header("authorization", "Bearer t"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "kind": "calendar#freeBusy",
                    "timeMin": "2026-12-01T14:00:00Z",
                    "timeMax": "2026-12-01T14:30:00Z",
                    "calendars": { CALENDAR: { "busy": busy } },
                })))
                .mount(&self.server)
                .await;
        }

        async fn list(&self, items: Value) {
            Mock::given(method("GET"))
                .and(path(EVENTS))
                .and(header("authorization", "Bearer t"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "kind": "calendar#events",
                    "items": items,
                })))
                .mount(&self.server)
                .await;
        }

        async fn insert_answers(&self, status: u16, body: Value, times: u64) {
            Mock::given(method("POST"))
                .and(path(EVENTS))
                .and(header("authorization", "Bearer t"))
                .respond_with(ResponseTemplate::new(status).set_body_json(body))
                .expect(times)
                .mount(&self.server)
                .await;
        }

        /// The JSON bodies of the requests received at `method path`.
        async fn received(&self, verb: &str, at: &str) -> Vec<Value> {
            self.server
                .received_requests()
                .await
                .expect("recording is on")
                .iter()
                .filter(|r| r.method.as_str() == verb && r.url.path() == at)
                .map(|r| r.body_json().unwrap_or(Value::Null))
                .collect()
        }
    }

    fn google_error(code: u16, message: &str) -> Value {
        json!({"error": {"code": code, "message": message, "errors": [{"message": message}]}})
    }

    fn nine_am() -> DateTime<Utc> {
        // 09:00 in New York (EST).
        Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0)
            .single()
            .expect("a valid test time")
    }

    fn booking() -> Booking {
        Booking {
            id: Uuid::parse_str("0192f4a7-6b1c-7d3e-8f00-1234567890ab").expect("uuid"),
            phone: Phone::parse("+15550100001").expect("a valid test number"),
            name: Some("Grace Hopper".to_string()),
            email: Some("grace@example.com".to_string()),
            service: "cleaning".to_string(),
            start: nine_am(),
            end: nine_am() + Minutes::minutes(30),
            status: BookingStatus::Confirmed,
            sequence: 0,
            staff: None,
            event_id: None,
        }
    }

    /// Google's discovery document for Calendar v3, as committed under tests/data.
    fn discovery() -> Value {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/google/calendar.v3.json");
        serde_json::from_str(&std::fs::read_to_string(file).expect("discovery document"))
            .expect("discovery JSON")
    }

    /// Every field of `value` is one the discovery document's `schema` declares, at any depth.
    fn assert_fits(doc: &Value, schema: &Value, value: &Value, at: &str) {
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(name) => &doc["schemas"][name],
            None => schema,
        };
        match value {
            Value::Object(fields) => {
                assert_eq!(
                    schema["type"], "object",
                    "{at} is not an object in the schema"
                );
                for (key, field) in fields {
                    let field_schema = schema["properties"]
                        .get(key)
                        .or_else(|| schema.get("additionalProperties"))
                        .unwrap_or_else(|| panic!("{at}.{key} is not a field Google knows"));
                    assert_fits(doc, field_schema, field, &format!("{at}.{key}"));
                }
            }
            Value::Array(items) => {
                assert_eq!(
                    schema["type"], "array",
                    "{at} is not an array in the schema"
                );
                for (i, item) in items.iter().enumerate() {
                    assert_fits(doc, &schema["items"], item, &format!("{at}[{i}]"));
                }
            }
            Value::String(_) => assert_eq!(schema["type"], "string", "{at}"),
            Value::Bool(_) => assert_eq!(schema["type"], "boolean", "{at}"),
            Value::Number(_) => assert_eq!(schema["type"], "integer", "{at}"),
            Value::Null => panic!("{at} is null"),
        }
    }

    fn request_schema(doc: &Value, resource: &str, method: &str) -> Value {
        doc["resources"][resource]["methods"][method]["request"].clone()
    }

    #[tokio::test]
    async fn book_asks_free_busy_then_writes_the_event_google_describes() {
        let google = stand_in().await;
        google.free_busy(json!([])).await;
        google
            .insert_answers(
                200,
                json!({"id": event_id(booking().id), "status": "confirmed"}),
                1,
            )
            .await;

        google.calendar.book(&booking()).await.expect("booked");

        let doc = discovery();
        let asked = google.received("POST", "/calendar/v3/freeBusy").await;
        assert_eq!(asked.len(), 1);
        assert_fits(
            &doc,
            &request_schema(&doc, "freebusy", "query"),
            &asked[0],
            "freeBusy",
        );
        assert_eq!(asked[0]["items"], json!([{"id": CALENDAR}]));
        assert_eq!(asked[0]["timeMin"], "2026-12-01T14:00:00Z");
        assert_eq!(asked[0]["timeMax"], "2026-12-01T14:30:00Z");

        let inserted = google.received("POST", EVENTS).await;
        assert_eq!(inserted.len(), 1);
        let event = &inserted[0];
        assert_fits(
            &doc,
            &request_schema(&doc, "events", "insert"),
            event,
            "event",
        );
        assert_eq!(event["id"], "0192f4a76b1c7d3e8f001234567890ab");
        assert_eq!(event["start"]["dateTime"], "2026-12-01T14:00:00Z");
        assert_eq!(event["start"]["timeZone"], "America/New_York");
        assert_eq!(event["end"]["dateTime"], "2026-12-01T14:30:00Z");
        assert_eq!(event["end"]["timeZone"], "America/New_York");
        let private = &event["extendedProperties"]["private"];
        assert_eq!(
            private["sara_booking_id"],
            "0192f4a7-6b1c-7d3e-8f00-1234567890ab"
        );
        assert_eq!(private["sara_phone"], "+15550100001");
        assert_eq!(private["sara_service"], "cleaning");
        assert_eq!(private["sara_name"], "Grace Hopper");
        assert_eq!(event["summary"], "cleaning — Grace Hopper");
    }

    #[tokio::test]
    async fn a_busy_slot_is_taken_and_nothing_is_written() {
        let google = stand_in().await;
        google
            .free_busy(json!([{"start": "2026-12-01T14:15:00Z", "end": "2026-12-01T15:00:00Z"}]))
            .await;
        google
            .list(json!([{
                "id": "staffmeeting1",
                "status": "confirmed",
                "summary": "Staff meeting",
                "start": {"dateTime": "2026-12-01T09:15:00-05:00"},
                "end": {"dateTime": "2026-12-01T10:00:00-05:00"},
            }]))
            .await;
        google.insert_answers(200, json!({}), 0).await;

        assert_eq!(
            google.calendar.book(&booking()).await,
            Err(CalendarError::SlotTaken)
        );
    }

    #[tokio::test]
    async fn a_conflict_on_insert_means_the_booking_is_already_there() {
        let google = stand_in().await;
        google.free_busy(json!([])).await;
        google
            .insert_answers(
                409,
                google_error(409, "The requested identifier already exists."),
                1,
            )
            .await;

        assert_eq!(google.calendar.book(&booking()).await, Ok(()));
    }

    #[tokio::test]
    async fn booking_the_same_booking_again_is_not_blocked_by_its_own_event() {
        let google = stand_in().await;
        google
            .free_busy(json!([{"start": "2026-12-01T14:00:00Z", "end": "2026-12-01T14:30:00Z"}]))
            .await;
        google
            .list(json!([{
                "id": event_id(booking().id),
                "status": "confirmed",
                "start": {"dateTime": "2026-12-01T14:00:00Z", "timeZone": "America/New_York"},
                "end": {"dateTime": "2026-12-01T14:30:00Z", "timeZone": "America/New_York"},
                "extendedProperties": {"private": {"sara_booking_id": booking().id.to_string()}},
            }]))
            .await;
        google
            .insert_answers(
                409,
                google_error(409, "The requested identifier already exists."),
                1,
            )
            .await;

        assert_eq!(google.calendar.book(&booking()).await, Ok(()));
    }

    #[tokio::test]
    async fn upcoming_maps_saras_events_and_hand_made_ones_back_across_pages() {
        let google = stand_in().await;
        let mine = booking();
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(query_param("pageToken", "p2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "items": [
                    {
                        "id": "handmade42",
                        "status": "confirmed",
                        "summary": "Dentist out",
                        "start": {"dateTime": "2026-12-02T13:00:00-05:00"},
                        "end": {"dateTime": "2026-12-02T14:00:00-05:00"},
                    },
                    {
                        "id": "holiday1",
                        "status": "confirmed",
                        "summary": "Reminder: order gloves",
                        "transparency": "transparent",
                        "start": {"date": "2026-12-03"},
                        "end": {"date": "2026-12-04"},
                    },
                    {
                        "id": "closed1",
                        "status": "confirmed",
                        "summary": "Closed",
                        "start": {"date": "2026-12-04"},
                        "end": {"date": "2026-12-05"},
                    },
                ],
            })))
            .mount(&google.server)
            .await;
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(query_param("singleEvents", "true"))
            .and(query_param("orderBy", "startTime"))
            .and(query_param("timeMin", "2026-11-30T00:00:00.000Z"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "nextPageToken": "p2",
                "items": [{
                    "id": event_id(mine.id),
                    "status": "confirmed",
                    "summary": "cleaning — Grace Hopper",
                    "start": {"dateTime": "2026-12-01T09:00:00-05:00", "timeZone": "America/New_York"},
                    "end": {"dateTime": "2026-12-01T09:30:00-05:00", "timeZone": "America/New_York"},
                    "extendedProperties": {"private": {
                        "sara_booking_id": mine.id.to_string(),
                        "sara_phone": "+15550100001",
                        "sara_service": "cleaning",
                        "sara_name": "Grace Hopper",
                        "sara_email": "grace@example.com",
                    }},
                }],
            })))
            .mount(&google.server)
            .await;

        let from = Utc
            .with_ymd_and_hms(2026, 11, 30, 0, 0, 0)
            .single()
            .expect("time");
        let got = google.calendar.upcoming(from).await.expect("upcoming");

        assert_eq!(got.len(), 3, "{got:?}");
        // Mapped back with the event's id.
        assert_eq!(
            got[0],
            Booking {
                event_id: Some(event_id(mine.id)),
                ..mine.clone()
            }
        );
        assert_eq!(got[1].id, hand_made_id("handmade42"));
        assert_eq!(got[1].service, "Dentist out");
        assert_eq!(got[1].status, BookingStatus::Confirmed);
        assert_eq!(
            got[1].start,
            Utc.with_ymd_and_hms(2026, 12, 2, 18, 0, 0)
                .single()
                .expect("t")
        );
        assert_ne!(got[1].phone, mine.phone);
        // An all-day event that takes time blocks the whole local day.
        assert_eq!(got[2].service, "Closed");
        assert_eq!(
            got[2].start,
            Utc.with_ymd_and_hms(2026, 12, 4, 5, 0, 0)
                .single()
                .expect("t")
        );
        assert_eq!(
            got[2].end,
            Utc.with_ymd_and_hms(2026, 12, 5, 5, 0, 0)
                .single()
                .expect("t")
        );
        // The same event keeps its id from one load to the next.
        let again = google.calendar.upcoming(from).await.expect("upcoming");
        assert_eq!(again, got);
    }

    #[tokio::test]
    async fn reschedule_checks_the_new_time_and_patches_start_and_end() {
        let google = stand_in().await;
        let mine = booking();
        let later = nine_am() + Minutes::hours(2);
        // The new time overlaps only the booking's own event (moving it by a little).
        google
            .free_busy(json!([{"start": "2026-12-01T16:00:00Z", "end": "2026-12-01T16:10:00Z"}]))
            .await;
        google
            .list(json!([{
                "id": event_id(mine.id),
                "status": "confirmed",
                "start": {"dateTime": "2026-12-01T15:40:00Z"},
                "end": {"dateTime": "2026-12-01T16:10:00Z"},
            }]))
            .await;
        let at = format!("{EVENTS}/{}", event_id(mine.id));
        Mock::given(method("PATCH"))
            .and(path(at.as_str()))
            .and(header("authorization", "Bearer t"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": event_id(mine.id), "status": "confirmed"})),
            )
            .expect(1)
            .mount(&google.server)
            .await;

        google
            .calendar
            .reschedule(mine.id, later, later + Minutes::minutes(30))
            .await
            .expect("moved");

        let doc = discovery();
        let patched = google.received("PATCH", &at).await;
        assert_fits(
            &doc,
            &request_schema(&doc, "events", "patch"),
            &patched[0],
            "patch",
        );
        assert_eq!(
            patched[0],
            json!({
                "start": {"dateTime": "2026-12-01T16:00:00Z", "timeZone": "America/New_York"},
                "end": {"dateTime": "2026-12-01T16:30:00Z", "timeZone": "America/New_York"},
            })
        );
    }

    #[tokio::test]
    async fn reschedule_into_someone_elses_time_is_taken_and_patches_nothing() {
        let google = stand_in().await;
        google
            .free_busy(json!([{"start": "2026-12-01T16:00:00Z", "end": "2026-12-01T16:30:00Z"}]))
            .await;
        google
            .list(json!([{
                "id": "someoneelse",
                "status": "confirmed",
                "start": {"dateTime": "2026-12-01T16:00:00Z"},
                "end": {"dateTime": "2026-12-01T16:30:00Z"},
            }]))
            .await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(0)
            .mount(&google.server)
            .await;
        let later = nine_am() + Minutes::hours(2);

        assert_eq!(
            google
                .calendar
                .reschedule(booking().id, later, later + Minutes::minutes(30))
                .await,
            Err(CalendarError::SlotTaken)
        );
    }

    #[tokio::test]
    async fn cancel_deletes_the_event_and_an_already_deleted_one_is_fine() {
        let google = stand_in().await;
        let gone = Uuid::new_v4();
        let never = Uuid::new_v4();
        for (id, status) in [(booking().id, 204), (gone, 410), (never, 404)] {
            let body = if status == 204 {
                ResponseTemplate::new(204)
            } else {
                ResponseTemplate::new(status).set_body_json(google_error(status, "gone"))
            };
            Mock::given(method("DELETE"))
                .and(path(format!("{EVENTS}/{}", event_id(id))))
                .and(header("authorization", "Bearer t"))
                .respond_with(body)
                .expect(1)
                .mount(&google.server)
                .await;
        }

        assert_eq!(google.calendar.cancel(booking().id).await, Ok(()));
        assert_eq!(google.calendar.cancel(gone).await, Ok(()));
        assert_eq!(
            google.calendar.cancel(never).await,
            Err(CalendarError::NotFound)
        );
    }

    #[tokio::test]
    async fn server_errors_are_unavailable() {
        let google = stand_in().await;
        Mock::given(method("POST"))
            .and(path("/calendar/v3/freeBusy"))
            .respond_with(
                ResponseTemplate::new(500).set_body_json(google_error(500, "Backend Error")),
            )
            .mount(&google.server)
            .await;
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .respond_with(ResponseTemplate::new(503).set_body_string("unavailable"))
            .mount(&google.server)
            .await;
        Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(502))
            .mount(&google.server)
            .await;

        let book = google.calendar.book(&booking()).await;
        assert!(
            matches!(&book, Err(CalendarError::Unavailable(m)) if m.contains("500")),
            "{book:?}"
        );
        let upcoming = google.calendar.upcoming(nine_am()).await;
        assert!(
            matches!(&upcoming, Err(CalendarError::Unavailable(m)) if m.contains("503")),
            "{upcoming:?}"
        );
        assert!(matches!(
            google.calendar.cancel(booking().id).await,
            Err(CalendarError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        // A port nobody listens on any more.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}/calendar/v3/", closed.local_addr().expect("addr"));
        drop(closed);
        let google = stand_in_with(MockServer::start().await, base, Duration::from_secs(10)).await;

        let answer = google.calendar.upcoming(nine_am()).await;
        assert!(
            matches!(answer, Err(CalendarError::Unavailable(_))),
            "{answer:?}"
        );
    }

    #[tokio::test]
    async fn a_calendar_that_does_not_answer_in_time_is_unavailable() {
        let server = MockServer::start().await;
        let base = format!("{}/calendar/v3/", server.uri());
        let google = stand_in_with(server, base, Duration::from_millis(200)).await;
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"items": []}))
                    .set_delay(Duration::from_secs(30)),
            )
            .mount(&google.server)
            .await;

        let answer = google.calendar.upcoming(nine_am()).await;
        assert!(
            matches!(&answer, Err(CalendarError::Unavailable(m)) if m.contains("no answer")),
            "{answer:?}"
        );
    }

    /// The query of every events.list request received: its parameters must be ones the
    /// discovery document names, and a read with a sync token must leave out what Google
    /// forbids beside it.
    async fn list_queries(google: &StandIn) -> Vec<HashMap<String, String>> {
        let doc = discovery();
        let known = &doc["resources"]["events"]["methods"]["list"]["parameters"];
        let queries: Vec<HashMap<String, String>> = google
            .server
            .received_requests()
            .await
            .expect("recording is on")
            .iter()
            .filter(|r| r.method.as_str() == "GET" && r.url.path() == EVENTS)
            .map(|r| r.url.query_pairs().into_owned().collect())
            .collect();
        for query in &queries {
            for key in query.keys() {
                assert!(
                    known.get(key).is_some() || ["alt", "key"].contains(&key.as_str()),
                    "events.list has no parameter {key}"
                );
            }
            if query.contains_key("syncToken") {
                for forbidden in [
                    "timeMin",
                    "timeMax",
                    "orderBy",
                    "iCalUID",
                    "q",
                    "updatedMin",
                    "privateExtendedProperty",
                    "sharedExtendedProperty",
                ] {
                    assert!(
                        !query.contains_key(forbidden),
                        "{forbidden} beside syncToken: {query:?}"
                    );
                }
            }
            assert_eq!(query.get("showDeleted").map(String::as_str), Some("true"));
            assert_eq!(query.get("singleEvents").map(String::as_str), Some("true"));
        }
        queries
    }

    #[tokio::test]
    async fn changes_follow_the_sync_token_across_pages_and_keep_only_saras_events() {
        let google = stand_in().await;
        let mine = booking();
        let other = Uuid::parse_str("0192f4a7-6b1c-7d3e-8f00-0000000000cd").expect("uuid");
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(query_param("syncToken", "t1"))
            .and(query_param_is_missing("pageToken"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "nextPageToken": "p2",
                "items": [
                    {
                        "id": event_id(mine.id),
                        "status": "confirmed",
                        "start": {"dateTime": "2026-12-02T10:00:00-05:00", "timeZone": "America/New_York"},
                        "end": {"dateTime": "2026-12-02T10:30:00-05:00", "timeZone": "America/New_York"},
                        "extendedProperties": {"private": {"sara_booking_id": mine.id.to_string()}},
                    },
                    {
                        "id": "handmade42",
                        "status": "confirmed",
                        "summary": "Dentist out",
                        "start": {"dateTime": "2026-12-02T13:00:00-05:00"},
                        "end": {"dateTime": "2026-12-02T14:00:00-05:00"},
                    },
                ],
            })))
            .expect(1)
            .mount(&google.server)
            .await;
        // A deleted event may come back bare: Sara knows it by the id it chose.
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(query_param("syncToken", "t1"))
            .and(query_param("pageToken", "p2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "nextSyncToken": "t2",
                "items": [{"id": event_id(other), "status": "cancelled"}],
            })))
            .expect(1)
            .mount(&google.server)
            .await;

        let changes = google
            .calendar
            .changes(Some("t1"), nine_am())
            .await
            .expect("changes");

        assert_eq!(changes.next_sync_token.as_deref(), Some("t2"));
        assert_eq!(
            changes.events,
            vec![
                ChangedEvent {
                    booking: mine.id,
                    cancelled: false,
                    start: Some(
                        Utc.with_ymd_and_hms(2026, 12, 2, 15, 0, 0)
                            .single()
                            .expect("t")
                    ),
                    end: Some(
                        Utc.with_ymd_and_hms(2026, 12, 2, 15, 30, 0)
                            .single()
                            .expect("t")
                    ),
                },
                ChangedEvent {
                    booking: other,
                    cancelled: true,
                    start: None,
                    end: None,
                },
            ]
        );
        assert_eq!(list_queries(&google).await.len(), 2);
    }

    #[tokio::test]
    async fn an_expired_sync_token_is_gone_and_a_full_read_starts_from_now() {
        let google = stand_in().await;
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(query_param("syncToken", "old"))
            .respond_with(ResponseTemplate::new(410).set_body_json(google_error(
                410,
                "Sync token is no longer valid, a full sync is required.",
            )))
            .expect(1)
            .mount(&google.server)
            .await;
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(query_param_is_missing("syncToken"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "nextSyncToken": "fresh",
                "items": [],
            })))
            .expect(1)
            .mount(&google.server)
            .await;

        assert_eq!(
            google.calendar.changes(Some("old"), nine_am()).await,
            Err(ChangesError::Gone)
        );
        let full = google
            .calendar
            .changes(None, nine_am())
            .await
            .expect("a full read");
        assert_eq!(full.next_sync_token.as_deref(), Some("fresh"));
        assert!(full.events.is_empty());
        let queries = list_queries(&google).await;
        let full_query = &queries[1];
        assert!(
            full_query
                .get("timeMin")
                .is_some_and(|t| t.starts_with("2026-12-01T14:00:00")),
            "{full_query:?}"
        );
    }

    #[tokio::test]
    async fn a_write_tells_an_outage_from_a_refusal() {
        let google = stand_in().await;
        google.free_busy(json!([])).await;
        Mock::given(method("POST"))
            .and(path(EVENTS))
            .respond_with(
                ResponseTemplate::new(429).set_body_json(google_error(429, "Rate Limit Exceeded")),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&google.server)
            .await;
        Mock::given(method("POST"))
            .and(path(EVENTS))
            .respond_with(ResponseTemplate::new(403).set_body_json(google_error(403, "Forbidden")))
            .mount(&google.server)
            .await;

        assert!(matches!(
            google.calendar.write(&booking()).await,
            Err(WriteError::Transient(m)) if m.contains("429")
        ));
        assert!(matches!(
            google.calendar.write(&booking()).await,
            Err(WriteError::Refused(m)) if m.contains("403")
        ));
    }

    #[test]
    #[should_panic(expected = "is not a field Google knows")]
    fn the_schema_check_refuses_a_field_google_does_not_know() {
        let doc = discovery();
        let event = json!({"start": {"dateTime": "2026-12-01T14:00:00Z", "tz": "UTC"}});
        assert_fits(
            &doc,
            &request_schema(&doc, "events", "insert"),
            &event,
            "event",
        );
    }
}
