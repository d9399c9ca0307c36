//! The `notifications` table: every statement of the service. Each batch of results is one
//! statement per kind (unnest arrays), whatever its size.

use std::sync::Arc;

use db_kit::{Db, DbError};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;
use wire_model::internal::NotificationRequest;

use crate::scheduler::Item;
use crate::target;

/// Who holds a lease and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// This replica's id.
    pub owner: i64,
    /// Seconds a lease lasts.
    pub secs: i64,
}

#[derive(QueryableByName)]
struct ItemRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    host: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Nullable<Text>)]
    token: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    encryption: Option<String>,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = Integer)]
    error_count: i32,
}

impl From<ItemRow> for Item {
    fn from(r: ItemRow) -> Self {
        Item {
            id: r.id,
            host: r.host,
            url: r.url,
            token: r.token,
            encryption: r.encryption,
            body: Arc::from(r.body),
            error_count: r.error_count,
        }
    }
}

const ITEM_COLUMNS: &str = "id, host, url, token, encryption, body, error_count";

/// Stores requests (one per key: a repeated one is left as it is), leased to `lease.owner`;
/// returns the rows new here, to be queued.
pub async fn insert(db: &Db, lease: Lease, requests: &[NotificationRequest]) -> Result<Vec<Item>, DbError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let hosts: Vec<String> = requests
        .iter()
        .map(|r| url::Url::parse(&r.url).map(|u| target::host_key(&u)).unwrap_or_default())
        .collect();
    let mut conn = db.conn().await?;
    let rows: Vec<ItemRow> = diesel::sql_query(format!(
        "INSERT INTO notifications (key, host, url, token, encryption, body, txid, reason, leased_by, leased_until) \
         SELECT k, h, u, t, e, b, x, r, $9, now() + make_interval(secs => $10) \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) \
              WITH ORDINALITY AS n (k, h, u, t, e, b, x, r, o) ORDER BY o \
         ON CONFLICT (key) DO NOTHING RETURNING {ITEM_COLUMNS}"
    ))
    .bind::<Array<Text>, _>(requests.iter().map(|r| r.key.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(hosts)
    .bind::<Array<Text>, _>(requests.iter().map(|r| r.url.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(requests.iter().map(|r| r.token.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(requests.iter().map(|r| r.encryption.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(requests.iter().map(|r| r.body.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(requests.iter().map(|r| r.txid.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(requests.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
    .bind::<BigInt, _>(lease.owner)
    .bind::<diesel::sql_types::Double, _>(lease.secs as f64)
    .load(&mut conn)
    .await?;
    let mut items: Vec<Item> = rows.into_iter().map(Item::from).collect();
    items.sort_by_key(|i| i.id);
    Ok(items)
}

/// Takes up to `limit` due notifications (not delivered, not dead, due, and not leased by a live
/// replica), leased to `lease.owner`, oldest due first.
pub async fn claim_due(db: &Db, lease: Lease, limit: i64) -> Result<Vec<Item>, DbError> {
    let mut conn = db.conn().await?;
    let mut rows: Vec<ItemRow> = diesel::sql_query(format!(
        "UPDATE notifications n SET leased_by = $1, leased_until = now() + make_interval(secs => $2) \
         FROM (SELECT id FROM notifications \
               WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= now() \
                 AND (leased_until IS NULL OR leased_until < now()) \
               ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due \
         WHERE n.id = due.id RETURNING n.{}",
        ITEM_COLUMNS.replace(", ", ", n.")
    ))
    .bind::<BigInt, _>(lease.owner)
    .bind::<diesel::sql_types::Double, _>(lease.secs as f64)
    .bind::<BigInt, _>(limit)
    .load(&mut conn)
    .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows.into_iter().map(Item::from).collect())
}

/// Gives leases back (the notifications wait for the retry job, due as they were).
pub async fn release(db: &Db, lease: Lease, ids: &[i64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut conn = db.conn().await?;
    diesel::sql_query(
        "UPDATE notifications SET leased_by = NULL, leased_until = NULL WHERE id = ANY($1) AND leased_by = $2",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<BigInt, _>(lease.owner)
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Extends this replica's leases on the notifications it still holds.
pub async fn renew(db: &Db, lease: Lease, held: &[i64]) -> Result<usize, DbError> {
    if held.is_empty() {
        return Ok(0);
    }
    let mut conn = db.conn().await?;
    Ok(diesel::sql_query(
        "UPDATE notifications SET leased_until = now() + make_interval(secs => $3) \
         WHERE id = ANY($1) AND leased_by = $2 AND delivered_at IS NULL AND dead_at IS NULL",
    )
    .bind::<Array<BigInt>, _>(held)
    .bind::<BigInt, _>(lease.owner)
    .bind::<diesel::sql_types::Double, _>(lease.secs as f64)
    .execute(&mut conn)
    .await?)
}

/// How a batch ended, to be written.
#[derive(Debug, Default)]
pub struct Results {
    /// Answered 2xx.
    pub delivered: Vec<i64>,
    /// Failed, with the error: retried after the backoff, or dead at the retry count.
    pub failed: Vec<(i64, String)>,
    /// Never deliverable as they are: dead at once.
    pub refused: Vec<(i64, String)>,
}

impl Results {
    /// Results held.
    pub fn len(&self) -> usize {
        self.delivered.len() + self.failed.len() + self.refused.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The notifications concerned.
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.delivered
            .iter()
            .copied()
            .chain(self.failed.iter().map(|f| f.0))
            .chain(self.refused.iter().map(|f| f.0))
    }
}

/// Backoff and retry limits for [`record`].
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first wait, seconds.
    pub interval_secs: f64,
    /// The longest wait, seconds.
    pub max_backoff_secs: f64,
    /// Failures after which a notification is dead.
    pub retry_count: i32,
}

/// Writes a batch's results in one transaction; returns how many became dead letters.
pub async fn record(db: &Db, results: &Results, policy: RetryPolicy) -> Result<usize, DbError> {
    let mut conn = db.conn().await?;
    conn.transaction::<_, DbError, _>(async move |conn| {
        if !results.delivered.is_empty() {
            diesel::sql_query(
                "UPDATE notifications SET delivered_at = now(), attempts = attempts + 1, \
                 leased_by = NULL, leased_until = NULL WHERE id = ANY($1) AND delivered_at IS NULL",
            )
            .bind::<Array<BigInt>, _>(&results.delivered)
            .execute(conn)
            .await?;
        }
        let mut dead = 0;
        for (rows, refused) in [(&results.failed, false), (&results.refused, true)] {
            if rows.is_empty() {
                continue;
            }
            #[derive(QueryableByName)]
            struct Dead {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                dead: bool,
            }
            let written: Vec<Dead> = diesel::sql_query(
                "UPDATE notifications n SET attempts = attempts + 1, error_count = error_count + 1, \
                   last_error = left(f.e, 256), last_error_at = now(), leased_by = NULL, leased_until = NULL, \
                   dead_at = CASE WHEN $3 OR n.error_count + 1 >= $4 THEN now() END, \
                   next_attempt_at = now() + make_interval(secs => \
                       LEAST($6, $5 * power(2, LEAST(n.error_count, 20)))) \
                 FROM unnest($1::bigint[], $2::text[]) AS f (id, e) \
                 WHERE n.id = f.id AND n.delivered_at IS NULL AND n.dead_at IS NULL \
                 RETURNING n.dead_at IS NOT NULL AS dead",
            )
            .bind::<Array<BigInt>, _>(rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>())
            .bind::<diesel::sql_types::Bool, _>(refused)
            .bind::<Integer, _>(policy.retry_count)
            .bind::<diesel::sql_types::Double, _>(policy.interval_secs)
            .bind::<diesel::sql_types::Double, _>(policy.max_backoff_secs)
            .load(conn)
            .await?;
            dead += written.iter().filter(|d| d.dead).count();
        }
        Ok(dead)
    })
    .await
}

/// Deletes delivered notifications older than `hours`.
pub async fn prune_delivered(db: &Db, hours: i64) -> Result<usize, DbError> {
    let mut conn = db.conn().await?;
    Ok(diesel::sql_query(
        "DELETE FROM notifications WHERE delivered_at IS NOT NULL AND delivered_at < now() - make_interval(hours => $1::int)",
    )
    .bind::<BigInt, _>(hours)
    .execute(&mut conn)
    .await?)
}

/// Notifications waiting for a retry after an error.
pub async fn count_with_error(db: &Db) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = db.conn().await?;
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM notifications WHERE delivered_at IS NULL AND dead_at IS NULL AND error_count > 0",
    )
    .get_result(&mut conn)
    .await?;
    Ok(row.n)
}

/// Which notifications the admin lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listing {
    /// Failed at least once, still retried.
    Failed,
    /// Given up on.
    Dead,
}

/// A notification as the admin API shows it (never its token).
#[derive(Debug, Clone, QueryableByName, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    /// Its id (for redelivery).
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// The transaction it is about.
    #[diesel(sql_type = Nullable<Text>)]
    pub txid: Option<String>,
    /// Why it is sent.
    #[diesel(sql_type = Nullable<Text>)]
    pub callback_reason: Option<String>,
    /// Where it goes.
    #[diesel(sql_type = Text)]
    pub callback_url: String,
    /// Attempts made.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// Failed attempts.
    #[diesel(sql_type = Integer)]
    pub error_count: i32,
    /// The last error.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    /// When it happened.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
    /// The next retry (failed ones).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was dead-lettered.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub dead_at: Option<OffsetDateTime>,
    /// When it was requested.
    #[diesel(sql_type = Timestamptz)]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Lists failed or dead notifications, by id, after `after` (paging), at most `limit`.
pub async fn list(db: &Db, which: Listing, after: i64, limit: i64) -> Result<Vec<Listed>, DbError> {
    let filter = match which {
        Listing::Failed => "dead_at IS NULL AND error_count > 0",
        Listing::Dead => "dead_at IS NOT NULL",
    };
    let mut conn = db.conn().await?;
    Ok(diesel::sql_query(format!(
        "SELECT id, txid, reason AS callback_reason, url AS callback_url, attempts, error_count, last_error, \
                last_error_at, CASE WHEN dead_at IS NULL THEN next_attempt_at END AS next_attempt_at, dead_at, created_at \
         FROM notifications WHERE delivered_at IS NULL AND {filter} AND id > $1 ORDER BY id LIMIT $2"
    ))
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(&mut conn)
    .await?)
}

/// Makes failed or dead notifications due now with a fresh retry count: one (`Some(id)`) or all
/// (one being delivered right now is left to that delivery). Returns the ids.
pub async fn redeliver(db: &Db, id: Option<i64>) -> Result<Vec<i64>, DbError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let mut conn = db.conn().await?;
    let rows: Vec<Id> = diesel::sql_query(
        "UPDATE notifications SET error_count = 0, dead_at = NULL, next_attempt_at = now(), \
           leased_by = NULL, leased_until = NULL \
         WHERE delivered_at IS NULL AND (dead_at IS NOT NULL OR error_count > 0) AND ($1::bigint IS NULL OR id = $1) \
           AND (leased_until IS NULL OR leased_until < now()) \
         RETURNING id",
    )
    .bind::<Nullable<BigInt>, _>(id)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
