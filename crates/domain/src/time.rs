//! Timestamps as the API shows them: RFC 3339, UTC, milliseconds, `Z`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Formats `at` as `2026-12-03T15:56:44.921Z`.
pub fn format(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serializes a timestamp in the API's format (`#[serde(serialize_with)]`).
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(at))
}

/// Serializes an optional timestamp in the API's format, `null` when absent.
#[allow(clippy::ref_option)] // serde hands `serialize_with` a reference to the field.
pub fn serialize_option<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}
