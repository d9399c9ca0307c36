//! Websocket forwarding: the gateway opens the upstream websocket first (so an upstream refusal
//! reaches the client as an HTTP status), then accepts the client's and pumps frames both ways
//! until either side closes, the master token it was opened with is revoked, or the gateway shuts
//! down.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{SinkExt, StreamExt};
use service_kit::{ApiError, ErrorKind};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message as UpMsg;

use crate::AppState;
use crate::auth::Caller;
use crate::routing::{CanonicalRequest, Route};
use crate::upstream;

/// True for a websocket handshake.
pub fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Forwards a websocket to the route's upstream.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    canonical: CanonicalRequest,
    route: Route,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    // A socket opened with a master token lives only as long as the token. Registered before the
    // token is checked again, so a revocation in between is seen by one or the other.
    let registered = match caller {
        Caller::Account { token_id, .. } => {
            let session = state.sessions.register(token_id);
            if !crate::accounts::store::revoked_among(&state.db, &[token_id]).await?.is_empty() {
                return Err(ApiError::unauthorized("Invalid bearer token."));
            }
            Some(session)
        }
        _ => None,
    };
    let http_url = upstream::url(
        upstream::base(&state, route.upstream),
        &canonical.path,
        &upstream::query(&req, &caller),
    );
    let ws_url = http_url.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1);
    let mut upstream_req = ws_url
        .as_str()
        .into_client_request()
        .map_err(|_| ApiError::new(ErrorKind::BadGateway, "bad upstream URL"))?;
    for (name, value) in upstream::headers_for(&req, &state, &route, &caller).iter() {
        upstream_req.headers_mut().insert(name.clone(), value.clone());
    }
    let timeout = std::time::Duration::from_millis(state.settings.upstream_timeout_ms);
    let (upstream, _) =
        match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(upstream_req)).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let kind = match status {
                    400 => ErrorKind::BadRequest,
                    401 => ErrorKind::Unauthorized,
                    403 => ErrorKind::Forbidden,
                    404 => ErrorKind::NotFound,
                    _ => ErrorKind::BadGateway,
                };
                return Err(ApiError::new(kind, format!("the service refused the websocket ({status})")));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream websocket unavailable");
                return Err(ApiError::unavailable("The service is unavailable, retry later."));
            }
            Err(_) => {
                return Err(ApiError::new(ErrorKind::GatewayTimeout, "The service did not answer in time."));
            }
        };
    let (response, session, client_stream) = actix_ws::handle(&req, payload)
        .map_err(|e| ApiError::bad_request(format!("websocket handshake: {e}")))?;
    actix_web::rt::spawn(pump(upstream, session, client_stream, registered, state.shutdown.clone()));
    Ok(response)
}

/// Why the gateway ends a socket itself.
fn ending(reason: &'static str, code: actix_ws::CloseCode) -> Option<actix_ws::CloseReason> {
    Some(actix_ws::CloseReason { code, description: Some(reason.to_owned()) })
}

/// Pumps frames both ways until either side closes, the token is revoked or the gateway stops.
async fn pump(
    upstream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    mut session: actix_ws::Session,
    mut client_stream: actix_ws::MessageStream,
    registered: Option<crate::sessions::Session>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (mut up_tx, mut up_rx) = upstream.split();
    let revoked = async {
        match &registered {
            Some(s) => s.revoked().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(revoked);
    let reason = loop {
        tokio::select! {
            _ = &mut revoked => break ending("the token was revoked", actix_ws::CloseCode::Policy),
            _ = shutdown.cancelled() => break ending("the gateway is shutting down", actix_ws::CloseCode::Away),
            from_client = client_stream.next() => {
                let forwarded = match from_client {
                    Some(Ok(actix_ws::Message::Text(t))) => UpMsg::text(t.to_string()),
                    Some(Ok(actix_ws::Message::Binary(b))) => UpMsg::binary(b),
                    Some(Ok(actix_ws::Message::Ping(p))) => UpMsg::Ping(p),
                    Some(Ok(actix_ws::Message::Pong(p))) => UpMsg::Pong(p),
                    Some(Ok(actix_ws::Message::Close(_))) | Some(Err(_)) | None => break None,
                    Some(Ok(_)) => continue,
                };
                if up_tx.send(forwarded).await.is_err() {
                    break None;
                }
            }
            from_upstream = up_rx.next() => {
                let sent = match from_upstream {
                    Some(Ok(UpMsg::Text(t))) => session.text(t.as_str().to_owned()).await,
                    Some(Ok(UpMsg::Binary(b))) => session.binary(b).await,
                    Some(Ok(UpMsg::Ping(p))) => session.ping(&p).await,
                    Some(Ok(UpMsg::Pong(p))) => session.pong(&p).await,
                    Some(Ok(UpMsg::Frame(_))) => Ok(()),
                    Some(Ok(UpMsg::Close(_))) | Some(Err(_)) | None => break None,
                };
                if sent.is_err() {
                    // The client is gone.
                    let _ = up_tx.send(UpMsg::Close(None)).await;
                    return;
                }
            }
        }
    };
    let _ = up_tx.send(UpMsg::Close(None)).await;
    let _ = session.close(reason).await;
}
