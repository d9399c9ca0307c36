//! The OpenAPI documents of every public API (`proto-docs/`), served at `/docs/{name}.json`, with
//! a browsable page at `/docs` rendered on the server (no scripts, nothing fetched from outside).

use actix_web::{HttpResponse, web};
use serde_json::Value;

/// (name, document) of each API, embedded at build time.
pub const SPECS: &[(&str, &str)] = &[
    ("mapi", include_str!("../../../proto-docs/mapi.json")),
    ("mapi-admin", include_str!("../../../proto-docs/mapi-admin.json")),
    ("accounts", include_str!("../../../proto-docs/accounts.json")),
    ("peer-channels", include_str!("../../../proto-docs/peer-channels.json")),
    ("headers", include_str!("../../../proto-docs/headers.json")),
    ("indexer", include_str!("../../../proto-docs/indexer.json")),
    ("arc", include_str!("../../../proto-docs/arc.json")),
];

const METHODS: [&str; 6] = ["get", "post", "put", "delete", "head", "patch"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Every (METHOD, path) the documents describe.
pub fn documented_operations() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, json) in SPECS {
        let Ok(doc) = serde_json::from_str::<Value>(json) else { continue };
        if let Some(paths) = doc["paths"].as_object() {
            for (path, ops) in paths {
                for m in METHODS {
                    if ops.get(m).is_some() {
                        out.push((m.to_ascii_uppercase(), path.clone()));
                    }
                }
            }
        }
    }
    out
}

/// The HTML page.
pub fn render_index() -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>API documentation</title>\
         <style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}\
         table{border-collapse:collapse;width:100%;margin-bottom:2em}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}\
         code{font-size:.95em}.m{font-weight:bold;font-family:monospace}</style></head><body><h1>API documentation</h1>",
    );
    html.push_str("<ul>");
    for (name, json) in SPECS {
        let doc: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        let title = escape(doc["info"]["title"].as_str().unwrap_or(name));
        html.push_str(&format!(
            "<li><a href=\"#{name}\">{title}</a> (<a href=\"/docs/{name}.json\">OpenAPI JSON</a>)</li>"
        ));
    }
    html.push_str("</ul>");
    for (name, json) in SPECS {
        let doc: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        let title = escape(doc["info"]["title"].as_str().unwrap_or(name));
        let description = escape(doc["info"]["description"].as_str().unwrap_or(""));
        html.push_str(&format!(
            "<h2 id=\"{name}\">{title}</h2><p>{description}</p><table><tr><th>method</th><th>path</th><th>summary</th><th>parameters</th><th>responses</th></tr>"
        ));
        if let Some(paths) = doc["paths"].as_object() {
            for (path, ops) in paths {
                for m in METHODS {
                    let Some(op) = ops.get(m) else { continue };
                    let params: Vec<String> = op["parameters"]
                        .as_array()
                        .map(|ps| {
                            ps.iter()
                                .map(|p| {
                                    format!(
                                        "<code>{}</code> ({}{})",
                                        escape(p["name"].as_str().unwrap_or("")),
                                        escape(p["in"].as_str().unwrap_or("")),
                                        if p["required"].as_bool() == Some(true) { ", required" } else { "" }
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let responses: Vec<String> = op["responses"]
                        .as_object()
                        .map(|r| r.keys().map(|k| escape(k)).collect())
                        .unwrap_or_default();
                    html.push_str(&format!(
                        "<tr><td class=\"m\">{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        m.to_ascii_uppercase(),
                        escape(path),
                        escape(op["summary"].as_str().unwrap_or("")),
                        params.join("<br>"),
                        responses.join(", ")
                    ));
                }
            }
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>");
    html
}

/// `GET /docs`.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(render_index())
}

/// `GET /docs/{name}.json`.
pub async fn spec(name: web::Path<String>) -> HttpResponse {
    let wanted = name.trim_end_matches(".json");
    match SPECS.iter().find(|(n, _)| *n == wanted) {
        Some((_, json)) => HttpResponse::Ok().content_type("application/json").body(*json),
        None => HttpResponse::NotFound().content_type("application/problem+json").body(
            serde_json::json!({"title": "Not found", "status": 404, "detail": format!("no document {wanted}"), "code": "not_found"})
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::PUBLIC_ENDPOINTS;

    #[test]
    fn every_document_is_valid_openapi_json() {
        for (name, json) in SPECS {
            let doc: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(doc["openapi"], "3.0.3", "{name}");
            assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()), "{name}");
        }
    }

    #[test]
    fn documents_and_routes_describe_the_same_operations() {
        let documented = documented_operations();
        let routed: Vec<(String, String)> =
            PUBLIC_ENDPOINTS.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        let missing: Vec<_> = routed.iter().filter(|r| !documented.contains(r)).collect();
        assert!(missing.is_empty(), "routed public paths missing from proto-docs: {missing:?}");
        let extra: Vec<_> = documented.iter().filter(|d| !routed.contains(d)).collect();
        assert!(extra.is_empty(), "documented paths that are not routed: {extra:?}");
    }

    #[test]
    fn the_page_lists_every_operation() {
        let html = render_index();
        for (_, path) in documented_operations() {
            assert!(html.contains(&escape(&path)), "{path}");
        }
    }
}
