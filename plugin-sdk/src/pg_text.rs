//! Dates and times as PostgreSQL prints them (`DateStyle=ISO`, `TimeZone=UTC`), from the
//! integers [`Value`](crate::Value) carries: days and microseconds since 1970-01-01. Infinities
//! (the integer type's extremes) print as `infinity` / `-infinity`.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `date`: `2016-11-04`.
pub fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        d => {
            let (y, m, d) = civil_from_days(i64::from(d));
            format!("{y:04}-{m:02}-{d:02}")
        }
    }
}

/// A `time`: `13:51:30.123456`, fraction digits without trailing zeros.
pub fn time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let f = format!(".{frac:06}");
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// A `timestamp` (`zone` empty) or `timestamptz` (`zone` `+00`): `2016-11-04 13:51:30.5+00`.
pub fn timestamp(us: i64, zone: &str) -> String {
    match us {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        us => {
            let (y, m, d) = civil_from_days(us.div_euclid(86_400_000_000));
            format!(
                "{y:04}-{m:02}-{d:02} {}{zone}",
                time(us.rem_euclid(86_400_000_000))
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_postgresql() {
        assert_eq!(date(17109), "2016-11-04");
        assert_eq!(days_from_civil(2016, 11, 4), 17109);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(time(49_890_123_456), "13:51:30.123456");
        assert_eq!(time(49_890_500_000), "13:51:30.5");
        assert_eq!(
            timestamp(1_478_267_490_123_456, "+00"),
            "2016-11-04 13:51:30.123456+00"
        );
        assert_eq!(timestamp(i64::MAX, ""), "infinity");
        assert_eq!(date(i32::MIN), "-infinity");
    }
}
