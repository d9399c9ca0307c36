#![doc = include_str!("../README.md")]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use node_client::{RpcClient, RpcConfig};
use secrecy::ExposeSecret;
use service_kit::InternalClient;
use sha2::{Digest, Sha256};
use wire_model::internal::NodeAccess;

/// How long a node list serves before it is read again.
const LIST_TTL: Duration = Duration::from_secs(5);

/// Why the nodes could not be had.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// mapi did not answer, or answered badly.
    #[error("the node list from mapi: {0}")]
    Mapi(String),
    /// A node's RPC client could not be built.
    #[error("node {0}: {1}")]
    Client(String, node_client::RpcError),
}

/// A node to ask: its id, RPC client and ZMQ override.
#[derive(Debug, Clone)]
pub struct Node {
    /// `host:port`.
    pub id: String,
    /// Its RPC.
    pub rpc: RpcClient,
    /// The ZMQ endpoint to use instead of those the node reports, if set.
    pub zmq_override: Option<String>,
}

/// Per node id: a digest of the credentials its client was built with, and the client.
type ClientsById = HashMap<String, ([u8; 32], RpcClient)>;

/// The node list and the clients, cached.
#[derive(Debug)]
pub struct Nodes {
    mapi: InternalClient,
    url: String,
    rpc_timeout: Duration,
    clients: Mutex<ClientsById>,
    list: Mutex<Option<(Instant, Vec<Node>)>>,
}

impl Nodes {
    /// Nodes listed by the mapi at `mapi_url`.
    pub fn new(mapi: InternalClient, mapi_url: &url::Url, rpc_timeout: Duration) -> Self {
        let url = format!("{}/internal/nodes", mapi_url.as_str().trim_end_matches('/'));
        Self { mapi, url, rpc_timeout, clients: Mutex::default(), list: Mutex::default() }
    }

    /// The current nodes (the list is read again after a few seconds).
    pub async fn current(&self) -> Result<Vec<Node>, NodesError> {
        if let Some((at, nodes)) = self.list.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && at.elapsed() < LIST_TTL
        {
            return Ok(nodes.clone());
        }
        let resp = self.mapi.get(&self.url).send().await.map_err(|e| NodesError::Mapi(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(NodesError::Mapi(format!("status {}", resp.status())));
        }
        let listed: Vec<NodeAccess> = resp.json().await.map_err(|e| NodesError::Mapi(e.to_string()))?;
        let nodes = listed.iter().map(|n| self.node(n)).collect::<Result<Vec<_>, _>>()?;
        *self.list.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), nodes.clone()));
        Ok(nodes)
    }

    fn node(&self, access: &NodeAccess) -> Result<Node, NodesError> {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(access.rpc_url.as_str())
            .chain_update([0])
            .chain_update(&access.username)
            .chain_update([0])
            .chain_update(access.password.expose_secret())
            .finalize()
            .into();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, rpc)) = clients.get(&access.id)
            && *known == digest
        {
            return Ok(Node {
                id: access.id.clone(),
                rpc: rpc.clone(),
                zmq_override: access.zmq_notifications_endpoint.clone(),
            });
        }
        let mut config = RpcConfig::new(access.rpc_url.clone(), &access.username, access.password.clone());
        config.timeout = self.rpc_timeout;
        let rpc = RpcClient::new(config).map_err(|e| NodesError::Client(access.id.clone(), e))?;
        clients.insert(access.id.clone(), (digest, rpc.clone()));
        Ok(Node { id: access.id.clone(), rpc, zmq_override: access.zmq_notifications_endpoint.clone() })
    }
}
