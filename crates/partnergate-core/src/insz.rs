//! The Belgian national register number (INSZ / NISS; rijksregisternummer and bis number).
//!
//! Layout: `YYMMDD SSS CC` — birth date, a serial (odd for men, even for women) and two check
//! digits `97 - (YYMMDDSSS mod 97)`. For people born from 2000 the check is computed over
//! `2YYMMDDSSS` instead. Bis numbers (for people not in the national register) add 20 (gender
//! unknown) or 40 (gender known) to the month; month and day may be `00` when the birth date is
//! unknown.
//!
//! An INSZ is personal data: [`Insz`] prints as `Insz(***)`, [`InszError`] never quotes the
//! input, and only [`Insz::as_str`] gives the digits to the code that seals or hashes them.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// The agreement field that holds the national register number.
pub const INSZ_FIELD: &str = "identity.insz";

/// Why a string is not a valid INSZ. Messages never contain the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InszError {
    /// Something other than digits, spaces, dots or dashes.
    #[error("INSZ may contain only digits, spaces, dots and dashes")]
    InvalidCharacter,
    /// Not exactly 11 digits.
    #[error("INSZ must have 11 digits")]
    WrongLength,
    /// The month or day part is out of range.
    #[error("INSZ birth date part is not valid")]
    InvalidDate,
    /// Neither the pre-2000 nor the 2000+ check matches.
    #[error("INSZ check digits do not match")]
    CheckDigits,
}

/// A validated INSZ, normalized to its 11 digits. Zeroized on drop; redacted in `Debug` and
/// `Display`.
#[derive(Clone, PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
pub struct Insz {
    digits: String,
    /// Whether the 2000+ check rule matched (so the birth year is 20YY, not 19YY).
    born_from_2000: bool,
}

/// The offset the 2000+ rule adds in front of the first nine digits.
const FROM_2000_PREFIX: u64 = 2_000_000_000;

fn check_digits(first_nine: u64, from_2000: bool) -> u64 {
    let n = if from_2000 {
        FROM_2000_PREFIX + first_nine
    } else {
        first_nine
    };
    97 - n % 97
}

impl Insz {
    /// Parses and validates an INSZ, accepting the usual separators
    /// (`"85.07.30-033.28"`, `"85073003328"`, `"850730 033 28"`).
    pub fn parse(input: &str) -> Result<Self, InszError> {
        let mut digits = String::with_capacity(11);
        for c in input.chars() {
            match c {
                '0'..='9' => {
                    if digits.len() == 11 {
                        // Too long; stop early rather than copying arbitrary input.
                        digits.zeroize();
                        return Err(InszError::WrongLength);
                    }
                    digits.push(c);
                }
                ' ' | '.' | '-' | '\t' => {}
                _ => {
                    digits.zeroize();
                    return Err(InszError::InvalidCharacter);
                }
            }
        }
        if digits.len() != 11 {
            digits.zeroize();
            return Err(InszError::WrongLength);
        }
        let b = digits.as_bytes();
        let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
        let (month, day) = (two(2), two(4));
        let month_ok = matches!(month, 0..=12 | 20..=32 | 40..=52);
        if !month_ok || day > 31 {
            digits.zeroize();
            return Err(InszError::InvalidDate);
        }
        // The nine digits fit easily in u64; parse cannot fail after the checks above.
        let first_nine: u64 = digits[..9].parse().unwrap_or(u64::MAX);
        let check: u64 = digits[9..].parse().unwrap_or(u64::MAX);
        // At most one rule can match (2_000_000_000 mod 97 = 68 != 0), so no ambiguity.
        let born_from_2000 = if check == check_digits(first_nine, false) {
            false
        } else if check == check_digits(first_nine, true) {
            true
        } else {
            digits.zeroize();
            return Err(InszError::CheckDigits);
        };
        Ok(Self {
            digits,
            born_from_2000,
        })
    }

    /// The normalized 11 digits. Only for sealing and keyed hashing; never log them.
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// Whether this is a bis number (month part + 20 or + 40).
    pub fn is_bis(&self) -> bool {
        self.raw_month() >= 20
    }

    /// Whether the check digits follow the rule for people born from 2000.
    pub fn born_from_2000(&self) -> bool {
        self.born_from_2000
    }

    /// The birth date encoded in the number, if it is complete and a real calendar date
    /// (bis numbers and some register numbers carry `00` for an unknown month or day).
    pub fn birth_date(&self) -> Option<time::Date> {
        let yy: i32 = self.digits[0..2].parse().ok()?;
        let day: u8 = self.digits[4..6].parse().ok()?;
        let month = time::Month::try_from(self.raw_month() % 20).ok()?;
        let year = if self.born_from_2000 { 2000 } else { 1900 } + yy;
        time::Date::from_calendar_date(year, month, day).ok()
    }

    fn raw_month(&self) -> u8 {
        self.digits[2..4].parse().unwrap_or(0)
    }

    /// A valid register number for synthetic data and tests: born on `birth`, with serial
    /// `serial` (odd = male, even = female).
    ///
    /// # Panics
    /// If `serial` is not in `1..=998` or the birth year is not in `1900..=2099`.
    pub fn synthetic(birth: time::Date, serial: u16) -> Self {
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
        let from_2000 = year >= 2000;
        let n: u64 = first_nine.parse().unwrap_or_default();
        let digits = format!("{first_nine}{:02}", check_digits(n, from_2000));
        Self {
            digits,
            born_from_2000: from_2000,
        }
    }
}

impl fmt::Debug for Insz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Insz(***)")
    }
}

impl fmt::Display for Insz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    // The expected check digits below were computed by hand, independently of the code:
    //   930518223 mod 97 = 36            -> 97 - 36 = 61  => 93051822361 (born 1993)
    //   2000125567 mod 97 = 20           -> 97 - 20 = 77  => 00012556777 (born 2000)
    //   2060315124 mod 97 = 10           -> 97 - 10 = 87  => 06031512487 (born 2006)
    //   850730033 mod 97 = 69            -> 97 - 69 = 28  => 85073003328 (born 1985)
    //   854520001 mod 97 = 53            -> 97 - 53 = 44  => 85452000144 (bis, +40)
    //   902610004 mod 97 = 75            -> 97 - 75 = 22  => 90261000422 (bis, +20)
    //   854000012 mod 97 = 81            -> 97 - 81 = 16  => 85400001216 (bis, date unknown)
    //   850101016 = 97 * 8763928         -> 97 - 0  = 97  => 85010101697
    //   2050101014 = 97 * 21135062       -> 97 - 0  = 97  => 05010101497 (born 2005)

    #[test]
    fn accepts_pre_2000_with_separators() {
        for s in [
            "93.05.18-223.61",
            "93051822361",
            "930518 223 61",
            " 93-05-18 223.61 ",
        ] {
            let i = Insz::parse(s).unwrap();
            assert_eq!(i.as_str(), "93051822361");
            assert!(!i.born_from_2000());
            assert!(!i.is_bis());
            assert_eq!(i.birth_date(), Some(date!(1993 - 05 - 18)));
        }
        let i = Insz::parse("85.07.30-033.28").unwrap();
        assert_eq!(i.birth_date(), Some(date!(1985 - 07 - 30)));
    }

    #[test]
    fn accepts_from_2000_rule() {
        let i = Insz::parse("00.01.25-567.77").unwrap();
        assert!(i.born_from_2000());
        assert_eq!(i.birth_date(), Some(date!(2000 - 01 - 25)));
        let i = Insz::parse("06031512487").unwrap();
        assert_eq!(i.birth_date(), Some(date!(2006 - 03 - 15)));
    }

    #[test]
    fn check_digit_97_is_valid() {
        assert!(Insz::parse("85010101697").is_ok());
        assert!(Insz::parse("05010101497").unwrap().born_from_2000());
        // "00" can never be a check value.
        assert_eq!(Insz::parse("85010101600"), Err(InszError::CheckDigits));
    }

    #[test]
    fn accepts_bis_numbers() {
        let i = Insz::parse("85.45.20-001.44").unwrap();
        assert!(i.is_bis());
        assert_eq!(i.birth_date(), Some(date!(1985 - 05 - 20)));
        let i = Insz::parse("90261000422").unwrap();
        assert!(i.is_bis());
        assert_eq!(i.birth_date(), Some(date!(1990 - 06 - 10)));
        let i = Insz::parse("85400001216").unwrap();
        assert!(i.is_bis());
        assert_eq!(i.birth_date(), None);
    }

    #[test]
    fn rejects_bad_check_digits() {
        // The well-known format example 85.07.30-033.61 does not carry valid check digits.
        assert_eq!(Insz::parse("85.07.30-033.61"), Err(InszError::CheckDigits));
        assert_eq!(Insz::parse("93051822362"), Err(InszError::CheckDigits));
        // The pre-2000 check used with a 2000+ number and vice versa stays wrong.
        assert_eq!(Insz::parse("00012556700"), Err(InszError::CheckDigits));
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(Insz::parse("9305182236"), Err(InszError::WrongLength));
        assert_eq!(Insz::parse("930518223611"), Err(InszError::WrongLength));
        assert_eq!(Insz::parse(""), Err(InszError::WrongLength));
        assert_eq!(Insz::parse("...--  "), Err(InszError::WrongLength));
        assert_eq!(
            Insz::parse(&"1".repeat(10_000)),
            Err(InszError::WrongLength)
        );
    }

    #[test]
    fn rejects_letters_and_other_characters() {
        assert_eq!(Insz::parse("9305182236A"), Err(InszError::InvalidCharacter));
        assert_eq!(
            Insz::parse("93/05/18 223 61"),
            Err(InszError::InvalidCharacter)
        );
        assert_eq!(Insz::parse("٩3051822361"), Err(InszError::InvalidCharacter));
        assert_eq!(
            Insz::parse("+93051822361"),
            Err(InszError::InvalidCharacter)
        );
    }

    #[test]
    fn rejects_impossible_month_or_day() {
        // Month 13, 33 and 61 and day 32 (check digits irrelevant: the date is checked first).
        assert_eq!(Insz::parse("93131822361"), Err(InszError::InvalidDate));
        assert_eq!(Insz::parse("93331822361"), Err(InszError::InvalidDate));
        assert_eq!(Insz::parse("90610004541"), Err(InszError::InvalidDate));
        assert_eq!(Insz::parse("93053222361"), Err(InszError::InvalidDate));
    }

    #[test]
    fn errors_and_debug_never_show_the_number() {
        for s in ["93051822362", "9305182236A", "930518223", "93131822361"] {
            let e = Insz::parse(s).unwrap_err();
            assert!(!e.to_string().contains("930518"), "{e}");
            assert!(!format!("{e:?}").contains("930518"));
        }
        let i = Insz::parse("93051822361").unwrap();
        assert_eq!(format!("{i:?}"), "Insz(***)");
        assert_eq!(format!("{i}"), "***");
    }

    #[test]
    fn synthetic_numbers_are_valid() {
        assert_eq!(
            Insz::synthetic(date!(1993 - 05 - 18), 223).as_str(),
            "93051822361"
        );
        assert_eq!(
            Insz::synthetic(date!(2000 - 01 - 25), 567).as_str(),
            "00012556777"
        );
        let mut d = date!(1960 - 01 - 01);
        let mut serial = 1u16;
        while d.year() < 2007 {
            let i = Insz::synthetic(d, serial);
            let parsed = Insz::parse(i.as_str()).unwrap();
            assert_eq!(parsed.birth_date(), Some(d));
            assert_eq!(parsed, i);
            d = d.next_day().unwrap();
            serial = serial % 998 + 1;
        }
    }
}
