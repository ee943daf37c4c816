//! Integer fields of request bodies, read the way JSON Schema reads them.
//!
//! To JSON Schema `1000000.0` and `1e6` are integers (a number whose fraction is zero), so
//! the document's `"type": "integer"` admits them; serde alone would refuse them where it
//! expects a `u64`. Request fields typed as integers deserialize through these functions
//! (`#[serde(deserialize_with = "…")]`), so the server accepts exactly what the document
//! does: any JSON number that is a whole number in the field's range.

use serde::Deserializer;
use serde::de::{self, Visitor};

/// A `u64` written as any whole JSON number.
pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

/// An optional `u32` written as any whole JSON number, or `null`.
pub fn option_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    deserializer.deserialize_option(OptionalU32)
}

struct WholeNumber;

impl Visitor<'_> for WholeNumber {
    type Value = u64;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a whole number from 0 to 18446744073709551615")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<u64, E> {
        // 2^64 is exactly representable; every whole f64 below it converts without loss.
        let whole = value.is_finite() && value.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&value);
        if whole { Ok(value as u64) } else { Err(E::invalid_value(de::Unexpected::Float(value), &self)) }
    }
}

struct OptionalU32;

impl<'de> Visitor<'de> for OptionalU32 {
    type Value = Option<u32>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("null or a whole number from 0 to 4294967295")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u32>, D::Error> {
        let value = deserializer.deserialize_any(WholeNumber)?;
        u32::try_from(value).map(Some).map_err(|_| de::Error::invalid_value(de::Unexpected::Unsigned(value), &self))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::u64")]
        amount: u64,
        #[serde(default, deserialize_with = "super::option_u32")]
        ttl: Option<u32>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn whole_numbers_with_a_zero_fraction_are_integers() {
        let body = parse(r#"{"amount": 1000000.0, "ttl": 3.6e3}"#).unwrap();
        assert_eq!((body.amount, body.ttl), (1_000_000, Some(3600)));
        let body = parse(r#"{"amount": 5, "ttl": null}"#).unwrap();
        assert_eq!((body.amount, body.ttl), (5, None));
        assert_eq!(parse(r#"{"amount": 5}"#).unwrap().ttl, None);
    }

    #[test]
    fn fractions_negatives_and_out_of_range_numbers_are_refused() {
        for json in [
            r#"{"amount": 1.5}"#,
            r#"{"amount": -1}"#,
            r#"{"amount": -1.0}"#,
            r#"{"amount": 1e20}"#,
            r#"{"amount": "5"}"#,
            r#"{"amount": 1, "ttl": 4294967296}"#,
            r#"{"amount": 1, "ttl": 0.5}"#,
        ] {
            assert!(parse(json).is_err(), "{json} is refused");
        }
    }
}
