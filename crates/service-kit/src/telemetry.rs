//! Logs and traces: one `init` per process. Spans always carry OpenTelemetry contexts, so trace
//! ids appear in error bodies and `traceparent` propagates across internal HTTP even when nothing
//! is exported; an OTLP exporter is added only when an endpoint is configured.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::LogFormat;

/// Flushes and stops trace export when dropped: hold it until the end of `main` (dropping it early
/// shuts the tracer provider down and spans lose their trace ids).
#[derive(Debug)]
#[must_use = "dropping the guard shuts tracing down"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint).
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("telemetry already initialised: {0}")]
    AlreadyInitialised(String),
}

/// Builds the tracer provider: spans get real ids always; export only with an endpoint.
pub fn tracer_provider(
    service_name: &'static str,
    otlp_endpoint: Option<&str>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        // The blocking HTTP client must not be built on a runtime thread.
        let exporter = std::thread::spawn(move || {
            opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(endpoint).build()
        })
        .join()
        .map_err(|_| TelemetryError::Exporter("exporter thread panicked".into()))?
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Targets capped below TRACE whatever `RUST_LOG` says: at TRACE, tungstenite writes each
/// websocket handshake request verbatim, query-string tokens and credential headers included.
pub const SECRET_SAFE_DIRECTIVES: [&str; 2] = ["tungstenite=debug", "tokio_tungstenite=debug"];

/// The log filter services use: `RUST_LOG` (or `default`), with [`SECRET_SAFE_DIRECTIVES`] on top.
pub fn log_filter(default: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    for directive in SECRET_SAFE_DIRECTIVES {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Installs logging (`RUST_LOG`, default `info`) and tracing for `service_name`.
pub fn init(
    service_name: &'static str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(service_name, otlp_endpoint)?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name));
    let filter = log_filter("info");
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}

/// The trace id of the current span, if it has a valid OpenTelemetry context.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
