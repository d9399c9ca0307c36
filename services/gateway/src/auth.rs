//! Authentication at the edge: who the caller of a proxied route is, decided once here and passed
//! to internal services in identity headers (which they trust only with the internal credential).

use actix_web::HttpRequest;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use service_kit::{ApiError, Bearer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::routing::RouteClass;
use crate::{accounts, tokens};

/// Who is calling, as far as the upstream needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Nobody in particular (anonymous mAPI, DSNT, headers).
    Anonymous,
    /// A valid mAPI JWT: the configured claim's value and the issuer.
    Jwt {
        /// The identity claim's value.
        identity: String,
        /// The token's issuer.
        provider: String,
    },
    /// The mAPI admin (right `Api-Key`).
    Admin,
    /// An account, by one of its master bearer tokens.
    Account {
        /// The account.
        account_id: i64,
        /// The master token it presented (sockets opened with it close when it is revoked).
        token_id: i64,
    },
    /// A credential the gateway does not own (a channel token): the upstream checks it.
    PassThrough,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProviderConfig {
    issuer: String,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    algorithm: Option<String>,
    symmetric_security_key: String,
    #[serde(default)]
    identity_claim_name: Option<String>,
}

struct Provider {
    issuer: String,
    key: DecodingKey,
    validation: Validation,
    claim: String,
}

/// The configured mAPI identity providers (the reference's `IdentityProviders:Providers`).
#[derive(Default)]
pub struct JwtProviders(Vec<Provider>);

impl std::fmt::Debug for JwtProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<_> = self.0.iter().map(|p| p.issuer.as_str()).collect();
        f.debug_struct("JwtProviders").field("issuers", &issuers).finish()
    }
}

impl JwtProviders {
    /// Parses the JSON array from `IDENTITY_PROVIDERS`; `None` means no providers.
    pub fn parse(json: Option<&str>) -> Result<Self, String> {
        let Some(json) = json.filter(|j| !j.trim().is_empty()) else {
            return Ok(Self::default());
        };
        let configs: Vec<ProviderConfig> =
            serde_json::from_str(json).map_err(|e| format!("must be a JSON array of providers: {e}"))?;
        let mut providers = Vec::with_capacity(configs.len());
        for c in configs {
            let algorithm = match c.algorithm.as_deref().unwrap_or("HS256") {
                "HS256" => Algorithm::HS256,
                "HS384" => Algorithm::HS384,
                "HS512" => Algorithm::HS512,
                other => return Err(format!("algorithm {other} is not supported (HS256, HS384, HS512)")),
            };
            if c.symmetric_security_key.len() < 16 {
                return Err(format!("the key of issuer {} must be at least 16 characters", c.issuer));
            }
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&c.issuer]);
            validation.set_required_spec_claims(&["exp", "iss"]);
            match &c.audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            validation.leeway = 0;
            providers.push(Provider {
                key: DecodingKey::from_secret(c.symmetric_security_key.as_bytes()),
                issuer: c.issuer,
                validation,
                claim: c.identity_claim_name.unwrap_or_else(|| "sub".to_owned()),
            });
        }
        Ok(Self(providers))
    }

    /// The identity of a valid token: the first provider whose issuer, key, audience and
    /// lifetime all check out.
    pub fn validate(&self, token: &str) -> Option<(String, String)> {
        self.0.iter().find_map(|p| {
            let data = jsonwebtoken::decode::<serde_json::Value>(token, &p.key, &p.validation).ok()?;
            let identity = data.claims.get(&p.claim)?.as_str()?.to_owned();
            Some((identity, p.issuer.clone()))
        })
    }
}

/// Compares a presented admin key with the configured one in constant time.
fn admin_key_matches(state: &AppState, presented: &str) -> bool {
    use secrecy::ExposeSecret;
    let Some(configured) = &state.settings.rest_admin_api_key else {
        return false;
    };
    let a: [u8; 32] = Sha256::digest(configured.expose_secret().as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    a.ct_eq(&b).into()
}

/// A query parameter's value.
fn query_param<'a>(req: &'a HttpRequest, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    req.query_string().split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
    })
}

/// The caller of a live master token of an enabled account.
async fn account_of(state: &AppState, token: &str) -> Result<Option<Caller>, ApiError> {
    Ok(accounts::store::by_token(&state.db, &tokens::digest(token))
        .await?
        .filter(|(a, _)| !a.disabled)
        .map(|(a, token_id)| Caller::Account { account_id: a.account_id, token_id }))
}

/// A channel API credential: the account of a live master token, else passed on (a channel token
/// is peer-channels' to judge). Credentials found to be no master token are remembered, so channel
/// tokens cost no lookup after their first request.
async fn master_or_pass_through(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let digest = tokens::digest(token);
    if state.not_master.contains(&digest) {
        return Ok(Caller::PassThrough);
    }
    match accounts::store::by_token(&state.db, &digest).await? {
        Some((account, token_id)) if !account.disabled => {
            Ok(Caller::Account { account_id: account.account_id, token_id })
        }
        Some(_) => Ok(Caller::PassThrough),
        None => {
            state.not_master.insert(digest);
            Ok(Caller::PassThrough)
        }
    }
}

/// Decides the caller of a proxied request by its route class.
pub async fn authenticate(
    req: &HttpRequest,
    class: RouteClass,
    state: &AppState,
) -> Result<Caller, ApiError> {
    let fail = |detail: &str| accounts::auth_failure(state, req, detail);
    match class {
        RouteClass::Dsnt | RouteClass::Headers => Ok(Caller::Anonymous),
        RouteClass::Indexer => match Bearer::of(req).token() {
            Some(token) => Ok(account_of(state, token).await?.unwrap_or(Caller::Anonymous)),
            None => Ok(Caller::Anonymous),
        },
        RouteClass::Arc => Ok(Bearer::of(req)
            .token()
            .and_then(|token| state.jwt.validate(token))
            .map_or(Caller::Anonymous, |(identity, provider)| Caller::Jwt { identity, provider })),
        RouteClass::MapiPublic => match Bearer::of(req) {
            Bearer::Absent => Ok(Caller::Anonymous),
            Bearer::Token(token) => state
                .jwt
                .validate(token)
                .map(|(identity, provider)| Caller::Jwt { identity, provider })
                .ok_or_else(|| fail("Incorrectly formatted token")),
            Bearer::Malformed => Err(fail("Incorrectly formatted token")),
        },
        RouteClass::MapiAdmin => {
            let presented = req.headers().get("api-key").and_then(|v| v.to_str().ok());
            match presented {
                Some(key) if admin_key_matches(state, key) => Ok(Caller::Admin),
                _ => Err(fail("Unauthorized")),
            }
        }
        RouteClass::ChannelManage => {
            let token = Bearer::of(req)
                .token()
                .ok_or_else(|| ApiError::bad_request("No 'Bearer' authentication."))?;
            account_of(state, token).await?.ok_or_else(|| fail("Invalid bearer token."))
        }
        RouteClass::ChannelMessages => {
            // The account's master token works on its channels' message APIs, in the header or,
            // for the `/notify` websocket, in the query; anything else is the channel service's
            // to judge (a channel token, or nothing).
            let token = match Bearer::of(req) {
                Bearer::Token(t) => Some(t.to_owned()),
                // Query credentials only where clients have no other way: websocket handshakes.
                Bearer::Absent if crate::ws_proxy::is_upgrade(req) => {
                    query_param(req, "token").map(|t| t.into_owned())
                }
                Bearer::Absent | Bearer::Malformed => None,
            };
            match token {
                Some(token) => Ok(master_or_pass_through(state, &token).await?),
                None => Ok(Caller::PassThrough),
            }
        }
        RouteClass::AccountWebSocket => {
            // As the reference: no token is a bad request (400), a wrong one unauthorized (401).
            let token = query_param(req, "token")
                .map(|t| t.into_owned())
                .or_else(|| Bearer::of(req).token().map(str::to_owned))
                .ok_or_else(|| ApiError::bad_request("A master bearer token is required."))?;
            account_of(state, &token).await?.ok_or_else(|| fail("Invalid bearer token."))
        }
    }
}

/// The gateway faces the internet, so its `/metrics` is for Prometheus and operators only: the
/// internal credential, or `Authorization: Bearer <RESTADMIN_APIKEY>` as the mAPI reference asks.
/// It decides on the canonical path (the [`crate::canonical`] middleware runs first), the same
/// path the router matches, so no spelling of `/metrics` slips past it.
pub async fn guard_metrics(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if req.path() == "/metrics" {
        let state = req.app_data::<actix_web::web::Data<AppState>>().cloned();
        let internal = req
            .app_data::<actix_web::web::Data<service_kit::InternalCredential>>()
            .is_some_and(|c| c.verify_request(req.request()));
        let admin = state
            .as_ref()
            .is_some_and(|s| Bearer::of(req.request()).token().is_some_and(|key| admin_key_matches(s, key)));
        if !internal && !admin {
            return Err(ApiError::unauthorized("Unauthorized").into());
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
