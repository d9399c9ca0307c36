//! The account websockets live in peer-channels; this is the indexer's side of them: which
//! accounts have one open (`POST /internal/account-sockets`), and output spends pushed to them
//! (`POST /internal/account-events`), over internal HTTP.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use service_kit::InternalClient;

use crate::formats::OutputSpend;

/// The peer-channels service, as the indexer uses it.
#[derive(Debug, Clone)]
pub struct AccountSockets {
    client: InternalClient,
    base: String,
}

#[derive(Serialize)]
struct Accounts<'a> {
    account_ids: &'a [i64],
}

#[derive(Deserialize)]
struct Connected {
    connected: Vec<i64>,
}

#[derive(Serialize)]
struct SpendEvent {
    account_id: i64,
    output_spend: String,
}

#[derive(Serialize)]
struct SpendEvents {
    events: Vec<SpendEvent>,
}

impl AccountSockets {
    /// peer-channels at `base`.
    pub fn new(client: InternalClient, base: &url::Url) -> Self {
        Self { client, base: base.as_str().trim_end_matches('/').to_owned() }
    }

    /// Which of `accounts` have an account websocket open on any replica.
    pub async fn connected(&self, accounts: &[i64]) -> Result<HashSet<i64>, String> {
        if accounts.is_empty() {
            return Ok(HashSet::new());
        }
        let resp = self
            .client
            .post(&format!("{}/internal/account-sockets", self.base))
            .json(&Accounts { account_ids: accounts })
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("peer-channels answered {}", resp.status()));
        }
        let connected: Connected = resp.json().await.map_err(|e| e.without_url().to_string())?;
        Ok(connected.connected.into_iter().collect())
    }

    /// Pushes spends to the sockets of their accounts (each socket sends the 104-byte record).
    pub async fn push(&self, spends: &[(OutputSpend, Vec<i64>)]) -> Result<(), String> {
        let events: Vec<SpendEvent> = spends
            .iter()
            .flat_map(|(spend, accounts)| {
                let record = hex::encode(spend.to_bytes());
                accounts.iter().map(move |a| SpendEvent { account_id: *a, output_spend: record.clone() })
            })
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        let resp = self
            .client
            .post(&format!("{}/internal/account-events", self.base))
            .json(&SpendEvents { events })
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("peer-channels answered {}", resp.status()));
        }
        Ok(())
    }
}
