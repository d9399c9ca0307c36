//! JSON-RPC over HTTP to a Bitcoin SV node: typed calls, typed errors, retries only where a request
//! cannot have reached the node, and `getblock` streamed so a block never sits in memory whole.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bsv_primitives::{BlockHash, BlockHeader, TscProof, Txid};
use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::AsyncRead;
use tokio::time::Instant;

use crate::block_stream::HexResultStream;
use crate::rpc_types::*;
use crate::transport::{Transport, TransportError, body_stream, read_body};

/// How to reach one node's RPC interface.
#[derive(Clone)]
pub struct RpcConfig {
    /// Base URL, e.g. `http://127.0.0.1:18332`.
    pub url: url::Url,
    /// RPC user.
    pub username: String,
    /// RPC password; never logged or printed.
    pub password: SecretString,
    /// Timeout of ordinary calls (the reference uses 60 s).
    pub timeout: Duration,
    /// Timeout of `getblock` streams (the reference uses 10 minutes).
    pub block_timeout: Duration,
}

impl std::fmt::Debug for RpcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcConfig")
            .field("url", &self.url.as_str())
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl RpcConfig {
    /// A config with the reference's timeouts.
    pub fn new(url: url::Url, username: impl Into<String>, password: SecretString) -> Self {
        Self {
            url,
            username: username.into(),
            password,
            timeout: Duration::from_secs(60),
            block_timeout: Duration::from_secs(600),
        }
    }
}

/// What went wrong talking to a node. The split matters to mAPI: an RPC error is an answer (the
/// node refused), a transport error means the node may be down (try another, or 503).
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The node answered with a JSON-RPC error.
    #[error("node RPC error {code}: {message}")]
    Rpc {
        /// The node's error code, e.g. -5 (not found), -22 (decode failed), -25, -26.
        code: i64,
        /// The node's message.
        message: String,
    },
    /// The node could not be reached or did not answer in time.
    #[error("node unreachable: {0}")]
    Transport(#[source] TransportError),
    /// The node answered HTTP without a JSON-RPC body (401 for bad credentials, for example).
    #[error("node answered HTTP {status}")]
    Http {
        /// The HTTP status.
        status: u16,
    },
    /// The answer was not the expected JSON.
    #[error("unexpected node answer: {0}")]
    Decode(String),
}

impl RpcError {
    /// True when the node itself could not be reached (as opposed to refusing the request).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RpcError::Transport(_))
    }

    /// The JSON-RPC error code, if the node answered with one.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            RpcError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[derive(serde::Deserialize)]
struct RpcResponse<T> {
    result: Option<T>,
    error: Option<RpcErrorBody>,
}

#[derive(serde::Deserialize)]
struct RpcErrorBody {
    code: i64,
    message: String,
}

/// Whether parameters as `dumpparameters` lists them turn `-txindex` on. The node reads a boolean
/// switch as on when it has no value or a value whose leading integer is not 0; the last one
/// given wins, and `-notxindex` turns it off.
pub fn txindex_enabled(parameters: &[String]) -> bool {
    let mut on = false;
    for p in parameters {
        let (name, value) = p.split_once('=').map_or((p.as_str(), None), |(n, v)| (n, Some(v)));
        let truthy = |v: Option<&str>| v.is_none_or(|v| leading_integer(v) != 0);
        match name.trim_start_matches('-') {
            "txindex" => on = truthy(value),
            "notxindex" => on = !truthy(value),
            _ => {}
        }
    }
    on
}

/// The integer a C `atoi` reads from the start of `v` (0 when there is none).
fn leading_integer(v: &str) -> i64 {
    let v = v.trim_start();
    let (sign, rest) = match v.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse::<i64>().map_or(0, |n| sign * n)
}

/// A client for one node. Cheap to clone (the HTTP connection pool is shared).
#[derive(Debug, Clone)]
pub struct RpcClient {
    http: Transport,
    auth: http::HeaderValue,
    config: std::sync::Arc<RpcConfig>,
    next_id: std::sync::Arc<AtomicU64>,
}

/// Transport retries for requests that never reached the node (the reference: 3 × 100 ms).
const CONNECT_RETRIES: u32 = 3;
const CONNECT_RETRY_DELAY: Duration = Duration::from_millis(100);

impl RpcClient {
    /// Builds a client; no request is made until the first call.
    pub fn new(config: RpcConfig) -> Result<Self, RpcError> {
        use base64::Engine as _;
        let credentials = format!("{}:{}", config.username, config.password.expose_secret());
        let mut auth = http::HeaderValue::try_from(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        ))
        .map_err(|_| RpcError::Transport(TransportError::Request("invalid RPC credentials".into())))?;
        auth.set_sensitive(true);
        let http = Transport::new(Duration::from_secs(5), Duration::from_secs(30));
        Ok(Self { http, auth, config: std::sync::Arc::new(config), next_id: Default::default() })
    }

    /// The node's RPC URL (without credentials).
    pub fn url(&self) -> &url::Url {
        &self.config.url
    }

    /// Posts one JSON-RPC request; the answer's head must arrive before `deadline`.
    async fn post(
        &self,
        method: &str,
        params: &Value,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<http::Response<hyper::body::Incoming>, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let body = Bytes::from(serde_json::to_vec(&body).map_err(|e| RpcError::Decode(e.to_string()))?);
        let mut attempt = 0;
        loop {
            let request = http::Request::post(self.config.url.as_str())
                .header(http::header::AUTHORIZATION, self.auth.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(body.clone()))
                .map_err(|e| RpcError::Transport(TransportError::Request(e.to_string())))?;
            match self.http.send(request, deadline, timeout).await {
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_connect() && attempt < CONNECT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(CONNECT_RETRY_DELAY).await;
                }
                Err(e) => return Err(RpcError::Transport(e)),
            }
        }
    }

    /// Calls `method` and decodes its `result` as `T`.
    #[tracing::instrument(skip_all, fields(rpc.method = method))]
    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, RpcError> {
        let timeout = self.config.timeout;
        let deadline = Instant::now() + timeout;
        let resp = self.post(method, &params, deadline, timeout).await?;
        let status = resp.status().as_u16();
        let bytes = read_body(resp.into_body(), deadline, timeout).await.map_err(RpcError::Transport)?;
        decode_response(status, &bytes)
    }

    /// `sendrawtransactions`: submits a batch in one call.
    pub async fn send_raw_transactions(
        &self,
        txs: &[SendRawTx],
    ) -> Result<SendRawTransactionsResult, RpcError> {
        self.call("sendrawtransactions", json!([txs])).await
    }

    /// `sendrawtransaction`: submits one transaction, returning its txid.
    pub async fn send_raw_transaction(&self, hex: &str) -> Result<Txid, RpcError> {
        self.call("sendrawtransaction", json!([hex])).await
    }

    /// `getrawmempool`: txids in the mempool.
    pub async fn get_raw_mempool(&self) -> Result<Vec<Txid>, RpcError> {
        self.call("getrawmempool", json!([])).await
    }

    /// `getmempoolancestors <txid> true`.
    pub async fn get_mempool_ancestors(&self, txid: &Txid) -> Result<Value, RpcError> {
        self.call("getmempoolancestors", json!([txid, true])).await
    }

    /// `gettxouts`: the fields asked for of each output, in request order.
    pub async fn get_tx_outs(
        &self,
        outs: &[TxOutRef],
        fields: &[&str],
        include_mempool: bool,
    ) -> Result<GetTxOutsResult, RpcError> {
        self.call("gettxouts", json!([outs, fields, include_mempool])).await
    }

    /// `getmerkleproof2 <block> <txid> false "hash"`: the node's TSC proof targeting the block hash.
    pub async fn get_merkle_proof2(&self, block: &BlockHash, txid: &Txid) -> Result<TscProof, RpcError> {
        self.call("getmerkleproof2", json!([block, txid])).await
    }

    /// `getmerkleproof2` with an explicit target type (`hash`, `header`, `merkleroot`).
    pub async fn get_merkle_proof2_with_target(
        &self,
        block: &BlockHash,
        txid: &Txid,
        include_full_tx: bool,
        target_type: &str,
    ) -> Result<TscProof, RpcError> {
        self.call("getmerkleproof2", json!([block, txid, include_full_tx, target_type])).await
    }

    /// `getblockchaininfo`.
    pub async fn get_blockchain_info(&self) -> Result<BlockchainInfo, RpcError> {
        self.call("getblockchaininfo", json!([])).await
    }

    /// `getnetworkinfo`.
    pub async fn get_network_info(&self) -> Result<NetworkInfo, RpcError> {
        self.call("getnetworkinfo", json!([])).await
    }

    /// `getblockheader <hash> true`.
    pub async fn get_block_header(&self, hash: &BlockHash) -> Result<BlockHeaderInfo, RpcError> {
        self.call("getblockheader", json!([hash, true])).await
    }

    /// `getblockheader <hash> false`, parsed.
    pub async fn get_block_header_raw(&self, hash: &BlockHash) -> Result<BlockHeader, RpcError> {
        let hex: String = self.call("getblockheader", json!([hash, false])).await?;
        BlockHeader::from_hex(&hex).map_err(|e| RpcError::Decode(e.to_string()))
    }

    /// `getbestblockhash`.
    pub async fn get_best_block_hash(&self) -> Result<BlockHash, RpcError> {
        self.call("getbestblockhash", json!([])).await
    }

    /// `getblockhash <height>`.
    pub async fn get_block_hash(&self, height: u64) -> Result<BlockHash, RpcError> {
        self.call("getblockhash", json!([height])).await
    }

    /// `getrawtransaction <txid> false`: raw bytes.
    pub async fn get_raw_transaction(&self, txid: &Txid) -> Result<Vec<u8>, RpcError> {
        let hex: String = self.call("getrawtransaction", json!([txid, false])).await?;
        hex::decode(hex).map_err(|e| RpcError::Decode(e.to_string()))
    }

    /// `getrawtransaction <txid> true`.
    pub async fn get_raw_transaction_info(&self, txid: &Txid) -> Result<RawTransactionInfo, RpcError> {
        self.call("getrawtransaction", json!([txid, true])).await
    }

    /// `verifyscript <items> true <timeout ms>`.
    pub async fn verify_script(
        &self,
        items: &[VerifyScriptItem],
        timeout_ms: u64,
    ) -> Result<Vec<VerifyScriptResult>, RpcError> {
        self.call("verifyscript", json!([items, true, timeout_ms])).await
    }

    /// `activezmqnotifications`: which ZMQ topics the node publishes, and where.
    pub async fn active_zmq_notifications(&self) -> Result<Vec<ZmqNotification>, RpcError> {
        self.call("activezmqnotifications", json!([])).await
    }

    /// `dumpparameters`: the parameters the node was started with (switches and config file), as
    /// `name` or `name=value` entries.
    pub async fn dump_parameters(&self) -> Result<Vec<String>, RpcError> {
        self.call("dumpparameters", json!([])).await
    }

    /// True when the node runs with a transaction index (`-txindex`), judged from
    /// [`RpcClient::dump_parameters`]: without it `getrawtransaction` finds a mined transaction
    /// only while one of its outputs is unspent.
    pub async fn has_txindex(&self) -> Result<bool, RpcError> {
        Ok(txindex_enabled(&self.dump_parameters().await?))
    }

    /// `getblock <hash> 0`, streamed: the hex in the JSON answer is decoded as it arrives, so the
    /// caller can parse the block (with `bsv_primitives::BlockReader` behind
    /// `tokio_util::io::SyncIoBridge`) without ever holding it whole.
    pub async fn get_block_stream(
        &self,
        hash: &BlockHash,
    ) -> Result<impl AsyncRead + Send + Unpin + 'static, RpcError> {
        let timeout = self.config.block_timeout;
        let deadline = Instant::now() + timeout;
        let resp = self.post("getblock", &json!([hash, 0]), deadline, timeout).await?;
        let status = resp.status().as_u16();
        if status != 200 {
            let bytes = read_body(resp.into_body(), deadline, timeout).await.map_err(RpcError::Transport)?;
            return Err(decode_response::<Value>(status, &bytes).err().unwrap_or(RpcError::Http { status }));
        }
        let body = body_stream(resp.into_body(), deadline);
        Ok(tokio_util::io::StreamReader::new(HexResultStream::new(body)))
    }
}

/// Decodes a JSON-RPC answer, turning node errors into `RpcError::Rpc`.
fn decode_response<T: DeserializeOwned>(status: u16, bytes: &[u8]) -> Result<T, RpcError> {
    match serde_json::from_slice::<RpcResponse<T>>(bytes) {
        Ok(RpcResponse { error: Some(e), .. }) => Err(RpcError::Rpc { code: e.code, message: e.message }),
        Ok(RpcResponse { result: Some(r), .. }) => Ok(r),
        Ok(RpcResponse { result: None, .. }) => {
            // `null` results are legitimate for some calls (`T = Option<_>` or `Value`).
            serde_json::from_value(Value::Null).map_err(|e| RpcError::Decode(e.to_string()))
        }
        Err(_) if status != 200 => Err(RpcError::Http { status }),
        Err(e) => Err(RpcError::Decode(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_errors_and_http_errors_are_told_apart() {
        let err = decode_response::<Value>(
            500,
            br#"{"result":null,"error":{"code":-22,"message":"TX decode failed"},"id":1}"#,
        )
        .unwrap_err();
        assert_eq!(err.rpc_code(), Some(-22));
        assert!(matches!(decode_response::<Value>(401, b""), Err(RpcError::Http { status: 401 })));
        let ok: u64 = decode_response(200, br#"{"result":7,"error":null,"id":1}"#).unwrap();
        assert_eq!(ok, 7);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let cfg = RpcConfig::new("http://127.0.0.1:1".parse().unwrap(), "u", SecretString::from("hunter2"));
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}

#[cfg(test)]
mod txindex_tests {
    use super::txindex_enabled;

    #[test]
    fn txindex_is_read_as_the_node_reads_boolean_switches() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(txindex_enabled(&p(&["regtest", "txindex=1"])));
        assert!(txindex_enabled(&p(&["txindex"])));
        assert!(txindex_enabled(&p(&["txindex=2"])));
        assert!(!txindex_enabled(&p(&["regtest"])));
        assert!(!txindex_enabled(&p(&["txindex=0"])));
        assert!(!txindex_enabled(&p(&["txindex=true"])), "the node reads `true` as 0");
        assert!(!txindex_enabled(&p(&["txindex=1", "notxindex"])));
        assert!(!txindex_enabled(&p(&["txindex=1", "txindex=0"])));
    }
}
