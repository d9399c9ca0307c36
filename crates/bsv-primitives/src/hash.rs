//! 32-byte hash newtypes (`Txid`, `BlockHash`) and double SHA-256.
//!
//! Bitcoin hashes are stored and hashed in *internal* byte order but shown to people and APIs in
//! *display* order (reversed). Keeping both orders behind one type makes it impossible to mix them
//! up: the bytes are always internal order, `Display`/`FromStr`/serde always use display order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Double SHA-256 (`SHA256(SHA256(data))`), the hash behind txids, block hashes and Merkle nodes.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// Hashes the 64-byte concatenation of two Merkle nodes without allocating.
pub fn merkle_parent(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(left);
    hasher.update(right);
    Sha256::digest(hasher.finalize()).into()
}

/// Why a display-order hash string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// The string is not 64 characters long.
    #[error("a hash must be 64 hex characters, got {0}")]
    Length(usize),
    /// The string holds a character that is not hex.
    #[error("a hash must be hex")]
    NotHex,
}

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps bytes that are already in internal (hashing) order.
            pub const fn from_internal(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// Bytes in internal (hashing) order, as stored on the wire and in databases.
            pub const fn internal(&self) -> &[u8; 32] {
                &self.0
            }

            /// Bytes in display order (reversed), as the node prints them.
            pub fn display_bytes(&self) -> [u8; 32] {
                let mut out = self.0;
                out.reverse();
                out
            }

            /// Builds the hash from display-order bytes (a ZMQ `hashblock` body, for example).
            pub fn from_display_bytes(bytes: [u8; 32]) -> Self {
                let mut out = bytes;
                out.reverse();
                Self(out)
            }

            /// Builds the hash from a slice in internal order; `None` unless it is 32 bytes.
            pub fn from_internal_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 32]>::try_from(bytes).ok().map(Self)
            }
        }

        impl FromStr for $name {
            type Err = HashParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 64 {
                    return Err(HashParseError::Length(s.len()));
                }
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s, &mut bytes).map_err(|_| HashParseError::NotHex)?;
                Ok(Self::from_display_bytes(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 64];
                // Encoding 32 bytes into 64 always fits.
                if hex::encode_to_slice(self.display_bytes(), &mut buf).is_err() {
                    return Err(fmt::Error);
                }
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl From<chain_gang::util::Hash256> for $name {
            fn from(h: chain_gang::util::Hash256) -> Self {
                Self(h.0)
            }
        }

        impl From<$name> for chain_gang::util::Hash256 {
            fn from(h: $name) -> Self {
                chain_gang::util::Hash256(h.0)
            }
        }
    };
}

hash_newtype!(
    /// A transaction id: double SHA-256 of the serialized transaction.
    Txid
);
hash_newtype!(
    /// A block hash: double SHA-256 of the 80-byte block header.
    BlockHash
);

/// A `Read` adapter that feeds every byte it passes through into SHA-256, so a transaction's id is
/// computed in the same pass that parses it (no re-serialization, no second copy).
#[derive(Debug)]
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: std::io::Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Returns the double SHA-256 of everything read and resets the hasher for the next item.
    pub(crate) fn take_sha256d(&mut self) -> [u8; 32] {
        let first = std::mem::take(&mut self.hasher).finalize();
        self.bytes = 0;
        Sha256::digest(first).into()
    }

    pub(crate) fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_order_round_trips_and_reverses_bytes() {
        let s = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";
        let txid: Txid = s.parse().unwrap();
        assert_eq!(txid.to_string(), s);
        assert_eq!(txid.internal()[0], 0x3b);
        assert_eq!(serde_json::to_string(&txid).unwrap(), format!("\"{s}\""));
        let back: Txid = serde_json::from_str(&format!("\"{s}\"")).unwrap();
        assert_eq!(back, txid);
    }

    #[test]
    fn bad_hash_strings_are_refused() {
        assert_eq!("ab".parse::<Txid>(), Err(HashParseError::Length(2)));
        assert_eq!("zz".repeat(32).parse::<BlockHash>(), Err(HashParseError::NotHex));
    }

    #[test]
    fn hashing_reader_matches_sha256d() {
        use std::io::Read;
        let data = b"hello world".to_vec();
        let mut r = HashingReader::new(&data[..]);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        assert_eq!(r.bytes_read(), 11);
        assert_eq!(r.take_sha256d(), sha256d(&data));
    }
}
