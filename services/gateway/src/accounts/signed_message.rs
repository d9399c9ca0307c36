//! Bitcoin Signed Message verification: the proof of key ownership behind account sign-up.
//!
//! Digest: `sha256d("\x18Bitcoin Signed Message:\n" || varint(len) || message)`. Signature: 65 bytes,
//! a header byte `27 + recovery id (+ 4 for a compressed key)` followed by `r || s`. As in the
//! ElectrumSV reference the signature is checked against the key the client *gave* (compressed
//! or uncompressed), not against a recovered address; high-S signatures are refused, as
//! libsecp256k1 refuses them.

use bsv_primitives::{PublicKey, sha256d, write_varint};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature, SigningKey};

/// Why a signed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedMessageError {
    /// The signature is not 65 bytes with a header byte in 27..=34.
    #[error("the signature must be 65 bytes with a header byte between 27 and 34")]
    BadEncoding,
    /// The signature does not verify against the given key.
    #[error("the signature does not match the key and message")]
    Mismatch,
}

/// The digest a Bitcoin Signed Message signs.
pub fn message_digest(message: &[u8]) -> [u8; 32] {
    const MAGIC: &[u8] = b"\x18Bitcoin Signed Message:\n";
    let mut data = Vec::with_capacity(MAGIC.len() + 9 + message.len());
    data.extend_from_slice(MAGIC);
    // Writing into a Vec cannot fail.
    let _ = write_varint(&mut data, message.len() as u64);
    data.extend_from_slice(message);
    sha256d(&data)
}

/// Verifies a 65-byte compact signature of `message` against `key`.
pub fn verify(key: &PublicKey, message: &[u8], signature: &[u8]) -> Result<(), SignedMessageError> {
    let [header, rs @ ..] = signature else {
        return Err(SignedMessageError::BadEncoding);
    };
    if rs.len() != 64 || !(27..=34).contains(header) {
        return Err(SignedMessageError::BadEncoding);
    }
    let sig = Signature::from_slice(rs).map_err(|_| SignedMessageError::BadEncoding)?;
    key.verifying_key()
        .verify_prehash(&message_digest(message), &sig)
        .map_err(|_| SignedMessageError::Mismatch)
}

/// Signs `message` as a wallet does (the client side of sign-up; tests and tools use it): the
/// 65-byte compact signature for the compressed key (low-S, header byte `31 + recovery id`).
pub fn sign(key: &SigningKey, message: &[u8]) -> [u8; 65] {
    let (sig, recovery): (Signature, RecoveryId) = key.sign_prehash_recoverable(&message_digest(message));
    let mut out = [0u8; 65];
    out[0] = 27 + 4 + recovery.to_byte();
    out[1..].copy_from_slice(&sig.to_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::VerifyingKey;

    #[test]
    fn a_signature_made_here_verifies_and_recovers_its_key() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let public = PublicKey::from_sec1(key.verifying_key().to_sec1_point(true).as_bytes()).unwrap();
        let sig = sign(&key, b"https://gateway.example/api/v1/account/key 2026-12-02T00:00:00Z");
        verify(&public, b"https://gateway.example/api/v1/account/key 2026-12-02T00:00:00Z", &sig).unwrap();
        assert_eq!(verify(&public, b"another message", &sig), Err(SignedMessageError::Mismatch));
        let recovery = RecoveryId::from_byte(sig[0] - 31).unwrap();
        let rs = Signature::from_slice(&sig[1..]).unwrap();
        let recovered = VerifyingKey::recover_from_prehash(
            &message_digest(b"https://gateway.example/api/v1/account/key 2026-12-02T00:00:00Z"),
            &rs,
            recovery,
        )
        .unwrap();
        assert_eq!(&recovered, key.verifying_key());
    }
}
