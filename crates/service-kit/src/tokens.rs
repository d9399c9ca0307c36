//! Bearer tokens (the gateway's master tokens, peer channels' channel tokens) and channel ids: 64
//! bytes from a CSPRNG as URL-safe base64 with padding (88 characters, the form ElectrumSV clients
//! decode). Tokens are stored only as SHA-256 digests.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly issued token and the digest to store.
#[derive(Debug)]
pub struct IssuedToken {
    /// Shown once, to the caller it is issued to; never logged.
    pub token: String,
    /// What the database keeps.
    pub digest: [u8; 32],
}

/// Issues a new token.
pub fn issue() -> IssuedToken {
    let bytes: [u8; 64] = rand::random();
    let token = URL_SAFE.encode(bytes);
    IssuedToken { digest: digest(&token), token }
}

/// The stored form of a presented token. Lookups go by this digest (an index lookup on a hash
/// of 64 random bytes), so no comparison on the secret itself ever depends on its content.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time check of a presented token against a stored digest.
pub fn matches(token: &str, stored: &[u8]) -> bool {
    digest(token).as_slice().ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_88_char_padded_url_safe_base64_of_64_bytes() {
        let t = issue();
        assert_eq!(t.token.len(), 88);
        assert!(t.token.ends_with("=="));
        assert_eq!(URL_SAFE.decode(&t.token).unwrap().len(), 64);
        assert_eq!(digest(&t.token), t.digest);
        assert_ne!(issue().token, t.token);
        assert!(matches(&t.token, &t.digest));
        assert!(!matches(&issue().token, &t.digest));
    }
}
