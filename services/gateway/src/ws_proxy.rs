//! Websocket forwarding: the gateway opens the upstream websocket first (so an upstream refusal
//! reaches the client as an HTTP status), then accepts the client's and pumps frames both ways
//! until either side closes.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{SinkExt, StreamExt};
use service_kit::{ApiError, ErrorKind};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message as UpMsg;

use crate::AppState;
use crate::auth::Caller;
use crate::proxy::{upstream_base, upstream_headers, upstream_url};
use crate::routing::Route;

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
    canonical: String,
    route: Route,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let http_url = upstream_url(upstream_base(&state, route.upstream), &canonical, req.query_string());
    let ws_url = http_url.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1);
    let mut upstream_req = ws_url
        .as_str()
        .into_client_request()
        .map_err(|_| ApiError::new(ErrorKind::BadGateway, "bad upstream URL"))?;
    for (name, value) in
        upstream_headers(&req, &route, &caller, secrecy::ExposeSecret::expose_secret(&state.credential))
            .iter()
    {
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
    let (response, mut session, mut client_stream) = actix_ws::handle(&req, payload)
        .map_err(|e| ApiError::bad_request(format!("websocket handshake: {e}")))?;
    let (mut up_tx, mut up_rx) = upstream.split();

    // Client -> upstream.
    let close_session = session.clone();
    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = client_stream.next().await {
            let forwarded = match msg {
                actix_ws::Message::Text(t) => UpMsg::text(t.to_string()),
                actix_ws::Message::Binary(b) => UpMsg::binary(b),
                actix_ws::Message::Ping(p) => UpMsg::Ping(p),
                actix_ws::Message::Pong(p) => UpMsg::Pong(p),
                actix_ws::Message::Close(_) => break,
                _ => continue,
            };
            if up_tx.send(forwarded).await.is_err() {
                break;
            }
        }
        let _ = up_tx.send(UpMsg::Close(None)).await;
        let _ = close_session.close(None).await;
    });

    // Upstream -> client.
    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = up_rx.next().await {
            let sent = match msg {
                UpMsg::Text(t) => session.text(t.as_str().to_owned()).await,
                UpMsg::Binary(b) => session.binary(b).await,
                UpMsg::Ping(p) => session.ping(&p).await,
                UpMsg::Pong(p) => session.pong(&p).await,
                UpMsg::Close(_) => break,
                UpMsg::Frame(_) => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}
