//! Chain tips for the account sockets: the headers API's tips (block-parser's
//! `GET /api/v1/headers/tips`) read every `TIPS_POLL_INTERVAL_MS`, as the reference polls
//! HeaderSV; when the longest chain's tip changes, every account socket of this replica gets
//! `{"message_type":"bsvapi.headers.tip","result":[<every tip>]}`.

use std::time::Duration;

use serde_json::Value;
use service_kit::InternalClient;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, Hub};

/// The hash of the longest chain's tip in a tips list.
fn longest(tips: &Value) -> Option<&str> {
    tips.as_array()?.iter().find(|t| t["state"] == "LONGEST_CHAIN")?["header"]["hash"].as_str()
}

/// Polls until `cancel`; the first answer sets the baseline (no announcement).
pub async fn poll(
    hub: Hub,
    client: InternalClient,
    base: url::Url,
    every: Duration,
    cancel: CancellationToken,
) {
    let url = format!("{}/api/v1/headers/tips", base.as_str().trim_end_matches('/'));
    let mut last: Option<String> = None;
    loop {
        match fetch(&client, &url).await {
            Ok(tips) => {
                let tip = longest(&tips).map(str::to_owned);
                if tip.is_some() && tip != last {
                    if last.is_some() {
                        hub.publish(Event::Tips(tips));
                    }
                    last = tip;
                }
            }
            Err(e) => tracing::debug!(error = %e, "chain tips unavailable"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn fetch(client: &InternalClient, url: &str) -> Result<Value, String> {
    let resp =
        client.get(url).header("accept", "application/json").send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("the headers API answered {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

/// The account socket's frame for new tips.
pub fn frame(tips: &Value) -> String {
    serde_json::json!({"message_type": "bsvapi.headers.tip", "result": tips}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_chain_tip_is_picked_and_framed() {
        let tips = serde_json::json!([
            {"header": {"hash": "aa"}, "state": "STALE", "height": 5},
            {"header": {"hash": "bb"}, "state": "LONGEST_CHAIN", "height": 6},
        ]);
        assert_eq!(longest(&tips), Some("bb"));
        let f: Value = serde_json::from_str(&frame(&tips)).unwrap_or_default();
        assert_eq!(f["message_type"], "bsvapi.headers.tip");
        assert_eq!(f["result"][1]["height"], 6);
    }
}
