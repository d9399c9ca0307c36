//! Events between replicas: published with PostgreSQL `NOTIFY` in the transaction that causes them
//! (so an event exists exactly when its change committed), received by every replica's listener
//! and fanned out to that replica's websockets.
//!
//! Losslessness does not depend on `NOTIFY`: a socket remembers the last sequence it sent, and
//! whenever it may have missed something (it fell behind the fan-out, or the listener reconnected)
//! it reads the missed messages from the database.

use std::sync::Arc;

use db_kit::listener::{Listener, Notice};
use db_kit::{Db, DbError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// A committed message, as every replica learns of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageEvent {
    /// The channel's public id.
    pub channel_id: String,
    /// The channel's account.
    pub account_id: i64,
    /// The message's sequence.
    pub sequence: i64,
    /// When it was received.
    #[serde(with = "time::serde::rfc3339")]
    pub received: OffsetDateTime,
    /// Its content type.
    pub content_type: String,
    /// The writing token.
    pub from_token: i64,
    /// Whether that token is the account's own (the account socket skips those).
    pub owned_by_account: bool,
}

/// What replicas tell each other.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A message was written.
    Message(MessageEvent),
    /// A token was revoked: its sockets close.
    TokenRevoked {
        /// The token's id.
        token_id: i64,
    },
    /// A channel was deleted: its sockets close.
    ChannelDeleted {
        /// The channel's public id.
        channel_id: String,
    },
    /// An output of the account was spent (the indexer's 104-byte record, hex): its account
    /// sockets send it.
    OutputSpend {
        /// The account watching the output.
        account_id: i64,
        /// The record, hex.
        record: String,
    },
    /// This replica's listener reconnected: events may have been missed, read the database.
    Resync,
    /// The best chain tip moved: every tip, as the headers API lists them (each replica polls
    /// them itself; never sent between replicas).
    Tips(serde_json::Value),
}

/// The fan-out of one replica.
#[derive(Debug, Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Event>>,
    /// The replica's `LISTEN` connection (readiness reports whether it is up).
    listener: Listener,
}

impl Hub {
    /// A hub fed by `listener`, whose slowest subscriber may fall `capacity` events behind before
    /// it must resync.
    pub fn new(capacity: usize, listener: Listener) -> Self {
        Self { sender: broadcast::channel(capacity).0, listener }
    }

    /// The `LISTEN` connection of this replica (named [`LISTENER_NAME`], on [`NOTIFY_CHANNEL`]).
    pub fn listener(db: Db) -> Result<Listener, DbError> {
        Listener::new(db, NOTIFY_CHANNEL, LISTENER_NAME)
    }

    /// Whether this replica currently receives other replicas' events.
    pub fn is_listening(&self) -> bool {
        self.listener.is_up()
    }

    /// A new subscription; subscribe before reading the backlog so nothing falls in between.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Hands an event to this replica's sockets only.
    pub fn publish(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.sender.send(Arc::new(event));
    }
}

/// `application_name` of each replica's listening connection.
pub const LISTENER_NAME: &str = "peer-channels-listener";

/// PostgreSQL `NOTIFY` channel every replica listens on.
pub const NOTIFY_CHANNEL: &str = "peer_channel_events";

/// Publishes an event to every replica (delivered when the surrounding transaction commits).
pub async fn notify(conn: &mut diesel_async::AsyncPgConnection, event: &Event) -> Result<(), DbError> {
    let payload = serde_json::to_string(event)
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    db_kit::listener::notify(conn, NOTIFY_CHANNEL, &payload).await
}

/// Listens on the hub's dedicated connection until `cancel`, reconnecting after failures (and
/// telling the sockets to resync, as events may have been missed meanwhile).
pub async fn listen(hub: Hub, cancel: CancellationToken) {
    hub.listener
        .clone()
        .run(cancel, |notice| match notice {
            Notice::Connected { resumed: false } => {}
            Notice::Connected { resumed: true } => hub.publish(Event::Resync),
            Notice::Payload(payload) => match serde_json::from_str::<Event>(payload) {
                Ok(event) => hub.publish(event),
                Err(e) => tracing::warn!(error = %e, "unreadable notification"),
            },
        })
        .await;
}
