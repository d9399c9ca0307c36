//! The nodes mAPI talks to: storage, RPC clients (cached per node), the best block across nodes,
//! and the admin API (`/api/v1/Node`), which checks a node before adding it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::coalesce::Coalescer;
use actix_web::{HttpResponse, web};
use bsv_primitives::BlockHash;
use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use node_client::{RpcClient, RpcConfig, RpcError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use service_kit::internal::TrustedCaller;
use service_kit::{ApiError, ErrorKind};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::AppState;
use crate::schema::nodes;

/// Oldest node version mAPI works with: 1.0.10 (100000000 + 1e6·major + 1e4·minor + 100·revision).
pub const MIN_NODE_VERSION: u64 = 101_001_000;

/// ZMQ topics a node must publish.
pub const REQUIRED_ZMQ: [&str; 3] = ["pubhashblock", "pubdiscardedfrommempool", "pubinvalidtx"];

/// A stored node. The password stays in its secret type from the database to the RPC client, so
/// no `Debug` output or log line can show it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = nodes)]
pub struct NodeRow {
    /// Internal id.
    pub node_id: i64,
    /// Host, lower case.
    pub host: String,
    /// RPC port.
    pub port: i32,
    /// RPC user.
    pub username: String,
    /// RPC password (never returned by any API, never printed).
    #[diesel(deserialize_as = String)]
    pub password: SecretString,
    /// Free text.
    pub remarks: Option<String>,
    /// ZMQ endpoint override.
    pub zmq_notifications_endpoint: Option<String>,
    /// 600 connected, 601 disconnected.
    pub node_status: i32,
    /// Last error seen.
    pub last_error: Option<String>,
    /// When.
    pub last_error_at: Option<OffsetDateTime>,
}

impl NodeRow {
    /// `host:port`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The admin view of a node: everything but the password.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    id: String,
    username: String,
    remarks: Option<String>,
    status: i32,
    last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_error_at: Option<OffsetDateTime>,
    zmq_notifications_endpoint: Option<String>,
}

impl From<&NodeRow> for NodeView {
    fn from(n: &NodeRow) -> Self {
        Self {
            id: n.id(),
            username: n.username.clone(),
            remarks: n.remarks.clone(),
            status: n.node_status,
            last_error: n.last_error.clone(),
            last_error_at: n.last_error_at,
            zmq_notifications_endpoint: n.zmq_notifications_endpoint.clone(),
        }
    }
}

/// A node's client and its merged `sendrawtransactions`.
type NodeHandles = (RpcClient, Coalescer<crate::batching::NodeSend>);

/// Per node (`host`, `port`): a digest of the credentials its handles were built with, and them.
type HandlesByNode = HashMap<(String, i32), ([u8; 32], NodeHandles)>;

/// RPC clients per node (`host`, `port`), reused across requests (each holds a connection pool),
/// with each node's merged sender and a digest of the credentials they were built with (a changed
/// password rebuilds them; the password itself is not kept here).
#[derive(Debug)]
pub struct NodeClients {
    clients: Mutex<HandlesByNode>,
    queue_capacity: usize,
}

impl NodeClients {
    /// No clients yet; each node's merged sender lets at most `queue_capacity` transactions wait.
    pub fn new(queue_capacity: usize) -> Self {
        Self { clients: Mutex::default(), queue_capacity }
    }

    /// The client of a node (built on first use, rebuilt when its credentials change).
    pub fn client(&self, node: &NodeRow, timeout: Duration) -> Result<RpcClient, RpcError> {
        self.handles(node, timeout).map(|h| h.0)
    }

    /// The node's merged `sendrawtransactions` (see [`crate::coalesce`]).
    pub fn sender(
        &self,
        node: &NodeRow,
        timeout: Duration,
    ) -> Result<Coalescer<crate::batching::NodeSend>, RpcError> {
        self.handles(node, timeout).map(|h| h.1)
    }

    fn handles(&self, node: &NodeRow, timeout: Duration) -> Result<NodeHandles, RpcError> {
        let credentials = credentials_digest(&node.username, &node.password);
        let key = (node.host.clone(), node.port);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((digest, handles)) = clients.get(&key)
            && *digest == credentials
        {
            return Ok(handles.clone());
        }
        let client = build_client(&node.host, node.port, &node.username, &node.password, timeout)?;
        let handles = (client.clone(), crate::batching::SubmitIo::sender(client, self.queue_capacity));
        clients.insert(key, (credentials, handles.clone()));
        Ok(handles)
    }
}

/// What tells two sets of credentials apart without keeping them.
fn credentials_digest(user: &str, password: &SecretString) -> [u8; 32] {
    Sha256::new()
        .chain_update(user.as_bytes())
        .chain_update([0])
        .chain_update(password.expose_secret().as_bytes())
        .finalize()
        .into()
}

fn build_client(
    host: &str,
    port: i32,
    user: &str,
    password: &SecretString,
    timeout: Duration,
) -> Result<RpcClient, RpcError> {
    let url =
        url::Url::parse(&format!("http://{host}:{port}")).map_err(|e| RpcError::Decode(e.to_string()))?;
    let mut config = RpcConfig::new(url, user, password.clone());
    config.timeout = timeout;
    RpcClient::new(config)
}

/// The node's `getnetworkinfo` extras (consolidation parameters), kept for a minute: they are
/// node settings that change only with a node restart, and asking on every submission costs a
/// round trip.
#[derive(Debug, Default)]
pub struct NetworkInfoCache {
    cached: Mutex<Option<(std::time::Instant, serde_json::Map<String, serde_json::Value>)>>,
}

impl NetworkInfoCache {
    const TTL: Duration = Duration::from_secs(60);

    /// The cached extras, or those of the first node that answers; `None` when none does.
    pub async fn get(
        &self,
        nodes: &[(NodeRow, RpcClient)],
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        if let Some((at, extra)) = self.cached.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && at.elapsed() < Self::TTL
        {
            return Some(extra.clone());
        }
        for (_, client) in nodes {
            if let Ok(info) = client.get_network_info().await {
                *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((std::time::Instant::now(), info.extra.clone()));
                return Some(info.extra);
            }
        }
        None
    }
}

/// All stored nodes.
pub async fn all(db: &Db) -> Result<Vec<NodeRow>, DbError> {
    let mut conn = db.conn().await?;
    Ok(nodes::table.select(NodeRow::as_select()).order(nodes::node_id).load(&mut conn).await?)
}

/// Clients of every stored node; 503 when there are none.
pub async fn clients(state: &AppState) -> Result<Vec<(NodeRow, RpcClient)>, ApiError> {
    let rows = state.node_list.get_or_load((), || all(&state.db)).await?;
    if rows.is_empty() {
        return Err(ApiError::unavailable("No nodes available"));
    }
    let timeout = Duration::from_millis(state.settings.node_rpc_timeout_ms);
    rows.into_iter()
        .map(|r| state.node_clients.client(&r, timeout).map(|c| (r, c)))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::internal(&e))
}

/// The best block as mAPI reports it: the *lowest* tip among the nodes that answer, so a quote
/// never names a block some node has not seen.
pub async fn best_block(state: &AppState) -> Result<(BlockHash, u64), ApiError> {
    let nodes = clients(state).await?.into_iter().map(|(row, client)| (row.node_id, client)).collect();
    let best = state.io.best_block.call(nodes).await.map_err(crate::submit::refused)?;
    best.ok_or_else(|| ApiError::unavailable("Failed to connect to node(s)."))
}

/// Body of `POST /api/v1/Node` and `PUT /api/v1/Node/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInput {
    /// `host:port` (POST only).
    #[serde(default)]
    pub id: Option<String>,
    /// RPC user.
    #[serde(default)]
    pub username: Option<String>,
    /// RPC password (never printed).
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Free text.
    #[serde(default)]
    pub remarks: Option<String>,
    /// ZMQ endpoint override (`tcp://host:port`).
    #[serde(default, alias = "zmqNotificationsEndpoint", rename = "zmqNotificationsEndpoint")]
    pub zmq_notifications_endpoint: Option<String>,
}

/// Splits `host:port`, lower-casing the host.
fn parse_id(id: &str) -> Result<(String, i32), ApiError> {
    let (host, port) = id.rsplit_once(':').ok_or_else(|| ApiError::bad_request("Id: must be host:port"))?;
    let port: i32 = port
        .parse()
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| ApiError::bad_request("Id: port must be a number"))?;
    if host.is_empty() || host.contains(':') {
        return Err(ApiError::bad_request("Id: must be host:port"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Checks that a node answers, is recent enough, keeps a transaction index and publishes the ZMQ
/// topics mAPI needs.
async fn check_node(
    host: &str,
    port: i32,
    user: &str,
    password: &SecretString,
    zmq: Option<&str>,
    timeout: Duration,
) -> Result<(), ApiError> {
    let unable =
        || ApiError::bad_request(format!("The node was not added. Unable to connect to node {host}:{port}."));
    let client = build_client(host, port, user, password, timeout).map_err(|_| unable())?;
    let info = client.get_network_info().await.map_err(|_| unable())?;
    if info.version < MIN_NODE_VERSION {
        return Err(ApiError::bad_request(format!(
            "The node was not added. Node version {} is older than the minimum 1.0.10.",
            info.version
        )));
    }
    // mAPI finds mined transactions with `getrawtransaction`, which without an index finds one
    // only while an output of it is unspent.
    let indexed = client.has_txindex().await.map_err(|e| match e {
        RpcError::Rpc { .. } => ApiError::bad_request(
            "The node was not added. It does not list its parameters (dumpparameters), so mAPI cannot check that it runs with -txindex=1.",
        ),
        _ => unable(),
    })?;
    if !indexed {
        return Err(ApiError::bad_request(
            "The node was not added. It must run with -txindex=1 (mAPI looks up mined transactions with getrawtransaction).",
        ));
    }
    let active = client.active_zmq_notifications().await.map_err(|_| unable())?;
    for topic in REQUIRED_ZMQ {
        if !active.iter().any(|n| n.notification == topic) {
            return Err(ApiError::bad_request(format!(
                "The node was not added. The node does not publish the ZMQ notification {topic}."
            )));
        }
    }
    if let Some(endpoint) = zmq
        && !endpoint.starts_with("tcp://")
    {
        return Err(ApiError::bad_request("ZMQNotificationsEndpoint: must be a tcp:// URL"));
    }
    // The endpoint mAPI will subscribe to (the override, else the node's hashblock publisher)
    // must accept connections.
    let endpoint = zmq
        .map(str::to_owned)
        .or_else(|| active.iter().find(|n| n.notification == "pubhashblock").map(|n| n.address.clone()))
        .unwrap_or_default();
    let address = endpoint.trim_start_matches("tcp://").to_owned();
    let reachable =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(address.as_str()))
            .await
            .is_ok_and(|r| r.is_ok());
    if !reachable {
        return Err(ApiError::bad_request(format!(
            "The node was not added. Unable to connect to ZMQ endpoint {endpoint}."
        )));
    }
    Ok(())
}

/// `POST /api/v1/Node`.
pub async fn create(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    body: web::Json<NodeInput>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let input = body.into_inner();
    let (host, port) = parse_id(input.id.as_deref().unwrap_or_default())?;
    let username = input
        .username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("Username: is required"))?;
    let password = input.password.unwrap_or_else(|| SecretString::from(String::new()));
    let existing = all(&state.db).await?;
    if existing.iter().any(|n| n.host == host && n.port == port) {
        return Err(ApiError::new(ErrorKind::Conflict, format!("Node '{host}:{port}' already exists")));
    }
    if let Some(endpoint) = &input.zmq_notifications_endpoint
        && existing.iter().any(|n| n.zmq_notifications_endpoint.as_deref() == Some(endpoint.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "The node was not added. ZMQ endpoint {endpoint} is already used by another node."
        )));
    }
    let timeout = Duration::from_millis(state.settings.node_rpc_timeout_ms.min(10_000));
    check_node(&host, port, &username, &password, input.zmq_notifications_endpoint.as_deref(), timeout)
        .await?;
    let mut conn = state.db.conn().await?;
    let row: NodeRow = diesel::insert_into(nodes::table)
        .values((
            nodes::host.eq(&host),
            nodes::port.eq(port),
            nodes::username.eq(&username),
            nodes::password.eq(password.expose_secret()),
            nodes::remarks.eq(&input.remarks),
            nodes::zmq_notifications_endpoint.eq(&input.zmq_notifications_endpoint),
        ))
        .on_conflict((nodes::host, nodes::port))
        .do_nothing()
        .returning(NodeRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(DbError::from)?
        .ok_or_else(|| ApiError::new(ErrorKind::Conflict, format!("Node '{host}:{port}' already exists")))?;
    state.node_list.clear();
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/api/v1/Node/{}", row.id())))
        .json(NodeView::from(&row)))
}

/// `GET /api/v1/Node`.
pub async fn list(caller: TrustedCaller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let views: Vec<NodeView> = all(&state.db).await?.iter().map(NodeView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

async fn find(state: &AppState, id: &str) -> Result<Option<NodeRow>, ApiError> {
    let (host, port) = match parse_id(id) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    Ok(all(&state.db).await?.into_iter().find(|n| n.host == host && n.port == port))
}

/// `GET /api/v1/Node/{id}`.
pub async fn get(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let node = find(&state, &id).await?.ok_or_else(|| ApiError::not_found("Not found"))?;
    Ok(HttpResponse::Ok().json(NodeView::from(&node)))
}

/// `PUT /api/v1/Node/{id}`.
pub async fn update(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<NodeInput>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let node = find(&state, &id).await?.ok_or_else(|| ApiError::not_found("Not found"))?;
    let input = body.into_inner();
    let username = input
        .username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("Username: is required"))?;
    let password = input.password.unwrap_or_else(|| SecretString::from(String::new()));
    let timeout = Duration::from_millis(state.settings.node_rpc_timeout_ms.min(10_000));
    check_node(
        &node.host,
        node.port,
        &username,
        &password,
        input.zmq_notifications_endpoint.as_deref(),
        timeout,
    )
    .await?;
    let mut conn = state.db.conn().await?;
    diesel::update(nodes::table.find(node.node_id))
        .set((
            nodes::username.eq(&username),
            nodes::password.eq(password.expose_secret()),
            nodes::remarks.eq(&input.remarks),
            nodes::zmq_notifications_endpoint.eq(&input.zmq_notifications_endpoint),
        ))
        .execute(&mut conn)
        .await
        .map_err(DbError::from)?;
    state.node_list.clear();
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /api/v1/Node/{id}`: 204 whether or not it existed, as in the reference.
pub async fn delete(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    if let Some(node) = find(&state, &id).await? {
        let mut conn = state.db.conn().await?;
        diesel::delete(nodes::table.find(node.node_id)).execute(&mut conn).await.map_err(DbError::from)?;
    }
    state.node_list.clear();
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_output_holds_no_password() {
        let secret = "node-rpc-password-42";
        let row = NodeRow {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 18332,
            username: "u".into(),
            password: SecretString::from(secret.to_owned()),
            remarks: None,
            zmq_notifications_endpoint: None,
            node_status: 600,
            last_error: None,
            last_error_at: None,
        };
        let input: NodeInput =
            serde_json::from_value(serde_json::json!({"id": "h:1", "username": "u", "password": secret}))
                .unwrap();
        let clients = NodeClients::new(10);
        let client = clients.client(&row, Duration::from_secs(1)).unwrap();
        // The Basic credentials the client sends: base64 of "u:node-rpc-password-42".
        let basic = "dTpub2RlLXJwYy1wYXNzd29yZC00Mg";
        for printed in
            [format!("{row:?}"), format!("{input:?}"), format!("{clients:?}"), format!("{client:?}")]
        {
            assert!(!printed.contains(secret), "{printed}");
            assert!(!printed.contains(basic), "the Basic credentials: {printed}");
        }
    }

    #[test]
    fn ids_are_host_and_numeric_port() {
        assert_eq!(parse_id("LocalHost:18332").unwrap(), ("localhost".to_owned(), 18332));
        assert!(parse_id("localhost").is_err());
        assert!(parse_id("localhost:abc").is_err());
        assert!(parse_id(":1").is_err());
        assert!(parse_id("a:b:1").is_err());
        assert!(parse_id("h:70000").is_err());
    }
}
