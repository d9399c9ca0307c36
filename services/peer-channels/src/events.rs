//! Events between replicas: published with PostgreSQL `NOTIFY` in the transaction that causes them
//! (so an event exists exactly when its change committed), received by every replica's listener
//! and fanned out to that replica's websockets.
//!
//! Losslessness does not depend on `NOTIFY`: a socket remembers the last sequence it sent, and
//! whenever it may have missed something (it fell behind the fan-out, or the listener reconnected)
//! it reads the missed messages from the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use db_kit::Db;
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::NOTIFY_CHANNEL;

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
    /// This replica's listener reconnected: events may have been missed, read the database.
    Resync,
}

/// The fan-out of one replica.
#[derive(Debug, Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Event>>,
    /// Whether the `LISTEN` connection is up (readiness reports it).
    listening: Arc<AtomicBool>,
}

impl Hub {
    /// A hub whose slowest subscriber may fall `capacity` events behind before it must resync.
    pub fn new(capacity: usize) -> Self {
        Self { sender: broadcast::channel(capacity).0, listening: Arc::new(AtomicBool::new(false)) }
    }

    /// Whether this replica currently receives other replicas' events.
    pub fn is_listening(&self) -> bool {
        AtomicBool::load(&self.listening, Ordering::SeqCst)
    }

    /// A new subscription; subscribe before reading the backlog so nothing falls in between.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    fn publish(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.sender.send(Arc::new(event));
    }
}

/// `application_name` of each replica's listening connection.
pub const LISTENER_NAME: &str = "peer-channels-listener";

/// Listens on a dedicated connection until `cancel`, reconnecting after failures (and telling the
/// sockets to resync, as events may have been missed meanwhile).
pub async fn listen(db: Db, hub: Hub, cancel: CancellationToken) {
    let mut first = true;
    loop {
        let outcome = listen_once(&db, &hub, &cancel, &mut first).await;
        hub.listening.store(false, Ordering::SeqCst);
        match outcome {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "notification listener lost its connection; reconnecting"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn listen_once(
    db: &Db,
    hub: &Hub,
    cancel: &CancellationToken,
    first: &mut bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = db.dedicated().await?;
    // Named, so an operator sees it in `pg_stat_activity`.
    diesel::sql_query(format!("SET application_name = '{LISTENER_NAME}'")).execute(&mut conn).await?;
    diesel::sql_query(format!("LISTEN {NOTIFY_CHANNEL}")).execute(&mut conn).await?;
    hub.listening.store(true, Ordering::SeqCst);
    if !std::mem::take(first) {
        hub.publish(Event::Resync);
    }
    loop {
        // The stream borrows the connection; it is dropped every few seconds to check the
        // connection with a query (notifications wait in the connection's buffer meanwhile).
        {
            let mut stream = std::pin::pin!(conn.notifications_stream());
            let until = tokio::time::sleep(Duration::from_secs(5));
            tokio::pin!(until);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = &mut until => break,
                    next = stream.next() => match next {
                        Some(Ok(n)) => match serde_json::from_str::<Event>(&n.payload) {
                            Ok(event) => hub.publish(event),
                            Err(e) => tracing::warn!(error = %e, "unreadable notification"),
                        },
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err("notification stream ended".into()),
                    },
                }
            }
        }
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    }
}
