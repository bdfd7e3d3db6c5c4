//! Table tests of the rule NLU: one row per message, with the clock it is read against.
//!
//! Unless a row says otherwise, "now" is Wednesday 2026-11-25 10:00 in America/New_York and
//! the row expects no date and no time: numbers that are not times must stay numbers.

use chrono::{NaiveDate, NaiveTime, TimeZone};
use sara_actors::understanding::{Act, DayPart, NluContext, Slot};

use super::RuleNlu;

const WEDNESDAY: &str = "2026-11-25 10:00";
/// The "now" of the example conversations in DIALOGS.md.
const THURSDAY: &str = "2026-03-05 10:00";

#[derive(Clone, Debug)]
struct Case {
    text: &'static str,
    now: &'static str,
    expecting: Option<Slot>,
    first: Option<Act>,
    has: Vec<Act>,
    date: Option<&'static str>,
    time: Option<&'static str>,
    part: Option<Option<DayPart>>,
    service: Option<Option<&'static str>>,
    name: Option<Option<&'static str>>,
    email: Option<&'static str>,
    choice: Option<Option<usize>>,
}

fn c(text: &'static str) -> Case {
    Case {
        text,
        now: WEDNESDAY,
        expecting: None,
        first: None,
        has: vec![],
        date: None,
        time: None,
        part: None,
        service: None,
        name: None,
        email: None,
        choice: None,
    }
}

impl Case {
    fn at(mut self, now: &'static str) -> Self {
        self.now = now;
        self
    }
    fn expecting(mut self, slot: Slot) -> Self {
        self.expecting = Some(slot);
        self
    }
    fn first(mut self, act: Act) -> Self {
        self.first = Some(act);
        self
    }
    fn has(mut self, act: Act) -> Self {
        self.has.push(act);
        self
    }
    fn date(mut self, d: &'static str) -> Self {
        self.date = Some(d);
        self
    }
    fn time(mut self, t: &'static str) -> Self {
        self.time = Some(t);
        self
    }
    fn part(mut self, p: DayPart) -> Self {
        self.part = Some(Some(p));
        self
    }
    fn service(mut self, s: Option<&'static str>) -> Self {
        self.service = Some(s);
        self
    }
    fn name(mut self, n: Option<&'static str>) -> Self {
        self.name = Some(n);
        self
    }
    fn email(mut self, e: &'static str) -> Self {
        self.email = Some(e);
        self
    }
    fn choice(mut self, n: Option<usize>) -> Self {
        self.choice = Some(n);
        self
    }
}

fn t(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").expect("test time is valid")
}

fn nlu() -> RuleNlu {
    RuleNlu::new(vec![
        "Consultation".into(),
        "Cleaning".into(),
        "Whitening".into(),
    ])
}

fn context(now: &str, expecting: Option<Slot>) -> NluContext {
    let local = chrono::NaiveDateTime::parse_from_str(now, "%Y-%m-%d %H:%M").expect("test now");
    let now = chrono_tz::America::New_York
        .from_local_datetime(&local)
        .earliest()
        .expect("test now exists in New York");
    NluContext {
        now,
        services: vec![],
        expecting,
        prompt: None,
        facts: Default::default(),
    }
}

fn cases() -> Vec<Case> {
    use Act::*;
    vec![
        // Spoken, British and 24-hour times (number words are digits after normalising).
        c("ten forty-five tomorrow works")
            .date("2026-11-26")
            .time("10:45"),
        c("could I come at eleven fifteen on friday")
            .date("2026-11-27")
            .time("11:15"),
        c("nine oh five please").time("09:05"),
        c("half three on Friday").date("2026-11-27").time("15:30"),
        c("half 10 tomorrow?").date("2026-11-26").time("10:30"),
        c("twenty to four on monday")
            .date("2026-11-30")
            .time("15:40"),
        c("ten past two tomorrow").date("2026-11-26").time("14:10"),
        c("25 past 9 on thursday").date("2026-11-26").time("09:25"),
        c("five to twelve tomorrow")
            .date("2026-11-26")
            .time("11:55"),
        c("quarter to 11 on friday")
            .date("2026-11-27")
            .time("10:45"),
        c("a quarter of ten tomorrow")
            .date("2026-11-26")
            .time("09:45"),
        c("quarter after three friday")
            .date("2026-11-27")
            .time("15:15"),
        c("half past two on monday")
            .date("2026-11-30")
            .time("14:30"),
        c("tomorrow at noon").date("2026-11-26").time("12:00"),
        c("15:30 on friday").date("2026-11-27").time("15:30"),
        c("friday at 1530").date("2026-11-27").time("15:30"),
        c("actually make it 4").first(Inform).time("16:00"),
        c("can we do 11 instead").time("11:00"),
        // Vague times.
        c("friday around lunch")
            .date("2026-11-27")
            .part(DayPart::Between(t("11:30"), t("14:00"))),
        c("late afternoon tomorrow")
            .date("2026-11-26")
            .part(DayPart::Between(t("15:00"), t("18:00"))),
        c("monday before lunch")
            .date("2026-11-30")
            .part(DayPart::Before(t("12:00"))),
        c("after lunch on friday")
            .date("2026-11-27")
            .part(DayPart::After(t("13:00"))),
        c("first thing tomorrow")
            .date("2026-11-26")
            .part(DayPart::Morning),
        c("anything after 11?").part(DayPart::After(t("11:00"))),
        // Numbers that are still not times.
        c("twenty five minutes is fine"),
        c("I have 2 kids"),
        c("No. Have a great one."),
        c("can you do 2 cleanings on friday").date("2026-11-27"),
        c("are you open 10 to 4 on saturday?").first(Question),
        // Relative days.
        c("tomorrow").first(Inform).date("2026-11-26"),
        c("Can I come in tomorrow?")
            .first(Inform)
            .date("2026-11-26")
            .has(Book),
        c("tmrw works").date("2026-11-26"),
        c("tomorow please").date("2026-11-26"),
        c("tommorow at 3pm").date("2026-11-26").time("15:00"),
        c("today").date("2026-11-25"),
        c("anything today?").date("2026-11-25"),
        c("later today please").date("2026-11-25"),
        c("the day after tomorrow").date("2026-11-27"),
        c("day after tomorrow at 10")
            .date("2026-11-27")
            .time("10:00"),
        c("in 3 days").date("2026-11-28"),
        c("in a week").date("2026-12-02"),
        c("tonight at 7").date("2026-11-25").time("19:00"),
        // Weekdays: today excluded, "next" is next week's.
        c("Friday").date("2026-11-27"),
        c("this Friday").date("2026-11-27"),
        c("on friday at 2").date("2026-11-27").time("14:00"),
        c("thrusday").date("2026-11-26"),
        c("How about thurs?").date("2026-11-26"),
        c("Wednesday").date("2026-12-02"),
        c("next Wednesday").date("2026-12-02"),
        c("next Monday").date("2026-11-30"),
        c("next Friday").date("2026-12-04"),
        c("Friday next week").date("2026-12-04"),
        c("Tuesday next week at 4").date("2026-12-01").time("16:00"),
        c("Thursday this week").date("2026-11-26"),
        c("Monday this week").date("2026-11-30"),
        c("a week from Tuesday").date("2026-12-08"),
        c("a week from today").date("2026-12-02"),
        c("a week from tomorrow").date("2026-12-03"),
        c("Tuesday after next").date("2026-12-08"),
        c("wendesday morning")
            .date("2026-12-02")
            .part(DayPart::Morning),
        c("Saturday").date("2026-11-28"),
        c("sunday").date("2026-11-29"),
        // Calendar dates.
        c("Dec 3").date("2026-12-03"),
        c("December 3rd").date("2026-12-03"),
        c("3rd of December").date("2026-12-03"),
        c("the 3rd of december at 11am")
            .date("2026-12-03")
            .time("11:00"),
        c("12/3").date("2026-12-03"),
        c("12/3/2027").date("2027-12-03"),
        c("1/15/27").date("2027-01-15"),
        c("2026-12-01").date("2026-12-01"),
        c("Nov 20").date("2027-11-20"),
        c("January 5").date("2027-01-05"),
        c("march 5th 2027").date("2027-03-05"),
        c("5 march").date("2027-03-05"),
        c("the 7th").date("2026-12-07"),
        c("the 30th").date("2026-11-30"),
        c("the 25th").date("2026-11-25"),
        c("on the 28th at 9:15").date("2026-11-28").time("09:15"),
        c("9th of this month").date("2026-11-09"),
        c("the 3rd of next month").date("2026-12-03"),
        c("the twenty-first of next month").date("2026-12-21"),
        c("teh 10th please").date("2026-12-10"),
        c("December first").date("2026-12-01"),
        c("first of December").date("2026-12-01"),
        c("the 31st").date("2026-12-31"),
        c("December thirty-first").date("2026-12-31"),
        c("the 1st is good").date("2026-12-01"),
        // Month and year ends.
        c("tomorrow").at("2026-12-31 16:00").date("2027-01-01"),
        c("the 3rd of next month")
            .at("2026-12-31 16:00")
            .date("2027-01-03"),
        c("the 2nd").at("2026-12-31 16:00").date("2027-01-02"),
        c("Jan 2").at("2026-12-31 16:00").date("2027-01-02"),
        c("in 3 days").at("2026-12-31 16:00").date("2027-01-03"),
        c("next Monday").at("2026-12-31 16:00").date("2027-01-04"),
        c("Friday").at("2026-12-31 16:00").date("2027-01-01"),
        c("day after tomorrow")
            .at("2026-12-30 09:00")
            .date("2027-01-01"),
        c("12/31").at("2026-12-31 08:00").date("2026-12-31"),
        c("the 31st").at("2027-02-26 09:00").date("2027-03-31"),
        // February has no 30th: no date rather than a wrong one.
        c("the 30th of next month").at("2027-01-15 09:00"),
        c("tomorrow").at("2028-02-28 09:00").date("2028-02-29"),
        c("the 29th").at("2027-02-10 09:00").date("2027-03-29"),
        c("tomorrow").at("2026-11-30 09:00").date("2026-12-01"),
        // DST changeover days in New York.
        c("tomorrow at 2:30")
            .at("2026-03-08 09:00")
            .date("2026-03-09")
            .time("14:30"),
        c("today at 2:30am")
            .at("2026-03-08 01:00")
            .date("2026-03-08")
            .time("02:30"),
        c("tomorrow").at("2026-03-07 23:30").date("2026-03-08"),
        c("Monday at 9")
            .at("2026-03-08 03:30")
            .date("2026-03-09")
            .time("09:00"),
        c("today at 1:30 am")
            .at("2026-11-01 00:30")
            .date("2026-11-01")
            .time("01:30"),
        c("tomorrow morning")
            .at("2026-11-01 01:30")
            .date("2026-11-02")
            .part(DayPart::Morning),
        c("next Sunday").at("2026-11-01 12:00").date("2026-11-08"),
        c("the 8th at 3pm")
            .at("2026-03-07 10:00")
            .date("2026-03-08")
            .time("15:00"),
        // Clock times.
        c("3pm").first(Inform).time("15:00"),
        c("3 pm").time("15:00"),
        c("3:30 pm").time("15:30"),
        c("3:30pm please").time("15:30"),
        c("15:00").time("15:00"),
        c("the appointment is at 07:30").time("07:30"),
        c("at 1630").time("16:30"),
        c("1630").expecting(Slot::Time).time("16:30"),
        c("4.30").time("16:30"),
        c("can we do 4.30 tomorrow")
            .date("2026-11-26")
            .time("16:30"),
        c("noon").time("12:00"),
        c("at noon on friday").date("2026-11-27").time("12:00"),
        c("half past 4").time("16:30"),
        c("half past one").time("13:30"),
        c("quarter past 10 in the morning").time("10:15"),
        c("quarter to 5 in the evening").time("16:45"),
        c("a quarter to 2").time("13:45"),
        c("morning 10:30").time("10:30"),
        c("evening 5").time("17:00"),
        c("afternoon 2:15").time("14:15"),
        c("10 in the evening").time("22:00"),
        c("12:45 in the afternoon").time("12:45"),
        c("12am").time("00:00"),
        c("seven pm").time("19:00"),
        c("at one pm").time("13:00"),
        c("one in the afternoon").time("13:00"),
        c("around 4").time("16:00"),
        c("at 9am").time("09:00"),
        c("9 a.m.").time("09:00"),
        c("10 o'clock").time("10:00"),
        c("4 o\"clock in the afternoon").time("16:00"),
        c("at 10").time("10:00"),
        c("at 11:45 in the morning").time("11:45"),
        c("twelve pm").time("12:00"),
        c("five thirty pm").time("17:30"),
        c("tomorrow at 3").date("2026-11-26").time("15:00"),
        c("tomorrow afternoon at 3")
            .date("2026-11-26")
            .time("15:00"),
        c("17:15 on the 4th").date("2026-12-04").time("17:15"),
        // Bare numbers read as business-hour times when a time is expected.
        c("3").expecting(Slot::Time).time("15:00").first(Inform),
        c("9").expecting(Slot::Time).time("09:00"),
        c("11").expecting(Slot::Option).time("11:00"),
        c("3?").time("15:00"),
        c("maybe 4").expecting(Slot::Time).time("16:00"),
        c("12").expecting(Slot::Time).time("12:00"),
        // An hour and an acceptance: the hour, not the first of the offered times.
        c("1 is fine").expecting(Slot::Option).time("13:00"),
        c("4 works").expecting(Slot::Time).time("16:00"),
        // Corrections.
        c("3 not 2").time("15:00"),
        c("at 3, not 2").time("15:00"),
        c("Friday not Thursday").date("2026-11-27"),
        c("4pm instead of 2pm").time("16:00"),
        c("change it from 2 to 4")
            .expecting(Slot::Time)
            .time("16:00"),
        // Parts of day.
        c("tomorrow morning")
            .date("2026-11-26")
            .part(DayPart::Morning),
        c("friday afternoon")
            .date("2026-11-27")
            .part(DayPart::Afternoon),
        c("something in the evening").part(DayPart::Evening),
        c("after 2").part(DayPart::After(t("14:00"))),
        c("anytime after 2pm tomorrow")
            .date("2026-11-26")
            .part(DayPart::After(t("14:00"))),
        c("before noon").part(DayPart::Before(t("12:00"))),
        c("before 10am on monday")
            .date("2026-11-30")
            .part(DayPart::Before(t("10:00"))),
        // Numbers that are not times.
        c("is it $80?"),
        c("it costs $80 right"),
        c("a table for 2 people"),
        c("can I bring 2 people"),
        c("call me at 555-123-4567"),
        c("my number is 5551234567"),
        c("I have 3 kids"),
        c("it takes 45 minutes?"),
        c("I've been 2 times before"),
        c("room 12"),
        c("it was 1.50 dollars"),
        c("is it $4.30 or $5pm"),
        c("I had it done in the past 2 weeks"),
        c("Monday the 14th").date("2026-12-14"),
        c("25/12").date("2026-12-25"),
        c("wed at 10").date("2026-12-02").time("10:00"),
        c("can you do it for 4?").time("16:00"),
        c("for the fifth").date("2026-12-05"),
        c("next week on Monday").date("2026-11-30"),
        c("2 days from now").date("2026-11-27"),
        c("I don't want to make an appointment right now").first(Deny),
        c("She seems really nice.").first(Affirm),
        c("I'll pass for now.").first(Deny),
        c("Yes, that's all correct.").first(Affirm),
        c("Could you look for another one?").first(OtherOptions),
        c("Is this place unisex?").first(Question),
        c("Is there one on 1st Street?"),
        c("It's at 1234 Main St."),
        c("at 1630 tomorrow").date("2026-11-26").time("16:30"),
        c("I can't do Friday, how about Monday?").date("2026-11-30"),
        c("Find me a dentist in Berkeley, CA 94704."),
        c("Call me on 408-555-0199."),
        c("is it 50% off?"),
        c("give me 5 minutes"),
        c("Look for one located in Novato please"),
        c("that one sounds good").first(Affirm),
        // Acts.
        c("I'd like to book a cleaning")
            .first(Book)
            .service(Some("Cleaning")),
        c("can I make an appointment").first(Book),
        c("I need to reschedule my appointment").first(Reschedule),
        c("can I move my appointment to friday")
            .first(Inform)
            .has(Reschedule)
            .date("2026-11-27"),
        c("please cancel my appointment").first(Cancel),
        c("cancel my appointment tomorrow")
            .first(Cancel)
            .date("2026-11-26"),
        c("I want to talk to someone").first(Handover),
        c("can I speak with a real person").first(Handover),
        c("human please").first(Handover),
        c("can you refill my prescription").first(OutOfScope),
        c("hi").first(Greet),
        c("Hello there").first(Greet),
        c("good morning, do you have parking?")
            .first(Question)
            .has(Greet),
        c("bye").first(Goodbye),
        c("thanks!").first(Thanks),
        c("thank you so much").first(Thanks),
        c("yes").first(Affirm),
        c("yep").first(Affirm),
        c("sure").first(Affirm),
        c("sounds good").first(Affirm),
        c("that works").first(Affirm),
        c("perfect").first(Affirm),
        c("ok").first(Affirm),
        c("Yes, please book it").first(Affirm).has(Book),
        c("no").first(Deny),
        c("nope").first(Deny),
        c("No, that doesn't work for me").first(Deny),
        c("no thanks, bye").first(Deny).has(Goodbye),
        c("the second one").first(Choose).choice(Some(1)),
        c("first").first(Choose).choice(Some(0)),
        c("option 2").first(Choose).choice(Some(1)),
        c("I'll take the third option")
            .first(Choose)
            .choice(Some(2)),
        c("anything later?").first(OtherOptions),
        c("other times?").first(OtherOptions),
        c("something else").first(OtherOptions),
        c("do you have anything earlier").first(OtherOptions),
        c("None of those work").first(OtherOptions),
        c("maybe another time").first(Deny),
        c("where are you located?").first(Question),
        c("how much is whitening?")
            .first(Question)
            .service(Some("Whitening")),
        c("asdfgh qwerty").choice(None).name(None),
        c("").choice(None),
        // The example conversations of DIALOGS.md ("now" is Thursday 2026-03-05 10:00).
        c("Hi, can I book a cleaning tomorrow at 2pm? It's Maria Lopez.")
            .at(THURSDAY)
            .first(Inform)
            .has(Book)
            .date("2026-03-06")
            .time("14:00")
            .service(Some("Cleaning"))
            .name(Some("Maria Lopez")),
        c("yes please").at(THURSDAY).first(Affirm),
        c("I need an appointment").at(THURSDAY).first(Book),
        c("next Tuesday around 10")
            .at(THURSDAY)
            .date("2026-03-10")
            .time("10:00"),
        c("cleaning. my name is Sam Ortiz")
            .at(THURSDAY)
            .first(Inform)
            .service(Some("Cleaning"))
            .name(Some("Sam Ortiz")),
        c("actually make it 10:30")
            .at(THURSDAY)
            .first(Inform)
            .time("10:30"),
        c("Can I come in Monday at 9 for a consultation? Jo Park")
            .at(THURSDAY)
            .first(Inform)
            .has(Book)
            .date("2026-03-09")
            .time("09:00")
            .service(Some("Consultation"))
            .name(Some("Jo Park")),
        c("10").at(THURSDAY).expecting(Slot::Option).time("10:00"),
        c("10am").at(THURSDAY).expecting(Slot::Option).time("10:00"),
        c("what about Wednesday?").at(THURSDAY).date("2026-03-11"),
        c("I'd like a whitening on Friday")
            .at(THURSDAY)
            .first(Inform)
            .has(Book)
            .date("2026-03-06")
            .service(Some("Whitening")),
        c("do you have parking?").at(THURSDAY).first(Question),
        c("I need to move my appointment")
            .at(THURSDAY)
            .first(Reschedule),
        c("the cleaning, to next week same time")
            .at(THURSDAY)
            .service(Some("Cleaning")),
        c("cancel my appointment tomorrow")
            .at(THURSDAY)
            .first(Cancel)
            .date("2026-03-06"),
        c("can I talk to someone").at(THURSDAY).first(Handover),
        c("Friday afternoon?")
            .at("2026-03-11 10:00")
            .date("2026-03-13")
            .part(DayPart::Afternoon),
        c("book me for Thursday at 3")
            .at(THURSDAY)
            .first(Inform)
            .has(Book)
            .date("2026-03-12")
            .time("15:00"),
        // Names, emails, services.
        c("it's Maria Lopez")
            .first(Inform)
            .name(Some("Maria Lopez")),
        c("my name is Sam Ortiz").name(Some("Sam Ortiz")),
        c("my name is sam ortiz").name(Some("Sam Ortiz")),
        c("this is Jo Park").name(Some("Jo Park")),
        c("Jo Park")
            .expecting(Slot::Name)
            .name(Some("Jo Park"))
            .first(Inform),
        c("jo park").expecting(Slot::Name).name(Some("Jo Park")),
        c("it's fine").name(None).first(Affirm),
        c("I'm free tomorrow").name(None).date("2026-11-26"),
        c("sam.ortiz@example.com")
            .email("sam.ortiz@example.com")
            .first(Inform),
        c("my email is Sam@Example.org thanks").email("sam@example.org"),
        c("clean").service(Some("Cleaning")),
        c("teeth whitening on friday")
            .service(Some("Whitening"))
            .date("2026-11-27"),
        c("I want a CONSULTATION")
            .service(Some("Consultation"))
            .first(Book),
        c("a consult please").service(Some("Consultation")),
        c("how clean is the office").service(Some("Cleaning")),
        c("what are your prices").service(None).first(Question),
    ]
}

#[test]
fn the_table_reads_every_message_as_written() {
    let nlu = nlu();
    let table = cases();
    assert!(table.len() >= 150, "the table keeps at least 150 rows");
    let mut failures = Vec::new();
    for case in &table {
        let u = nlu.understand(case.text, &context(case.now, case.expecting));
        let mut wrong = Vec::new();
        let date = case
            .date
            .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let expected_date = date.flatten();
        if u.date != expected_date {
            wrong.push(format!("date {:?}, expected {:?}", u.date, case.date));
        }
        if u.time != case.time.map(t) {
            wrong.push(format!("time {:?}, expected {:?}", u.time, case.time));
        }
        if let Some(act) = case.first
            && u.primary() != Some(act)
        {
            wrong.push(format!("acts {:?}, expected {act:?} first", u.acts));
        }
        for act in &case.has {
            if !u.has(*act) {
                wrong.push(format!("acts {:?}, expected {act:?} among them", u.acts));
            }
        }
        if let Some(p) = case.part
            && u.day_part != p
        {
            wrong.push(format!("day part {:?}, expected {p:?}", u.day_part));
        }
        if let Some(s) = case.service
            && u.service.as_deref() != s
        {
            wrong.push(format!("service {:?}, expected {s:?}", u.service));
        }
        if let Some(n) = case.name
            && u.name.as_deref() != n
        {
            wrong.push(format!("name {:?}, expected {n:?}", u.name));
        }
        if let Some(e) = case.email
            && u.email.as_deref() != Some(e)
        {
            wrong.push(format!("email {:?}, expected {e:?}", u.email));
        }
        if let Some(n) = case.choice
            && u.choice != n
        {
            wrong.push(format!("choice {:?}, expected {n:?}", u.choice));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{:?} @ {}: {}",
                case.text,
                case.now,
                wrong.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows wrong:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn confidence_is_low_when_nothing_is_recognised() {
    let nlu = nlu();
    let ctx = context(WEDNESDAY, None);
    assert!(nlu.understand("asdf qwer zxcv", &ctx).confidence < 0.5);
    assert!(
        nlu.understand("book me in tomorrow at 3pm", &ctx)
            .confidence
            >= 0.8
    );
}

#[test]
fn never_panics_and_caps_work_on_any_input() {
    let nlu = nlu();
    let ctx = context(WEDNESDAY, Some(Slot::Time));
    // A deterministic pseudo-random byte soup, read lossily as text.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for len in [0usize, 1, 2, 3, 7, 31, 200, 3_000] {
        for _ in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = nlu.understand(&text, &ctx);
        }
    }
    let pieces = [
        "3",
        ":",
        "/",
        ".",
        "pm",
        " ",
        "the ",
        "1st",
        "of ",
        "next ",
        "month",
        "tomorrow",
        "é",
        "東京",
        "💥",
        "\u{0}",
        "half past ",
        "quarter to ",
        "$",
        "12/",
        "31",
        "99",
        "not ",
        "after ",
        "my name is ",
        "@",
        "İ",
        "ß",
        "\u{200d}",
        "option ",
        "#",
    ];
    for _ in 0..3_000 {
        let n = (next() % 12) as usize;
        let text: String = (0..n)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize])
            .collect();
        let _ = nlu.understand(&text, &ctx);
    }
    let huge = "tomorrow at 3pm ".repeat(200_000);
    let started = std::time::Instant::now();
    let u = nlu.understand(&huge, &ctx);
    assert_eq!(u.time, Some(t("15:00")));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "long input is cut short"
    );
    for odd in [
        "İİİİ 3pm",
        "ǅǅ tomorrow",
        "\u{1F600}12/3",
        "ﬀ 4.30",
        "1/0",
        "00/00",
        "99:99",
        "24:00",
        "0:00",
    ] {
        let _ = nlu.understand(odd, &ctx);
    }
}

#[test]
fn same_time_and_next_week_are_flagged_for_moving_a_booking() {
    let ctx = context("2026-03-05 10:00", Some(Slot::Booking));
    let u = nlu().understand("the cleaning, to next week same time", &ctx);
    assert!(u.same_time && u.next_week, "{u:?}");
    assert_eq!(u.date, None);
    let u = nlu().understand("next week on Monday", &ctx);
    assert!(!u.next_week, "a named day is a date, not a shift: {u:?}");
    let u = nlu().understand("sometime next weekend", &ctx);
    assert!(!u.next_week && !u.same_time, "{u:?}");
}

#[test]
fn asking_about_cancelling_is_a_question_and_a_correction_is_not_a_name() {
    let ctx = context("2026-03-05 10:00", Some(Slot::Name));
    for text in [
        "what is your cancellation policy?",
        "is there a cancellation fee?",
        "how late can I cancel?",
    ] {
        let u = nlu().understand(text, &ctx);
        assert!(!u.has(Act::Cancel), "{text}: {u:?}");
        assert_eq!(u.primary(), Some(Act::Question), "{text}: {u:?}");
    }
    assert_eq!(
        nlu()
            .understand("please cancel my appointment", &ctx)
            .primary(),
        Some(Act::Cancel)
    );
    let u = nlu().understand("actually make it 2pm", &ctx);
    assert_eq!(u.name, None, "{u:?}");
    assert_eq!(u.time, Some(t("14:00")));
    assert_eq!(
        nlu().understand("Jo Park", &ctx).name.as_deref(),
        Some("Jo Park")
    );
}

#[test]
fn can_i_book_is_a_booking_and_a_real_question_beside_it_still_counts() {
    let ctx = context("2026-03-05 10:00", None);
    let u = nlu().understand("can I book a cleaning next tuesday at 2pm?", &ctx);
    assert!(u.has(Act::Book) && !u.has(Act::Question), "{u:?}");
    let u = nlu().understand("can I book a cleaning, and do you have parking?", &ctx);
    assert!(u.has(Act::Book) && u.has(Act::Question), "{u:?}");
    let u = nlu().understand("can I park behind the building?", &ctx);
    assert!(u.has(Act::Question), "{u:?}");
}

/// Found by `fuzz/rule_nlu`: a message time in the first or last days chrono can represent
/// panicked ("`NaiveDate - Days` out of range" for "next monday"; `date_naive` itself when the
/// local time is outside the range). Such a time comes only from a provider's timestamp, but
/// `understand` promises never to panic.
#[test]
fn a_message_time_at_the_ends_of_the_calendar_does_not_panic() {
    let nlu = nlu();
    let zones = [
        chrono_tz::UTC,
        chrono_tz::America::New_York,
        chrono_tz::Asia::Tokyo,
        chrono_tz::Pacific::Kiritimati,
        chrono_tz::Pacific::Pago_Pago,
    ];
    let ends = [
        chrono::DateTime::<chrono::Utc>::MIN_UTC,
        chrono::DateTime::<chrono::Utc>::MAX_UTC,
    ];
    let texts = [
        "next monday",
        "tuesday this week",
        "sunday after next",
        "a week from next friday",
        "today at 3",
        "tomorrow",
        "in 99 weeks",
        "dec 31",
        "the 31st",
        "12/31",
        "31st of next month",
    ];
    for end in ends {
        for zone in zones {
            let ctx = NluContext {
                now: end.with_timezone(&zone),
                services: vec![],
                expecting: None,
                prompt: None,
                facts: Default::default(),
            };
            for text in texts {
                let u = nlu.understand(text, &ctx);
                if matches!(text, "tomorrow" | "next monday") {
                    assert!(u.date.is_some(), "{text} at {end} in {zone}: {u:?}");
                }
            }
        }
    }
}

#[test]
fn shifts_lean_and_earliest_are_read_relative_to_the_time_discussed() {
    use sara_actors::understanding::{Lean, Shift};
    let nlu = nlu();
    let ctx = context(WEDNESDAY, Some(Slot::Confirmation));
    let shift = |days, minutes| Some(Shift { days, minutes });
    let cases = [
        ("can we do an hour later", shift(0, 60)),
        ("push it back 30 minutes please", shift(0, 30)),
        ("could you bring it forward by an hour", shift(0, -60)),
        ("half an hour earlier?", shift(0, -30)),
        ("a week later would be better", shift(7, 0)),
        ("same time but the following week", shift(7, 0)),
        ("the day after?", shift(1, 0)),
        ("2 days later", shift(2, 0)),
        ("the week after next", shift(14, 0)),
    ];
    for (text, expected) in cases {
        let u = nlu.understand(text, &ctx);
        assert_eq!(u.shift, expected, "{text}: {u:?}");
        assert_eq!(u.time, None, "{text}: the span is not a clock time");
        assert!(!u.unclear_when, "{text}: {u:?}");
    }
    // A week after a named day is that date, not a move.
    let u = nlu.understand("a week after tomorrow", &ctx);
    assert_eq!(u.shift, None);
    assert_eq!(
        u.date,
        Some(NaiveDate::from_ymd_opt(2026, 12, 3).expect("date"))
    );
    let u = nlu.understand("the day after tomorrow", &ctx);
    assert_eq!(u.shift, None);
    let later = nlu.understand("anything later?", &ctx);
    assert_eq!(later.lean, Some(Lean::Later));
    assert!(later.has(Act::OtherOptions));
    let earlier = nlu.understand("nothing earlier?", &ctx);
    assert_eq!(earlier.lean, Some(Lean::Earlier));
    for text in [
        "what's the earliest you have",
        "first available please",
        "asap",
    ] {
        assert!(nlu.understand(text, &ctx).earliest, "{text}");
    }
}

#[test]
fn a_time_the_grammar_cannot_read_is_not_guessed() {
    let nlu = nlu();
    let ctx = context(WEDNESDAY, Some(Slot::Confirmation));
    for text in [
        "at 3 or maybe 4",
        "monday or tuesday",
        "make it quarter to",
        "around 10 or half",
        "2 to 4 on friday",
    ] {
        let u = nlu.understand(text, &ctx);
        assert!(u.unclear_when, "{text}: {u:?}");
        assert!(u.confidence < 0.8, "{text}: {u:?}");
        assert_eq!(u.time, None, "{text}: {u:?}");
    }
    for text in [
        "tomorrow at 3pm",
        "friday at 10:30",
        "half past 2",
        "the second one",
    ] {
        let u = nlu.understand(text, &ctx);
        assert!(!u.unclear_when, "{text}: {u:?}");
    }
}

#[test]
fn booking_asks_and_names_are_not_questions_for_the_faq() {
    let nlu = nlu();
    let ctx = context(THURSDAY, None);
    for text in [
        "how about Monday?",
        "what about next tuesday",
        "any openings on Friday?",
        "do you have a consultation Wednesday?",
        "is 3pm on friday free?",
        "have you got anything tomorrow afternoon",
        "Can I come in Monday at 9 for a consultation? Jo Park",
        "this is Sam Park, i'd like a cleaning",
        "move my appointment please",
    ] {
        let u = nlu.understand(text, &ctx);
        assert!(!u.has(Act::Question), "{text}: {u:?}");
    }
    for text in [
        "do you have any parking?",
        "where do I park",
        "are you open on saturday?",
        "how much is a whitening",
        "what about parking?",
    ] {
        let u = nlu.understand(text, &ctx);
        assert!(u.has(Act::Question), "{text}: {u:?}");
    }
    let u = nlu.understand("any openings on Friday?", &ctx);
    assert!(u.has(Act::Book), "{u:?}");
}

#[test]
fn the_same_words_affirm_after_a_yes_no_question_and_thank_after_a_booking() {
    let nlu = nlu();
    let mut asked = context(THURSDAY, Some(Slot::Confirmation));
    asked.prompt = Some("Tuesday at 10:00 AM is free. Shall I book it?".into());
    let mut done = context(THURSDAY, None);
    done.prompt = Some("Done — you're booked for a cleaning on Tuesday at 10:00 AM.".into());
    for text in ["great, thanks", "Perfect, thank you!", "lovely thanks"] {
        assert_eq!(
            nlu.understand(text, &asked).primary(),
            Some(Act::Affirm),
            "{text}"
        );
        assert_eq!(
            nlu.understand(text, &done).primary(),
            Some(Act::Thanks),
            "{text}"
        );
    }
    // The prompt alone tells a yes/no question when the slot is not known.
    let mut prompt_only = context(THURSDAY, None);
    prompt_only.prompt = Some("Would you like me to book it?".into());
    assert_eq!(
        nlu.understand("great, thanks", &prompt_only).primary(),
        Some(Act::Affirm)
    );
}

#[test]
fn typos_in_service_names_and_loosely_given_names_are_read() {
    let nlu = nlu();
    let ctx = context(THURSDAY, None);
    for (text, service) in [
        ("can i get a cleening tomorrow", "Cleaning"),
        ("need a whitning on friday", "Whitening"),
        ("book a consulation monday", "Consultation"),
        ("teeth whitenning please", "Whitening"),
    ] {
        assert_eq!(
            nlu.understand(text, &ctx).service.as_deref(),
            Some(service),
            "{text}"
        );
    }
    for text in ["what does that meaning", "i'm cleaning up my calendar"] {
        let u = nlu.understand(text, &ctx);
        assert_ne!(u.service.as_deref(), Some("Whitening"), "{text}");
    }
    for (text, name) in [
        ("its jake ross", "Jake Ross"),
        ("im priya shah", "Priya Shah"),
        (
            "Cleaning on Friday at 10 please — Aiko Tanaka",
            "Aiko Tanaka",
        ),
        ("book me for tuesday at 2\nBen Okafor", "Ben Okafor"),
        // Loose positions, in any case: after "its" / "for" / a dash at the end of a
        // longer message, or behind a bare "name".
        (
            "hey i'd like a consultation on friday at 4pm, its jake ross",
            "Jake Ross",
        ),
        ("book a cleaning thursday at 1pm for Jin Park", "Jin Park"),
        ("10am friday cleaning for mark twain thx", "Mark Twain"),
        (
            "hi can i get a consulation on friday @ 11 - susan lee",
            "Susan Lee",
        ),
        (
            "wanna book a whitning thursday 1pm. name kate moss",
            "Kate Moss",
        ),
        (
            "consultation friday 16:30 please, name Ahmed Khan",
            "Ahmed Khan",
        ),
        ("book a cleaning tomorrow 3pm Amy Wu", "Amy Wu"),
        ("whitening monday 10:30 Tom Ellis", "Tom Ellis"),
    ] {
        assert_eq!(
            nlu.understand(text, &ctx).name.as_deref(),
            Some(name),
            "{text}"
        );
    }
    for text in [
        "its fine thanks",
        "its too late now",
        "im running late",
        "nvm, ill call later",
        "book a cleaning for next tuesday",
        "can i get a cleaning for my son",
        "whitening friday, see you then",
        "book it for a cleening",
        "cleaning at 3pm Next Tuesday",
        "whitening at 10am Friday Morning",
        "consultation 2pm Sounds Good",
    ] {
        assert_eq!(nlu.understand(text, &ctx).name, None, "{text}");
    }
    // "yes, and is there parking?" answers something else than the name asked for.
    let asked = context(THURSDAY, Some(Slot::Name));
    assert_eq!(
        nlu.understand("yes, and is there parking?", &asked).name,
        None
    );
    // "@ 11" is a time.
    let u = nlu.understand("consultation on friday @ 11", &ctx);
    assert_eq!(u.time, NaiveTime::from_hms_opt(11, 0, 0), "{u:?}");
}

#[test]
fn two_requests_in_one_message_are_read_in_order() {
    let nlu = nlu();
    let ctx = context(THURSDAY, None);
    let u = nlu.understand(
        "cancel Thursday's cleaning and book me a whitening Monday at 11 instead",
        &ctx,
    );
    assert_eq!(u.primary(), Some(Act::Cancel), "{u:?}");
    assert_eq!(u.service.as_deref(), Some("Cleaning"));
    assert_eq!(
        u.date,
        Some(NaiveDate::from_ymd_opt(2026, 3, 12).expect("date"))
    );
    let then = u.then.as_deref().expect("a second request");
    assert!(then.has(Act::Book), "{then:?}");
    assert_eq!(then.service.as_deref(), Some("Whitening"));
    assert_eq!(
        then.date,
        Some(NaiveDate::from_ymd_opt(2026, 3, 9).expect("date"))
    );
    assert_eq!(then.time, Some(t("11:00")));
    // One request with "and" in it stays one.
    for text in [
        "book a cleaning and a whitening on friday",
        "I'd like to book friday at 2 and my name is Sam Ortiz",
        "cancel my appointment and thanks",
    ] {
        assert!(nlu.understand(text, &ctx).then.is_none(), "{text}");
    }
}

#[test]
fn questions_keep_their_day_and_cancel_and_rebook_is_one_move() {
    let nlu = nlu();
    let ctx = context(THURSDAY, None);
    let u = nlu.understand("when do you close today?", &ctx);
    assert_eq!(u.primary(), Some(Act::Question), "{u:?}");
    assert_eq!(u.date, None, "the day is part of the question: {u:?}");
    let u = nlu.understand(
        "pls cancel my whitening and rebook it for next friday 3pm",
        &ctx,
    );
    assert!(u.has(Act::Reschedule) && !u.has(Act::Cancel), "{u:?}");
    assert_eq!(u.service.as_deref(), Some("Whitening"));
    assert_eq!(u.time, Some(t("15:00")));
    let mut option = context(THURSDAY, Some(Slot::Option));
    option.prompt = Some("I can do 9:30 AM, 10:00 AM or 11:15 AM. Which suits you?".into());
    assert_eq!(
        nlu.understand("the last one", &option).choice,
        Some(usize::MAX)
    );
    let u = nlu.understand("could I swap to the whitening instead", &ctx);
    assert!(!u.has(Act::Question), "{u:?}");
}

#[test]
fn a_name_spelled_letter_by_letter_is_the_word_it_spells() {
    let nlu = nlu();
    let asked = context(THURSDAY, Some(Slot::Name));
    for (text, name) in [
        ("my name is J A K E", "Jake"),
        ("J A K E, R O S S", "Jake Ross"),
        ("it's j a k e. r o s s", "Jake Ross"),
        ("sure, P R I Y A Shah", "Priya Shah"),
    ] {
        assert_eq!(
            nlu.understand(text, &asked).name.as_deref(),
            Some(name),
            "{text}"
        );
    }
    // Two letters are no spelling ("3 p m"), and nothing else is read as a name.
    let ctx = context(THURSDAY, None);
    let u = nlu.understand("a cleaning thursday at 3 p m", &ctx);
    assert_eq!(u.name, None);
}

#[test]
fn a_bare_name_is_the_name_while_a_request_still_lacks_one() {
    let nlu = nlu();
    // Sara asked for the time of a booking that has no name yet.
    let mut asked = context(THURSDAY, Some(Slot::Time));
    asked.facts.request = Some("book".into());
    for (text, name) in [
        ("Maya Chen", "Maya Chen"),
        ("maya chen", "Maya Chen"),
        ("Jo Park thx", "Jo Park"),
    ] {
        assert_eq!(
            nlu.understand(text, &asked).name.as_deref(),
            Some(name),
            "{text}"
        );
    }
    for text in [
        "sounds good",
        "Friday morning",
        "cleaning please",
        "half three",
        "not sure",
        "any time",
        "with Anna",
    ] {
        assert_eq!(nlu.understand(text, &asked).name, None, "{text}");
    }
    // Not while the request has a name already, nor with no request, nor for a yes/no.
    let mut named = asked.clone();
    named.facts.name = Some("Pat Lee".into());
    assert_eq!(nlu.understand("Maya Chen", &named).name, None);
    assert_eq!(
        nlu.understand("Maya Chen", &context(THURSDAY, None)).name,
        None
    );
    let mut confirming = context(THURSDAY, Some(Slot::Confirmation));
    confirming.facts.request = Some("book".into());
    assert_eq!(nlu.understand("Maya Chen", &confirming).name, None);
}

#[test]
fn cant_make_a_day_is_a_cancel_and_a_modal_shift_is_no_question() {
    let nlu = nlu();
    let ctx = context(THURSDAY, None);
    for text in [
        "something came up, can't make thursday anymore",
        "I won't make it tomorrow",
        "sorry, unable to make my appointment",
    ] {
        assert!(nlu.understand(text, &ctx).has(Act::Cancel), "{text}");
    }
    let u = nlu.understand("could i do it an hour later?", &ctx);
    assert!(!u.has(Act::Question), "{u:?}");
    assert!(u.shift.is_some(), "{u:?}");
    // A real question with "could I" stays one.
    let u = nlu.understand("could i park there on friday?", &ctx);
    assert!(u.has(Act::Question), "{u:?}");
}
