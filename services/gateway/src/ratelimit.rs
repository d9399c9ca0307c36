//! Per-client-address rate limits for sign-up and failed authentication, so keys cannot be
//! enrolled or tokens guessed at speed.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The gateway's limiters. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    signup: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    failed_auth: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limits")
    }
}

impl Limits {
    /// `per_minute` sign-ups and `per_minute` failed authentications per address.
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self { signup: Arc::new(RateLimiter::keyed(quota)), failed_auth: Arc::new(RateLimiter::keyed(quota)) }
    }

    /// Counts a sign-up attempt; false when the address is over its limit.
    pub fn allow_signup(&self, addr: IpAddr) -> bool {
        self.signup.check_key(&addr).is_ok()
    }

    /// Counts a failed authentication; false when the address is over its limit.
    pub fn allow_failure(&self, addr: IpAddr) -> bool {
        self.failed_auth.check_key(&addr).is_ok()
    }

    /// Drops state of addresses that are back under their limits (called periodically).
    pub fn shrink(&self) {
        self.signup.retain_recent();
        self.failed_auth.retain_recent();
    }
}
