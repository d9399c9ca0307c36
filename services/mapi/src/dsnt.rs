//! The DSNT endpoints a node calls when it sees a transaction double spend one whose DSNT output
//! names this mAPI (mAPI reference §4): `GET /dsnt/1/query/{txid}` ("are you interested?",
//! answered in the `x-bsv-dsnt` header) and `POST /dsnt/1/submit?txid&n&ctxid&cn` (the
//! conflicting transaction as proof, checked and then recorded as a double-spend attempt with its
//! callback). No authentication: callers earn ban scores for bad requests and too many queries,
//! and a caller at 100 or more gets 403 until `DS_HOST_BAN_TIME_SEC` after its last increase.
//!
//! Unlike the reference, callers are told apart by their address (through the gateway's
//! `TRUSTED_PROXIES` reading), not by the `Host` header they choose; the counters live in the
//! database, so a node may query one replica and submit to another. The error strings and scores
//! are the reference's (400, plain text, `" (banned)"` appended once the caller is banned).

use actix_web::{HttpRequest, HttpResponse, web};
use bsv_primitives::{Transaction, Txid, sha256d};
use db_kit::DbError;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Bytea, Double, Integer, SmallInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use service_kit::ApiError;

use crate::AppState;

/// The response header that tells the node whether this mAPI wants the proof.
pub const DSNT_HEADER: &str = "x-bsv-dsnt";

/// A score at or above this is a ban.
pub const BAN_SCORE: i32 = 100;

/// The score of a lesser offence.
pub const WARNING_SCORE: i32 = 10;

/// How long a caller may wait between its query and its submission.
const QUERIED_TTL_SECS: f64 = 24.0 * 3600.0;

/// Largest proof accepted.
const MAX_PROOF_BYTES: usize = 32 * 1024 * 1024;

/// What a `dsnt_counters` row counts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Score = 1,
    KnownTxQueries = 2,
    UnknownTxQueries = 3,
    Queried = 4,
}

/// The DSNT routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dsnt/1/query/{txid}", web::get().to(query)).service(
        web::resource("/dsnt/1/submit")
            .app_data(web::PayloadConfig::new(MAX_PROOF_BYTES))
            .route(web::post().to(submit)),
    );
}

/// The counters of one caller.
struct Caller<'a> {
    state: &'a AppState,
    address: String,
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Integer)]
    value: i32,
}

impl Caller<'_> {
    /// Adds `delta` to a counter whose window is `ttl` seconds from now; returns its value.
    async fn bump(&self, kind: Kind, txid: &[u8], delta: i32, ttl: f64) -> Result<i32, DbError> {
        let mut conn = self.state.db.conn().await?;
        let row: Value = diesel::sql_query(
            "INSERT INTO dsnt_counters AS c (kind, caller, txid, value, expires_at) \
             VALUES ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5)) \
             ON CONFLICT (kind, caller, txid) DO UPDATE SET \
               value = CASE WHEN c.expires_at > clock_timestamp() THEN c.value ELSE 0 END + excluded.value, \
               expires_at = excluded.expires_at \
             RETURNING value",
        )
        .bind::<SmallInt, _>(kind as i16)
        .bind::<Text, _>(&self.address)
        .bind::<Bytea, _>(txid)
        .bind::<Integer, _>(delta)
        .bind::<Double, _>(ttl)
        .get_result(&mut conn)
        .await?;
        Ok(row.value)
    }

    /// The live value of a counter (0 when absent or expired).
    async fn value(&self, kind: Kind, txid: &[u8]) -> Result<i32, DbError> {
        let mut conn = self.state.db.conn().await?;
        let rows: Vec<Value> = diesel::sql_query(
            "SELECT value FROM dsnt_counters \
             WHERE kind = $1 AND caller = $2 AND txid = $3 AND expires_at > clock_timestamp()",
        )
        .bind::<SmallInt, _>(kind as i16)
        .bind::<Text, _>(&self.address)
        .bind::<Bytea, _>(txid)
        .load(&mut conn)
        .await?;
        Ok(rows.into_iter().next().map_or(0, |r| r.value))
    }

    async fn remove(&self, kind: Kind, txid: &[u8]) -> Result<(), DbError> {
        let mut conn = self.state.db.conn().await?;
        diesel::sql_query("DELETE FROM dsnt_counters WHERE kind = $1 AND caller = $2 AND txid = $3")
            .bind::<SmallInt, _>(kind as i16)
            .bind::<Text, _>(&self.address)
            .bind::<Bytea, _>(txid)
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    async fn banned(&self) -> Result<bool, DbError> {
        Ok(self.value(Kind::Score, &[]).await? >= BAN_SCORE)
    }

    /// Raises the ban score (the window restarts); true when the caller is now banned.
    async fn add_score(&self, score: i32) -> Result<bool, DbError> {
        let ttl = self.state.settings.ds_host_ban_time_sec as f64;
        Ok(self.bump(Kind::Score, &[], score, ttl).await? >= BAN_SCORE)
    }

    /// One more query of a known transaction; too many within the window ban the caller (and
    /// start its count again).
    async fn log_known(&self, txid: &Txid) -> Result<(), DbError> {
        let s = &self.state.settings;
        let ttl = s.ds_cached_tx_requests_cooldown_period_sec as f64;
        let count = self.bump(Kind::KnownTxQueries, txid.internal(), 1, ttl).await?;
        if count >= i32::try_from(s.ds_max_num_of_tx_queries).unwrap_or(i32::MAX) {
            tracing::info!(caller = %self.address, %txid, "DSNT caller banned: too many queries of one transaction");
            self.remove(Kind::KnownTxQueries, txid.internal()).await?;
            self.add_score(BAN_SCORE).await?;
        }
        Ok(())
    }

    /// One more query of an unknown transaction; too many within the window ban the caller.
    async fn log_unknown(&self) -> Result<(), DbError> {
        let s = &self.state.settings;
        let ttl = s.ds_unknown_tx_query_cooldown_period_sec as f64;
        let count = self.bump(Kind::UnknownTxQueries, &[], 1, ttl).await?;
        if count >= i32::try_from(s.ds_max_num_of_unknown_tx_queries).unwrap_or(i32::MAX) {
            tracing::info!(caller = %self.address, "DSNT caller banned: too many queries of unknown transactions");
            self.remove(Kind::UnknownTxQueries, &[]).await?;
            self.add_score(BAN_SCORE).await?;
        }
        Ok(())
    }

    /// Refuses with `message` after raising the score by `score`.
    async fn refuse(&self, message: &str, score: i32) -> Result<HttpResponse, ApiError> {
        let banned = self.add_score(score).await?;
        tracing::warn!(caller = %self.address, message, "DSNT request refused");
        let body = if banned { format!("{message} (banned)") } else { message.to_owned() };
        Ok(bad_request(&body, "1"))
    }
}

/// A 400 with the reference's plain-text message (kept as it is: the node reads these, so the
/// usual JSON problem body does not replace it).
fn bad_request(body: &str, dsnt: &str) -> HttpResponse {
    let mut resp = HttpResponse::BadRequest()
        .insert_header((DSNT_HEADER, dsnt))
        .content_type("text/plain; charset=utf-8")
        .body(body.to_owned());
    resp.extensions_mut().insert(service_kit::app::Passthrough);
    resp
}

fn caller<'a>(state: &'a AppState, req: &HttpRequest) -> Caller<'a> {
    let address =
        service_kit::internal::client_address(req).map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    Caller { state, address }
}

/// A dsCheck transaction still waiting for a double-spend attempt, with its inputs in order.
struct Watched {
    tx_internal_id: i64,
    inputs: Vec<(Vec<u8>, i64)>,
}

/// The dsCheck transaction `txid` if no double-spend attempt is recorded for it yet.
async fn watched(state: &AppState, txid: &Txid) -> Result<Option<Watched>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        tx_internal_id: i64,
        #[diesel(sql_type = Bool)]
        attempted: bool,
    }
    #[derive(QueryableByName)]
    struct Input {
        #[diesel(sql_type = Bytea)]
        prev_txid: Vec<u8>,
        #[diesel(sql_type = BigInt)]
        prev_n: i64,
    }
    let mut conn = state.db.conn().await?;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT t.tx_internal_id, EXISTS (SELECT 1 FROM tx_mempool_double_spend_attempts a \
                                          WHERE a.tx_internal_id = t.tx_internal_id) AS attempted \
         FROM txs t WHERE t.txid = $1 AND t.ds_check",
    )
    .bind::<Bytea, _>(txid.internal().to_vec())
    .load(&mut conn)
    .await?;
    let Some(row) = rows.into_iter().find(|r| !r.attempted) else { return Ok(None) };
    let inputs: Vec<Input> =
        diesel::sql_query("SELECT prev_txid, prev_n FROM tx_inputs WHERE tx_internal_id = $1 ORDER BY n")
            .bind::<BigInt, _>(row.tx_internal_id)
            .load(&mut conn)
            .await?;
    Ok(Some(Watched {
        tx_internal_id: row.tx_internal_id,
        inputs: inputs.into_iter().map(|i| (i.prev_txid, i.prev_n)).collect(),
    }))
}

/// True when a transaction with this id is stored at all.
async fn known(state: &AppState, txid: &Txid) -> Result<bool, DbError> {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        found: bool,
    }
    let mut conn = state.db.conn().await?;
    let row: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM txs WHERE txid = $1) AS found")
        .bind::<Bytea, _>(txid.internal().to_vec())
        .get_result(&mut conn)
        .await?;
    Ok(row.found)
}

/// `GET /dsnt/1/query/{txid}`.
pub async fn query(
    req: HttpRequest,
    state: web::Data<AppState>,
    txid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&state, &req);
    if caller.banned().await? {
        return Ok(HttpResponse::Forbidden().finish());
    }
    let Ok(txid) = txid.parse::<Txid>() else {
        return caller.refuse("Invalid 'txid' format.", BAN_SCORE).await;
    };
    if watched(&state, &txid).await?.is_none() {
        if known(&state, &txid).await? {
            caller.log_known(&txid).await?;
        } else {
            caller.log_unknown().await?;
        }
        if caller.banned().await? {
            return Ok(bad_request(
                "Query for unknown transaction id requested too many times. (banned)",
                "0",
            ));
        }
        return Ok(HttpResponse::Ok().insert_header((DSNT_HEADER, "0")).finish());
    }
    caller.log_known(&txid).await?;
    if caller.banned().await? {
        return Ok(bad_request("Query for known transaction id requested too many times. (banned)", "1"));
    }
    caller.bump(Kind::Queried, txid.internal(), 1, QUERIED_TTL_SECS).await?;
    Ok(HttpResponse::Ok().insert_header((DSNT_HEADER, "1")).finish())
}

/// The query of `POST /dsnt/1/submit` (every field optional: the handler names what is missing).
#[derive(Debug, serde::Deserialize)]
pub struct SubmitQuery {
    txid: Option<String>,
    n: Option<String>,
    ctxid: Option<String>,
    cn: Option<String>,
}

/// `POST /dsnt/1/submit?txid&n&ctxid&cn` with the conflicting transaction as the body.
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&state, &req);
    if caller.banned().await? {
        return Ok(HttpResponse::Forbidden().finish());
    }
    // Names are matched without regard to case, as ASP.NET binds them.
    let query: SubmitQuery = {
        let pairs: Vec<(String, String)> =
            web::Query::<Vec<(String, String)>>::from_query(req.query_string())
                .map(web::Query::into_inner)
                .unwrap_or_default();
        let get =
            |name: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        SubmitQuery { txid: get("txid"), n: get("n"), ctxid: get("ctxid"), cn: get("cn") }
    };
    let present = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let Some(txid_text) = present(&query.txid) else {
        return caller.refuse("'txid' must not be null or empty.", BAN_SCORE).await;
    };
    let Some(ctxid_text) = present(&query.ctxid) else {
        return caller.refuse("'ctxid' must not be null or empty.", BAN_SCORE).await;
    };
    let Ok(txid) = txid_text.parse::<Txid>() else {
        return caller.refuse("Invalid 'txid' format.", BAN_SCORE).await;
    };
    let Ok(ctxid) = ctxid_text.parse::<Txid>() else {
        return caller.refuse("Invalid 'ctxid' format.", BAN_SCORE).await;
    };
    if txid == ctxid {
        return caller.refuse("'ctxid' parameter must not be the same as 'txid'.", WARNING_SCORE).await;
    }
    let index =
        |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<i64>().ok()).filter(|n| *n >= 0);
    let Some(n) = index(&query.n) else {
        return caller.refuse("'n' must be equal or greater than 0.", WARNING_SCORE).await;
    };
    let Some(cn) = index(&query.cn) else {
        return caller.refuse("'cn' must be equal or greater than 0.", WARNING_SCORE).await;
    };
    if caller.value(Kind::Queried, txid.internal()).await? == 0 {
        return caller
            .refuse(
                "Submitted transactionId was not queried before making a call to submit, or it was already submitted.",
                BAN_SCORE,
            )
            .await;
    }
    let Some(watched) = watched(&state, &txid).await? else {
        let message = format!(
            "There is no transaction waiting for double-spend notification with given transaction id '{txid_text}'."
        );
        return caller.refuse(&message, WARNING_SCORE).await;
    };
    // The reference indexes the input after this check with `n > inputs` (one too many).
    let Some(our_input) = usize::try_from(n).ok().and_then(|n| watched.inputs.get(n)) else {
        return caller
            .refuse("'n' parameter must not be greater than total number of inputs.", WARNING_SCORE)
            .await;
    };
    caller.log_known(&txid).await?;
    if body.is_empty() {
        return caller.refuse("Proof must not be empty.", BAN_SCORE).await;
    }
    if Txid::from_internal(sha256d(&body)) != ctxid {
        return caller
            .refuse("Double-spend transaction does not match the 'ctxid' parameter.", BAN_SCORE)
            .await;
    }
    let Ok(ds_tx) = Transaction::parse(&body) else {
        return caller.refuse("'dsProof' is invalid.", BAN_SCORE).await;
    };
    let Some(their_input) = usize::try_from(cn).ok().and_then(|cn| ds_tx.spent_outpoints().nth(cn)) else {
        return caller
            .refuse("'cn' parameter must not be greater than total number of inputs.", BAN_SCORE)
            .await;
    };
    if their_input.txid.internal().as_slice() != our_input.0.as_slice()
        || i64::from(their_input.vout) != our_input.1
    {
        return caller
            .refuse(
                "Transaction marked as double-spend does not spend same inputs as original transaction.",
                BAN_SCORE,
            )
            .await;
    }
    let hex = hex::encode(&body);
    let verified = verify_script(&state, &hex, cn).await?;
    if verified.result != "ok" {
        let reason = verified.description.unwrap_or_default();
        return caller.refuse(&format!("Invalid proof script. Reason: '{reason}'."), BAN_SCORE).await;
    }
    caller.remove(Kind::Queried, txid.internal()).await?;
    let mut conn = state.db.conn().await?;
    let written = conn
        .transaction::<_, DbError, _>(async move |conn| {
            crate::chain_events::double_spent(conn, &txid, None, &ctxid, &hex).await
        })
        .await?;
    tracing::info!(%txid, %ctxid, tx = watched.tx_internal_id, callbacks = written, "DSNT double-spend attempt recorded");
    if written > 0 {
        state.callbacks_due.notify_one();
    }
    Ok(HttpResponse::Ok().insert_header((DSNT_HEADER, "0")).finish())
}

/// `verifyscript` on the first node that answers.
async fn verify_script(
    state: &AppState,
    tx_hex: &str,
    n: i64,
) -> Result<node_client::rpc_types::VerifyScriptResult, ApiError> {
    let item = node_client::rpc_types::VerifyScriptItem {
        tx: tx_hex.to_owned(),
        n: u32::try_from(n).unwrap_or(u32::MAX),
        prevout_script: None,
        prevout_value: None,
    };
    let limit_ms = state.settings.ds_script_validation_timeout_sec.saturating_mul(1000);
    let mut last = None;
    for (_, client) in crate::nodes::clients(state).await? {
        match client.verify_script(std::slice::from_ref(&item), limit_ms).await {
            Ok(mut results) if !results.is_empty() => return Ok(results.swap_remove(0)),
            Ok(_) => last = Some("the node returned no result".to_owned()),
            Err(e) => last = Some(e.to_string()),
        }
    }
    tracing::warn!(error = ?last, "no node could verify a DSNT proof");
    Err(ApiError::unavailable("Failed to connect to node(s)."))
}

/// Deletes expired DSNT counters every minute until `cancel`.
pub async fn sweep(state: web::Data<AppState>, cancel: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
        let result = async {
            let mut conn = state.db.conn().await?;
            diesel::sql_query("DELETE FROM dsnt_counters WHERE expires_at < clock_timestamp()")
                .execute(&mut conn)
                .await
                .map_err(DbError::from)
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "sweeping DSNT counters failed");
        }
    }
}
