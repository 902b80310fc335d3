//! `eventTime` parsing. CloudTrail writes `2024-05-01T12:34:56Z`; exports and other tools may
//! add fractional seconds or an offset. All become microseconds since the epoch, UTC.

use chrono::{DateTime, NaiveDate};

/// `0000-01-01T00:00:00Z` and `9999-12-31T23:59:59.999999Z`, in microseconds since the epoch.
const FIRST_MICROS: i64 = -62_167_219_200_000_000;
const LAST_MICROS: i64 = 253_402_300_799_999_999;

/// Parses an ISO-8601 / RFC 3339 time into microseconds since the Unix epoch (UTC).
pub fn parse_event_time(s: &str) -> Option<i64> {
    parse_fast(s.as_bytes()).or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros())
            // Four-digit years once in UTC, as CloudTrail writes them: an offset or a leap
            // second must not carry a time into a year that cannot be written back the same
            // way.
            .filter(|micros| (FIRST_MICROS..=LAST_MICROS).contains(micros))
    })
}

/// The common `YYYY-MM-DDTHH:MM:SSZ` form, without a general parser.
fn parse_fast(b: &[u8]) -> Option<i64> {
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let (h, m, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let time = date.and_hms_opt(h, m, s)?;
    Some(time.and_utc().timestamp_micros())
}

/// Formats microseconds since the epoch as CloudTrail does (`2024-05-01T12:34:56Z`), with
/// fractional seconds only when there are any.
pub fn format_event_time(micros: i64) -> String {
    // Out of chrono's range (only a value no parsed time gives): the number itself.
    let Some(t) = DateTime::from_timestamp_micros(micros) else {
        return micros.to_string();
    };
    if micros % 1_000_000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: an offset carried the last second of 9999 into the year 10000,
    /// which formats as `+10000-…` and does not parse back.
    #[test]
    fn times_outside_four_digit_years_are_refused() {
        assert_eq!(
            parse_event_time("9999-12-31T23:59:59.999999999-23:59"),
            None
        );
        assert_eq!(parse_event_time("0000-01-01T00:30:00+01:00"), None);
        assert_eq!(parse_event_time("9999-12-31T23:59:60Z"), None);
        assert_eq!(
            parse_event_time("0000-01-01T00:00:00Z"),
            Some(FIRST_MICROS),
            "the first time kept"
        );
        assert_eq!(
            parse_event_time("9999-12-31T23:59:59.999999Z"),
            Some(LAST_MICROS)
        );
        let last = parse_event_time("9999-12-31T23:59:59+00:00").unwrap();
        assert_eq!(parse_event_time(&format_event_time(last)), Some(last));
    }

    #[test]
    fn common_and_general_forms_agree() {
        let fast = parse_event_time("2023-07-10T11:42:09Z").unwrap();
        let general = DateTime::parse_from_rfc3339("2023-07-10T11:42:09+00:00")
            .unwrap()
            .timestamp_micros();
        assert_eq!(fast, general);
        assert_eq!(
            parse_event_time("2023-07-10T13:42:09.5+02:00").unwrap(),
            fast + 500_000
        );
        assert_eq!(format_event_time(fast), "2023-07-10T11:42:09Z");
        assert_eq!(format_event_time(fast + 5), "2023-07-10T11:42:09.000005Z");
        assert_eq!(format_event_time(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn nonsense_is_refused() {
        for s in [
            "",
            "2023-13-10T11:42:09Z",
            "2023-07-10 11:42:09",
            "2023-02-30T00:00:00Z",
            "yesterday",
        ] {
            assert_eq!(parse_event_time(s), None, "{s}");
        }
    }
}
