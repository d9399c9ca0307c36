//! What gateway replicas tell each other, with PostgreSQL `NOTIFY` inside the transaction that
//! causes it: sent by the accounts store, heard by every replica's [`crate::sessions`] listener.

use serde::{Deserialize, Serialize};

/// The `NOTIFY` channel of the gateway's replicas.
pub const NOTIFY_CHANNEL: &str = "gateway_events";

/// `application_name` of each replica's listening connection.
pub const LISTENER_NAME: &str = "gateway-listener";

/// What gateway replicas tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Master tokens were revoked: their sockets close.
    MasterTokensRevoked {
        /// The tokens' ids.
        token_ids: Vec<i64>,
    },
}
