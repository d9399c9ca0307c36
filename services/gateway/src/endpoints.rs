//! `GET /api/v1/endpoints`: the discovery document of the APIs that are enabled, in the
//! ElectrumSV reference's shape (the indexer entries keep its `baseURL` spelling).

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::routing::IndexerApis;

/// Builds the document at `now`.
pub fn document(state: &AppState) -> Value {
    let now = state.clock.now();
    let format = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut endpoints = vec![
        json!({"apiType": "bsvapi.account", "apiVersion": 1, "baseUrl": "/api/v1/account"}),
        json!({"apiType": "bsvapi.channel", "apiVersion": 1, "baseUrl": "/api/v1/channel"}),
        json!({"apiType": "bsvapi.websocket", "apiVersion": 1, "baseUrl": "/api/v1/web-socket"}),
        json!({"apiType": "bsvapi.mapi", "apiVersion": 1, "baseUrl": "/mapi"}),
        // Served natively by block-parser (or by HeaderSV with EXPOSE_HEADER_SV_APIS=1): always on.
        json!({"apiType": "bsvapi.headers", "apiVersion": 1, "baseUrl": "/api/v1/headers"}),
    ];
    let indexer = state.settings.indexer_apis();
    if indexer != IndexerApis::Off {
        for (kind, path) in [
            ("bsvapi.transaction", "/api/v1/transaction"),
            ("bsvapi.merkle-proof", "/api/v1/merkle-proof"),
            ("bsvapi.output-spend", "/api/v1/output-spend"),
        ] {
            endpoints.push(json!({"apiType": kind, "apiVersion": 1, "baseURL": path}));
        }
    }
    // Only an external indexer has a restoration index (the whole chain's pushdatas).
    if indexer == IndexerApis::Proxy {
        endpoints.push(
            json!({"apiType": "bsvapi.restoration", "apiVersion": 1, "baseURL": "/api/v1/restoration"}),
        );
    }
    json!({
        "apiType": "bsvapi.endpoint",
        "apiVersion": 1,
        "baseUrl": state.settings.public_base(),
        "timestamp": format(now),
        "expiryTime": format(now + time::Duration::days(1)),
        "endpoints": endpoints,
    })
}

/// The handler.
pub async fn get_endpoints(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state))
}

/// `GET /`: the reference answers 200 here (clients use it as a liveness probe of the server).
pub async fn root() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "name": "bsv-mapi gateway",
        "endpoints": "/api/v1/endpoints",
        "docs": "/docs",
    }))
}
