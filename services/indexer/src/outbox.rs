//! Tip-filter matches on their way to the account's callback: queued in `outbox` in the
//! transaction that found them, handed to the notifier (which delivers at least once, retrying
//! with backoff and dead-lettering) and removed once it stored them. A match of an account with
//! no callback set is dropped with a log line, as the reference does.

use std::sync::Arc;
use std::time::Duration;

use db_kit::{Db, DbError};
use diesel_async::AsyncConnection;
use service_kit::InternalClient;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wire_model::internal::{NotificationRequest, NotificationRequests};

use crate::store;

/// Rows handed over per round.
const BATCH: i64 = 500;

/// Why a hand-over failed.
#[derive(Debug, thiserror::Error)]
enum HandOverError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the notifier: {0}")]
    Notifier(String),
}

impl From<diesel::result::Error> for HandOverError {
    fn from(e: diesel::result::Error) -> Self {
        HandOverError::Db(DbError::Query(e))
    }
}

/// One round: locks due rows, posts those with a callback to the notifier, removes all of them
/// after its 2xx. Returns how many rows were handled.
async fn hand_over(db: &Db, client: &InternalClient, url: &str) -> Result<usize, HandOverError> {
    let mut conn = db.conn().await?;
    conn.transaction::<_, HandOverError, _>(async move |conn| {
        let due = store::lock_due(conn, BATCH).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut notifications = Vec::new();
        for row in &due {
            match &row.callback_url {
                Some(url) => notifications.push(NotificationRequest {
                    key: row.delivery_key.clone(),
                    url: url.clone(),
                    token: row.callback_token.clone(),
                    encryption: None,
                    body: row.body.clone(),
                    txid: None,
                    reason: Some("tipFilter".to_owned()),
                }),
                None => tracing::warn!(key = %row.delivery_key, "tip-filter match dropped: the account has no callback"),
            }
        }
        if !notifications.is_empty() {
            let resp = client
                .post(url)
                .json(&NotificationRequests { notifications })
                .send()
                .await
                .map_err(|e| HandOverError::Notifier(e.without_url().to_string()))?;
            if !resp.status().is_success() {
                return Err(HandOverError::Notifier(format!("answered {}", resp.status())));
            }
        }
        let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
        store::remove_due(conn, &ids).await?;
        Ok(due.len())
    })
    .await
}

/// Hands queued matches to the notifier until `cancel`: at once when woken, else every second; a
/// failure is retried with a growing pause (up to 10 s).
pub async fn run(
    db: Db,
    client: InternalClient,
    notifier: url::Url,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let url = format!("{}/internal/notifications", notifier.as_str().trim_end_matches('/'));
    let mut pause = Duration::from_secs(1);
    loop {
        let wait = match hand_over(&db, &client, &url).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {
                pause = Duration::from_secs(1);
                pause
            }
            Err(e) => {
                tracing::warn!(error = %e, "handing tip-filter matches to the notifier failed; retrying");
                pause = (pause * 2).min(Duration::from_secs(10));
                pause
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
