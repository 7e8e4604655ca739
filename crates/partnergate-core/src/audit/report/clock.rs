//! Europe/Brussels local time for the report, without a time-zone database: the EU summer-time
//! rule is fixed, and the report reads every record's time, so the conversion is a few integer
//! operations on the audit log's own time format.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
/// Seconds in a day; local times are counted in days and seconds of the day.
pub(super) const DAY: i64 = 86_400;

/// The Europe/Brussels offset from UTC at instant `at`: +02:00 (CEST) from 01:00 UTC on the last
/// Sunday of March until 01:00 UTC on the last Sunday of October, +01:00 (CET) otherwise.
pub fn brussels_offset(at: OffsetDateTime) -> UtcOffset {
    let utc = at.to_offset(UtcOffset::UTC);
    let hours = offset_hours(summer_time(utc.year()), utc.unix_timestamp());
    UtcOffset::from_hms(hours, 0, 0).expect("a whole-hour offset is valid")
}

/// Hours ahead of UTC at Unix time `utc`, given that year's summer-time bounds.
fn offset_hours((start, end): (i64, i64), utc: i64) -> i8 {
    if (start..end).contains(&utc) { 2 } else { 1 }
}

/// Unix times at which summer time starts and ends in `year` (EU rule: 01:00 UTC on the last
/// Sundays of March and October).
fn summer_time(year: i32) -> (i64, i64) {
    let last_sunday = |next_month: Month| {
        let first =
            Date::from_calendar_date(year, next_month, 1).expect("the first of a month exists");
        PrimitiveDateTime::new(
            first.prev_occurrence(Weekday::Sunday),
            Time::from_hms(1, 0, 0).expect("01:00"),
        )
        .assume_utc()
        .unix_timestamp()
    };
    (last_sunday(Month::April), last_sunday(Month::November))
}

/// Converts record times to Brussels local seconds, remembering one year's summer-time bounds.
pub(super) struct Clock {
    year: i32,
    summer: (i64, i64),
}

impl Clock {
    /// A clock; the first record's year replaces the placeholder bounds.
    pub(super) fn new() -> Self {
        Self {
            year: 1970,
            summer: summer_time(1970),
        }
    }

    /// A record time as (UTC, local Brussels) seconds since the Unix epoch of each clock.
    /// Windows are measured in UTC, so the October change of clocks does not stretch them.
    pub(super) fn times(&mut self, text: &str) -> Option<(i64, i64)> {
        let (year, utc) = parse_utc(text)?;
        if year != self.year {
            self.year = year;
            self.summer = summer_time(year);
        }
        Some((utc, utc + i64::from(offset_hours(self.summer, utc)) * 3600))
    }
}

/// Parses a record time to (UTC year, Unix seconds). The audit format
/// `YYYY-MM-DDTHH:MM:SS.mmmZ` is read directly; anything else goes through RFC 3339.
fn parse_utc(text: &str) -> Option<(i32, i64)> {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        let mut n = 0i64;
        for &c in b.get(from..to)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    };
    let fast = || -> Option<(i32, i64)> {
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        if *b.last()? != b'Z' {
            return None;
        }
        let year = i32::try_from(digits(0, 4)?).ok()?;
        let month = Month::try_from(u8::try_from(digits(5, 7)?).ok()?).ok()?;
        let day = u8::try_from(digits(8, 10)?).ok()?;
        let (h, m, s) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        let date = Date::from_calendar_date(year, month, day).ok()?;
        let days = i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY;
        Some((year, days * DAY + h * 3600 + m * 60 + s))
    };
    fast().or_else(|| {
        let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        let t = t.to_offset(UtcOffset::UTC);
        Some((t.year(), t.unix_timestamp()))
    })
}

/// The calendar date of a day number (days since 1970-01-01).
pub(super) fn date_of_day(day: i64) -> Option<Date> {
    Date::from_julian_day(i32::try_from(day + UNIX_EPOCH_JULIAN_DAY).ok()?).ok()
}

/// A day number as `YYYY-MM-DD`.
pub(super) fn fmt_day(day: i64) -> String {
    match date_of_day(day) {
        Some(d) => format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()),
        None => "?".into(),
    }
}

/// Local seconds → `YYYY-MM-DD HH:MM:SS`.
pub(super) fn fmt_local(ts: i64) -> String {
    let secs = ts.rem_euclid(DAY);
    format!(
        "{} {:02}:{:02}:{:02}",
        fmt_day(ts.div_euclid(DAY)),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_parse_agrees_with_rfc_3339() {
        for text in [
            "2025-03-30T00:59:59.000Z",
            "2025-03-30T01:00:00.000Z",
            "2025-10-26T00:59:59.999Z",
            "2025-10-26T01:00:00.000Z",
            "2024-02-29T23:59:59.000Z",
        ] {
            let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .unwrap();
            assert_eq!(
                parse_utc(text),
                Some((t.year(), t.unix_timestamp())),
                "{text}"
            );
        }
        assert_eq!(
            parse_utc("2025-06-01T12:00:00+02:00"),
            parse_utc("2025-06-01T10:00:00.000Z")
        );
        assert_eq!(parse_utc("not a time"), None);
    }

    #[test]
    fn the_clock_agrees_with_brussels_offset_across_the_changes() {
        let mut clock = Clock::new();
        for text in [
            "2025-03-30T00:59:59.000Z",
            "2025-03-30T01:00:00.000Z",
            "2025-10-26T00:59:59.000Z",
            "2025-10-26T01:00:00.000Z",
            "2026-01-01T00:00:00.000Z",
        ] {
            let (utc, local) = clock.times(text).unwrap();
            let at = OffsetDateTime::from_unix_timestamp(utc).unwrap();
            let offset = i64::from(brussels_offset(at).whole_hours());
            assert_eq!(local - utc, offset * 3600, "{text}");
        }
        assert_eq!(fmt_local(DAY + 3661), "1970-01-02 01:01:01");
    }
}
