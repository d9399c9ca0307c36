//! Indexer settings, with the ElectrumSV reference server's names where it has them.
//!
//! | key | env | default |
//! |---|---|---|
//! | `indexer_url` | `INDEXER_URL` | unset: native mode; set: proxy mode, everything mirrored to that indexer |
//! | `mapi_url` | `MAPI_URL` | `http://127.0.0.1:8081` (the node list, native mode) |
//! | `block_parser_url` | `BLOCK_PARSER_URL` | `http://127.0.0.1:8083` (the best chain, native mode) |
//! | `peer_channels_url` | `PEER_CHANNELS_URL` | `http://127.0.0.1:8082` (account websockets: spend notifications) |
//! | `notifier_url` | `NOTIFIER_URL` | `http://127.0.0.1:8084` (tip-filter match delivery) |
//! | `node_rpc_timeout_ms` | `NODE_RPC_TIMEOUT_MS` | 60000 |
//! | `indexer_timeout_ms` | `INDEXER_TIMEOUT_MS` | 30000 (each mirrored call to the external indexer) |
//! | `indexer_reconnect_secs` | `INDEXER_RECONNECT_SECS` | 10 (the reference's retry of the indexer websocket) |
//! | `block_poll_interval_ms` | `BLOCK_POLL_INTERVAL_MS` | 1000 (how often the best chain is compared with the blocks matched) |
//! | `sweep_interval_secs` | `SWEEP_INTERVAL_SECS` | 5 (spend registrations of accounts with no open websocket are dropped) |
//!
//! plus the common settings of `service_kit::settings` (`DATABASE_URL`, `INTERNAL_TOKEN`, ...).

use serde::Deserialize;
use service_kit::settings::{CommonSettings, EnvVar, ServiceSettings, SettingsError, env};

/// Indexer settings.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexerSettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// The external indexer (proxy mode); absent means native mode.
    #[serde(default)]
    pub indexer_url: Option<url::Url>,
    /// The `mapi` service (node list).
    pub mapi_url: url::Url,
    /// The `block-parser` service (headers of the best chain).
    pub block_parser_url: url::Url,
    /// The `peer-channels` service (account websockets).
    pub peer_channels_url: url::Url,
    /// The `notifier` service (tip-filter callbacks).
    pub notifier_url: url::Url,
    /// Timeout of node RPC calls.
    pub node_rpc_timeout_ms: u64,
    /// Timeout of each call to the external indexer.
    pub indexer_timeout_ms: u64,
    /// Seconds between attempts to open the external indexer's websocket.
    pub indexer_reconnect_secs: u64,
    /// Milliseconds between comparisons of the best chain with the blocks matched.
    pub block_poll_interval_ms: u64,
    /// Seconds between sweeps of spend registrations whose account socket closed.
    pub sweep_interval_secs: u64,
}

impl IndexerSettings {
    /// True when an external indexer serves the chain data (proxy mode).
    pub fn proxy_mode(&self) -> bool {
        self.indexer_url.is_some()
    }
}

impl ServiceSettings for IndexerSettings {
    const DEFAULTS: &'static str = r#"
mapi_url = "http://127.0.0.1:8081"
block_parser_url = "http://127.0.0.1:8083"
peer_channels_url = "http://127.0.0.1:8082"
notifier_url = "http://127.0.0.1:8084"
node_rpc_timeout_ms = 60000
indexer_timeout_ms = 30000
indexer_reconnect_secs = 10
block_poll_interval_ms = 1000
sweep_interval_secs = 5
"#;
    const ENV: &'static [EnvVar] = &[
        env("INDEXER_URL", "indexer_url"),
        env("MAPI_URL", "mapi_url"),
        env("BLOCK_PARSER_URL", "block_parser_url"),
        env("PEER_CHANNELS_URL", "peer_channels_url"),
        env("NOTIFIER_URL", "notifier_url"),
        env("NODE_RPC_TIMEOUT_MS", "node_rpc_timeout_ms"),
        env("INDEXER_TIMEOUT_MS", "indexer_timeout_ms"),
        env("INDEXER_RECONNECT_SECS", "indexer_reconnect_secs"),
        env("BLOCK_POLL_INTERVAL_MS", "block_poll_interval_ms"),
        env("SWEEP_INTERVAL_SECS", "sweep_interval_secs"),
    ];

    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        self.common.require_database_url()?;
        let urls = [
            ("indexer_url", self.indexer_url.as_ref()),
            ("mapi_url", Some(&self.mapi_url)),
            ("block_parser_url", Some(&self.block_parser_url)),
            ("peer_channels_url", Some(&self.peer_channels_url)),
            ("notifier_url", Some(&self.notifier_url)),
        ];
        for (key, url) in urls {
            if url.is_some_and(|u| !matches!(u.scheme(), "http" | "https")) {
                return Err(SettingsError::invalid(Self::ENV, key, "must be an http or https URL"));
            }
        }
        for (key, value) in [
            ("node_rpc_timeout_ms", self.node_rpc_timeout_ms),
            ("indexer_timeout_ms", self.indexer_timeout_ms),
            ("indexer_reconnect_secs", self.indexer_reconnect_secs),
            ("block_poll_interval_ms", self.block_poll_interval_ms),
            ("sweep_interval_secs", self.sweep_interval_secs),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(Self::ENV, key, "must be positive"));
            }
        }
        Ok(())
    }
}
