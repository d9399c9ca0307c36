//! The envelope against a signature made by an independent implementation (python-ecdsa), kept
//! as test data in `data/envelope_vector.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bsv_primitives::{EnvelopeError, JsonEnvelope, KeyNetwork, PrivateKey};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    generator: String,
    payload: String,
    public_key: String,
    signature_low_s: String,
    signature_high_s: String,
}

fn vector() -> Vector {
    serde_json::from_str(include_str!("data/envelope_vector.json")).unwrap()
}

fn envelope(payload: &str, signature: &str, public_key: &str) -> JsonEnvelope {
    JsonEnvelope {
        payload: payload.to_owned(),
        signature: Some(signature.to_owned()),
        public_key: Some(public_key.to_owned()),
        encoding: "UTF-8".into(),
        mimetype: "application/json".into(),
    }
}

#[test]
fn an_independently_made_signature_verifies() {
    let v = vector();
    let env = envelope(&v.payload, &v.signature_low_s, &v.public_key);
    assert_eq!(env.verify().unwrap().to_hex(), v.public_key);
    // High-S variants (signers that do not normalize) verify too.
    let env = envelope(&v.payload, &v.signature_high_s, &v.public_key);
    env.verify().unwrap();
}

#[test]
fn our_signature_equals_the_independent_one_byte_for_byte() {
    // Both sides use RFC 6979 with SHA-256 and low-S, so the signatures must be identical.
    let v = vector();
    let secret_hex = v.generator.rsplit(' ').next().unwrap();
    let mut secret = [0u8; 32];
    hex::decode_to_slice(secret_hex, &mut secret).unwrap();
    let key = PrivateKey::from_bytes(&secret, KeyNetwork::Mainnet).unwrap();
    let ours = JsonEnvelope::sign(v.payload.clone(), &key);
    assert_eq!(ours.public_key.as_deref(), Some(v.public_key.as_str()));
    assert_eq!(ours.signature.as_deref(), Some(v.signature_low_s.as_str()));
}

#[test]
fn a_tampered_payload_fails() {
    let v = vector();
    let tampered = v.payload.replace("500", "499");
    let env = envelope(&tampered, &v.signature_low_s, &v.public_key);
    assert_eq!(env.verify(), Err(EnvelopeError::SignatureMismatch));
    let env = envelope(&v.payload, "3044deadbeef", &v.public_key);
    assert_eq!(env.verify(), Err(EnvelopeError::BadSignatureEncoding));
    let env = envelope(&v.payload, &v.signature_low_s, "02ff");
    assert_eq!(env.verify(), Err(EnvelopeError::BadPublicKey));
}
