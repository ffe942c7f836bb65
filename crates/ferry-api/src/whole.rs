//! Whole numbers in request bodies however JSON writes them: `280` or
//! `280.0`. JSON Schema, and so the OpenAPI document and every tool that
//! builds requests from it, counts `280.0` as an integer; serde's `u64`
//! does not, so without this a request the document allows is refused.
//! A fraction, a negative number or one past 2^53 (where a float stops
//! being exact) is still refused, with a sentence.

use serde::de::{self, Deserializer, Visitor};

/// The largest whole number a JSON float holds exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

struct Whole;

impl Visitor<'_> for Whole {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a whole number, 0 or more")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("{v} is negative; give a whole number, 0 or more")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.is_finite() && v.fract() == 0.0 && (0.0..=EXACT).contains(&v) {
            // Checked above: whole, not negative, exactly representable.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(v as u64)
        } else {
            Err(E::custom(format!(
                "{v} is not a whole number of at most 2^53; give one without a fraction"
            )))
        }
    }
}

/// For a `u64` field: `#[serde(deserialize_with = "crate::whole::u64")]`.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Whole)
}

/// For an `Option<u64>` field (with `#[serde(default)]`): `null` is none.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Maybe;
    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number, 0 or more, or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
            u64(d).map(Some)
        }
    }
    d.deserialize_option(Maybe)
}
