//! Packet time and its RFC 3339 spelling: shared by every stage, depends on none.

use serde::Serialize;

/// Packet time: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; RFC3339_MAX];
        match rfc3339_in(*self, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&rfc3339(*self)),
        }
    }
}

/// RFC 3339 UTC time with microseconds (nanoseconds when the capture has them).
pub fn rfc3339(ts: Timestamp) -> String {
    let mut buf = [0; RFC3339_MAX];
    if let Some(text) = rfc3339_in(ts, &mut buf) {
        return text.to_string();
    }
    let days = ts.secs.div_euclid(86_400);
    let rem = ts.secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    if ts.nanos.is_multiple_of(1000) {
        format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z",
            ts.nanos / 1000
        )
    } else {
        format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:09}Z",
            ts.nanos
        )
    }
}

/// Longest text [`rfc3339_in`] writes: `YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ`.
pub const RFC3339_MAX: usize = 30;

/// [`rfc3339`] written into `buf` without allocating, for years 0 to 9999
/// (`None` for any other: [`rfc3339`] writes those). Every record carries two
/// of these.
pub fn rfc3339_in(ts: Timestamp, buf: &mut [u8; RFC3339_MAX]) -> Option<&str> {
    let days = ts.secs.div_euclid(86_400);
    let rem = ts.secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) || ts.nanos >= 1_000_000_000 {
        return None;
    }
    let (frac, width) = if ts.nanos.is_multiple_of(1000) {
        (ts.nanos / 1000, 6)
    } else {
        (ts.nanos, 9)
    };
    let fields: [(u64, usize, u8); 7] = [
        (y as u64, 4, b'-'),
        (u64::from(m), 2, b'-'),
        (u64::from(d), 2, b'T'),
        ((rem / 3600) as u64, 2, b':'),
        ((rem % 3600 / 60) as u64, 2, b':'),
        ((rem % 60) as u64, 2, b'.'),
        (u64::from(frac), width, b'Z'),
    ];
    let mut at = 0;
    for (value, width, sep) in fields {
        let mut v = value;
        for slot in buf.get_mut(at..at + width)?.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        *buf.get_mut(at + width)? = sep;
        at += width + 1;
    }
    std::str::from_utf8(buf.get(..at)?).ok()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        let t = |secs, nanos| rfc3339(Timestamp { secs, nanos });
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2026-11-27T10:00:01.123456Z, checked with `date -u -d @1795773601`
        assert_eq!(t(1_795_773_601, 123_456_000), "2026-11-27T10:00:01.123456Z");
        assert_eq!(t(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(t(-1, 0), "1969-12-31T23:59:59.000000Z");
        // Outside years 0 to 9999, the formatted path: the sign and all digits.
        assert_eq!(t(-62_167_219_201, 0), "-001-12-31T23:59:59.000000Z");
        assert_eq!(t(253_402_300_800, 5_000), "10000-01-01T00:00:00.000005Z");
    }

    /// The written path and the formatted one agree wherever both apply.
    #[test]
    fn rfc3339_in_matches_format() {
        let mut buf = [0; RFC3339_MAX];
        for secs in [
            0,
            1,
            59,
            86_399,
            951_782_400,
            1_795_773_601,
            253_402_300_799,
        ] {
            for nanos in [0, 1, 999, 1000, 123_456_000, 999_999_999] {
                let ts = Timestamp { secs, nanos };
                let days = secs.div_euclid(86_400);
                let rem = secs.rem_euclid(86_400);
                let (y, m, d) = civil_from_days(days);
                let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
                let want = if nanos % 1000 == 0 {
                    format!(
                        "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z",
                        nanos / 1000
                    )
                } else {
                    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z")
                };
                assert_eq!(
                    rfc3339_in(ts, &mut buf),
                    Some(want.as_str()),
                    "{secs} {nanos}"
                );
            }
        }
    }
}
