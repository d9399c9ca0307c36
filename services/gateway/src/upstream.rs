//! What a forwarded request looks like to its upstream, for HTTP and websockets alike: the URL,
//! and the headers, which differ by who the upstream is.
//!
//! The project's own services get the client's headers (minus hop-by-hop, identity and consumed
//! credentials) plus the internal credential, the caller's identity, forwarding information and
//! the trace context. A third party (HeaderSV, an indexer) gets only what describes the content,
//! as the ElectrumSV reference sends it: never the internal credential, an identity header, or a
//! credential the client presented.

use std::time::Duration;

use actix_web::HttpRequest;
use service_kit::internal::{INTERNAL_TOKEN_HEADER, identity, trace_headers};

use crate::AppState;
use crate::auth::Caller;
use crate::routing::{Route, RouteClass, Upstream, encode_path};

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1).
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The client headers a third-party upstream gets (content negotiation and description only).
const THIRD_PARTY_HEADERS: [&str; 5] =
    ["accept", "accept-encoding", "content-type", "content-encoding", "user-agent"];

/// The HTTP client for upstreams: connect timeout only (a long body may legitimately take long);
/// the wait for response headers is bounded per request.
pub fn client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The base URL of an upstream.
pub fn base(state: &AppState, upstream: Upstream) -> &url::Url {
    let s = &state.settings;
    match upstream {
        Upstream::Mapi => &s.mapi_url,
        Upstream::PeerChannels => &s.peer_channels_url,
        Upstream::BlockParser => &s.block_parser_url,
        Upstream::Notifier => &s.notifier_url,
        Upstream::HeaderSv => &s.header_sv_url,
        Upstream::Indexer => &s.indexer_service_url,
    }
}

/// The upstream URL for a canonical path and the query to forward.
pub fn url(base: &url::Url, canonical: &str, query: &str) -> String {
    let path = encode_path(canonical);
    let base = base.as_str().trim_end_matches('/');
    if query.is_empty() { format!("{base}{path}") } else { format!("{base}{path}?{query}") }
}

/// The query string to forward: the client's, minus a `token` parameter the gateway consumed
/// (a master token in the query of a websocket handshake).
pub fn query(req: &HttpRequest, caller: &Caller) -> String {
    let raw = req.query_string();
    if !matches!(caller, Caller::Account { .. }) {
        return raw.to_owned();
    }
    raw.split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("token"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Request headers for the route's upstream, with the gateway's credential and the client's
/// address as this gateway's settings say (see [`headers`]).
pub fn headers_for(
    req: &HttpRequest,
    state: &AppState,
    route: &Route,
    caller: &Caller,
) -> reqwest::header::HeaderMap {
    let credential = secrecy::ExposeSecret::expose_secret(&state.credential);
    headers(req, route, caller, credential, state.trusted_proxies.client(req))
}

/// Request headers for the route's upstream (see the module doc for who gets what).
pub fn headers(
    req: &HttpRequest,
    route: &Route,
    caller: &Caller,
    credential: &str,
    client_ip: std::net::IpAddr,
) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    let ours = route.upstream.is_ours();
    let consumed_auth = matches!(caller, Caller::Jwt { .. } | Caller::Account { .. })
        || matches!(route.class, RouteClass::MapiAdmin | RouteClass::Arc);
    for (name, value) in req.headers() {
        let n = name.as_str();
        let keep = if ours {
            !(HOP_BY_HOP.contains(&n)
                || identity::ALL.contains(&n)
                || n == INTERNAL_TOKEN_HEADER
                || n.starts_with("sec-websocket-")
                || (consumed_auth && (n == "authorization" || n == "api-key")))
        } else {
            THIRD_PARTY_HEADERS.contains(&n)
        };
        if !keep {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(n.as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(k, v);
        }
    }
    if !ours {
        return out;
    }
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set(INTERNAL_TOKEN_HEADER, credential);
    match caller {
        Caller::Jwt { identity: id, provider } => {
            set(identity::IDENTITY, id);
            set(identity::IDENTITY_PROVIDER, provider);
        }
        Caller::Admin => set(identity::ADMIN, "true"),
        Caller::Account { account_id, .. } => set(identity::ACCOUNT, &account_id.to_string()),
        Caller::Anonymous | Caller::PassThrough => {}
    }
    let info = req.connection_info();
    set("x-forwarded-for", &client_ip.to_string());
    set("x-forwarded-proto", info.scheme());
    set("x-forwarded-host", info.host());
    for (name, value) in trace_headers().iter() {
        out.insert(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{RouteClass, Upstream};

    #[test]
    fn a_consumed_query_token_is_not_forwarded() {
        let req =
            actix_web::test::TestRequest::with_uri("/api/v1/web-socket?token=secret&x=1").to_http_request();
        let account = Caller::Account { account_id: 1, token_id: 2 };
        assert_eq!(query(&req, &account), "x=1");
        assert_eq!(query(&req, &Caller::PassThrough), "token=secret&x=1");
    }

    #[test]
    fn third_parties_get_content_headers_only() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("authorization", "Bearer master"))
            .insert_header(("accept", "application/json"))
            .insert_header(("cookie", "c=1"))
            .insert_header(("x-custom", "1"))
            .to_http_request();
        let route = Route { class: RouteClass::Headers, upstream: Upstream::HeaderSv };
        let h = headers(&req, &route, &Caller::Anonymous, "internal-credential", [1, 2, 3, 4].into());
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["accept"]);
    }
}
