//! Integers in JSON bodies as JSON Schema counts them: `2.0` is the integer 2 (JSON Schema
//! 2020-12, "integer"), so a body the OpenAPI document calls valid is not refused as mistyped.
//! Fractions (`1.5`) and out-of-range numbers stay a 4xx.

use serde::Deserialize;
use serde::de::{Deserializer, Error, Unexpected};

/// A number without a fractional part, in `u8`'s range: for `#[serde(deserialize_with)]`.
pub fn u8<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(u64),
        Float(f64),
    }
    let expected = "an integer between 0 and 255";
    match Number::deserialize(d).map_err(|_| D::Error::custom(expected))? {
        Number::Int(n) => {
            u8::try_from(n).map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(n), &expected))
        }
        Number::Float(f) if f.fract() == 0.0 && (0.0..=255.0).contains(&f) => Ok(f as u8),
        Number::Float(f) => Err(D::Error::invalid_value(Unexpected::Float(f), &expected)),
    }
}
