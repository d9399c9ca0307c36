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

/// What block-parser tells mapi about the chain (`POST /internal/chain-events`), in the order it
/// happened. Applying an event twice changes nothing the first time did not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainEvent {
    /// A registered transaction is in a block of the best chain.
    Mined {
        /// The transaction.
        txid: crate::Txid,
        /// The block.
        block_hash: crate::BlockHash,
        /// Its height.
        block_height: u64,
        /// Its 80-byte header, hex (for proofs whose target is the header).
        header: String,
        /// The TSC proof of the transaction in the block (target: the block hash), checked
        /// against the header's Merkle root before it was sent.
        proof: bsv_primitives::TscProof,
    },
    /// An input of a best-chain block spends an outpoint a registered transaction spends, from
    /// another transaction.
    DoubleSpend {
        /// The registered transaction whose outpoint was spent (a dsCheck transaction or one of
        /// its unconfirmed ancestors).
        txid: crate::Txid,
        /// The block.
        block_hash: crate::BlockHash,
        /// Its height.
        block_height: u64,
        /// The spending transaction.
        ds_txid: crate::Txid,
        /// Its bytes, hex.
        ds_tx: String,
    },
    /// A block left the best chain (a reorg): what was mined in it is unconfirmed again.
    Disconnected {
        /// The block.
        block_hash: crate::BlockHash,
    },
    /// The best tip moved here.
    Tip {
        /// The block.
        block_hash: crate::BlockHash,
        /// Its height.
        block_height: u64,
    },
}

/// One event with its id (block-parser's outbox row).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ChainEventRecord {
    /// Increasing with the order of events.
    pub id: i64,
    /// The event.
    #[serde(flatten)]
    pub event: ChainEvent,
}

/// The body of `POST /internal/chain-events`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ChainEvents {
    /// Events, oldest first.
    pub events: Vec<ChainEventRecord>,
}

/// The body of `POST /internal/registrations` (mapi to block-parser): transactions whose block
/// mapi wants to hear of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Registrations {
    /// The transactions.
    pub txids: Vec<crate::Txid>,
    /// Outpoints they spend that are watched for double spends.
    #[serde(default)]
    pub spends: Vec<RegisteredSpend>,
}

/// An outpoint a registered transaction spends (a dsCheck transaction or an unconfirmed ancestor
/// of one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct RegisteredSpend {
    /// The spending transaction.
    pub txid: crate::Txid,
    /// The transaction whose output it spends.
    pub prev_txid: crate::Txid,
    /// The output's index.
    pub prev_n: u32,
}

/// The body of `POST /internal/reparse` (mapi to block-parser): transactions received since
/// `since` were registered late (block-parser was unreachable when they were submitted), so the
/// best-chain blocks parsed since then are parsed again (their events are idempotent).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Reparse {
    /// When the earliest late transaction was received.
    #[serde(with = "time::serde::rfc3339")]
    pub since: time::OffsetDateTime,
}

/// What zmq-listener tells mapi about the nodes' mempools (`POST /internal/mempool-events`).
/// Applying an event twice, or the same event from two replicas, changes nothing the first did
/// not: mapi keys its records on their content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MempoolEvent {
    /// A node refused a transaction for double spending one in its mempool (`invalidtx` with
    /// reject code 258 or 18).
    DoubleSpendAttempt {
        /// Where it came from: node, topic and the refused transaction.
        id: String,
        /// The mempool transaction it collided with.
        txid: crate::Txid,
        /// The refused transaction.
        ds_txid: crate::Txid,
        /// Its bytes, hex (empty when the node left them out).
        ds_tx: String,
    },
    /// A node dropped a mempool transaction for a conflicting one in a block
    /// (`discardedfrommempool`, reason `collision-in-block-tx`).
    DoubleSpendInBlock {
        /// Where it came from: node, topic and the dropped transaction.
        id: String,
        /// The dropped transaction.
        txid: crate::Txid,
        /// The block.
        block_hash: crate::BlockHash,
        /// Its height.
        block_height: u64,
        /// The block's conflicting transaction.
        ds_txid: crate::Txid,
        /// Its bytes, hex.
        ds_tx: String,
    },
}

/// The body of `POST /internal/mempool-events`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct MempoolEvents {
    /// Events, oldest first.
    pub events: Vec<MempoolEvent>,
}

/// A callback to deliver (`POST /internal/notifications`, mapi to notifier): everything the
/// delivery needs, the body already signed. Stored once per `key`: a request repeated after a
/// lost answer, or by a second mapi replica, adds nothing.
#[derive(Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRequest {
    /// Idempotency key (mapi: transaction, reason, block and double-spending transaction).
    pub key: String,
    /// Where to POST (the `{callbackReason}` placeholder already filled in).
    pub url: String,
    /// `Authorization` value, sent verbatim (the merchant's secret: never printed).
    #[serde(default)]
    pub token: Option<String>,
    /// `libsodium sealed_box <base64 X25519 key>`: the body is sealed to that key.
    #[serde(default)]
    pub encryption: Option<String>,
    /// The body: a signed JSON envelope.
    pub body: String,
    /// The transaction it is about (display hex), for the admin listing.
    #[serde(default)]
    pub txid: Option<String>,
    /// `merkleProof`, `doubleSpend` or `doubleSpendAttempt`, for the admin listing.
    #[serde(default)]
    pub reason: Option<String>,
}

impl std::fmt::Debug for NotificationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationRequest")
            .field("key", &self.key)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("encryption", &self.encryption)
            .field("body_len", &self.body.len())
            .field("txid", &self.txid)
            .field("reason", &self.reason)
            .finish()
    }
}

/// The body of `POST /internal/notifications`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct NotificationRequests {
    /// Callbacks, in the order they became due.
    pub notifications: Vec<NotificationRequest>,
}
