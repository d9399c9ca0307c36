//! Who signs the envelopes: the `WIF_PRIVATEKEY` key, or a MinerId server (the reference's
//! alternative, for miners whose key lives in a separate service). Every signature from a MinerId
//! server is verified before it is used, so a rotated key never yields an envelope that does not
//! verify.

use std::time::Duration;

use bsv_primitives::{JsonEnvelope, PrivateKey, PublicKey, verify_payload};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Why an envelope could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The MinerId server could not be reached or answered badly.
    #[error("MinerId server: {0}")]
    Server(String),
    /// The MinerId server's signature does not verify against its key.
    #[error("the MinerId server's signature does not verify")]
    BadSignature,
}

/// A MinerId server: `GET {url}/{alias}` gives the current key, `GET
/// {url}/{alias}/sign/{sha256 hex}/{minerId}` (or without `/{minerId}`) a DER signature.
#[derive(Debug, Clone)]
pub struct MinerIdServer {
    http: reqwest::Client,
    url: String,
    alias: String,
    authorization: Option<SecretString>,
}

/// The signer in use.
#[derive(Debug, Clone)]
pub enum Signer {
    /// A local key.
    Key(PrivateKey),
    /// A MinerId server.
    MinerId(MinerIdServer),
}

fn unquote(body: &str) -> String {
    body.trim().trim_matches('"').to_owned()
}

impl MinerIdServer {
    /// A client for `url` and `alias`, with an optional `Authorization` header value.
    pub fn new(url: &str, alias: &str, authorization: Option<SecretString>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Self { http, url: url.trim_end_matches('/').to_owned(), alias: alias.to_owned(), authorization })
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response, SignError> {
        let mut req = self.http.get(url);
        if let Some(auth) = &self.authorization {
            req = req.header("authorization", auth.expose_secret());
        }
        req.send().await.map_err(|e| SignError::Server(e.to_string()))
    }

    async fn current_key(&self) -> Result<String, SignError> {
        let resp = self.get(&format!("{}/{}", self.url, self.alias)).await?;
        if !resp.status().is_success() {
            return Err(SignError::Server(format!("key lookup answered {}", resp.status())));
        }
        let key = unquote(&resp.text().await.map_err(|e| SignError::Server(e.to_string()))?);
        PublicKey::from_hex(&key)
            .map_err(|_| SignError::Server("the current key is not a public key".into()))?;
        Ok(key)
    }

    async fn sign(&self, digest_hex: &str, miner_id: &str) -> Result<String, SignError> {
        let with_key = format!("{}/{}/sign/{digest_hex}/{miner_id}", self.url, self.alias);
        let mut resp = self.get(&with_key).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            resp = self.get(&format!("{}/{}/sign/{digest_hex}", self.url, self.alias)).await?;
        }
        if !resp.status().is_success() {
            return Err(SignError::Server(format!("signing answered {}", resp.status())));
        }
        Ok(unquote(&resp.text().await.map_err(|e| SignError::Server(e.to_string()))?))
    }
}

impl Signer {
    /// The current `minerId` (compressed public key, hex).
    pub async fn miner_id(&self) -> Result<String, SignError> {
        match self {
            Signer::Key(k) => Ok(k.public_key().to_hex()),
            Signer::MinerId(server) => server.current_key().await,
        }
    }

    /// Signs `payload` as `miner_id` (which the payload names).
    pub async fn envelope(&self, payload: String, miner_id: &str) -> Result<JsonEnvelope, SignError> {
        match self {
            Signer::Key(k) => Ok(JsonEnvelope::sign(payload, k)),
            Signer::MinerId(server) => {
                let digest = hex::encode(Sha256::digest(payload.as_bytes()));
                let signature = server.sign(&digest, miner_id).await?;
                let key = PublicKey::from_hex(miner_id).map_err(|_| SignError::BadSignature)?;
                let der = hex::decode(&signature).map_err(|_| SignError::BadSignature)?;
                verify_payload(payload.as_bytes(), &der, &key).map_err(|_| SignError::BadSignature)?;
                Ok(JsonEnvelope {
                    payload,
                    signature: Some(signature),
                    public_key: Some(miner_id.to_owned()),
                    encoding: bsv_primitives::ENCODING_UTF8.to_owned(),
                    mimetype: bsv_primitives::MIMETYPE_JSON.to_owned(),
                })
            }
        }
    }
}
