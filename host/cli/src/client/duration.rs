//! Durations on the command line (`--timeout 30s`): one or more `<number><unit>` parts with the
//! units `ms`, `s`, `m` and `h`, as in `500ms`, `90s`, `5m` or `1h30m`. The workspace has no
//! humantime-style parser, and these four units are all a timeout needs.

use std::time::Duration;

/// `d` as it would be written on the command line, exactly: `1500ms`, `2s`, `5m`, `1m30s`,
/// `1h`, `3700s`.
pub fn exact(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (minutes, seconds) = (secs / 60, secs % 60);
    let (hours, minutes_left) = (minutes / 60, minutes % 60);
    match (millis, hours, seconds) {
        (1.., ..) => format!("{ms}ms"),
        (0, 1.., 1..) => format!("{secs}s"),
        (0, 1.., 0) if minutes_left == 0 => format!("{hours}h"),
        (0, 1.., 0) => format!("{hours}h{minutes_left}m"),
        (0, 0, _) if minutes == 0 => format!("{secs}s"),
        (0, 0, 0) => format!("{minutes}m"),
        (0, 0, _) => format!("{minutes}m{seconds}s"),
    }
}

/// Parses a duration such as `30s`, `5m`, `500ms` or `1m30s` (clap's `value_parser`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = |why: &str| format!("`{text}` is not a duration ({why}): write it like 30s, 5m, 500ms, 1h or 1m30s");
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    if text.contains(['.', ',']) {
        return Err(bad("whole numbers only: 1500ms, not 1.5s"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad("a number must come before each unit"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
        let part = match &rest[..unit_len] {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "" => return Err(bad("the unit is missing")),
            _ => return Err(bad("the units are ms, s, m and h")),
        };
        total = part.and_then(|p| total.checked_add(p)).ok_or_else(|| bad("it is too long"))?;
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(bad("it must be longer than 0"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_ms_s_m_h_and_combinations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 1m30s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2s500ms"), Ok(Duration::from_millis(2500)));
    }

    #[test]
    fn durations_are_shown_as_written() {
        for text in ["1500ms", "2s", "59s", "5m", "1m30s", "1h", "1h30m", "3700s"] {
            assert_eq!(exact(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn a_bad_duration_says_how_to_write_one() {
        for (text, why) in [
            ("30", "the unit is missing"),
            ("", "it is empty"),
            ("s", "a number must come before each unit"),
            ("5 minutes", "the unit is missing"),
            ("5min", "the units are ms, s, m and h"),
            ("1.5s", "whole numbers only: 1500ms, not 1.5s"),
            ("0s", "it must be longer than 0"),
            ("99999999999999999999s", "the number is too large"),
            ("18446744073709551615h", "it is too long"),
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.contains(why) && e.ends_with("write it like 30s, 5m, 500ms, 1h or 1m30s"), "{text}: {e}");
        }
    }
}
