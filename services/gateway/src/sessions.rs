//! The websockets this replica proxies for a master token, so that revoking the token closes them
//! at once, on every replica: the revocation is announced with `NOTIFY` in the transaction that
//! revokes, each replica's listener closes its sockets of that token, and a replica whose listener
//! reconnected (it may have missed announcements) checks every token it holds sockets for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use db_kit::Db;
use db_kit::listener::{Listener, Notice};
use tokio_util::sync::CancellationToken;

use crate::events::Event;

/// Per master token id, its open sockets: (socket id, what closes it).
type OpenSockets = HashMap<i64, Vec<(u64, CancellationToken)>>;

/// Open proxied sockets by master token id. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    open: Arc<Mutex<OpenSockets>>,
    next_id: Arc<AtomicU64>,
}

/// One registered socket; dropping it unregisters the socket.
#[derive(Debug)]
pub struct Session {
    sessions: Sessions,
    token_id: i64,
    id: u64,
    closed: CancellationToken,
}

impl Session {
    /// Completes when the socket's token is revoked.
    pub fn revoked(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = open.get_mut(&self.token_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                open.remove(&self.token_id);
            }
        }
    }
}

impl Sessions {
    /// Registers a socket opened with master token `token_id`.
    pub fn register(&self, token_id: i64) -> Session {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let closed = CancellationToken::new();
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(token_id)
            .or_default()
            .push((id, closed.clone()));
        Session { sessions: self.clone(), token_id, id, closed }
    }

    /// Closes every socket of these tokens.
    pub fn revoke(&self, token_ids: &[i64]) {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for token_id in token_ids {
            for (_, closed) in open.get(token_id).into_iter().flatten() {
                closed.cancel();
            }
        }
    }

    /// The tokens that have open sockets here.
    pub fn token_ids(&self) -> Vec<i64> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect()
    }

    /// Sockets open here.
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }

    /// True when no socket is open here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Listens for revocations until `cancel`; after a reconnection, closes the sockets of every
/// token revoked meanwhile.
pub async fn listen(listener: Listener, db: Db, sessions: Sessions, cancel: CancellationToken) {
    listener
        .run(cancel, |notice| match notice {
            Notice::Connected { resumed: false } => {}
            Notice::Connected { resumed: true } => {
                let (db, sessions) = (db.clone(), sessions.clone());
                tokio::spawn(async move {
                    let held = sessions.token_ids();
                    match crate::accounts::store::revoked_among(&db, &held).await {
                        Ok(revoked) => sessions.revoke(&revoked),
                        Err(e) => tracing::warn!(error = %e, "could not re-check the tokens of open sockets"),
                    }
                });
            }
            Notice::Payload(payload) => match serde_json::from_str::<Event>(payload) {
                Ok(Event::MasterTokensRevoked { token_ids }) => sessions.revoke(&token_ids),
                Err(e) => tracing::warn!(error = %e, "unreadable gateway notification"),
            },
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoking_a_token_closes_its_sockets_only() {
        let sessions = Sessions::default();
        let a1 = sessions.register(1);
        let a2 = sessions.register(1);
        let b = sessions.register(2);
        assert_eq!(sessions.len(), 3);
        sessions.revoke(&[1]);
        a1.revoked().await;
        a2.revoked().await;
        assert!(!b.closed.is_cancelled());
        drop((a1, a2));
        assert_eq!(sessions.token_ids(), vec![2]);
        drop(b);
        assert!(sessions.is_empty());
    }
}
