//! The business calendar behind the `Calendar` port: the local one (the bookings table).

pub mod local;

pub use local::LocalCalendar;
