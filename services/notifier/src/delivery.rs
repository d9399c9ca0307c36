//! One callback over HTTP, as the mAPI reference sends it: `POST` to the URL, the caller's token
//! verbatim in `Authorization`, the signed envelope as `application/json` — or, with
//! `callbackEncryption` `libsodium sealed_box <base64 key>`, the envelope sealed to that key as
//! `application/octet-stream`. Only a 2xx is a success. No redirects are followed and no proxy
//! from the environment is used: the target is exactly the URL the merchant gave.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::scheduler::Item;
use crate::target::{self, PublicOnlyResolver, TargetRefused};

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver answered something else, or could not be reached in time: retried later.
    Failed {
        /// What happened (kept with the row, at most 256 characters).
        error: String,
        /// True when no answer came (connection refused, timeout): the rest of the host's batch
        /// is not tried now.
        unreachable: bool,
    },
    /// The notification can never be delivered as it is (target refused, bad encryption key or
    /// token): dead-lettered at once.
    Refused(String),
}

/// The HTTP side of delivery.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    block_private: bool,
}

/// What a sealed body could not be made from.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Not `libsodium sealed_box <base64 of 32 bytes>`.
    #[error("unsupported callback encryption")]
    Unsupported,
    /// The sealing itself failed.
    #[error("sealing failed")]
    Seal,
}

/// Seals `plain` to the X25519 key of a `libsodium sealed_box <base64 key>` setting
/// (libsodium's `crypto_box_seal`: an ephemeral key, the nonce from both public keys).
pub fn seal(encryption: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut parts = encryption.split(' ');
    let (Some("libsodium"), Some("sealed_box"), Some(key), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SealError::Unsupported);
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(key).map_err(|_| SealError::Unsupported)?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::Unsupported)?;
    let public = crypto_box::PublicKey::from(key);
    public.seal(&mut crypto_box::aead::OsRng, plain).map_err(|_| SealError::Seal)
}

impl Deliverer {
    /// A client with the target policy built in.
    pub fn new(block_private: bool) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("bsv-notifier/", env!("CARGO_PKG_VERSION")));
        if block_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(Self { client: builder.build()?, block_private })
    }

    /// One attempt, within `timeout`; returns how it ended and how long it took.
    pub async fn send(&self, item: &Item, timeout: Duration) -> (Outcome, Duration) {
        let started = Instant::now();
        let request = match self.request(item, timeout) {
            Ok(r) => r,
            Err(refused) => return (Outcome::Refused(refused), started.elapsed()),
        };
        let outcome = match request.send().await {
            Ok(resp) if resp.status().is_success() => {
                // Read the (small) body so that the connection can be reused.
                let _ = tokio::time::timeout(timeout, resp.bytes()).await;
                Outcome::Delivered
            }
            Ok(resp) => {
                let status = resp.status();
                let _ = tokio::time::timeout(timeout, resp.bytes()).await;
                Outcome::Failed { error: format!("callback answered {status}"), unreachable: false }
            }
            Err(e) => classify(e, self.block_private),
        };
        (outcome, started.elapsed())
    }

    fn request(&self, item: &Item, timeout: Duration) -> Result<reqwest::RequestBuilder, String> {
        let url = url::Url::parse(&item.url).map_err(|_| TargetRefused::Scheme.to_string())?;
        target::check_url(&url, self.block_private).map_err(|e| e.to_string())?;
        let mut request = self.client.post(url).timeout(timeout);
        if let Some(token) = item.token.as_deref().filter(|t| !t.is_empty()) {
            let value =
                HeaderValue::from_str(token).map_err(|_| "callback token is not a valid header value")?;
            request = request.header(AUTHORIZATION, value);
        }
        Ok(match item.encryption.as_deref().filter(|e| !e.is_empty()) {
            Some(encryption) => request
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(seal(encryption, item.body.as_bytes()).map_err(|e| e.to_string())?),
            None => request.header(CONTENT_TYPE, "application/json").body(item.body.as_bytes().to_vec()),
        })
    }
}

/// A transport error: a refused address is permanent, the rest is retried.
fn classify(e: reqwest::Error, block_private: bool) -> Outcome {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(err) = source {
        if block_private && err.downcast_ref::<target::NoPublicAddress>().is_some() {
            return Outcome::Refused(err.to_string());
        }
        source = err.source();
    }
    let unreachable = e.is_timeout() || e.is_connect();
    let what = if e.is_timeout() {
        "callback timed out".to_owned()
    } else if e.is_connect() {
        "callback target unreachable".to_owned()
    } else {
        // Without the URL: it may carry the merchant's secrets in its query.
        format!("callback failed: {}", e.without_url())
    };
    Outcome::Failed { error: what, unreachable }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_reference_form_of_encryption_is_accepted() {
        let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let sealed = seal(&format!("libsodium sealed_box {key}"), b"hello").unwrap();
        // Ephemeral public key (32) + MAC (16) + message.
        assert_eq!(sealed.len(), 32 + 16 + 5);
        assert!(seal("libsodium sealed_box", b"x").is_err());
        assert!(seal(&format!("libsodium box {key}"), b"x").is_err());
        assert!(seal("libsodium sealed_box AAAA", b"x").is_err());
        assert!(seal(&format!("libsodium sealed_box {key} extra"), b"x").is_err());
    }
}
