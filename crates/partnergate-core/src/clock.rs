//! The gateway's one wall clock, which tests can move without sleeping.
//!
//! Every date and time the gateway keeps or decides by (record times, deadlines, membership,
//! retention) comes from [`now`] or [`today`]. In production that is the system clock. A test
//! that needs another day (a purge due next year, a deadline passed) starts the binary with
//! [`ENV`] set to the instant the clock should read at start; from there it runs at normal speed.
//! The setting is read once, before the first reading, and can never change afterwards: a
//! process has one consistent clock. It is logged as a warning, because a production gateway
//! never sets it.
//!
//! Certificates and revocation lists keep using the real time: TLS is not ours to fake.

use std::sync::OnceLock;

use time::{Date, Duration, OffsetDateTime};

/// The environment variable that starts the clock at another instant: an RFC 3339 time
/// (`2031-01-02T10:00:00Z`) or a date (`2031-01-02`, meaning midnight UTC). Tests only.
pub const ENV: &str = "PARTNERGATE_CLOCK";

/// How far the gateway's clock is ahead of (or behind) the system clock; fixed on first use.
static OFFSET: OnceLock<Duration> = OnceLock::new();

/// Why the clock setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// The value is neither an RFC 3339 time nor a date.
    #[error("{ENV} must be an RFC 3339 time (2031-01-02T10:00:00Z) or a date (2031-01-02)")]
    Unparsable,
    /// The clock was already read (or set): one process, one clock.
    #[error("the clock was already read or set; {ENV} is applied once, at start")]
    AlreadyFixed,
}

/// The current instant (UTC) by the gateway's clock.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc() + *OFFSET.get_or_init(Duration::default)
}

/// Today's date (UTC) by the gateway's clock.
pub fn today() -> Date {
    now().date()
}

/// Whether the clock was started at another instant than the system clock's.
pub fn is_shifted() -> bool {
    OFFSET.get().is_some_and(|o| !o.is_zero())
}

/// Parses a clock setting: an RFC 3339 time or a date (midnight UTC).
pub fn parse_start(text: &str) -> Result<OffsetDateTime, ClockError> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| ClockError::Unparsable)
}

/// Starts the clock at `at` (it then runs on at normal speed). Refused once anything has read
/// the clock, so no two parts of a process ever disagree about the time.
pub fn start_at(at: OffsetDateTime) -> Result<(), ClockError> {
    OFFSET
        .set(at - OffsetDateTime::now_utc())
        .map_err(|_| ClockError::AlreadyFixed)
}

/// Applies [`ENV`] if it is set, and returns the instant the clock was started at (for the
/// caller's warning). Call it first thing in `main`.
pub fn init_from_env() -> Result<Option<OffsetDateTime>, ClockError> {
    match std::env::var(ENV) {
        Ok(v) if !v.trim().is_empty() => {
            let at = parse_start(&v)?;
            start_at(at)?;
            Ok(Some(at))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_is_a_time_or_a_date_and_nothing_else() {
        assert_eq!(
            parse_start("2031-01-02").unwrap(),
            time::macros::datetime!(2031-01-02 00:00 UTC)
        );
        assert_eq!(
            parse_start("2031-01-02T10:00:00+01:00").unwrap(),
            time::macros::datetime!(2031-01-02 09:00 UTC)
        );
        assert!(parse_start("next tuesday").is_err());
        assert!(parse_start("2031-02-30").is_err());
    }

    #[test]
    fn the_clock_cannot_be_moved_once_read() {
        // Unit tests share the process: whatever test read the clock first fixed it.
        let _ = now();
        assert!(matches!(
            start_at(time::macros::datetime!(2040-01-01 00:00 UTC)),
            Err(ClockError::AlreadyFixed)
        ));
        assert!(!is_shifted());
    }
}
