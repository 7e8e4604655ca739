//! Synthetic national register numbers (INSZ) for invented participants.
//!
//! The gateway's `partnergate::vault::insz::Insz` is the one that validates; this only generates
//! (the same rule as its `Insz::synthetic`), so that the devtools need no normal dependency on the
//! gateway. The tests of [`crate::synthetic`] and [`crate::bench`] parse every generated number
//! with the gateway's `Insz` and check its birth date and gender.

use time::Date;

/// A valid register number born on `birth`, with serial `serial` (odd = male, even = female):
/// `YYMMDD SSS CC`, the check digits `97 - (YYMMDDSSS mod 97)`, computed over `2YYMMDDSSS` for
/// people born from 2000.
///
/// # Panics
/// If `serial` is not in `1..=998` or the birth year is not in `1900..=2099`.
pub(crate) fn synthetic_insz(birth: Date, serial: u16) -> String {
    assert!((1..=998).contains(&serial), "INSZ serial must be 1..=998");
    let year = birth.year();
    assert!(
        (1900..=2099).contains(&year),
        "INSZ birth year out of range"
    );
    let first_nine = format!(
        "{:02}{:02}{:02}{:03}",
        year % 100,
        u8::from(birth.month()),
        birth.day(),
        serial
    );
    let n: u64 = first_nine.parse().unwrap_or_default();
    let n = if year >= 2000 { 2_000_000_000 + n } else { n };
    format!("{first_nine}{:02}", 97 - n % 97)
}
