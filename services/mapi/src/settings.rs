//! mAPI settings, with the reference's environment variable names.
//!
//! | key | env | default |
//! |---|---|---|
//! | `wif_private_key` | `WIF_PRIVATEKEY` | the key envelopes are signed with (its public key is the `minerId`) |
//! | `minerid_server_url` | `MINERID_SERVER_URL` | the MinerId server to sign with instead (exactly one of the two) |
//! | `minerid_server_alias` | `MINERID_SERVER_ALIAS` | the alias at that server |
//! | `minerid_server_authentication` | `MINERID_SERVER_AUTHENTICATION` | `Authorization` header value for it |
//! | `quote_expiry_minutes` | `QUOTE_EXPIRY_MINUTES` | 10 |
//! | `callback_ip_addresses` | `CALLBACK_IP_ADDRESSES` | unset (comma-separated `IPv4/IPv6[:port]` list shown in quotes) |
//! | `check_fee_disabled` | `CHECK_FEE_DISABLED` | false |
//! | `resubmit_known_transactions` | `RESUBMIT_KNOWN_TRANSACTIONS` | false |
//! | `allowed_txout_fields` | `ALLOWED_TXOUT_FIELDS` | `scriptPubKeyLen,value,isStandard,confirmations` |
//! | `node_rpc_timeout_ms` | `NODE_RPC_TIMEOUT_MS` | 60000 |
//! | `mempool_checker_disabled` | `MEMPOOL_CHECKER_DISABLED` | false |
//! | `mempool_checker_interval_sec` | `MEMPOOL_CHECKER_INTERVAL_SEC` | 60 |
//! | `mempool_checker_unsuccessful_interval_sec` | `MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC` | 10 |
//! | `mempool_checker_missing_inputs_retries` | `MEMPOOL_CHECKER_MISSING_INPUTS_RETRIES` | 5 |
//! | `max_txs_per_request` | `MAX_TXS_PER_REQUEST` | 10000 (transactions in one `POST /mapi/txs`; 413 beyond) |
//! | `submit_queue_capacity` | `SUBMIT_QUEUE_CAPACITY` | 50000 (transactions that may wait for each merged database or node call; 503 with `Retry-After` beyond) |
//! | `zmq_listener_url` | `ZMQ_LISTENER_URL` | `http://127.0.0.1:8085` (whose subscriptions `status/zmq` reports) |
//! | `block_parser_url` | `BLOCK_PARSER_URL` | `http://127.0.0.1:8083` (where transactions are registered; `status/blockParser` comes from it) |
//! | `notifier_url` | `NOTIFIER_URL` | unset (the notifier that delivers callbacks; unset, callbacks stay in the `callbacks` table, with a warning at start-up) |
//! | `ds_host_ban_time_sec` | `DS_HOST_BAN_TIME_SEC` | 300 (a DSNT caller's score, and a ban, last this long after its last increase) |
//! | `ds_max_num_of_tx_queries` | `DS_MAX_NUM_OF_TX_QUERIES` | 5 (queries of one known transaction by one caller within the cool-down that ban it) |
//! | `ds_cached_tx_requests_cooldown_period_sec` | `DS_CACHED_TX_REQUESTS_COOLDOWN_PERIOD_SEC` | 300 (sliding window of that count) |
//! | `ds_max_num_of_unknown_tx_queries` | `DS_MAX_NUM_OF_UNKNOWN_QUERIES` | 100 (queries of unknown transactions by one caller within the cool-down that ban it) |
//! | `ds_unknown_tx_query_cooldown_period_sec` | `DS_UNKNOWN_TX_QUERY_COOLDOWN_PERIOD_SEC` | 300 (sliding window of that count) |
//! | `ds_script_validation_timeout_sec` | `DS_SCRIPT_VALIDATION_TIMEOUT_SEC` | 5 (the node's `verifyscript` limit for a submitted double-spend proof) |
//! | `mempool_checker_blockparser_queued_max` | `MEMPOOL_CHECKER_BLOCKPARSER_QUEUED_MAX` | 0 (the mempool checker skips a round while more blocks than this wait to be parsed) |
//!
//! plus the common settings of `service_kit::settings` (`DATABASE_URL`, `INTERNAL_TOKEN`, ...).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use service_kit::settings::{CommonSettings, EnvVar, ServiceSettings, SettingsError, env};

/// mAPI's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct MapiSettings {
    /// Shared settings.
    pub common: CommonSettings,
    /// The signing key, WIF.
    #[serde(default)]
    pub wif_private_key: Option<SecretString>,
    /// A MinerId server to sign with instead.
    #[serde(default)]
    pub minerid_server_url: Option<String>,
    /// The alias at the MinerId server.
    #[serde(default)]
    pub minerid_server_alias: Option<String>,
    /// `Authorization` header value for the MinerId server.
    #[serde(default)]
    pub minerid_server_authentication: Option<SecretString>,
    /// Minutes a quote stays valid.
    pub quote_expiry_minutes: u32,
    /// Where callbacks come from, as shown in quotes.
    #[serde(default)]
    pub callback_ip_addresses: Option<String>,
    /// Accept any fee.
    pub check_fee_disabled: bool,
    /// Send already known transactions to the nodes again.
    pub resubmit_known_transactions: bool,
    /// Fields `POST /mapi/txouts` may return.
    pub allowed_txout_fields: String,
    /// Timeout of node RPC calls.
    pub node_rpc_timeout_ms: u64,
    /// Turns the mempool checker off.
    pub mempool_checker_disabled: bool,
    /// Seconds between checker rounds.
    pub mempool_checker_interval_sec: u64,
    /// Seconds before retrying after a failed round.
    pub mempool_checker_unsuccessful_interval_sec: u64,
    /// Rounds a transaction may fail with missing inputs before it is given up.
    pub mempool_checker_missing_inputs_retries: u32,
    /// Most transactions in one `POST /mapi/txs`.
    pub max_txs_per_request: usize,
    /// Most transactions waiting for each merged database or node call.
    pub submit_queue_capacity: usize,
    /// The `zmq-listener` service.
    pub zmq_listener_url: url::Url,
    /// The `block-parser` service.
    pub block_parser_url: url::Url,
    /// Blocks waiting to be parsed beyond which the mempool checker skips a round.
    pub mempool_checker_blockparser_queued_max: u64,
    /// The `notifier` service (callback delivery).
    #[serde(default)]
    pub notifier_url: Option<url::Url>,
    /// DSNT: seconds a caller's score (and ban) lasts after its last increase.
    pub ds_host_ban_time_sec: u64,
    /// DSNT: queries of one known transaction by one caller that ban it.
    pub ds_max_num_of_tx_queries: u32,
    /// DSNT: sliding window of that count, seconds.
    pub ds_cached_tx_requests_cooldown_period_sec: u64,
    /// DSNT: queries of unknown transactions by one caller that ban it.
    pub ds_max_num_of_unknown_tx_queries: u32,
    /// DSNT: sliding window of that count, seconds.
    pub ds_unknown_tx_query_cooldown_period_sec: u64,
    /// DSNT: `verifyscript` time limit, seconds.
    pub ds_script_validation_timeout_sec: u64,
}

impl MapiSettings {
    /// The callback IPs, trimmed, empty entries dropped.
    pub fn callback_ips(&self) -> Vec<String> {
        self.callback_ip_addresses
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl ServiceSettings for MapiSettings {
    const DEFAULTS: &'static str = r#"
quote_expiry_minutes = 10
check_fee_disabled = false
resubmit_known_transactions = false
allowed_txout_fields = "scriptPubKeyLen,value,isStandard,confirmations"
node_rpc_timeout_ms = 60000
mempool_checker_disabled = false
mempool_checker_interval_sec = 60
mempool_checker_unsuccessful_interval_sec = 10
mempool_checker_missing_inputs_retries = 5
max_txs_per_request = 10000
submit_queue_capacity = 50000
zmq_listener_url = "http://127.0.0.1:8085"
block_parser_url = "http://127.0.0.1:8083"
mempool_checker_blockparser_queued_max = 0
ds_host_ban_time_sec = 300
ds_max_num_of_tx_queries = 5
ds_cached_tx_requests_cooldown_period_sec = 300
ds_max_num_of_unknown_tx_queries = 100
ds_unknown_tx_query_cooldown_period_sec = 300
ds_script_validation_timeout_sec = 5
"#;
    const ENV: &'static [EnvVar] = &[
        env("WIF_PRIVATEKEY", "wif_private_key"),
        env("MINERID_SERVER_URL", "minerid_server_url"),
        env("MINERID_SERVER_ALIAS", "minerid_server_alias"),
        env("MINERID_SERVER_AUTHENTICATION", "minerid_server_authentication"),
        env("QUOTE_EXPIRY_MINUTES", "quote_expiry_minutes"),
        env("CALLBACK_IP_ADDRESSES", "callback_ip_addresses"),
        env("CHECK_FEE_DISABLED", "check_fee_disabled"),
        env("RESUBMIT_KNOWN_TRANSACTIONS", "resubmit_known_transactions"),
        env("ALLOWED_TXOUT_FIELDS", "allowed_txout_fields"),
        env("NODE_RPC_TIMEOUT_MS", "node_rpc_timeout_ms"),
        env("MEMPOOL_CHECKER_DISABLED", "mempool_checker_disabled"),
        env("MEMPOOL_CHECKER_INTERVAL_SEC", "mempool_checker_interval_sec"),
        env("MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC", "mempool_checker_unsuccessful_interval_sec"),
        env("MEMPOOL_CHECKER_MISSING_INPUTS_RETRIES", "mempool_checker_missing_inputs_retries"),
        env("MAX_TXS_PER_REQUEST", "max_txs_per_request"),
        env("SUBMIT_QUEUE_CAPACITY", "submit_queue_capacity"),
        env("ZMQ_LISTENER_URL", "zmq_listener_url"),
        env("BLOCK_PARSER_URL", "block_parser_url"),
        env("NOTIFIER_URL", "notifier_url"),
        env("DS_HOST_BAN_TIME_SEC", "ds_host_ban_time_sec"),
        env("DS_MAX_NUM_OF_TX_QUERIES", "ds_max_num_of_tx_queries"),
        env("DS_CACHED_TX_REQUESTS_COOLDOWN_PERIOD_SEC", "ds_cached_tx_requests_cooldown_period_sec"),
        env("DS_MAX_NUM_OF_UNKNOWN_QUERIES", "ds_max_num_of_unknown_tx_queries"),
        env("DS_UNKNOWN_TX_QUERY_COOLDOWN_PERIOD_SEC", "ds_unknown_tx_query_cooldown_period_sec"),
        env("DS_SCRIPT_VALIDATION_TIMEOUT_SEC", "ds_script_validation_timeout_sec"),
        env("MEMPOOL_CHECKER_BLOCKPARSER_QUEUED_MAX", "mempool_checker_blockparser_queued_max"),
    ];

    fn common(&self) -> &CommonSettings {
        &self.common
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.common.validate()?;
        self.common.require_database_url()?;
        match (&self.wif_private_key, &self.minerid_server_url) {
            (Some(wif), None) => {
                bsv_primitives::PrivateKey::from_wif(wif.expose_secret()).map_err(|_| {
                    SettingsError::invalid(Self::ENV, "wif_private_key", "is not a valid WIF private key")
                })?;
            }
            (None, Some(url)) => {
                if url::Url::parse(url).is_err() {
                    return Err(SettingsError::invalid(Self::ENV, "minerid_server_url", "is not a URL"));
                }
                if self.minerid_server_alias.as_deref().is_none_or(str::is_empty) {
                    return Err(SettingsError::invalid(
                        Self::ENV,
                        "minerid_server_alias",
                        "is required with MINERID_SERVER_URL",
                    ));
                }
            }
            _ => {
                return Err(SettingsError::invalid(
                    Self::ENV,
                    "wif_private_key",
                    "set exactly one of WIF_PRIVATEKEY and MINERID_SERVER_URL",
                ));
            }
        }
        if self.quote_expiry_minutes == 0 {
            return Err(SettingsError::invalid(Self::ENV, "quote_expiry_minutes", "must be positive"));
        }
        if self.mempool_checker_interval_sec == 0 || self.mempool_checker_unsuccessful_interval_sec == 0 {
            return Err(SettingsError::invalid(
                Self::ENV,
                "mempool_checker_interval_sec",
                "intervals must be positive",
            ));
        }
        if self.node_rpc_timeout_ms == 0 {
            return Err(SettingsError::invalid(Self::ENV, "node_rpc_timeout_ms", "must be positive"));
        }
        if self.max_txs_per_request == 0 {
            return Err(SettingsError::invalid(Self::ENV, "max_txs_per_request", "must be positive"));
        }
        for (key, url) in
            [("zmq_listener_url", &self.zmq_listener_url), ("block_parser_url", &self.block_parser_url)]
        {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(SettingsError::invalid(Self::ENV, key, "must be an http or https URL"));
            }
        }
        if let Some(url) = &self.notifier_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(SettingsError::invalid(Self::ENV, "notifier_url", "must be an http or https URL"));
        }
        for (key, value) in [
            ("ds_host_ban_time_sec", self.ds_host_ban_time_sec),
            ("ds_max_num_of_tx_queries", u64::from(self.ds_max_num_of_tx_queries)),
            ("ds_cached_tx_requests_cooldown_period_sec", self.ds_cached_tx_requests_cooldown_period_sec),
            ("ds_max_num_of_unknown_tx_queries", u64::from(self.ds_max_num_of_unknown_tx_queries)),
            ("ds_unknown_tx_query_cooldown_period_sec", self.ds_unknown_tx_query_cooldown_period_sec),
            ("ds_script_validation_timeout_sec", self.ds_script_validation_timeout_sec),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(Self::ENV, key, "must be positive"));
            }
        }
        if self.submit_queue_capacity == 0 {
            return Err(SettingsError::invalid(Self::ENV, "submit_queue_capacity", "must be positive"));
        }
        Ok(())
    }
}
