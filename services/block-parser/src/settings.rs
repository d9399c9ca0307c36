//! Block-parser settings, with the mAPI reference's names where it has them.
//!
//! | key | env | default |
//! |---|---|---|
//! | `mapi_url` | `MAPI_URL` | `http://127.0.0.1:8081` (where the node list comes from, over internal HTTP) |
//! | `catch_up_interval_ms` | `CATCH_UP_INTERVAL_MS` | 1000 (how often the nodes' tips are compared with the chain; a `hashblock` from zmq-listener wakes it at once) |
//! | `max_block_chain_length_for_fork` | `MAX_BLOCK_CHAIN_LENGTH_FOR_FORK` | 432 (a fork point deeper than this below the best height is ignored) |
//! | `node_rpc_timeout_ms` | `NODE_RPC_TIMEOUT_MS` | 60000 |
//! | `websocket_heartbeat_secs` | `WEBSOCKET_HEARTBEAT_SECS` | 30 (ping interval of the tips websocket) |
//! | `header_walk_batch` | `HEADER_WALK_BATCH` | 2000 (headers fetched per round while filling in history below the first one seen) |
//!
//! plus the common settings of `service_kit::settings` (`DATABASE_URL`, `INTERNAL_TOKEN`, ...).

use serde::Deserialize;
use service_kit::settings::{CommonSettings, EnvVar, ServiceSettings, SettingsError, env};

/// Block-parser settings.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockParserSettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// The `mapi` service (node list).
    pub mapi_url: url::Url,
    /// Milliseconds between comparisons of the nodes' tips with the chain.
    pub catch_up_interval_ms: u64,
    /// Deepest fork point (below the best height) still followed.
    pub max_block_chain_length_for_fork: u64,
    /// Timeout of node RPC calls.
    pub node_rpc_timeout_ms: u64,
    /// Seconds between pings on the tips websocket.
    pub websocket_heartbeat_secs: u64,
    /// Headers fetched per round while filling in history.
    pub header_walk_batch: u64,
}

impl ServiceSettings for BlockParserSettings {
    const DEFAULTS: &'static str = r#"
mapi_url = "http://127.0.0.1:8081"
catch_up_interval_ms = 1000
max_block_chain_length_for_fork = 432
node_rpc_timeout_ms = 60000
websocket_heartbeat_secs = 30
header_walk_batch = 2000
"#;
    const ENV: &'static [EnvVar] = &[
        env("MAPI_URL", "mapi_url"),
        env("CATCH_UP_INTERVAL_MS", "catch_up_interval_ms"),
        env("MAX_BLOCK_CHAIN_LENGTH_FOR_FORK", "max_block_chain_length_for_fork"),
        env("NODE_RPC_TIMEOUT_MS", "node_rpc_timeout_ms"),
        env("WEBSOCKET_HEARTBEAT_SECS", "websocket_heartbeat_secs"),
        env("HEADER_WALK_BATCH", "header_walk_batch"),
    ];

    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        self.common.require_database_url()?;
        if !matches!(self.mapi_url.scheme(), "http" | "https") {
            return Err(SettingsError::invalid(Self::ENV, "mapi_url", "must be an http or https URL"));
        }
        for (key, value) in [
            ("catch_up_interval_ms", self.catch_up_interval_ms),
            ("max_block_chain_length_for_fork", self.max_block_chain_length_for_fork),
            ("node_rpc_timeout_ms", self.node_rpc_timeout_ms),
            ("websocket_heartbeat_secs", self.websocket_heartbeat_secs),
            ("header_walk_batch", self.header_walk_batch),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(Self::ENV, key, "must be positive"));
            }
        }
        Ok(())
    }
}
