//! RFC 3339 timestamps as used in decision events: always UTC, millisecond
//! precision on output (`2026-05-01T12:00:00.123Z`); any offset and any number
//! of fractional digits on input.

use crate::Error;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_rfc3339_ms(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", secs / 3600, (secs / 60) % 60, secs % 60, ms_of_day % 1000)
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    let mut v = 0u32;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses an RFC 3339 date-time (`T` or space separator, `Z` or `±hh:mm`) to
/// Unix milliseconds. Fractions beyond milliseconds are truncated.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, Error> {
    parse(text.as_bytes()).ok_or_else(|| Error::InvalidTime(text.chars().take(64).collect()))
}

fn parse(s: &[u8]) -> Option<i64> {
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    let hour = digits(s, 11, 2)?;
    let minute = digits(s, 14, 2)?;
    let second = digits(s, 17, 2)?;
    if s.get(4) != Some(&b'-')
        || s.get(7) != Some(&b'-')
        || !matches!(s.get(10), Some(b'T' | b't' | b' '))
        || s.get(13) != Some(&b':')
        || s.get(16) != Some(&b':')
    {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month)
        || day == 0
        || day > month_days[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0i64;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while let Some(c) = s.get(at).filter(|c| c.is_ascii_digit()) {
            if at - start < 3 {
                millis = millis * 10 + i64::from(c - b'0');
            }
            at += 1;
        }
        let n = at - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min: i64 = match s.get(at)? {
        b'Z' | b'z' => {
            at += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let oh = digits(s, at + 1, 2)?;
            let om = digits(s, at + 4, 2)?;
            if s.get(at + 3) != Some(&b':') || oh > 23 || om > 59 {
                return None;
            }
            at += 6;
            let v = i64::from(oh * 60 + om);
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    if at != s.len() {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second.min(59)) - offset_min * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_ms(1_649_367_553_123), "2022-04-07T21:39:13.123Z");
        assert_eq!(format_rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0, 1, 999, 1_649_367_553_123, 4_102_444_800_000, 951_782_400_000] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Ok(ms));
        }
        assert_eq!(parse_rfc3339_ms("2022-04-07T23:39:13+02:00"), Ok(1_649_367_553_000));
        assert_eq!(parse_rfc3339_ms("2022-04-07T21:39:13.1234567Z"), Ok(1_649_367_553_123));
        assert_eq!(parse_rfc3339_ms("2022-04-07 21:39:13.5z"), Ok(1_649_367_553_500));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2022-04-07",
            "2022-04-07T21:39:13",
            "2022-02-30T00:00:00Z",
            "2022-13-01T00:00:00Z",
            "2022-04-07T24:00:00Z",
            "2022-04-07T21:39:13.Z",
            "2022-04-07T21:39:13Zjunk",
            "2022-04-07T21:39:13+0200",
            "２022-04-07T21:39:13Z",
        ] {
            assert!(parse_rfc3339_ms(bad).is_err(), "{bad}");
        }
    }
}
