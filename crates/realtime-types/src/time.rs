//! Timestamps as the wire carries them: RFC 3339 in UTC, with as many fractional digits as
//! the instant needs (0, 3, 6 or 9), exactly as chrono's own `Serialize` writes them.
//!
//! chrono hands serde its text a character at a time (`collect_str`), which serde_json
//! escapes call by call: a published message's three timestamps were 4% of the REST
//! publish's CPU. Timestamp fields serialize through [`rfc3339`] instead
//! (`#[serde(serialize_with = "…")]`): the text is written once, then copied. Reading
//! them stays chrono's.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// A timestamp as RFC 3339 text.
pub fn rfc3339<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// An optional timestamp as RFC 3339 text, or `null`.
pub fn option_rfc3339<S: Serializer>(time: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => rfc3339(time, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Stamped {
        #[serde(serialize_with = "rfc3339")]
        at: DateTime<Utc>,
    }

    #[test]
    fn timestamps_read_as_chrono_writes_them_at_every_precision() {
        let second = Utc.with_ymd_and_hms(2026, 11, 22, 12, 1, 0).unwrap();
        for nanos in [0, 120_000_000, 123_456_000, 123_456_789] {
            let at = second + chrono::Duration::nanoseconds(nanos);
            let ours = serde_json::to_string(&Stamped { at }).unwrap();
            let chronos = format!("{{\"at\":{}}}", serde_json::to_string(&at).unwrap());
            assert_eq!(ours, chronos, "at {nanos} ns past the second");
        }
    }
}
