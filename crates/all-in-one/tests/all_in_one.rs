//! Every service in one process on a real PostgreSQL: each answers the Helm chart's probes on its
//! own port, and every metric a Grafana dashboard queries is exported by some service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use test_support::TestDatabase;

const ADMIN_KEY: &str = "all-in-one-admin-key-0123456789";

struct Running {
    ports: HashMap<String, u16>,
    http: reqwest::Client,
    _db: TestDatabase,
}

async fn start() -> Running {
    test_support::init_test_tracing();
    let db = TestDatabase::create().await;
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url().to_owned()),
        ("INTERNAL_TOKEN".into(), "all-in-one-internal-token".into()),
        ("WIF_PRIVATEKEY".into(), "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw".into()),
        ("RESTADMIN_APIKEY".into(), ADMIN_KEY.into()),
        ("LISTEN_ADDR".into(), format!("127.0.0.1:{}", test_support::free_port())),
    ]);
    for (_, var, _) in all_in_one::INTERNAL {
        env.insert(var.into(), format!("http://127.0.0.1:{}", test_support::free_port()));
    }
    let lookup = |k: &str| env.get(k).cloned();
    let all = all_in_one::AllInOne::build(&lookup, None).await.unwrap();
    let ports: HashMap<String, u16> = all.ports().iter().map(|(s, p)| ((*s).to_owned(), *p)).collect();
    tokio::spawn(all.run_until_stopped());
    Running { ports, http: reqwest::Client::new(), _db: db }
}

impl Running {
    async fn get(&self, service: &str, path: &str) -> reqwest::Response {
        let url = format!("http://127.0.0.1:{}{path}", self.ports[service]);
        let mut req = self.http.get(url);
        if service == "gateway" && path == "/metrics" {
            req = req.bearer_auth(ADMIN_KEY);
        }
        req.send().await.unwrap()
    }

    /// Waits for a 200 from `path`.
    async fn ok(&self, service: &str, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.get(service, path).await.status();
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "{service} {path}: {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// (service, liveness path, readiness path) of every Deployment in the rendered chart.
fn chart_probes() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(test_support::workspace_root().join("k8s/bsv-mapi.yaml")).unwrap();
    let mut probes = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if value["kind"] != "Deployment" {
            continue;
        }
        let service = value["metadata"]["labels"]["app.kubernetes.io/name"].as_str().unwrap().to_owned();
        let container = &value["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
        assert_eq!(container["ports"][0]["name"], "http");
        probes.push((
            service,
            container["livenessProbe"]["httpGet"]["path"].as_str().unwrap().to_owned(),
            container["readinessProbe"]["httpGet"]["path"].as_str().unwrap().to_owned(),
        ));
    }
    probes
}

#[tokio::test]
async fn every_service_answers_the_charts_probes_on_its_own_port() {
    let s = start().await;
    let probes = chart_probes();
    assert_eq!(probes.len(), 7);
    let mut services: Vec<&str> = s.ports.keys().map(String::as_str).collect();
    services.sort_unstable();
    let mut charted: Vec<&str> = probes.iter().map(|p| p.0.as_str()).collect();
    charted.sort_unstable();
    assert_eq!(services, charted, "the chart deploys exactly the services there are");
    for (service, live, ready) in &probes {
        s.ok(service, live).await;
        s.ok(service, ready).await;
    }
}

/// Names of the metrics a PromQL expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const NOT_METRICS: [&str; 13] = [
        "sum",
        "rate",
        "increase",
        "max",
        "min",
        "by",
        "le",
        "route",
        "status",
        "service",
        "histogram_quantile",
        "h",
        "m",
    ];
    let word = regex::Regex::new(r#""[^"]*"|[a-zA-Z_:][a-zA-Z0-9_:]*"#).unwrap();
    word.find_iter(expr)
        .map(|m| m.as_str())
        .filter(|w| !w.starts_with('"') && !NOT_METRICS.contains(w))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_metric_a_dashboard_queries_is_exported_by_some_service() {
    let s = start().await;
    for service in s.ports.keys() {
        s.ok(service, "/ready").await;
    }
    let mut exported = BTreeSet::new();
    // Twice: request metrics appear once a request was answered.
    for _ in 0..2 {
        for service in s.ports.keys() {
            let resp = s.get(service, "/metrics").await;
            assert_eq!(resp.status(), 200, "{service}");
            for line in resp.text().await.unwrap().lines().filter(|l| !l.starts_with('#')) {
                let name: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                exported.insert(name);
            }
        }
    }
    let dir = test_support::workspace_root().join("deploy/grafana/dashboards");
    let mut boards = 0;
    let mut queried = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        boards += 1;
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                for name in metric_names(target["expr"].as_str().unwrap()) {
                    queried.insert((path.file_name().unwrap().to_string_lossy().into_owned(), name));
                }
            }
        }
    }
    assert_eq!(
        boards, 7,
        "block parser, submission, callbacks, mempool checker, gateway, peer channels, indexer"
    );
    assert!(queried.len() > 30);
    let missing: Vec<_> = queried.iter().filter(|(_, name)| !exported.contains(name)).collect();
    assert!(missing.is_empty(), "queried but exported by no service: {missing:?}");
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{service="mapi"}[5m])))"#,
    );
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["http_request_duration_seconds_bucket"]);
}
