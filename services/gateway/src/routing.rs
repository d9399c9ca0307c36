//! Which upstream serves a public path, decided on a canonical form of the path so that no
//! spelling (`%2F`, `%252F`, `..`, `//`, `\`, mixed case) reaches `/internal/*` or slips past a
//! route's authentication.

use percent_encoding::percent_decode_str;

/// The internal services (and external APIs) the gateway forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The `mapi` service.
    Mapi,
    /// The `peer-channels` service.
    PeerChannels,
    /// The `block-parser` service (native headers API).
    BlockParser,
    /// The `notifier` service (its admin API).
    Notifier,
    /// An external HeaderSV (`EXPOSE_HEADER_SV_APIS=1`).
    HeaderSv,
    /// The `indexer` service (native, or proxying an external indexer itself).
    Indexer,
}

/// Which indexer APIs the gateway routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexerApis {
    /// None (`EXPOSE_INDEXER_APIS` set to something other than `1`).
    Off,
    /// The native set: everything but restoration search.
    Native,
    /// An external indexer behind the service: restoration search too.
    Proxy,
}

impl Upstream {
    /// True for the project's own services: only they get the internal credential and the
    /// caller's identity. HeaderSV and the indexer are other people's services.
    pub fn is_ours(self) -> bool {
        match self {
            Upstream::Mapi
            | Upstream::PeerChannels
            | Upstream::BlockParser
            | Upstream::Notifier
            | Upstream::Indexer => true,
            Upstream::HeaderSv => false,
        }
    }
}

/// Route classes: each has one authentication rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// `/mapi/*`: anonymous or a valid mAPI JWT.
    MapiPublic,
    /// `/v1/*` (ARC): a valid mAPI JWT names the caller; any other bearer is an ARC API key, which
    /// ARC itself does not check: anonymous.
    Arc,
    /// `/dsnt/*`: called by nodes; no caller identity.
    Dsnt,
    /// mAPI admin paths: `Api-Key` required.
    MapiAdmin,
    /// `/api/v1/channel/manage*`: a master bearer token required.
    ChannelManage,
    /// `/api/v1/channel/{id}*`: a master token (resolved) or a channel token (passed on).
    ChannelMessages,
    /// `/api/v1/web-socket?token=<master>`: the account websocket.
    AccountWebSocket,
    /// `/api/v1/headers*`: no authentication.
    Headers,
    /// Indexer APIs: a master token, when valid, names the account; the indexer service decides
    /// which endpoints need one (401 at the point the reference checks it).
    Indexer,
}

/// Where a path goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Its class.
    pub class: RouteClass,
    /// Its upstream.
    pub upstream: Upstream,
}

/// Why a path was refused before routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRefusal {
    /// The path names something internal, however spelled.
    Internal,
    /// The path could not be decoded.
    Malformed,
}

/// Every public operation the gateway routes or serves, as (method, path template). The OpenAPI
/// documents under `proto-docs/` must describe exactly these (a test checks both directions), and
/// each must route somewhere (another test), so docs, routes and this list cannot drift apart.
pub const PUBLIC_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/api/v1/endpoints"),
    ("POST", "/api/v1/account/key"),
    ("POST", "/api/v1/account/register"),
    ("GET", "/api/v1/account"),
    ("DELETE", "/api/v1/account/token"),
    ("DELETE", "/api/v1/account/tokens"),
    ("GET", "/api/v1/headers/{hash}"),
    ("GET", "/api/v1/headers/by-height"),
    ("GET", "/api/v1/headers/tips"),
    ("GET", "/api/v1/headers/tips/websocket"),
    ("POST", "/api/v1/restoration/search"),
    ("GET", "/api/v1/transaction/{txid}"),
    ("GET", "/api/v1/transaction/filter"),
    ("POST", "/api/v1/transaction/filter"),
    ("POST", "/api/v1/transaction/filter:delete"),
    ("GET", "/api/v1/merkle-proof/{txid}"),
    ("POST", "/api/v1/output-spend"),
    ("POST", "/api/v1/output-spend/notifications"),
    ("GET", "/api/v1/indexer"),
    ("POST", "/api/v1/indexer"),
    ("POST", "/api/v1/PolicyQuote"),
    ("GET", "/api/v1/PolicyQuote"),
    ("GET", "/api/v1/PolicyQuote/{id}"),
    ("POST", "/api/v1/FeeQuote"),
    ("GET", "/api/v1/FeeQuote"),
    ("GET", "/api/v1/FeeQuote/{id}"),
    ("POST", "/api/v1/Node"),
    ("GET", "/api/v1/Node"),
    ("GET", "/api/v1/Node/{id}"),
    ("PUT", "/api/v1/Node/{id}"),
    ("DELETE", "/api/v1/Node/{id}"),
    ("GET", "/api/v1/status/tx"),
    ("GET", "/api/v1/status/zmq"),
    ("GET", "/api/v1/status/blockparser"),
    ("GET", "/api/v1/unconfirmedTxs"),
    ("GET", "/api/v1/notifications/failed"),
    ("GET", "/api/v1/notifications/dead"),
    ("POST", "/api/v1/notifications/{id}/redeliver"),
    ("POST", "/api/v1/notifications/redeliver"),
    ("DELETE", "/api/v1/unconfirmedTxs"),
    ("GET", "/v1/policy"),
    ("GET", "/v1/health"),
    ("GET", "/v1/tx/{txid}"),
    ("GET", "/mapi/feeQuote"),
    ("GET", "/mapi/policyQuote"),
    ("POST", "/mapi/tx"),
    ("POST", "/mapi/txs"),
    ("GET", "/mapi/tx/{txid}"),
    ("POST", "/mapi/txouts"),
    ("GET", "/dsnt/1/query/{txid}"),
    ("POST", "/dsnt/1/submit"),
    ("GET", "/api/v1/channel/manage/list"),
    ("POST", "/api/v1/channel/manage"),
    ("GET", "/api/v1/channel/manage/{channelid}"),
    ("POST", "/api/v1/channel/manage/{channelid}"),
    ("DELETE", "/api/v1/channel/manage/{channelid}"),
    ("GET", "/api/v1/channel/manage/{channelid}/api-token"),
    ("POST", "/api/v1/channel/manage/{channelid}/api-token"),
    ("GET", "/api/v1/channel/manage/{channelid}/api-token/{tokenid}"),
    ("DELETE", "/api/v1/channel/manage/{channelid}/api-token/{tokenid}"),
    ("POST", "/api/v1/channel/{channelid}"),
    ("GET", "/api/v1/channel/{channelid}"),
    ("HEAD", "/api/v1/channel/{channelid}"),
    ("POST", "/api/v1/channel/{channelid}/{sequence}"),
    ("DELETE", "/api/v1/channel/{channelid}/{sequence}"),
    ("GET", "/api/v1/channel/{channelid}/notify"),
    ("GET", "/api/v1/web-socket"),
];

/// Decodes percent-encoding until stable (at most 3 rounds, catching `%252F`), turns `\` into
/// `/`, collapses repeated slashes and resolves `.` and `..`. The result is what is routed *and*
/// what is forwarded, so the upstream never sees a spelling the gateway did not check.
pub fn canonicalize(raw: &str) -> Result<String, PathRefusal> {
    if is_plain(raw) {
        // Nothing to decode or resolve: the common case, without the copies.
        return refuse_internal(raw.to_owned());
    }
    let mut decoded = raw.to_owned();
    for _ in 0..3 {
        let next =
            percent_decode_str(&decoded).decode_utf8().map_err(|_| PathRefusal::Malformed)?.into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    if decoded.contains('%') && percent_decode_str(&decoded).decode_utf8().ok().as_deref() != Some(&decoded) {
        // Still encoded after three rounds: nobody legitimate does that.
        return Err(PathRefusal::Malformed);
    }
    if decoded.chars().any(|c| c.is_control()) {
        return Err(PathRefusal::Malformed);
    }
    let decoded = decoded.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    refuse_internal(format!("/{}", segments.join("/")))
}

/// True for a path that is already canonical: ASCII, no percent sign, backslash or control
/// character, and no empty, `.` or `..` segment.
fn is_plain(raw: &str) -> bool {
    raw.len() > 1
        && raw.starts_with('/')
        && raw.bytes().all(|b| b.is_ascii() && !b.is_ascii_control() && b != b'%' && b != b'\\')
        && raw[1..].split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// `canonical`, unless its first segment names something internal.
fn refuse_internal(canonical: String) -> Result<String, PathRefusal> {
    let first = canonical.split('/').find(|s| !s.is_empty()).unwrap_or_default();
    if first.trim().eq_ignore_ascii_case("internal") { Err(PathRefusal::Internal) } else { Ok(canonical) }
}

/// A request's path as every guard and the router see it, and the public operation it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    /// [`canonicalize`]d and, for the mAPI paths, each fixed segment in the spelling of its
    /// operation (the mAPI reference matches paths case-insensitively: `/mapi/feequote` is
    /// `/mapi/feeQuote`).
    pub path: String,
    /// The template of the operation the path matches (the metrics' route label), if any.
    pub template: Option<&'static str>,
}

/// The canonical form of a request's raw path (see [`CanonicalRequest`]).
pub fn canonical_request(raw: &str) -> Result<CanonicalRequest, PathRefusal> {
    let path = canonicalize(raw)?;
    let Some(template) = template_info(&path) else {
        return Ok(CanonicalRequest { path, template: None });
    };
    let path = if template.is_mapi { spelled_as(&path, template.text) } else { path };
    Ok(CanonicalRequest { path, template: Some(template.text) })
}

/// The canonical path of a request ([`canonical_request`] without the template).
pub fn canonical_request_path(raw: &str) -> Result<String, PathRefusal> {
    canonical_request(raw).map(|c| c.path)
}

/// A public operation's template, split once.
struct Template {
    text: &'static str,
    segments: Vec<&'static str>,
    fixed: usize,
    is_mapi: bool,
}

/// [`PUBLIC_ENDPOINTS`]' templates, each once (several methods share one).
static TEMPLATES: std::sync::LazyLock<Vec<Template>> = std::sync::LazyLock::new(|| {
    let mut seen = std::collections::HashSet::new();
    PUBLIC_ENDPOINTS
        .iter()
        .filter(|(_, text)| seen.insert(*text))
        .map(|(_, text)| {
            let segments: Vec<&'static str> = text.split('/').filter(|s| !s.is_empty()).collect();
            let fixed = segments.iter().filter(|s| !is_placeholder(s)).count();
            let is_mapi =
                classify(text, false, IndexerApis::Off).is_some_and(|r| r.upstream == Upstream::Mapi);
            Template { text, segments, fixed, is_mapi }
        })
        .collect()
});

/// The public operation template a canonical path belongs to, comparing fixed segments without
/// regard to case; where several match, the one with the most fixed segments (so
/// `/api/v1/channel/manage/list` is not a message of channel `manage`). Used as the metrics'
/// route label and to spell mAPI paths.
pub fn template_of(canonical: &str) -> Option<&'static str> {
    template_info(canonical).map(|t| t.text)
}

fn template_info(canonical: &str) -> Option<&'static Template> {
    let segments = || canonical.split('/').filter(|s| !s.is_empty());
    let count = segments().count();
    TEMPLATES
        .iter()
        .filter(|t| {
            t.segments.len() == count
                && t.segments
                    .iter()
                    .zip(segments())
                    .all(|(t, s)| is_placeholder(t) || t.eq_ignore_ascii_case(s))
        })
        .max_by_key(|t| t.fixed)
}

fn is_placeholder(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// `canonical` with each fixed segment spelled as in `template` (placeholders keep the request's).
fn spelled_as(canonical: &str, template: &str) -> String {
    let fixed = template.split('/').filter(|s| !s.is_empty());
    let given = canonical.split('/').filter(|s| !s.is_empty());
    let mut out = String::with_capacity(canonical.len());
    for (t, s) in fixed.zip(given) {
        out.push('/');
        out.push_str(if is_placeholder(t) { s } else { t });
    }
    if out.is_empty() { "/".to_owned() } else { out }
}

/// A canonical path percent-encoded for a request line: what must be encoded is, nothing else.
pub fn encode_path(canonical: &str) -> String {
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    percent_encoding::utf8_percent_encode(canonical, PATH).to_string()
}

/// True when `path` is `prefix` or continues below it.
fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// Routes a canonical path; `None` means the gateway itself (or nobody) serves it.
pub fn classify(canonical: &str, headers_external: bool, indexer: IndexerApis) -> Option<Route> {
    let p = canonical.to_ascii_lowercase();
    let route = |class, upstream| Some(Route { class, upstream });
    if under(&p, "/mapi") {
        return route(RouteClass::MapiPublic, Upstream::Mapi);
    }
    // ARC's API beside mAPI's, on the same store.
    if under(&p, "/v1") {
        return route(RouteClass::Arc, Upstream::Mapi);
    }
    if under(&p, "/dsnt") {
        return route(RouteClass::Dsnt, Upstream::Mapi);
    }
    for admin in [
        "/api/v1/policyquote",
        "/api/v1/feequote",
        "/api/v1/node",
        "/api/v1/status",
        "/api/v1/unconfirmedtxs",
    ] {
        if under(&p, admin) {
            return route(RouteClass::MapiAdmin, Upstream::Mapi);
        }
    }
    if under(&p, "/api/v1/notifications") {
        return route(RouteClass::MapiAdmin, Upstream::Notifier);
    }
    if under(&p, "/api/v1/channel/manage") {
        return route(RouteClass::ChannelManage, Upstream::PeerChannels);
    }
    if p.starts_with("/api/v1/channel/") {
        return route(RouteClass::ChannelMessages, Upstream::PeerChannels);
    }
    if p == "/api/v1/web-socket" {
        return route(RouteClass::AccountWebSocket, Upstream::PeerChannels);
    }
    if under(&p, "/api/v1/headers") {
        let upstream = if headers_external { Upstream::HeaderSv } else { Upstream::BlockParser };
        return route(RouteClass::Headers, upstream);
    }
    if indexer == IndexerApis::Off {
        return None;
    }
    if under(&p, "/api/v1/restoration") {
        return (indexer == IndexerApis::Proxy)
            .then_some(Route { class: RouteClass::Indexer, upstream: Upstream::Indexer });
    }
    let indexer_paths =
        ["/api/v1/transaction", "/api/v1/merkle-proof", "/api/v1/output-spend", "/api/v1/indexer"];
    if indexer_paths.iter().any(|i| under(&p, i) || p.starts_with(&format!("{i}:"))) {
        return route(RouteClass::Indexer, Upstream::Indexer);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_internal_spelling_is_refused() {
        for raw in [
            "/internal/x",
            "/INTERNAL/x",
            "/Internal",
            "//internal/x",
            "/%69nternal/x",
            "/%2Finternal/x",
            "/%252Finternal/x",
            "/mapi/../internal/x",
            "/mapi/%2e%2e/internal/x",
            "/mapi/%252e%252e/internal/x",
            "/mapi%2F..%2Finternal",
            "/./internal",
            "\\internal\\x",
            "/mapi/..\\internal",
            "/%2569nternal",
        ] {
            assert_eq!(canonicalize(raw), Err(PathRefusal::Internal), "{raw}");
        }
        assert_eq!(canonicalize("/%25252525"), Err(PathRefusal::Malformed));
        assert_eq!(canonicalize("/a%00b"), Err(PathRefusal::Malformed));
    }

    #[test]
    fn ordinary_paths_are_kept_and_routed() {
        assert_eq!(canonicalize("/mapi/tx/ab").unwrap(), "/mapi/tx/ab");
        assert_eq!(canonicalize("/api/v1/channel/abc%3D%3D").unwrap(), "/api/v1/channel/abc==");
        assert_eq!(canonicalize("/mapi//feeQuote").unwrap(), "/mapi/feeQuote");
        let c = |p: &str| classify(p, false, IndexerApis::Off).map(|r| (r.class, r.upstream));
        assert_eq!(c("/mapi/feeQuote"), Some((RouteClass::MapiPublic, Upstream::Mapi)));
        assert_eq!(c("/MAPI/feeQuote"), Some((RouteClass::MapiPublic, Upstream::Mapi)));
        assert_eq!(c("/dsnt/1/query"), Some((RouteClass::Dsnt, Upstream::Mapi)));
        assert_eq!(c("/v1/tx/ab"), Some((RouteClass::Arc, Upstream::Mapi)));
        assert_eq!(c("/api/v1/PolicyQuote"), Some((RouteClass::MapiAdmin, Upstream::Mapi)));
        assert_eq!(c("/api/v1/Node/host:1"), Some((RouteClass::MapiAdmin, Upstream::Mapi)));
        assert_eq!(c("/api/v1/status/zmq"), Some((RouteClass::MapiAdmin, Upstream::Mapi)));
        assert_eq!(c("/api/v1/unconfirmedTxs"), Some((RouteClass::MapiAdmin, Upstream::Mapi)));
        assert_eq!(c("/api/v1/notifications/dead"), Some((RouteClass::MapiAdmin, Upstream::Notifier)));
        assert_eq!(c("/api/v1/Nodes"), None, "a prefix is not a route");
        assert_eq!(
            c("/api/v1/channel/manage/list"),
            Some((RouteClass::ChannelManage, Upstream::PeerChannels))
        );
        assert_eq!(c("/api/v1/channel/abc"), Some((RouteClass::ChannelMessages, Upstream::PeerChannels)));
        assert_eq!(c("/api/v1/web-socket"), Some((RouteClass::AccountWebSocket, Upstream::PeerChannels)));
        assert_eq!(c("/api/v1/headers/tips"), Some((RouteClass::Headers, Upstream::BlockParser)));
        assert_eq!(
            classify("/api/v1/headers/tips", true, IndexerApis::Off).map(|r| r.upstream),
            Some(Upstream::HeaderSv)
        );
        assert_eq!(c("/api/v1/transaction/ab"), None, "indexer off");
        assert_eq!(
            classify("/api/v1/transaction/filter:delete", false, IndexerApis::Native).map(|r| r.upstream),
            Some(Upstream::Indexer)
        );
        let search = |apis| classify("/api/v1/restoration/search", false, apis).map(|r| r.upstream);
        assert_eq!(search(IndexerApis::Native), None, "restoration search needs an external indexer");
        assert_eq!(search(IndexerApis::Proxy), Some(Upstream::Indexer));
        assert_eq!(c("/api/v1/account"), None, "the gateway's own");
    }

    #[test]
    fn mapi_paths_take_their_operations_spelling_and_others_keep_theirs() {
        let c = |p: &str| canonical_request_path(p).unwrap();
        assert_eq!(c("/mapi/feequote"), "/mapi/feeQuote");
        assert_eq!(c("/MAPI/POLICYQUOTE"), "/mapi/policyQuote");
        assert_eq!(c("/mapi/TX/AbCd"), "/mapi/tx/AbCd", "a txid keeps its spelling");
        assert_eq!(c("/api/v1/policyquote/5"), "/api/v1/PolicyQuote/5");
        assert_eq!(c("/api/v1/status/blockParser"), "/api/v1/status/blockparser");
        assert_eq!(c("/api/v1/UNCONFIRMEDTXS"), "/api/v1/unconfirmedTxs");
        assert_eq!(c("/api/v1/node/Host:1"), "/api/v1/Node/Host:1");
        assert_eq!(c("/DSNT/1/query/ab"), "/dsnt/1/query/ab");
        assert_eq!(c("/mapi/nothing/here"), "/mapi/nothing/here", "unknown mAPI paths stay as they are");
        assert_eq!(c("/api/v1/Channel/Abc"), "/api/v1/Channel/Abc", "only mAPI paths are folded");
        assert_eq!(c("/%6Detrics"), "/metrics");
        assert_eq!(encode_path("/api/v1/channel/a b%"), "/api/v1/channel/a%20b%25");
    }

    #[test]
    fn templates_prefer_the_most_fixed_segments() {
        assert_eq!(template_of("/api/v1/channel/manage/list"), Some("/api/v1/channel/manage/list"));
        assert_eq!(template_of("/api/v1/channel/abc/notify"), Some("/api/v1/channel/{channelid}/notify"));
        assert_eq!(template_of("/api/v1/channel/abc/7"), Some("/api/v1/channel/{channelid}/{sequence}"));
        assert_eq!(template_of("/mapi/tx/ab"), Some("/mapi/tx/{txid}"));
        assert_eq!(template_of("/nowhere"), None);
    }

    #[test]
    fn every_public_endpoint_routes_somewhere() {
        let own = [
            "/api/v1/endpoints",
            "/api/v1/account",
            "/api/v1/account/key",
            "/api/v1/account/register",
            "/api/v1/account/token",
            "/api/v1/account/tokens",
        ];
        for (method, template) in PUBLIC_ENDPOINTS {
            let path = template
                .replace("{txid}", &"ab".repeat(32))
                .replace("{hash}", &"cd".repeat(32))
                .replace("{channelid}", "Y2hhbm5lbA==")
                .replace("{tokenid}", "3")
                .replace("{sequence}", "7")
                .replace("{id}", "5");
            assert!(!path.contains('{'), "{template}: unknown placeholder");
            let canonical = canonicalize(&path).unwrap();
            assert!(
                own.contains(&canonical.as_str()) || classify(&canonical, true, IndexerApis::Proxy).is_some(),
                "{method} {template} routes nowhere"
            );
        }
    }
}
