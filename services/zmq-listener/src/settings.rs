//! zmq-listener settings, with the mAPI reference's names where it has them.
//!
//! | key | env | default |
//! |---|---|---|
//! | `mapi_url` | `MAPI_URL` | `http://127.0.0.1:8081` (the node list) |
//! | `block_parser_url` | `BLOCK_PARSER_URL` | `http://127.0.0.1:8083` (where `hashblock` goes) |
//! | `zmq_connection_test_interval_sec` | `ZMQ_CONNECTION_TEST_INTERVAL_SEC` | 60 (a subscription silent this long is tested with `activezmqnotifications`; a failed test subscribes again) |
//! | `node_rpc_timeout_ms` | `NODE_RPC_TIMEOUT_MS` | 10000 |
//! | `indexer_service_url` | `INDEXER_SERVICE_URL` | `http://127.0.0.1:8086` (where mempool transactions (`rawtx`) go for tip filters; `none` takes no `rawtx`) |
//!
//! plus the common settings of `service_kit::settings` (`INTERNAL_TOKEN`, ...). No database.

use serde::Deserialize;
use service_kit::settings::{CommonSettings, EnvVar, ServiceSettings, SettingsError, env};

/// zmq-listener settings.
#[derive(Debug, Clone, Deserialize)]
pub struct ZmqListenerSettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// The `mapi` service (node list).
    pub mapi_url: url::Url,
    /// The `block-parser` service (`hashblock`).
    pub block_parser_url: url::Url,
    /// Seconds of silence before a subscription is tested.
    pub zmq_connection_test_interval_sec: u64,
    /// Timeout of node RPC calls.
    pub node_rpc_timeout_ms: u64,
    /// The `indexer` service (`rawtx`), or `none`.
    pub indexer_service_url: String,
}

impl ZmqListenerSettings {
    /// The indexer to send mempool transactions to, if one is configured.
    pub fn indexer_service(&self) -> Option<url::Url> {
        (self.indexer_service_url != "none")
            .then(|| url::Url::parse(&self.indexer_service_url).ok())
            .flatten()
    }
}

impl ServiceSettings for ZmqListenerSettings {
    const DEFAULTS: &'static str = r#"
mapi_url = "http://127.0.0.1:8081"
block_parser_url = "http://127.0.0.1:8083"
zmq_connection_test_interval_sec = 60
node_rpc_timeout_ms = 10000
indexer_service_url = "http://127.0.0.1:8086"
"#;
    const ENV: &'static [EnvVar] = &[
        env("MAPI_URL", "mapi_url"),
        env("BLOCK_PARSER_URL", "block_parser_url"),
        env("ZMQ_CONNECTION_TEST_INTERVAL_SEC", "zmq_connection_test_interval_sec"),
        env("NODE_RPC_TIMEOUT_MS", "node_rpc_timeout_ms"),
        env("INDEXER_SERVICE_URL", "indexer_service_url"),
    ];

    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        for (key, url) in [("mapi_url", &self.mapi_url), ("block_parser_url", &self.block_parser_url)] {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(SettingsError::invalid(Self::ENV, key, "must be an http or https URL"));
            }
        }
        if self.indexer_service_url != "none"
            && !url::Url::parse(&self.indexer_service_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(SettingsError::invalid(
                Self::ENV,
                "indexer_service_url",
                "must be an http or https URL, or none",
            ));
        }
        if self.zmq_connection_test_interval_sec == 0 || self.node_rpc_timeout_ms == 0 {
            return Err(SettingsError::invalid(
                Self::ENV,
                "zmq_connection_test_interval_sec",
                "intervals and timeouts must be positive",
            ));
        }
        Ok(())
    }
}
