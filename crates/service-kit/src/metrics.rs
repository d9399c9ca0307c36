//! Prometheus metrics: one registry per service with the HTTP metrics every service has; services
//! register their own (for mAPI, the reference's `merchantapi_*` names) on the same registry.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Why a metric could not be created or registered.
pub use prometheus::Error as MetricsError;

/// The `method` label of a request: the standard methods as they are, anything else `other`
/// (clients may send any token as a method).
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|k| *k == method).unwrap_or("other")
}

/// The route template a response was served for, set by a handler that serves many routes (the
/// gateway's proxy) where the router's own pattern says nothing; the metrics use it instead of
/// "unmatched".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLabel(pub &'static str);

/// The service's registry and the shared HTTP metrics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
}

impl Metrics {
    /// A registry whose series all carry `service=<name>`.
    pub fn new(service: &str) -> Result<Self, prometheus::Error> {
        let labels = std::iter::once(("service".to_owned(), service.to_owned())).collect();
        let registry = Registry::new_custom(None, Some(labels))?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered, by route and status."),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency, by route.")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method", "route"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        Ok(Self { registry, http_requests, http_duration })
    }

    /// The registry, to register service metrics on.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one answered request. `route` must be a template (a resource pattern, never the
    /// request's own path) and the method is cut down to [`method_label`], so no client can grow
    /// the number of series.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.http_requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.http_duration.with_label_values(&[method, route]).observe(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other");
        let m = Metrics::new("t").unwrap();
        for i in 0..50 {
            m.observe_http(&format!("X{i}"), "/r", 200, 0.001);
        }
        let text = m.render();
        assert!(text.contains("method=\"other\""));
        assert!(!text.contains("X1"), "{text}");
    }
}
