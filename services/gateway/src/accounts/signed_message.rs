//! Bitcoin Signed Message verification: the proof of key ownership behind account sign-up.
//!
//! Digest: `sha256d("\x18Bitcoin Signed Message:\n" || varint(len) || message)`. Signature: 65 bytes,
//! a header byte `27 + recovery id (+ 4 for a compressed key)` followed by `r || s`. As in the
//! ElectrumSV reference the signature is checked against the key the client *gave* (compressed
//! or uncompressed), not against a recovered address; high-S signatures are refused, as
//! libsecp256k1 refuses them.

use bsv_primitives::{PublicKey, sha256d, write_varint};
use k256::ecdsa::Signature;
use k256::ecdsa::signature::hazmat::PrehashVerifier;

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
