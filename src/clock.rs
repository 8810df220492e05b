//! Wall-clock time as Unix milliseconds, and the one timestamp format Sluice writes.
//!
//! Everything stored or compared is an `i64` of milliseconds since the epoch; strings exist only
//! at the JSON boundary. We write `YYYY-MM-DDTHH:MM:SS.mmmZ` (what Segment writes) and read any
//! RFC 3339 timestamp, plus the common offset-less `YYYY-MM-DDTHH:MM:SS[.fff]` which we read as
//! UTC.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Format Unix milliseconds as `2026-11-25T16:11:39.123Z`.
pub fn format_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_ms(&mut out, ms);
    out
}

/// Append the formatted timestamp to `out`.
pub fn write_ms(out: &mut String, ms: i64) {
    let nanos = i128::from(ms) * 1_000_000;
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
}

/// Parse an ISO-8601 / RFC 3339 timestamp into Unix milliseconds.
pub fn parse_ms(s: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        // SDKs occasionally omit the offset; read those as UTC rather than dropping them.
        let looks_offsetless = s.len() >= 19 && !s.ends_with('Z') && !s[19..].contains(['+', '-']);
        if looks_offsetless {
            OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339).ok()
        } else {
            None
        }
    })?;
    Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_formats() {
        let cases = [
            (
                "2026-11-25T14:48:05.640+00:00",
                Some("2026-11-25T14:48:05.640Z"),
            ),
            ("2026-11-25T14:48:32.653Z", Some("2026-11-25T14:48:32.653Z")),
            (
                "2026-11-25T14:48:05.640281+00:00",
                Some("2026-11-25T14:48:05.640Z"),
            ),
            (
                "2026-11-25T16:48:05+02:00",
                Some("2026-11-25T14:48:05.000Z"),
            ),
            ("2026-11-25T14:48:05.5", Some("2026-11-25T14:48:05.500Z")),
            ("2026-11-25T14:48:05", Some("2026-11-25T14:48:05.000Z")),
            ("yesterday", None),
            ("", None),
            ("2026-13-45T99:00:00Z", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_ms(input).map(format_ms).as_deref(),
                expected,
                "{input}"
            );
        }
    }
}
