//! What other services ask of the account websockets (internal credential only): which accounts
//! have one open, and output spends to send on them (the indexer's notifications).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use service_kit::ApiError;

use crate::AppState;
use crate::events::{Event, notify};
use crate::store;

/// Body of `POST /internal/account-sockets`.
#[derive(Debug, Deserialize)]
pub struct AccountsQuery {
    account_ids: Vec<i64>,
}

/// `POST /internal/account-sockets`: `{"connected": [...]}`, the given accounts with a socket
/// open on any replica.
pub async fn connected(
    state: web::Data<AppState>,
    body: web::Json<AccountsQuery>,
) -> Result<HttpResponse, ApiError> {
    let connected = store::connected_accounts(&state.db, &body.account_ids).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "connected": connected })))
}

/// One output spend for an account's sockets.
#[derive(Debug, Deserialize)]
pub struct SpendEvent {
    account_id: i64,
    /// The 104-byte record, hex.
    output_spend: String,
}

/// Body of `POST /internal/account-events`.
#[derive(Debug, Deserialize)]
pub struct SpendEvents {
    events: Vec<SpendEvent>,
}

/// `POST /internal/account-events`: each spend is published to every replica, whose sockets of
/// that account send it.
pub async fn spends(
    state: web::Data<AppState>,
    body: web::Json<SpendEvents>,
) -> Result<HttpResponse, ApiError> {
    for e in &body.events {
        if e.output_spend.len() != 208 || hex::decode(&e.output_spend).is_err() {
            return Err(ApiError::bad_request("output_spend must be 104 bytes in hex"));
        }
    }
    let mut conn = state.db.conn().await?;
    for e in &body.events {
        notify(&mut conn, &Event::OutputSpend { account_id: e.account_id, record: e.output_spend.clone() })
            .await?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "published": body.events.len() })))
}
