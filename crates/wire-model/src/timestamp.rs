//! mAPI's timestamp format: UTC ISO-8601 with up to 7 fractional digits, trailing zeros trimmed,
//! `Z` suffix (`2022-11-04T10:45:29.4034819Z`), as the reference (.NET) writes it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant that serializes the way mAPI clients expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MapiTimestamp(pub OffsetDateTime);

impl MapiTimestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }
}

impl std::fmt::Display for MapiTimestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        // .NET ticks are 100 ns: 7 digits, trailing zeros trimmed.
        let ticks = t.nanosecond() / 100;
        if ticks > 0 {
            let digits = format!("{ticks:07}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl Serialize for MapiTimestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MapiTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OffsetDateTime::parse(&s, &Rfc3339).map(Self).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_like_the_reference() {
        let t = MapiTimestamp(datetime!(2022-11-04 10:45:29.4034819 UTC));
        assert_eq!(t.to_string(), "2022-11-04T10:45:29.4034819Z");
        let t = MapiTimestamp(datetime!(2022-11-04 10:45:29.5 UTC));
        assert_eq!(t.to_string(), "2022-11-04T10:45:29.5Z");
        let t = MapiTimestamp(datetime!(2022-11-04 10:45:29 UTC));
        assert_eq!(t.to_string(), "2022-11-04T10:45:29Z");
        let back: MapiTimestamp = serde_json::from_str("\"2022-11-04T10:45:29.4034819Z\"").unwrap();
        assert_eq!(back.to_string(), "2022-11-04T10:45:29.4034819Z");
    }
}
