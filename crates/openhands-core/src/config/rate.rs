//! Rate-limit settings: fixed windows (`10/s,100/min`), the per-user setting and what a
//! limiter does while its backend is down.
//!
//! They live apart from the rest of [`crate::config`] because both limiters (`oss.memory`
//! and `saas.redis_rate_limit`) and the docs share the grammar, and a grammar wants its own
//! tests.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// At most `limit` requests per `period`; the window starts with its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub limit: u32,
    pub period: Duration,
}

/// Period units, largest first: `(milliseconds, short name, singular word, accepted names)`.
const UNITS: &[(u64, &str, &str, &[&str])] = &[
    (86_400_000, "d", "day", &["d", "day", "days"]),
    (3_600_000, "h", "hour", &["h", "hr", "hour", "hours"]),
    (
        60_000,
        "min",
        "minute",
        &["m", "min", "mins", "minute", "minutes"],
    ),
    (
        1_000,
        "s",
        "second",
        &["s", "sec", "secs", "second", "seconds"],
    ),
    (
        1,
        "ms",
        "millisecond",
        &["ms", "millisecond", "milliseconds"],
    ),
];

impl RateWindow {
    /// `limit` requests per `period`.
    pub fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// The period as `(count, unit index)` in the largest unit that divides it.
    fn period_parts(&self) -> (u64, usize) {
        let ms = self.period.as_millis().min(u128::from(u64::MAX)) as u64;
        UNITS
            .iter()
            .enumerate()
            .find(|(_, (unit, ..))| ms.is_multiple_of(*unit) && ms >= *unit)
            .map(|(index, (unit, ..))| (ms / unit, index))
            .unwrap_or((ms, UNITS.len() - 1))
    }

    /// OpenHands' wording of a limit (the `limits` library's): `10 per 1 second`.
    pub fn describe(&self) -> String {
        let (count, unit) = self.period_parts();
        format!("{} per {count} {}", self.limit, UNITS[unit].2)
    }

    /// A short label of the period for keys and logs: `1s`, `60s` is written `1min`.
    pub fn period_label(&self) -> String {
        let (count, unit) = self.period_parts();
        format!("{count}{}", UNITS[unit].1)
    }
}

impl fmt::Display for RateWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (count, unit) = self.period_parts();
        if count == 1 {
            write!(f, "{}/{}", self.limit, UNITS[unit].1)
        } else {
            write!(f, "{}/{count}{}", self.limit, UNITS[unit].1)
        }
    }
}

/// Why a list of windows was refused; each message quotes the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateWindowsError {
    #[error("no window given; expected e.g. `10/s,100/min`")]
    Empty,
    #[error("`{0}`: expected `<requests>/<period>`, e.g. `10/s` or `100 per minute`")]
    Shape(String),
    #[error("`{0}`: the number of requests must be a whole number from 1 to 4294967295")]
    Limit(String),
    #[error(
        "`{0}`: unknown period; expected a unit (ms, s, min, h, d), optionally after a count, e.g. `10s`"
    )]
    Period(String),
    #[error("`{0}`: the period must be at least 1 ms and at most 365 days")]
    PeriodRange(String),
    #[error("two windows have the period `{0}`; give each period once")]
    Duplicate(String),
}

/// One or more windows that all apply: a request is served only while every window has room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindows(Vec<RateWindow>);

impl RateWindows {
    /// The windows, ordered by period (shortest first). Fails on an empty list or a period
    /// given twice (both would count in the same place).
    pub fn new(mut windows: Vec<RateWindow>) -> Result<Self, RateWindowsError> {
        if windows.is_empty() {
            return Err(RateWindowsError::Empty);
        }
        windows.sort_by_key(|w| w.period);
        if let Some(pair) = windows.windows(2).find(|p| p[0].period == p[1].period) {
            return Err(RateWindowsError::Duplicate(pair[0].period_label()));
        }
        Ok(Self(windows))
    }

    /// The windows, shortest period first.
    pub fn windows(&self) -> &[RateWindow] {
        &self.0
    }
}

impl fmt::Display for RateWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, window) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{window}")?;
        }
        Ok(())
    }
}

const MAX_PERIOD_MS: u64 = 365 * 86_400_000;

fn parse_window(item: &str) -> Result<RateWindow, RateWindowsError> {
    let (limit, period) = item
        .split_once('/')
        .or_else(|| item.split_once(" per "))
        .ok_or_else(|| RateWindowsError::Shape(item.to_owned()))?;
    let limit = limit
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| RateWindowsError::Limit(item.to_owned()))?;
    let period = period.trim();
    let digits = period.bytes().take_while(u8::is_ascii_digit).count();
    let (count, unit) = period.split_at(digits);
    let count = if count.is_empty() {
        1
    } else {
        count
            .parse::<u64>()
            .map_err(|_| RateWindowsError::PeriodRange(item.to_owned()))?
    };
    let unit = unit.trim().to_ascii_lowercase();
    let unit_ms = UNITS
        .iter()
        .find(|(.., names)| names.contains(&unit.as_str()))
        .map(|(ms, ..)| *ms)
        .ok_or_else(|| RateWindowsError::Period(item.to_owned()))?;
    let ms = count
        .checked_mul(unit_ms)
        .filter(|ms| (1..=MAX_PERIOD_MS).contains(ms))
        .ok_or_else(|| RateWindowsError::PeriodRange(item.to_owned()))?;
    Ok(RateWindow::new(limit, Duration::from_millis(ms)))
}

impl FromStr for RateWindows {
    type Err = RateWindowsError;

    /// Windows separated by `,` or `;`, each `<requests>/<period>` or `<requests> per
    /// <period>`; a period is an optional count and a unit: `10/s`, `100/min`,
    /// `5/10s`, `10 per second; 100 per minute` (OpenHands' form).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let windows = text
            .split([',', ';'])
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(parse_window)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(windows)
    }
}

/// The per-user limit: `auto`, `off` or windows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UserRateLimitSetting {
    /// OpenHands' SaaS limit (`10/s,100/min`) in SaaS mode, none in OSS mode (one user).
    #[default]
    Auto,
    Off,
    Windows(RateWindows),
}

impl UserRateLimitSetting {
    /// OpenHands' SaaS limit per user: 10 per second and 100 per minute.
    pub fn saas_default() -> RateWindows {
        RateWindows(vec![
            RateWindow::new(10, Duration::from_secs(1)),
            RateWindow::new(100, Duration::from_secs(60)),
        ])
    }

    /// The windows in force for a server whose config class has `app_mode`; `None` = off.
    pub fn effective(&self, app_mode: &str) -> Option<RateWindows> {
        match self {
            Self::Auto if app_mode == "saas" => Some(Self::saas_default()),
            Self::Auto | Self::Off => None,
            Self::Windows(windows) => Some(windows.clone()),
        }
    }
}

impl Serialize for UserRateLimitSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Off => s.serialize_str("off"),
            Self::Windows(windows) => s.collect_str(windows),
        }
    }
}

impl<'de> Deserialize<'de> for UserRateLimitSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expected = "expected `auto`, `off` or windows such as `10/s,100/min`";
        let text = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom(format!("not text; {expected}")))?;
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            _ => text
                .parse()
                .map(Self::Windows)
                .map_err(|e| serde::de::Error::custom(format!("{e} ({expected})"))),
        }
    }
}

/// What a limiter with an external backend (Redis) does while the backend does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitFailMode {
    /// Serve the request unlimited and log a warning (at most one line per interval).
    #[default]
    Open,
    /// Refuse the request with 503 and `Retry-After`.
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<RateWindows, RateWindowsError> {
        text.parse()
    }

    fn w(limit: u32, ms: u64) -> RateWindow {
        RateWindow::new(limit, Duration::from_millis(ms))
    }

    #[test]
    fn accepts_short_long_and_openhands_forms() {
        let expected = vec![w(10, 1_000), w(100, 60_000)];
        for text in [
            "10/s,100/min",
            "100/min, 10/s",
            "10/second; 100/minute",
            "10 per second;100 per 1 minute",
            "10/1s,100/60s",
            "10/S , 100/M",
        ] {
            assert_eq!(parse(text).expect(text).windows(), expected, "{text}");
        }
        assert_eq!(
            parse("5/10s,1000/h,9/250ms,50000/d")
                .expect("units")
                .windows(),
            [
                w(9, 250),
                w(5, 10_000),
                w(1000, 3_600_000),
                w(50000, 86_400_000)
            ]
        );
    }

    #[test]
    fn errors_quote_the_part_at_fault_and_say_what_was_expected() {
        let cases = [
            ("", "no window"),
            ("10", "`10`: expected `<requests>/<period>`"),
            ("ten/s", "`ten/s`: the number of requests"),
            ("0/s", "`0/s`: the number of requests"),
            ("10/fortnight", "`10/fortnight`: unknown period"),
            ("10/0s", "`10/0s`: the period must be at least 1 ms"),
            ("10/400d", "at most 365 days"),
            ("10/s,20/1000ms", "period `1s`"),
        ];
        for (text, message) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn describes_windows_as_openhands_does() {
        assert_eq!(w(10, 1_000).describe(), "10 per 1 second");
        assert_eq!(w(100, 60_000).describe(), "100 per 1 minute");
        assert_eq!(w(5, 7_200_000).describe(), "5 per 2 hour");
        assert_eq!(w(3, 1_500).describe(), "3 per 1500 millisecond");
        assert_eq!(w(100, 60_000).period_label(), "1min");
    }

    #[test]
    fn user_setting_auto_is_on_in_saas_mode_only() {
        let auto = UserRateLimitSetting::Auto;
        assert_eq!(
            auto.effective("saas"),
            Some(UserRateLimitSetting::saas_default())
        );
        assert_eq!(auto.effective("oss"), None);
        assert_eq!(UserRateLimitSetting::Off.effective("saas"), None);
        let own = UserRateLimitSetting::Windows(parse("2/s").expect("windows"));
        assert_eq!(
            own.effective("oss").map(|w| w.to_string()),
            Some("2/s".into())
        );
    }

    proptest! {
        #[test]
        fn display_parses_back_to_the_same_windows(
            items in proptest::collection::btree_map(1u64..=MAX_PERIOD_MS, 1u32.., 1..4)
        ) {
            let windows = RateWindows::new(
                items.iter().map(|(ms, limit)| w(*limit, *ms)).collect(),
            ).expect("distinct periods");
            prop_assert_eq!(parse(&windows.to_string()).expect("round trip"), windows);
        }

        #[test]
        fn any_text_parses_or_fails_without_panicking(text in ".{0,40}") {
            let _ = parse(&text);
        }
    }
}
