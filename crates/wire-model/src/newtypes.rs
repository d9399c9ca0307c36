//! Domain newtypes that exist only valid: parsing is the only way in, so handlers never see a
//! negative fee, a `ftp://` callback URL or an over-long token.

use serde::{Deserialize, Deserializer, Serialize};

/// Why a value was refused; the text is the reference's wording where one exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

/// An amount in satoshis (never negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Satoshis(pub u64);

/// A fee rate: `satoshis` per `bytes` bytes (`bytes` > 0; 0 satoshis means free).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FeeAmount {
    satoshis: u64,
    bytes: u64,
}

impl FeeAmount {
    /// Validates a rate as the reference's admin API does.
    pub fn new(satoshis: i64, bytes: i64) -> Result<Self, ValidationError> {
        if satoshis < 0 {
            return Err(ValidationError("Satoshis must be non-negative.".into()));
        }
        if bytes <= 0 {
            return Err(ValidationError("Bytes must be a positive number.".into()));
        }
        Ok(Self { satoshis: satoshis as u64, bytes: bytes as u64 })
    }

    /// Satoshis per `bytes()`.
    pub fn satoshis(&self) -> u64 {
        self.satoshis
    }

    /// Bytes the rate is quoted for.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The fee for `size` bytes: `floor(size * satoshis / bytes)` in 128-bit arithmetic (no overflow).
    pub fn fee_for(&self, size: u64) -> u64 {
        let fee = u128::from(size) * u128::from(self.satoshis) / u128::from(self.bytes);
        u64::try_from(fee).unwrap_or(u64::MAX)
    }
}

impl<'de> Deserialize<'de> for FeeAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            satoshis: i64,
            bytes: i64,
        }
        let raw = Raw::deserialize(d)?;
        FeeAmount::new(raw.satoshis, raw.bytes).map_err(serde::de::Error::custom)
    }
}

/// A callback URL: absolute `http` or `https`, at most 1024 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CallbackUrl(String);

impl CallbackUrl {
    /// Parses with the reference's messages.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.len() > 1024 {
            return Err(ValidationError(format!("CallbackUrl: {s} is longer than 1024 characters")));
        }
        let url = url::Url::parse(s)
            .map_err(|_| ValidationError(format!("CallbackUrl: {s} should be a valid URL")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ValidationError(format!(
                "CallbackUrl: {s} uses invalid scheme. Supported schemes are: http,https"
            )));
        }
        if url.host_str().is_none() {
            return Err(ValidationError(format!("CallbackUrl: {s} should be a valid URL")));
        }
        Ok(Self(s.to_owned()))
    }

    /// The URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CallbackUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CallbackUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The token mAPI presents to a callback receiver (`Authorization` header), at most 256 characters.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CallbackToken(String);

impl std::fmt::Debug for CallbackToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackToken(<redacted>)")
    }
}

impl CallbackToken {
    /// Parses a token.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.len() > 256 {
            return Err(ValidationError("CallbackToken is longer than 256 characters".into()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The token text (to send to the receiver; never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CallbackToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CallbackToken::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `libsodium sealed_box <base64 public key>`: how callbacks to this receiver are encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CallbackEncryption(String);

impl CallbackEncryption {
    /// Parses with the reference's messages.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.len() > 1024 {
            return Err(ValidationError(
                "CallbackEncryption contains encryption token that is too long".into(),
            ));
        }
        let parts: Vec<&str> = s.split(' ').collect();
        match parts.as_slice() {
            ["libsodium", "sealed_box", key] if !key.is_empty() => Ok(Self(s.to_owned())),
            _ => Err(ValidationError("CallbackEncryption contains unsupported encryption type".into())),
        }
    }

    /// The base64 public key.
    pub fn key_base64(&self) -> &str {
        self.0.rsplit(' ').next().unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for CallbackEncryption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CallbackEncryption::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_amounts_are_validated_and_priced_by_floor() {
        assert!(FeeAmount::new(-1, 1000).is_err());
        assert!(FeeAmount::new(1, 0).is_err());
        let rate = FeeAmount::new(500, 1000).unwrap();
        assert_eq!(rate.fee_for(191), 95);
        assert_eq!(FeeAmount::new(0, 1).unwrap().fee_for(10_000), 0);
        assert_eq!(FeeAmount::new(i64::MAX, 1).unwrap().fee_for(u64::MAX), u64::MAX);
        assert!(serde_json::from_str::<FeeAmount>(r#"{"satoshis":1,"bytes":0}"#).is_err());
    }

    #[test]
    fn callback_fields_are_validated_with_the_references_messages() {
        CallbackUrl::parse("https://example.com/cb").unwrap();
        assert_eq!(
            CallbackUrl::parse("ftp://x").unwrap_err().0,
            "CallbackUrl: ftp://x uses invalid scheme. Supported schemes are: http,https"
        );
        assert_eq!(CallbackUrl::parse("nope").unwrap_err().0, "CallbackUrl: nope should be a valid URL");
        assert!(CallbackToken::parse(&"x".repeat(257)).is_err());
        assert!(!format!("{:?}", CallbackToken::parse("secret").unwrap()).contains("secret"));
        let e = CallbackEncryption::parse("libsodium sealed_box AAAA").unwrap();
        assert_eq!(e.key_base64(), "AAAA");
        assert!(CallbackEncryption::parse("rsa AAAA").is_err());
    }
}
