//! secp256k1 keys: WIF private keys (the miner's signing key) and public keys in SEC1 form.

use std::fmt;

use k256::ecdsa::{SigningKey, VerifyingKey};

/// Why a key could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The WIF string is not valid Base58Check or has the wrong length or prefix.
    #[error("invalid WIF private key")]
    BadWif,
    /// The public key is not a valid compressed or uncompressed SEC1 point.
    #[error("invalid public key")]
    BadPublicKey,
}

/// Which network a WIF key was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyNetwork {
    /// Main network (prefix `0x80`).
    Mainnet,
    /// Test networks, including regtest (prefix `0xef`).
    Testnet,
}

/// A private key. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct PrivateKey {
    key: SigningKey,
    network: KeyNetwork,
}

impl PrivateKey {
    /// Decodes a WIF string (compressed or uncompressed, any network), as `WIF_PRIVATEKEY` holds it.
    pub fn from_wif(wif: &str) -> Result<Self, KeyError> {
        let (network, key) = chain_gang::wallet::wallet::wif_to_network_and_private_key(wif.trim())
            .map_err(|_| KeyError::BadWif)?;
        let network = match network {
            chain_gang::network::Network::BSV_Mainnet
            | chain_gang::network::Network::BCH_Mainnet
            | chain_gang::network::Network::BTC_Mainnet => KeyNetwork::Mainnet,
            _ => KeyNetwork::Testnet,
        };
        Ok(Self { key, network })
    }

    /// Wraps a raw 32-byte secret (tests and tools).
    pub fn from_bytes(secret: &[u8; 32], network: KeyNetwork) -> Result<Self, KeyError> {
        let key = SigningKey::from_slice(secret).map_err(|_| KeyError::BadWif)?;
        Ok(Self { key, network })
    }

    /// The network the key was encoded for.
    pub fn network(&self) -> KeyNetwork {
        self.network
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.key.verifying_key())
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public_key", &self.public_key().to_hex())
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// A secp256k1 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses a compressed (33 bytes, `02`/`03`) or uncompressed (65 bytes, `04`) SEC1 key on the
    /// curve. Nothing else is a key here: not the other encodings SEC1 libraries take (compact
    /// `05`, hybrid `06`/`07`, the identity `00`), which Bitcoin software does not use.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        match (bytes.first(), bytes.len()) {
            (Some(0x02 | 0x03), 33) | (Some(0x04), 65) => {}
            _ => return Err(KeyError::BadPublicKey),
        }
        VerifyingKey::from_sec1_bytes(bytes).map(Self).map_err(|_| KeyError::BadPublicKey)
    }

    /// Parses a hex-encoded SEC1 key.
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let raw = hex::decode(s).map_err(|_| KeyError::BadPublicKey)?;
        Self::from_sec1(&raw)
    }

    /// The compressed SEC1 encoding (33 bytes), which mAPI publishes as `minerId` / `publicKey`.
    pub fn to_compressed(&self) -> [u8; 33] {
        let point = self.0.to_sec1_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// The uncompressed SEC1 encoding (65 bytes).
    pub fn to_uncompressed(&self) -> [u8; 65] {
        let point = self.0.to_sec1_point(false);
        let mut out = [0u8; 65];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// The compressed key as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_compressed())
    }

    /// The underlying `k256` key, for verifying other signature schemes (signed messages).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wif_decodes_to_the_known_public_key() {
        // Private key 1 (compressed, mainnet): its public key is the generator point G.
        let key = PrivateKey::from_wif("KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn").unwrap();
        assert_eq!(key.network(), KeyNetwork::Mainnet);
        assert_eq!(
            key.public_key().to_hex(),
            "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        );
        assert!(!format!("{key:?}").contains("KwDiBf89"));
    }

    #[test]
    fn bad_wif_and_bad_public_keys_are_refused() {
        assert_eq!(PrivateKey::from_wif("not a key").unwrap_err(), KeyError::BadWif);
        assert_eq!(PublicKey::from_hex("02abcd").unwrap_err(), KeyError::BadPublicKey);
        let g = PublicKey::from_hex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .unwrap();
        assert_eq!(PublicKey::from_sec1(&g.to_uncompressed()).unwrap(), g);
    }

    #[test]
    fn only_compressed_and_uncompressed_encodings_on_the_curve_are_keys() {
        let g = PublicKey::from_hex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .unwrap();
        let compressed = g.to_compressed();
        let uncompressed = g.to_uncompressed();
        // Compact (05 + x), hybrid (06/07 + x + y), identity, wrong lengths.
        let mut compact = compressed.to_vec();
        compact[0] = 0x05;
        let mut hybrid = uncompressed.to_vec();
        hybrid[0] = 0x06;
        let mut hybrid_odd = uncompressed.to_vec();
        hybrid_odd[0] = 0x07;
        let mut off_curve = uncompressed.to_vec();
        off_curve[64] ^= 1;
        for bad in [
            compact,
            hybrid,
            hybrid_odd,
            vec![0x00],
            off_curve,
            compressed[..32].to_vec(),
            uncompressed[..64].to_vec(),
        ] {
            assert_eq!(PublicKey::from_sec1(&bad), Err(KeyError::BadPublicKey), "{}", hex::encode(&bad));
        }
        let mut long = compressed.to_vec();
        long.push(0);
        assert_eq!(PublicKey::from_sec1(&long), Err(KeyError::BadPublicKey));
    }
}
