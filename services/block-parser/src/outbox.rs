//! Events for mapi: written in the transaction that causes them (a block parsed, the best chain
//! switched), delivered in order, and kept until mapi answered 2xx (then deleted: a delete
//! rewrites nothing, where marking a row would copy its payload). mapi applies them
//! idempotently, so a delivery repeated after a lost answer changes nothing.

use std::time::Duration;

use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use service_kit::InternalClient;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wire_model::internal::{ChainEvent, ChainEventRecord, ChainEvents};

use crate::schema::outbox;

/// Events sent in one request.
const BATCH: i64 = 2000;

/// Appends events (inside the caller's transaction), in one statement with one parameter: the
/// events as JSON text, in order.
pub async fn append(conn: &mut AsyncPgConnection, events: &[ChainEvent]) -> Result<(), DbError> {
    if events.is_empty() {
        return Ok(());
    }
    let texts = events
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    diesel::sql_query(
        "INSERT INTO outbox (payload) SELECT p::json FROM unnest($1::text[]) WITH ORDINALITY AS e (p, n) ORDER BY n",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(texts)
    .execute(conn)
    .await?;
    Ok(())
}

/// The oldest undelivered events.
async fn pending(db: &Db) -> Result<Vec<ChainEventRecord>, DbError> {
    let mut conn = db.conn().await?;
    let rows: Vec<(i64, serde_json::Value)> = outbox::table
        .order(outbox::id)
        .limit(BATCH)
        .select((outbox::id, outbox::payload))
        .load(&mut conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, payload)| match serde_json::from_value(payload) {
            Ok(event) => Some(ChainEventRecord { id, event }),
            Err(e) => {
                tracing::error!(outbox.id = id, error = %e, "an outbox event cannot be read; it is skipped");
                None
            }
        })
        .collect())
}

async fn mark_delivered(db: &Db, ids: &[i64]) -> Result<(), DbError> {
    let mut conn = db.conn().await?;
    diesel::delete(outbox::table.filter(outbox::id.eq_any(ids))).execute(&mut conn).await?;
    Ok(())
}

/// Undelivered events (`status/blockparser` shows how many wait).
pub async fn backlog(db: &Db) -> Result<i64, DbError> {
    let mut conn = db.conn().await?;
    Ok(outbox::table.count().get_result(&mut conn).await?)
}

/// Name of the advisory lock that makes delivery a singleton (events reach mapi in order).
pub const LOCK_NAME: &str = "block-parser:outbox";

/// Delivers until `cancel`, while this replica holds the delivery lock: at once when woken, else
/// every second; a failed delivery is retried with a growing pause (up to 10 s), never skipped.
pub async fn deliver(
    db: Db,
    client: InternalClient,
    mapi: url::Url,
    wake: std::sync::Arc<Notify>,
    cancel: CancellationToken,
) {
    let url = format!("{}/internal/chain-events", mapi.as_str().trim_end_matches('/'));
    loop {
        let Some(mut lock) = crate::parser::acquire(&db, LOCK_NAME, &cancel).await else { return };
        deliver_while_locked(&db, &client, &url, &wake, &mut lock, &cancel).await;
        if cancel.is_cancelled() {
            return;
        }
    }
}

/// Delivers until cancelled or the lock is lost.
async fn deliver_while_locked(
    db: &Db,
    client: &InternalClient,
    url: &str,
    wake: &Notify,
    lock: &mut AsyncPgConnection,
    cancel: &CancellationToken,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        if !matches!(
            tokio::time::timeout(Duration::from_secs(10), Db::holds_advisory_lock(lock, LOCK_NAME)).await,
            Ok(Ok(true))
        ) {
            tracing::warn!("the outbox lost its lock; standing by");
            return;
        }
        let outcome = deliver_once(db, client, url).await;
        let wait = match outcome {
            Ok(true) => {
                pause = Duration::from_secs(1);
                continue;
            }
            Ok(false) => Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, "delivering chain events to mapi failed; retrying");
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

/// One batch; true when a full batch went (more may wait). A batch that goes is a trace of its
/// own (`outbox.deliver`), which mapi's handling continues.
async fn deliver_once(db: &Db, client: &InternalClient, url: &str) -> Result<bool, String> {
    use tracing::Instrument;
    let events = pending(db).await.map_err(|e| e.to_string())?;
    if events.is_empty() {
        return Ok(false);
    }
    let span = tracing::info_span!("outbox.deliver", events = events.len());
    post_batch(db, client, url, events).instrument(span).await
}

async fn post_batch(
    db: &Db,
    client: &InternalClient,
    url: &str,
    events: Vec<ChainEventRecord>,
) -> Result<bool, String> {
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    let full = ids.len() as i64 == BATCH;
    let resp = client.post(url).json(&ChainEvents { events }).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("mapi answered {}", resp.status()));
    }
    mark_delivered(db, &ids).await.map_err(|e| e.to_string())?;
    Ok(full)
}
