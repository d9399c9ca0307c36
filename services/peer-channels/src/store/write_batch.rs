//! Concurrent message writes merged into one statement. Under load most of a message write is a
//! commit (and its WAL flush), not the message: writes that arrive while another batch is being
//! written go together into one transaction — every channel's head moved once by its count, one
//! multi-row insert, one notification per message, one commit — and each writer is answered only
//! after that commit (durability unchanged). At concurrency 1 a batch is a single write. Only the
//! common case is merged (an unlocked, unsequenced channel); a write whose channel was locked or
//! made sequenced meanwhile comes back `None` and takes the general path.

use db_kit::{Db, DbError};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use service_kit::coalesce::Batch;
use time::OffsetDateTime;

use crate::events::NOTIFY_CHANNEL;

/// Writes merged into one statement at most.
pub const MAX_BATCH: usize = 500;

/// One write of the common case.
#[derive(Debug, Clone)]
pub struct PlainWrite {
    /// The channel's row id.
    pub channel_id: i64,
    /// The writing token's row id.
    pub writer_id: i64,
    /// The channel's public id (for the notification).
    pub external_id: String,
    /// The channel's account (for the notification).
    pub account_id: i64,
    /// Whether the writer is the account's own token (the account socket skips those).
    pub owned: bool,
    /// `application/json` or `application/octet-stream`.
    pub content_type: String,
    /// The bytes.
    pub payload: Vec<u8>,
    /// When it was received (second precision).
    pub now: OffsetDateTime,
}

/// Why a merged write failed, for each of its writers.
#[derive(Debug, Clone)]
pub struct BatchFailure {
    unavailable: bool,
    message: String,
}

impl From<BatchFailure> for DbError {
    fn from(f: BatchFailure) -> Self {
        if f.unavailable {
            DbError::Unavailable(f.message)
        } else {
            DbError::Query(diesel::result::Error::QueryBuilderError(f.message.into()))
        }
    }
}

/// The batching side of the writer.
#[derive(Debug, Clone)]
pub struct WriteBatch {
    db: Db,
}

impl WriteBatch {
    /// Writes into `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[derive(QueryableByName)]
struct Placed {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// The writes in one statement: their sequences, in request order (`None`: the channel is locked
/// or sequenced now).
async fn write_all(db: &Db, writes: &[PlainWrite]) -> Result<Vec<Option<i64>>, DbError> {
    let mut conn = db.conn().await?;
    let received: Vec<String> = writes
        .iter()
        .map(|w| w.now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default())
        .collect();
    let placed: Vec<Placed> = diesel::sql_query(
        "WITH w AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[], $5::text[], \
                                         $6::bigint[], $7::bool[], $8::timestamptz[], $9::text[]) \
                    WITH ORDINALITY AS w (channel_id, from_token, content_type, payload, external_id, \
                                          account_id, owned, received_at, received, ord)), \
              counts AS (SELECT channel_id, count(*) AS n FROM w GROUP BY channel_id), \
              locked AS (SELECT id FROM channels WHERE id IN (SELECT channel_id FROM counts) \
                         ORDER BY id FOR UPDATE), \
              c AS (UPDATE channels ch SET head_sequence = ch.head_sequence + counts.n FROM counts, locked \
                    WHERE ch.id = counts.channel_id AND locked.id = ch.id AND NOT ch.locked AND NOT ch.sequenced \
                    RETURNING ch.id, ch.head_sequence - counts.n AS base), \
              numbered AS (SELECT w.*, c.base + row_number() OVER (PARTITION BY w.channel_id ORDER BY w.ord) AS seq \
                           FROM w JOIN c ON c.id = w.channel_id), \
              m AS (INSERT INTO messages (channel_id, seq, from_token, received_at, content_type, payload) \
                    SELECT channel_id, seq, from_token, received_at, content_type, payload FROM numbered \
                    RETURNING seq) \
         SELECT numbered.ord, numbered.seq \
         FROM (SELECT * FROM numbered ORDER BY channel_id, seq) AS numbered, LATERAL (SELECT pg_notify($10, json_build_object( \
             'kind', 'message', 'channel_id', numbered.external_id, 'account_id', numbered.account_id, \
             'sequence', numbered.seq, 'received', numbered.received, 'content_type', numbered.content_type, \
             'from_token', numbered.from_token, 'owned_by_account', numbered.owned)::text)) AS n",
    )
    .bind::<Array<BigInt>, _>(writes.iter().map(|w| w.channel_id).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(writes.iter().map(|w| w.writer_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(writes.iter().map(|w| w.content_type.as_str()).collect::<Vec<_>>())
    .bind::<Array<Bytea>, _>(writes.iter().map(|w| w.payload.as_slice()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(writes.iter().map(|w| w.external_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(writes.iter().map(|w| w.account_id).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(writes.iter().map(|w| w.owned).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(writes.iter().map(|w| w.now).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(received)
    .bind::<Text, _>(NOTIFY_CHANNEL)
    .load(&mut conn)
    .await?;
    let mut seqs = vec![None; writes.len()];
    for p in placed {
        if let Some(slot) = usize::try_from(p.ord - 1).ok().and_then(|i| seqs.get_mut(i)) {
            *slot = Some(p.seq);
        }
    }
    Ok(seqs)
}

impl Batch for WriteBatch {
    type Req = PlainWrite;
    type Resp = Result<Option<i64>, BatchFailure>;

    fn size(_: &PlainWrite) -> usize {
        1
    }

    fn fits(_: &[&PlainWrite], _: &PlainWrite) -> bool {
        true
    }

    async fn run(&self, reqs: Vec<PlainWrite>) -> Vec<Self::Resp> {
        // Rows are locked in channel id order, so merged writes do not deadlock each other; a
        // deadlock with another writer (another replica's general path) is retried.
        let mut result = write_all(&self.db, &reqs).await;
        for _ in 0..3 {
            match &result {
                Err(DbError::Query(diesel::result::Error::DatabaseError(_, info)))
                    if info.message().contains("deadlock") =>
                {
                    result = write_all(&self.db, &reqs).await;
                }
                _ => break,
            }
        }
        match result {
            Ok(seqs) => seqs.into_iter().map(Ok).collect(),
            Err(e) => {
                let failure = BatchFailure {
                    unavailable: matches!(e, DbError::Unavailable(_)),
                    message: e.to_string(),
                };
                reqs.iter().map(|_| Err(failure.clone())).collect()
            }
        }
    }
}
