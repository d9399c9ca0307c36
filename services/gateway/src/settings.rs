//! Gateway settings.
//!
//! | key | env | default |
//! |---|---|---|
//! | `public_url` | `PUBLIC_URL` | `http://127.0.0.1:8080` (the URL clients use; signed sign-up messages must name it) |
//! | `signup_window_secs` | `SIGNUP_WINDOW_SECS` | 300 |
//! | `signup_per_minute` | `SIGNUP_RATE_PER_MINUTE` | 20 (sign-ups and failed authentications per client address) |
//! | `expose_header_sv_apis` | `EXPOSE_HEADER_SV_APIS` | unset (`1` enables the headers API, as in the reference) |
//! | `header_sv_url` | `HEADER_SV_URL` | `http://127.0.0.1:33444` |
//! | `expose_indexer_apis` | `EXPOSE_INDEXER_APIS` | unset: on (`1` too; any other value turns the indexer APIs off) |
//! | `indexer_url` | `INDEXER_URL` | unset: the indexer service is native (no restoration search); set: it proxies that indexer |
//! | `indexer_service_url` | `INDEXER_SERVICE_URL` | `http://127.0.0.1:8086` (the `indexer` service) |
//! | `mapi_url` | `MAPI_URL` | `http://127.0.0.1:8081` |
//! | `peer_channels_url` | `PEER_CHANNELS_URL` | `http://127.0.0.1:8082` |
//! | `block_parser_url` | `BLOCK_PARSER_URL` | `http://127.0.0.1:8083` |
//! | `notifier_url` | `NOTIFIER_URL` | `http://127.0.0.1:8084` (its admin API: failed and dead-lettered callbacks) |
//! | `upstream_connect_timeout_ms` | `UPSTREAM_CONNECT_TIMEOUT_MS` | 2000 |
//! | `upstream_timeout_ms` | `UPSTREAM_TIMEOUT_MS` | 30000 (until the upstream's response headers) |
//! | `mapi_max_body_bytes` | `MAPI_MAX_BODY_BYTES` | 104857600 (mAPI takes large transactions) |
//! | `max_body_bytes` | `MAX_BODY_BYTES` | 1048576 (every other proxied route) |
//! | `rest_admin_api_key` | `RESTADMIN_APIKEY` | unset: the mAPI admin API is closed |
//! | `identity_providers` | `IDENTITY_PROVIDERS` | `[]`: JSON array of `{"issuer", "audience"?, "algorithm"? (HS256), "symmetricSecurityKey", "identityClaimName"? (sub)}` (a secret: it holds signing keys) |
//! | `trusted_proxies` | `TRUSTED_PROXIES` | unset: comma-separated CIDRs whose `X-Forwarded-For` is believed (the rightmost address that is not a trusted proxy is the client) |
//!
//! plus the common settings of `service_kit::settings` (`DATABASE_URL`, `INTERNAL_TOKEN`, ...).

use serde::Deserialize;
use service_kit::settings::{CommonSettings, EnvVar, ServiceSettings, SettingsError, env};

/// The gateway's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// Public base URL (scheme, host, optional port and path prefix).
    pub public_url: url::Url,
    /// How far a signed sign-up message's time may be from now, either way.
    pub signup_window_secs: u64,
    /// Sign-ups and failed authentications allowed per client address per minute.
    pub signup_per_minute: u32,
    /// `1` exposes the headers API (the reference's switch and spelling).
    #[serde(default)]
    pub expose_header_sv_apis: Option<String>,
    /// Where headers come from.
    pub header_sv_url: url::Url,
    /// Unset or `1` exposes the indexer APIs; anything else hides them.
    #[serde(default)]
    pub expose_indexer_apis: Option<String>,
    /// The external indexer the `indexer` service proxies, if any (its presence decides whether
    /// restoration search is served).
    #[serde(default)]
    pub indexer_url: Option<url::Url>,
    /// The `indexer` service.
    pub indexer_service_url: url::Url,
    /// The `mapi` service.
    pub mapi_url: url::Url,
    /// The `peer-channels` service.
    pub peer_channels_url: url::Url,
    /// The `block-parser` service.
    pub block_parser_url: url::Url,
    /// The `notifier` service.
    pub notifier_url: url::Url,
    /// Connect timeout towards upstreams.
    pub upstream_connect_timeout_ms: u64,
    /// How long an upstream may take to start answering.
    pub upstream_timeout_ms: u64,
    /// Body limit of mAPI routes.
    pub mapi_max_body_bytes: u64,
    /// Body limit of the other proxied routes.
    pub max_body_bytes: u64,
    /// The mAPI admin key (`Api-Key` header); none closes the admin API.
    #[serde(default)]
    pub rest_admin_api_key: Option<secrecy::SecretString>,
    /// mAPI JWT identity providers, as JSON (with their signing keys, hence secret).
    #[serde(default)]
    pub identity_providers: Option<secrecy::SecretString>,
    /// Proxies whose `X-Forwarded-For` is believed, as comma-separated CIDRs.
    #[serde(default)]
    pub trusted_proxies: Option<String>,
}

impl GatewaySettings {
    /// True when the headers API is on (`EXPOSE_HEADER_SV_APIS=1`).
    pub fn headers_enabled(&self) -> bool {
        self.expose_header_sv_apis.as_deref() == Some("1")
    }

    /// Which indexer APIs are served: none when `EXPOSE_INDEXER_APIS` is set to anything but `1`;
    /// with `INDEXER_URL` the proxied set (restoration search included), else the native one.
    pub fn indexer_apis(&self) -> crate::routing::IndexerApis {
        use crate::routing::IndexerApis;
        match (self.expose_indexer_apis.as_deref(), &self.indexer_url) {
            (None | Some("1"), Some(_)) => IndexerApis::Proxy,
            (None | Some("1"), None) => IndexerApis::Native,
            _ => IndexerApis::Off,
        }
    }

    /// The configured identity providers' JSON.
    pub fn identity_providers_json(&self) -> Option<&str> {
        self.identity_providers.as_ref().map(secrecy::ExposeSecret::expose_secret)
    }

    /// The trusted proxies (none when unset).
    pub fn trusted_proxies(&self) -> Result<crate::client_ip::TrustedProxies, SettingsError> {
        crate::client_ip::TrustedProxies::parse(self.trusted_proxies.as_deref().unwrap_or_default())
            .map_err(|e| SettingsError::invalid(Self::ENV, "trusted_proxies", e))
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }
}

impl ServiceSettings for GatewaySettings {
    const DEFAULTS: &'static str = r#"
public_url = "http://127.0.0.1:8080"
signup_window_secs = 300
signup_per_minute = 20
header_sv_url = "http://127.0.0.1:33444"
indexer_service_url = "http://127.0.0.1:8086"
mapi_url = "http://127.0.0.1:8081"
peer_channels_url = "http://127.0.0.1:8082"
block_parser_url = "http://127.0.0.1:8083"
notifier_url = "http://127.0.0.1:8084"
upstream_connect_timeout_ms = 2000
upstream_timeout_ms = 30000
mapi_max_body_bytes = 104857600
max_body_bytes = 1048576
"#;
    const ENV: &'static [EnvVar] = &[
        env("PUBLIC_URL", "public_url"),
        env("SIGNUP_WINDOW_SECS", "signup_window_secs"),
        env("SIGNUP_RATE_PER_MINUTE", "signup_per_minute"),
        env("EXPOSE_HEADER_SV_APIS", "expose_header_sv_apis"),
        env("HEADER_SV_URL", "header_sv_url"),
        env("EXPOSE_INDEXER_APIS", "expose_indexer_apis"),
        env("INDEXER_URL", "indexer_url"),
        env("INDEXER_SERVICE_URL", "indexer_service_url"),
        env("MAPI_URL", "mapi_url"),
        env("PEER_CHANNELS_URL", "peer_channels_url"),
        env("BLOCK_PARSER_URL", "block_parser_url"),
        env("NOTIFIER_URL", "notifier_url"),
        env("UPSTREAM_CONNECT_TIMEOUT_MS", "upstream_connect_timeout_ms"),
        env("UPSTREAM_TIMEOUT_MS", "upstream_timeout_ms"),
        env("MAPI_MAX_BODY_BYTES", "mapi_max_body_bytes"),
        env("MAX_BODY_BYTES", "max_body_bytes"),
        env("RESTADMIN_APIKEY", "rest_admin_api_key"),
        env("IDENTITY_PROVIDERS", "identity_providers"),
        env("TRUSTED_PROXIES", "trusted_proxies"),
    ];

    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        self.common.require_database_url()?;
        if !matches!(self.public_url.scheme(), "http" | "https") {
            return Err(SettingsError::invalid(Self::ENV, "public_url", "must be an http or https URL"));
        }
        if self.signup_window_secs == 0 {
            return Err(SettingsError::invalid(Self::ENV, "signup_window_secs", "must be positive"));
        }
        if let Err(e) = crate::auth::JwtProviders::parse(self.identity_providers_json()) {
            return Err(SettingsError::invalid(Self::ENV, "identity_providers", e));
        }
        self.trusted_proxies()?;
        if self.upstream_timeout_ms == 0 || self.upstream_connect_timeout_ms == 0 {
            return Err(SettingsError::invalid(
                Self::ENV,
                "upstream_timeout_ms",
                "timeouts must be positive",
            ));
        }
        if self.signup_per_minute == 0 {
            return Err(SettingsError::invalid(Self::ENV, "signup_per_minute", "must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_secret() {
        let key = "symmetric-signing-key-0123456789";
        let env = std::collections::HashMap::from([
            ("DATABASE_URL", "postgres://user:db-password-42@127.0.0.1/x".to_owned()),
            ("INTERNAL_TOKEN", "internal-credential-0123456789".to_owned()),
            ("RESTADMIN_APIKEY", "admin-api-key-0123456789".to_owned()),
            ("IDENTITY_PROVIDERS", format!(r#"[{{"issuer":"i","symmetricSecurityKey":"{key}"}}]"#)),
        ]);
        let settings: GatewaySettings =
            service_kit::settings::load_from(None, |k| env.get(k).cloned()).unwrap();
        let printed = format!("{settings:?}");
        for secret in [key, "db-password-42", "internal-credential-0123456789", "admin-api-key-0123456789"] {
            assert!(!printed.contains(secret), "{secret} printed in {printed}");
        }
        let providers = crate::auth::JwtProviders::parse(settings.identity_providers_json()).unwrap();
        assert!(!format!("{providers:?}").contains(key));
    }

    #[test]
    fn a_bad_trusted_proxy_list_names_the_variable() {
        let env = std::collections::HashMap::from([
            ("DATABASE_URL", "postgres://127.0.0.1/x".to_owned()),
            ("INTERNAL_TOKEN", "internal-credential-0123456789".to_owned()),
            ("TRUSTED_PROXIES", "10.0.0.0/8, everyone".to_owned()),
        ]);
        let err =
            service_kit::settings::load_from::<GatewaySettings>(None, |k| env.get(k).cloned()).unwrap_err();
        assert!(err.to_string().contains("TRUSTED_PROXIES"), "{err}");
    }
}
