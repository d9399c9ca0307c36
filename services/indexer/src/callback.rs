//! The tip-filter callback settings of an account (`GET|POST /api/v1/indexer`) and the
//! reference's checks of them: an http(s) URL with a domain, an IPv4 address or `localhost` as
//! its host, at most 2048 characters, a path and query allowed, no fragment; a token of at least
//! 8 non-space printable ASCII characters, and only with a URL.

use serde_json::{Value, json};

use crate::error::IndexerError;
use crate::store::CallbackSettings;

/// The settings document both endpoints answer with.
pub fn document(settings: &CallbackSettings) -> Value {
    json!({
        "tipFilterCallbackUrl": settings.callback_url,
        "tipFilterCallbackToken": settings.callback_token,
    })
}

/// Reads and checks an update object; both settings are replaced (an absent one becomes none).
pub fn validate(update: &Value) -> Result<CallbackSettings, IndexerError> {
    let object =
        update.as_object().ok_or_else(|| IndexerError::bad("Invalid settings update object in body"))?;
    let url = match object.get("tipFilterCallbackUrl") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => return Err(IndexerError::InvalidCallback("Invalid tip filter callback url".into())),
    };
    let token = match object.get("tipFilterCallbackToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(IndexerError::CallbackTokenInvalid),
    };
    match &url {
        Some(url) => check_url(url)
            .map_err(|why| IndexerError::InvalidCallback(format!("Invalid tip filter callback url {why}")))?,
        None if token.is_some() => {
            return Err(IndexerError::InvalidCallback(
                "Tip filter callback token provided without url".into(),
            ));
        }
        None => {}
    }
    if let Some(token) = &token {
        let non_space = token.chars().filter(|c| *c != ' ').count();
        if non_space < 8 {
            return Err(IndexerError::CallbackTokenTooShort(non_space));
        }
        if !token.chars().all(|c| (' '..='~').contains(&c)) {
            return Err(IndexerError::CallbackTokenInvalid);
        }
    }
    Ok(CallbackSettings { callback_url: url, callback_token: token })
}

/// Why a callback URL is refused, in the reference's words.
fn check_url(raw: &str) -> Result<(), &'static str> {
    if raw.is_empty() {
        return Err("No URL specified");
    }
    if raw.len() > 2048 {
        return Err("Too long");
    }
    let url = url::Url::parse(raw).map_err(|_| "Invalid host")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("Invalid scheme");
    }
    if url.fragment().is_some() {
        return Err("URL contains fragment");
    }
    match url.host() {
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") || is_domain(d) => Ok(()),
        Some(url::Host::Ipv4(_)) => Ok(()),
        _ => Err("Invalid host"),
    }
}

/// At least two labels of letters, digits and inner dashes (63 at most each), the last one with
/// no dash, 253 characters in all.
fn is_domain(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    d.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels.last().is_some_and(|tld| !tld.contains('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(v: Value) -> Option<String> {
        validate(&v).err().map(|e| e.to_string()[..5].to_owned())
    }

    #[test]
    fn the_references_url_and_token_rules_hold() {
        let ok = |url: &str| {
            validate(&json!({"tipFilterCallbackUrl": url, "tipFilterCallbackToken": "Bearer abcdefgh"}))
        };
        for good in [
            "http://localhost:8080/api/v1/channel/abc",
            "https://example.com/x?y=1",
            "http://127.0.0.1:47124/api/v1/channel/x==",
            "http://user:pass@example.com",
        ] {
            assert!(ok(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.com",
            "http://nodots",
            "http://example.com/#frag",
            "http://-a.com",
            "",
            "http://[::1]/",
        ] {
            assert_eq!(
                ok(bad).err().map(|e| e.to_string()[..5].to_owned()).as_deref(),
                Some("10004"),
                "{bad}"
            );
        }
        assert_eq!(
            code(json!({"tipFilterCallbackUrl": "http://a.com", "tipFilterCallbackToken": "a b c"}))
                .as_deref(),
            Some("10032")
        );
        assert_eq!(
            code(json!({"tipFilterCallbackUrl": "http://a.com", "tipFilterCallbackToken": "abcdefgh\u{e9}"}))
                .as_deref(),
            Some("10033")
        );
        assert_eq!(code(json!({"tipFilterCallbackToken": "abcdefghij"})).as_deref(), Some("10004"));
        let cleared = validate(&json!({})).unwrap();
        assert_eq!(cleared, CallbackSettings::default(), "absent keys clear both");
    }
}
