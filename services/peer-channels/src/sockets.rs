//! Websockets: a channel's `/notify` (channel token, or the account's master token through the
//! gateway) and the account socket `/api/v1/web-socket`.
//!
//! Both are lossless: a channel socket takes `?since=<last sequence seen>` and first replays what
//! was missed; whenever a socket may have missed live events (a gap in a channel's sequences, it
//! fell behind this replica's fan-out, or the listener reconnected) it reads them from the
//! database, never sending a sequence twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, Session};
use futures_util::StreamExt;
use service_kit::Bearer;
use service_kit::internal::TrustedCaller;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::access::{self, Access, Need};
use crate::error::ChannelError;
use crate::events::{Event, MessageEvent};
use crate::messages::format_received;
use crate::store;

/// The notification frame of a channel socket (also the `result` of an account socket frame).
fn notification(channel_id: &str, sequence: i64, received: &str, content_type: &str) -> serde_json::Value {
    serde_json::json!({
        "sequence": sequence,
        "received": received,
        "content_type": content_type,
        "channel_id": channel_id,
    })
}

fn upgrade(
    req: &HttpRequest,
    stream: web::Payload,
) -> Result<(HttpResponse, Session, actix_ws::AggregatedMessageStream), ChannelError> {
    let (resp, session, incoming) = actix_ws::handle(req, stream)
        .map_err(|_| ChannelError::BadRequest("A websocket upgrade request is expected".into()))?;
    Ok((resp, session, incoming.aggregate_continuations().max_continuation_size(64 * 1024)))
}

/// `GET /api/v1/channel/{channelid}/notify?token=<channel token>[&since=<sequence>]`.
pub async fn channel_notify(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    stream: web::Payload,
) -> Result<HttpResponse, ChannelError> {
    let token = query.get("token").map(String::as_str).or_else(|| Bearer::of(&req).token());
    if caller.account.is_none() && token.is_none() {
        return Err(ChannelError::MissingToken);
    }
    let access = access::check(&state, &caller, token, &path, Need::Read).await?;
    let since = match query.get("since") {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| ChannelError::BadRequest("'since' must be a sequence number".into()))?,
        ),
    };
    // Subscribe before reading the backlog: nothing can fall between the two.
    let events = state.hub.subscribe();
    let (resp, session, incoming) = upgrade(&req, stream)?;
    let via_account = caller.account.is_some();
    actix_web::rt::spawn(run_channel_socket(
        state.into_inner(),
        access,
        via_account,
        since,
        events,
        session,
        incoming,
    ));
    Ok(resp)
}

struct ChannelSocket {
    state: Arc<AppState>,
    access: Access,
    session: Session,
    /// The highest sequence sent (or, without `since`, the channel's head when it opened).
    last: i64,
}

impl ChannelSocket {
    async fn send(&mut self, sequence: i64, received: &str, content_type: &str) -> Result<(), ()> {
        let frame = notification(&self.access.channel.external_id, sequence, received, content_type);
        self.session.text(frame.to_string()).await.map_err(|_| ())?;
        self.last = sequence;
        self.state.metrics.notifications_sent.inc();
        Ok(())
    }

    /// Sends every message after `last` that the database has (this token's, not deleted), a page
    /// at a time.
    async fn catch_up(&mut self) -> Result<(), ()> {
        let limit = self.state.settings.message_page_size;
        loop {
            let page = store::Page {
                unread_only: false,
                after: self.last,
                upto: i64::MAX,
                limit,
                with_payload: false,
            };
            let missed =
                store::messages_page(&self.state.db, self.access.channel.id, &self.access.token, page)
                    .await
                    .map_err(|e| tracing::warn!(error = %e, "websocket catch-up failed"))?;
            let complete = (missed.len() as i64) < limit;
            for m in missed {
                self.send(m.seq, &format_received(m.received_at), &m.content_type).await?;
            }
            if complete {
                return Ok(());
            }
        }
    }

    async fn on_message(&mut self, m: &MessageEvent) -> Result<(), ()> {
        if m.channel_id != self.access.channel.external_id || m.sequence <= self.last {
            return Ok(());
        }
        if m.sequence > self.last + 1 {
            // A gap: something was missed (or deleted for this token); the database decides.
            return self.catch_up().await;
        }
        self.send(m.sequence, &format_received(m.received), &m.content_type).await
    }
}

async fn run_channel_socket(
    state: Arc<AppState>,
    access: Access,
    via_account: bool,
    since: Option<i64>,
    mut events: tokio::sync::broadcast::Receiver<Arc<Event>>,
    session: Session,
    mut incoming: actix_ws::AggregatedMessageStream,
) {
    let heartbeat = Duration::from_secs(state.settings.websocket_heartbeat_secs);
    // A `since` beyond the channel's head (a client from before a channel was recreated, say)
    // counts from the head, so later messages are not skipped.
    let head = access.channel.head_sequence;
    let last = since.map_or(head, |s| s.min(head));
    state.metrics.open_sockets.inc();
    let mut socket = ChannelSocket { state: state.clone(), access, session, last };
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut ok = since.is_none() || socket.catch_up().await.is_ok();
    while ok {
        ok = tokio::select! {
            event = events.recv() => match event {
                Ok(e) => match &*e {
                    Event::Message(m) => socket.on_message(m).await.is_ok(),
                    Event::TokenRevoked { token_id } => via_account || *token_id != socket.access.token.id,
                    Event::ChannelDeleted { channel_id } => *channel_id != socket.access.channel.external_id,
                    Event::Resync => socket.catch_up().await.is_ok(),
                    Event::Tips(_) | Event::OutputSpend { .. } => true,
                },
                Err(RecvError::Lagged(_)) => socket.catch_up().await.is_ok(),
                Err(RecvError::Closed) => false,
            },
            frame = incoming.next() => match frame {
                Some(Ok(AggregatedMessage::Ping(bytes))) => socket.session.pong(&bytes).await.is_ok(),
                Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => false,
                // Other client frames are ignored, as in the reference.
                Some(Ok(_)) => true,
            },
            _ = ping.tick() => socket.session.ping(b"").await.is_ok(),
            _ = state.shutdown.cancelled() => false,
        };
    }
    state.metrics.open_sockets.dec();
    let _ = socket.session.close(closing(&state)).await;
}

/// The close frame's reason: "going away" when the service is shutting down.
fn closing(state: &AppState) -> Option<actix_ws::CloseReason> {
    state.shutdown.is_cancelled().then(|| actix_ws::CloseReason {
        code: actix_ws::CloseCode::Away,
        description: Some("the service is shutting down".to_owned()),
    })
}

/// `GET /api/v1/web-socket?token=<master token>`: the account's notifications, JSON text frames
/// (`Accept` absent or `*/*`) or binary frames (`u32 BE kind || payload`, kind 1 = notification).
pub async fn account_socket(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    query: web::Query<HashMap<String, String>>,
    stream: web::Payload,
) -> Result<HttpResponse, ChannelError> {
    let Some(account) = caller.account else {
        return Err(if query.contains_key("token") || Bearer::of(&req).token().is_some() {
            ChannelError::Unauthorized
        } else {
            ChannelError::MissingToken
        });
    };
    let binary = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| !matches!(a.trim(), "" | "*/*" | "application/json"));
    // Where each channel stands, read before subscribing: a write in between shows up as a gap
    // and is read from the database.
    let seen = store::account_heads(&state.db, account).await?;
    let events = state.hub.subscribe();
    let (resp, session, incoming) = upgrade(&req, stream)?;
    actix_web::rt::spawn(run_account_socket(
        state.into_inner(),
        account,
        binary,
        seen,
        events,
        session,
        incoming,
    ));
    Ok(resp)
}

/// An account socket: where it stands in each of the account's channels.
struct AccountSocket {
    state: Arc<AppState>,
    account: i64,
    binary: bool,
    session: Session,
    /// Per channel, the highest sequence announced or skipped (an owner's own write).
    seen: HashMap<String, i64>,
}

impl AccountSocket {
    async fn send(
        &mut self,
        channel_id: &str,
        sequence: i64,
        received: &str,
        content_type: &str,
    ) -> Result<(), ()> {
        let result = notification(channel_id, sequence, received, content_type);
        let sent = if self.binary {
            let mut frame = 1u32.to_be_bytes().to_vec();
            frame.extend_from_slice(result.to_string().as_bytes());
            self.session.binary(frame).await
        } else {
            let frame = serde_json::json!({"message_type": "bsvapi.channels.notification", "result": result});
            self.session.text(frame.to_string()).await
        };
        sent.map_err(|_| ())?;
        self.seen.insert(channel_id.to_owned(), sequence);
        self.state.metrics.notifications_sent.inc();
        Ok(())
    }

    /// Sends an output spend: binary kind 2 with the 104-byte record, or JSON
    /// `bsvapi.output-spends.notification` with its hex.
    async fn send_spend(&mut self, record_hex: &str) -> Result<(), ()> {
        let sent = if self.binary {
            let Ok(record) = hex::decode(record_hex) else {
                return Ok(());
            };
            let mut frame = 2u32.to_be_bytes().to_vec();
            frame.extend_from_slice(&record);
            self.session.binary(frame).await
        } else {
            let frame = serde_json::json!({"message_type": "bsvapi.output-spends.notification", "result": record_hex});
            self.session.text(frame.to_string()).await
        };
        sent.map_err(|_| ())?;
        self.state.metrics.notifications_sent.inc();
        Ok(())
    }

    /// Announces what the database has after `seen` in every channel of the account, a page at
    /// a time.
    async fn catch_up(&mut self) -> Result<(), ()> {
        let limit = self.state.settings.message_page_size;
        loop {
            let missed = store::account_messages_after(&self.state.db, self.account, &self.seen, limit)
                .await
                .map_err(|e| tracing::warn!(error = %e, "account socket catch-up failed"))?;
            let complete = (missed.len() as i64) < limit;
            for m in missed {
                self.send(&m.channel_id, m.seq, &format_received(m.received_at), &m.content_type).await?;
            }
            if complete {
                return Ok(());
            }
        }
    }

    async fn on_message(&mut self, m: &MessageEvent) -> Result<(), ()> {
        if m.account_id != self.account {
            return Ok(());
        }
        // Channels created after the socket opened start from 0.
        let last = self.seen.get(&m.channel_id).copied().unwrap_or(0);
        if m.sequence <= last {
            return Ok(());
        }
        if m.sequence > last + 1 {
            return self.catch_up().await;
        }
        if m.owned_by_account {
            self.seen.insert(m.channel_id.clone(), m.sequence);
            return Ok(());
        }
        self.send(&m.channel_id, m.sequence, &format_received(m.received), &m.content_type).await
    }
}

async fn run_account_socket(
    state: Arc<AppState>,
    account: i64,
    binary: bool,
    seen: HashMap<String, i64>,
    mut events: tokio::sync::broadcast::Receiver<Arc<Event>>,
    session: Session,
    mut incoming: actix_ws::AggregatedMessageStream,
) {
    let heartbeat = Duration::from_secs(state.settings.websocket_heartbeat_secs);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    state.metrics.open_sockets.inc();
    // Other services (the indexer) ask whether the account has a socket open; three missed
    // heartbeats make the row stale.
    let ttl = heartbeat * 3;
    let registered = store::open_account_socket(&state.db, account, ttl)
        .await
        .map_err(|e| tracing::warn!(error = %e, "account socket not recorded"))
        .ok();
    let mut socket = AccountSocket { state: state.clone(), account, binary, session, seen };
    loop {
        let ok = tokio::select! {
            event = events.recv() => match event {
                Ok(e) => match &*e {
                    Event::Message(m) => socket.on_message(m).await.is_ok(),
                    Event::ChannelDeleted { channel_id } => {
                        socket.seen.remove(channel_id);
                        true
                    }
                    Event::Resync => socket.catch_up().await.is_ok(),
                    Event::TokenRevoked { .. } => true,
                    Event::OutputSpend { account_id, record } if *account_id == account => {
                        socket.send_spend(record).await.is_ok()
                    }
                    Event::OutputSpend { .. } => true,
                    // Text in both modes, as the reference sends it.
                    Event::Tips(tips) => socket.session.text(crate::tips::frame(tips)).await.is_ok(),
                },
                Err(RecvError::Lagged(_)) => socket.catch_up().await.is_ok(),
                Err(RecvError::Closed) => false,
            },
            frame = incoming.next() => match frame {
                Some(Ok(AggregatedMessage::Ping(bytes))) => socket.session.pong(&bytes).await.is_ok(),
                Some(Ok(AggregatedMessage::Pong(_))) => true,
                // Any other client frame closes the socket, as in the reference.
                _ => false,
            },
            _ = ping.tick() => {
                if let Some(id) = registered
                    && let Err(e) = store::refresh_account_socket(&state.db, id, ttl).await
                {
                    tracing::warn!(error = %e, "account socket not refreshed");
                }
                socket.session.ping(b"").await.is_ok()
            }
            _ = state.shutdown.cancelled() => false,
        };
        if !ok {
            break;
        }
    }
    state.metrics.open_sockets.dec();
    if let Some(id) = registered
        && let Err(e) = store::close_account_socket(&state.db, id).await
    {
        tracing::warn!(error = %e, "closed account socket not removed (it expires)");
    }
    let _ = socket.session.close(closing(&state)).await;
}
