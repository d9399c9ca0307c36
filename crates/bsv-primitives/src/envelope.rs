//! The mAPI signed JSON envelope (BRFC 298e080a4598): a payload string plus a DER ECDSA secp256k1
//! signature over the *single* SHA-256 of the payload's UTF-8 bytes and the signer's compressed
//! public key, so a client can prove which miner said what.

use k256::ecdsa::Signature;
use k256::ecdsa::signature::{Signer, Verifier};
use serde::{Deserialize, Serialize};

use crate::keys::{PrivateKey, PublicKey};

/// Encoding name the reference writes for signed envelopes.
pub const ENCODING_UTF8: &str = "UTF-8";
/// MIME type of the payload.
pub const MIMETYPE_JSON: &str = "application/json";

/// A JSON envelope as mAPI returns it and sends it in callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonEnvelope {
    /// The payload: compact JSON text.
    pub payload: String,
    /// DER signature, hex; `None` only for unsigned envelopes.
    pub signature: Option<String>,
    /// Compressed public key of the signer, hex (the `minerId`).
    pub public_key: Option<String>,
    /// Payload encoding (`UTF-8`).
    pub encoding: String,
    /// Payload MIME type (`application/json`).
    pub mimetype: String,
}

/// Why an envelope does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The envelope carries no signature or no public key.
    #[error("the envelope is not signed")]
    Unsigned,
    /// The public key is not a valid secp256k1 key.
    #[error("the envelope's public key is invalid")]
    BadPublicKey,
    /// The signature is not valid DER hex.
    #[error("the envelope's signature is not DER hex")]
    BadSignatureEncoding,
    /// The signature does not match payload and key.
    #[error("the envelope's signature does not match its payload")]
    SignatureMismatch,
    /// The payload could not be serialized or parsed as the expected JSON.
    #[error("the envelope's payload is not the expected JSON: {0}")]
    Payload(String),
}

/// Signs the SHA-256 of `payload` and returns the DER signature bytes (RFC 6979, low-S).
pub fn sign_payload(payload: &[u8], key: &PrivateKey) -> Vec<u8> {
    // k256's `Signer` hashes the message with SHA-256 (the curve's digest) before signing.
    let sig: Signature = key.signing_key().sign(payload);
    sig.to_der().as_bytes().to_vec()
}

/// Verifies a DER signature over the SHA-256 of `payload`. High-S signatures are accepted (some
/// signers do not normalize), since malleability does not matter for an envelope.
pub fn verify_payload(payload: &[u8], der: &[u8], key: &PublicKey) -> Result<(), EnvelopeError> {
    let sig = Signature::from_der(der).map_err(|_| EnvelopeError::BadSignatureEncoding)?;
    let sig = sig.normalize_s();
    key.verifying_key().verify(payload, &sig).map_err(|_| EnvelopeError::SignatureMismatch)
}

impl JsonEnvelope {
    /// Signs a payload string.
    pub fn sign(payload: String, key: &PrivateKey) -> Self {
        let signature = hex::encode(sign_payload(payload.as_bytes(), key));
        Self {
            payload,
            signature: Some(signature),
            public_key: Some(key.public_key().to_hex()),
            encoding: ENCODING_UTF8.to_owned(),
            mimetype: MIMETYPE_JSON.to_owned(),
        }
    }

    /// Serializes `value` as compact JSON and signs it.
    pub fn sign_json<T: Serialize>(value: &T, key: &PrivateKey) -> Result<Self, EnvelopeError> {
        let payload = serde_json::to_string(value).map_err(|e| EnvelopeError::Payload(e.to_string()))?;
        Ok(Self::sign(payload, key))
    }

    /// Checks the signature against the envelope's own public key.
    pub fn verify(&self) -> Result<PublicKey, EnvelopeError> {
        let (Some(sig), Some(key)) = (&self.signature, &self.public_key) else {
            return Err(EnvelopeError::Unsigned);
        };
        let key = PublicKey::from_hex(key).map_err(|_| EnvelopeError::BadPublicKey)?;
        let der = hex::decode(sig).map_err(|_| EnvelopeError::BadSignatureEncoding)?;
        verify_payload(self.payload.as_bytes(), &der, &key)?;
        Ok(key)
    }

    /// Parses the payload as `T` (after `verify`, when the signer matters).
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, EnvelopeError> {
        serde_json::from_str(&self.payload).map_err(|e| EnvelopeError::Payload(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyNetwork;

    fn key() -> PrivateKey {
        PrivateKey::from_bytes(&[0x11; 32], KeyNetwork::Testnet).unwrap()
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let env = JsonEnvelope::sign_json(&serde_json::json!({"apiVersion": "1.5.0"}), &key()).unwrap();
        assert_eq!(env.payload, r#"{"apiVersion":"1.5.0"}"#);
        assert_eq!(env.verify().unwrap(), key().public_key());
        let v: serde_json::Value = env.payload_as().unwrap();
        assert_eq!(v["apiVersion"], "1.5.0");
    }

    #[test]
    fn tampering_fails() {
        let env = JsonEnvelope::sign("{\"a\":1}".into(), &key());
        let mut tampered = env.clone();
        tampered.payload = "{\"a\":2}".into();
        assert_eq!(tampered.verify(), Err(EnvelopeError::SignatureMismatch));
        let mut other_key = env.clone();
        other_key.public_key =
            Some(PrivateKey::from_bytes(&[0x22; 32], KeyNetwork::Testnet).unwrap().public_key().to_hex());
        assert_eq!(other_key.verify(), Err(EnvelopeError::SignatureMismatch));
        let mut unsigned = env;
        unsigned.signature = None;
        assert_eq!(unsigned.verify(), Err(EnvelopeError::Unsigned));
    }
}
