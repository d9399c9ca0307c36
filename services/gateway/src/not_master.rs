//! Credentials known not to be master tokens. Every request to a channel's message API carries a
//! credential that may be the account's master token (resolved here) or a channel token (passed
//! on to peer-channels, which judges it); without this, every channel-token request costs a
//! database lookup here. A credential that is not a live master token now never becomes one (a
//! master token is 64 random bytes issued once, and revocation is final), so remembering the
//! misses is safe; a disabled account's token is not remembered (it may be enabled again).

use std::collections::HashSet;
use std::sync::Mutex;

/// Digests remembered at most; past it the set starts over (a miss only costs a lookup).
const CAPACITY: usize = 200_000;

/// SHA-256 digests of credentials that are no master token.
#[derive(Debug, Default)]
pub struct NotMaster {
    digests: Mutex<HashSet<[u8; 32]>>,
}

impl NotMaster {
    /// True when `digest` is known not to be a master token.
    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.digests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(digest)
    }

    /// Remembers that `digest` is no master token.
    pub fn insert(&self, digest: [u8; 32]) {
        let mut set = self.digests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.len() >= CAPACITY {
            set.clear();
        }
        set.insert(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_are_remembered_within_a_bound() {
        let n = NotMaster::default();
        assert!(!n.contains(&[1; 32]));
        n.insert([1; 32]);
        assert!(n.contains(&[1; 32]));
        for i in 0..CAPACITY as u32 {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&i.to_le_bytes());
            d[31] = 9;
            n.insert(d);
        }
        assert!(n.digests.lock().unwrap().len() <= CAPACITY);
    }
}
