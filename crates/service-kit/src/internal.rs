//! Service-to-service HTTP: the internal credential that guards `/internal/*`, and a client that
//! presents it and propagates the caller's trace context (`traceparent`).

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::ApiError;

/// Header carrying the internal credential.
pub const INTERNAL_TOKEN_HEADER: &str = "x-internal-token";

/// The shared secret services present to each other. Compared in constant time; never printed.
#[derive(Clone)]
pub struct InternalCredential {
    secret: SecretString,
    digest: [u8; 32],
}

impl std::fmt::Debug for InternalCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalCredential(<redacted>)")
    }
}

impl InternalCredential {
    /// Wraps the configured secret.
    pub fn new(secret: SecretString) -> Self {
        let digest = Sha256::digest(secret.expose_secret().as_bytes()).into();
        Self { secret, digest }
    }

    /// True when `presented` is the credential. Both sides are hashed first, so neither the
    /// content nor the length of the secret leaks through timing.
    pub fn verify(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.digest).into()
    }

    /// True when the request carries the credential.
    pub fn verify_request(&self, req: &actix_web::HttpRequest) -> bool {
        req.headers().get(INTERNAL_TOKEN_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| self.verify(v))
    }
}

/// Middleware for `/internal` scopes: 401 unless the internal credential is presented.
pub async fn require_internal(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let allowed = req
        .app_data::<actix_web::web::Data<InternalCredential>>()
        .is_some_and(|c| c.verify_request(req.request()));
    if !allowed {
        return Err(ApiError::unauthorized("internal endpoint").into());
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Headers in which the gateway tells internal services who the caller is. A service trusts them
/// only on a request that also carries the internal credential; the gateway strips clients' own
/// copies.
pub mod identity {
    /// Account id of a caller authenticated with a master bearer token.
    pub const ACCOUNT: &str = "x-caller-account";
    /// JWT identity (the configured claim's value) of a mAPI caller.
    pub const IDENTITY: &str = "x-caller-identity";
    /// Issuer of that JWT.
    pub const IDENTITY_PROVIDER: &str = "x-caller-identity-provider";
    /// Present (`true`) when the caller presented the admin Api-Key.
    pub const ADMIN: &str = "x-caller-admin";

    /// Every identity header, for stripping.
    pub const ALL: [&str; 4] = [ACCOUNT, IDENTITY, IDENTITY_PROVIDER, ADMIN];
}

/// The caller as the gateway identified it. Built from the identity headers only when the request
/// also carries the internal credential; any other request is anonymous, whatever it claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrustedCaller {
    /// Account of a master bearer token.
    pub account: Option<i64>,
    /// JWT identity and its provider (issuer).
    pub identity: Option<(String, String)>,
    /// True for the mAPI admin.
    pub admin: bool,
}

impl TrustedCaller {
    /// 401 unless the gateway vouched for the admin `Api-Key`.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin { Ok(()) } else { Err(ApiError::unauthorized("Unauthorized")) }
    }

    /// Reads the identity headers of a request whose internal credential verified.
    pub fn from_request_headers(req: &actix_web::HttpRequest) -> Self {
        let trusted =
            req.app_data::<actix_web::web::Data<InternalCredential>>().is_some_and(|c| c.verify_request(req));
        if !trusted {
            return Self::default();
        }
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self {
            account: header(identity::ACCOUNT).and_then(|a| a.parse().ok()),
            identity: header(identity::IDENTITY).zip(header(identity::IDENTITY_PROVIDER)),
            admin: header(identity::ADMIN).as_deref() == Some("true"),
        }
    }
}

/// The client's address: the one the gateway found (`x-forwarded-for`, which it writes from the
/// TCP peer or, behind `TRUSTED_PROXIES`, the rightmost untrusted forwarded address) on a request
/// that carries the internal credential, else the TCP peer. A client's own `x-forwarded-for` is
/// never believed.
pub fn client_address(req: &actix_web::HttpRequest) -> Option<std::net::IpAddr> {
    let trusted =
        req.app_data::<actix_web::web::Data<InternalCredential>>().is_some_and(|c| c.verify_request(req));
    if trusted {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|a| a.ip())
}

impl actix_web::FromRequest for TrustedCaller {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(Self::from_request_headers(req)))
    }
}

/// HTTP client for calls to sibling services.
#[derive(Clone, Debug)]
pub struct InternalClient {
    http: reqwest::Client,
    credential: InternalCredential,
}

impl InternalClient {
    /// A client with a request timeout.
    pub fn new(credential: InternalCredential, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http =
            reqwest::Client::builder().timeout(timeout).connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Self { http, credential })
    }

    /// Starts a request that carries the credential and the current trace context.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(INTERNAL_TOKEN_HEADER, self.credential.secret.expose_secret())
            .headers(trace_headers())
    }

    /// `GET` with credential and trace context.
    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, url)
    }

    /// `POST` with credential and trace context.
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, url)
    }
}

/// `traceparent` (and `tracestate`) of the current span, for an outgoing request.
pub fn trace_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(&mut headers));
    });
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_compare_and_debug() {
        let c = InternalCredential::new(SecretString::from("a-long-internal-secret".to_owned()));
        assert!(c.verify("a-long-internal-secret"));
        assert!(!c.verify("a-long-internal-secreT"));
        assert!(!c.verify(""));
        assert!(!format!("{c:?}").contains("secret-"));
    }
}
