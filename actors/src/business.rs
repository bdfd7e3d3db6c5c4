//! The business Sara works for: time zone, opening hours, services, booking rules and FAQ.
//! Plain data: the `sara` crate reads it from `config.toml`, the policy and availability read it.

use chrono::{NaiveDate, NaiveTime, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::model::Phone;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Shown to callers as written ("Cleaning"); matched case-insensitively.
    pub name: String,
    pub minutes: u32,
    /// Free text shown when a caller asks ("$80"); never invented when absent.
    #[serde(default)]
    pub price: Option<String>,
    /// Kept free before the appointment; stacks with a neighbour's after-buffer.
    #[serde(default)]
    pub buffer_before_minutes: u32,
    /// Kept free after the appointment; absent = the business's `buffer_minutes`.
    #[serde(default)]
    pub buffer_after_minutes: Option<u32>,
    /// This service's minimum notice; absent = the business's.
    #[serde(default)]
    pub min_notice_minutes: Option<u32>,
    /// This service's horizon in days; absent = the business's.
    #[serde(default)]
    pub horizon_days: Option<u32>,
    /// Resources it takes at once, each named in `Business::resources`.
    #[serde(default)]
    pub needs: Vec<String>,
}

/// Something a service takes while it runs (a room, a chair), `count` of them in the business.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub count: u32,
}

/// A person bookings are with: their own hours and the services they do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Staff {
    pub name: String,
    /// The services they do, matched case-insensitively; `None` = every service.
    pub services: Option<Vec<String>>,
    /// Their week; `None` = the business hours.
    pub hours: Option<WeeklyHours>,
}

impl Staff {
    pub fn does(&self, service: &str) -> bool {
        self.services
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s.eq_ignore_ascii_case(service)))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Faq {
    pub question: String,
    pub answer: String,
}

/// Opening hours per weekday, Monday first. An empty day is closed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WeeklyHours {
    pub days: [Vec<(NaiveTime, NaiveTime)>; 7],
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("opening hours {0:?}: expected comma-separated HH:MM-HH:MM ranges")]
pub struct HoursError(pub String);

impl Service {
    /// A service without rules of its own, for tests and examples.
    pub fn new(name: &str, minutes: u32, price: &str) -> Service {
        Service {
            name: name.into(),
            minutes,
            price: Some(price.into()),
            ..Service::default()
        }
    }
}

impl WeeklyHours {
    pub fn on(&self, day: Weekday) -> &[(NaiveTime, NaiveTime)] {
        &self.days[day.num_days_from_monday() as usize]
    }

    /// Parses one weekday's ranges, e.g. `"09:00-12:00,13:00-17:00"`. Ranges must be in
    /// order, not overlap, and each must end after it starts.
    pub fn parse_day(spec: &str) -> Result<Vec<(NaiveTime, NaiveTime)>, HoursError> {
        let err = || HoursError(spec.to_string());
        let mut ranges: Vec<(NaiveTime, NaiveTime)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').ok_or_else(err)?;
            let a = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| err())?;
            let b = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| err())?;
            if b <= a || ranges.last().is_some_and(|&(_, end)| a < end) {
                return Err(err());
            }
            ranges.push((a, b));
        }
        Ok(ranges)
    }

    /// The last closing time of a day, for "they're in until 5:00 PM today".
    pub fn closes_at(&self, day: Weekday) -> Option<NaiveTime> {
        self.on(day).last().map(|&(_, end)| end)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Business {
    pub name: String,
    pub timezone: Tz,
    /// Staff number for hand-over calls.
    pub phone: Option<Phone>,
    /// Offered start times are multiples of this many minutes from the opening time.
    pub slot_minutes: u32,
    /// Kept free after each appointment whose service names no after-buffer of its own.
    pub buffer_minutes: u32,
    /// How far ahead of now the earliest bookable start lies.
    pub min_notice_minutes: u32,
    /// How many days ahead bookings are taken.
    pub horizon_days: u32,
    pub hours: WeeklyHours,
    /// Local ranges of every open day that are never offered and that no booking crosses
    /// (lunch); touching them is fine.
    pub breaks: Vec<(NaiveTime, NaiveTime)>,
    /// Whole days the business is closed (holidays), in the business time zone.
    pub closures: Vec<NaiveDate>,
    pub services: Vec<Service>,
    pub resources: Vec<Resource>,
    /// Empty = bookings are with the business, one at a time.
    pub staff: Vec<Staff>,
    /// Held bookings one customer may have on one local day; 0 = no limit.
    pub max_bookings_per_day: u32,
    /// Held upcoming bookings one customer may have in all; 0 = no limit.
    pub max_upcoming_bookings: u32,
    /// A cancel or a move closer than this to the appointment goes to staff; 0 = always allowed.
    pub cancel_notice_minutes: u32,
    pub faq: Vec<Faq>,
    /// An unfinished booking form older than this starts over.
    pub form_expiry_minutes: u32,
    /// After a hand-over on a text channel Sara stays quiet this long unless staff hand back.
    pub handover_minutes: u32,
    pub cancellation_policy: Option<String>,
}

impl Business {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// A configured staff member by name (case-insensitive).
    pub fn staff_member(&self, name: &str) -> Option<&Staff> {
        self.staff
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The staff member a message asks for: a configured name as a whole word after "with",
    /// "see" or "by" ("with Anna", "can I see anna"), or the whole message ("Anna").
    pub fn staff_named(&self, text: &str) -> Option<&Staff> {
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        self.staff.iter().find(|s| {
            let name: Vec<String> = s.name.split_whitespace().map(str::to_lowercase).collect();
            if name.is_empty() {
                return false;
            }
            if words == name {
                return true;
            }
            words
                .windows(name.len() + 1)
                .any(|w| matches!(w[0].as_str(), "with" | "see" | "by") && w[1..] == name[..])
        })
    }

    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// The default fictional clinic of `config.toml`, for tests and examples.
    pub fn example() -> Business {
        let h = |s: &str| WeeklyHours::parse_day(s).expect("example hours are valid");
        Business {
            name: "Harbor Street Clinic".into(),
            timezone: chrono_tz::America::New_York,
            phone: Phone::parse("+15550100000"),
            slot_minutes: 15,
            buffer_minutes: 0,
            min_notice_minutes: 120,
            horizon_days: 60,
            hours: WeeklyHours {
                days: [
                    h("09:00-12:00,13:00-17:00"),
                    h("09:00-12:00,13:00-17:00"),
                    h("09:00-12:00,13:00-17:00"),
                    h("09:00-12:00,13:00-17:00"),
                    h("09:00-12:00,13:00-17:00"),
                    h("10:00-14:00"),
                    vec![],
                ],
            },
            breaks: vec![],
            closures: vec![],
            services: vec![
                Service::new("Consultation", 30, "$60"),
                Service::new("Cleaning", 45, "$90"),
                Service::new("Whitening", 60, "$250"),
            ],
            resources: vec![],
            staff: vec![],
            max_bookings_per_day: 0,
            max_upcoming_bookings: 0,
            cancel_notice_minutes: 0,
            faq: vec![
                Faq {
                    question: "Where are you? What is the address?".into(),
                    answer: "12 Harbor Street, second floor.".into(),
                },
                Faq {
                    question: "Do you have parking? Where can I park?".into(),
                    answer: "Yes — free parking behind the building on Dock Lane.".into(),
                },
                Faq {
                    question: "How much does it cost? What are your prices?".into(),
                    answer: "Consultation $60, Cleaning $90, Whitening $250.".into(),
                },
                Faq {
                    question: "What is your cancellation policy?".into(),
                    answer: "Please cancel at least 24 hours ahead; late cancellations may be charged $25.".into(),
                },
            ],
            form_expiry_minutes: 7 * 24 * 60,
            handover_minutes: 24 * 60,
            cancellation_policy: Some(
                "Please cancel at least 24 hours ahead; late cancellations may be charged $25.".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_hours_parse_and_reject_nonsense() {
        let r = WeeklyHours::parse_day("09:00-12:00, 13:00-17:00").unwrap();
        assert_eq!(r.len(), 2);
        assert!(WeeklyHours::parse_day("").unwrap().is_empty());
        for bad in [
            "9-5",
            "12:00-09:00",
            "09:00-12:00,11:00-13:00",
            "nine to five",
        ] {
            assert!(WeeklyHours::parse_day(bad).is_err(), "{bad}");
        }
    }
}
