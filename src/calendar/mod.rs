//! The business calendar behind the `Calendar` port: the local one (the bookings table) or
//! a Google calendar.

pub mod google;
pub mod local;

pub use google::GoogleCalendar;
pub use local::LocalCalendar;
