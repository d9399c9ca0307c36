//! Payloads of the internal API between the project's own services (`/internal/*`, behind the
//! internal credential; never routed by the gateway).

use secrecy::SecretString;
use serde::Deserialize;

/// A node as mapi hands it to its sibling services (`GET /internal/nodes`): what they need to
/// call its RPC (block-parser fetches headers and blocks) and to subscribe to its ZMQ
/// (zmq-listener). The password stays a secret on the receiving side: it never prints.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAccess {
    /// `host:port`, the node's id in the admin API.
    pub id: String,
    /// `http://host:port`.
    pub rpc_url: url::Url,
    /// RPC user.
    pub username: String,
    /// RPC password.
    pub password: SecretString,
    /// The ZMQ endpoint to subscribe to instead of the ones the node reports, if set.
    #[serde(default)]
    pub zmq_notifications_endpoint: Option<String>,
}

impl std::fmt::Debug for NodeAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAccess")
            .field("id", &self.id)
            .field("rpc_url", &self.rpc_url.as_str())
            .field("username", &self.username)
            .field("zmq_notifications_endpoint", &self.zmq_notifications_endpoint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mapis_shape_and_never_prints_the_password() {
        let n: NodeAccess = serde_json::from_value(serde_json::json!({
            "id": "127.0.0.1:18332", "rpcUrl": "http://127.0.0.1:18332/", "username": "u",
            "password": "node-password-7", "zmqNotificationsEndpoint": null
        }))
        .unwrap();
        assert_eq!(n.id, "127.0.0.1:18332");
        assert!(!format!("{n:?}").contains("node-password-7"));
    }
}
