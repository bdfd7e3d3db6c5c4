//! The business calendar behind the `Calendar` port: the local one (the bookings table) or
//! a Google calendar mirrored from the bookings table (`recorded`).

pub mod google;
pub mod local;
pub mod recorded;

pub use google::GoogleCalendar;
pub use local::LocalCalendar;
pub use recorded::RecordedCalendar;
