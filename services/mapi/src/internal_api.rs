//! The internal API (`/internal/*`, internal credential required; the gateway never routes it):
//! what mapi's sibling services need from it.

use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use service_kit::ApiError;

use crate::{AppState, nodes};

/// `GET /internal/nodes`: every node with what block-parser and zmq-listener need to reach it,
/// its RPC password included. Only the project's own services get this (the internal credential),
/// and the answer is never logged.
pub async fn nodes(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = nodes::all(&state.db).await?;
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|n| {
            serde_json::json!({
                "id": n.id(),
                "rpcUrl": format!("http://{}:{}", n.host, n.port),
                "username": n.username,
                "password": n.password.expose_secret(),
                "zmqNotificationsEndpoint": n.zmq_notifications_endpoint,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(list))
}

/// The `/internal` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/internal")
            .wrap(actix_web::middleware::from_fn(service_kit::internal::require_internal))
            .route("/nodes", web::get().to(nodes))
            .service(
                web::resource("/chain-events")
                    .app_data(web::JsonConfig::default().limit(crate::chain_events::MAX_BODY_BYTES))
                    .route(web::post().to(crate::chain_events::receive)),
            )
            .route("/mempool-events", web::post().to(crate::chain_events::receive_mempool)),
    );
}
