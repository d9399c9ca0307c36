//! One error type for every HTTP answer that is not a success, and the one table that maps error
//! kinds to status codes and stable machine codes. Bodies are RFC 7807 problem details, the shape
//! mAPI clients already parse (`type`, `title`, `status`, `detail`, `traceId`) plus a `code`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// What kind of failure a client is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (bad JSON, bad hex, bad path segment).
    BadRequest,
    /// No or wrong credentials.
    Unauthorized,
    /// Valid credentials without the right to do this.
    Forbidden,
    /// Nothing here, or not for this caller.
    NotFound,
    /// The method is not allowed on this resource.
    MethodNotAllowed,
    /// The resource already exists or conflicts.
    Conflict,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// The body's content type is not accepted.
    UnsupportedMediaType,
    /// Too many requests from this client.
    TooManyRequests,
    /// A bug or unexpected failure; details are logged, not shown.
    Internal,
    /// An upstream answered badly.
    BadGateway,
    /// A dependency (database, node, peer service) is unavailable; retry later.
    Unavailable,
    /// An upstream did not answer in time.
    GatewayTimeout,
}

impl ErrorKind {
    /// The kind whose status is `status`, if one is.
    pub fn for_status(status: StatusCode) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.describe().0 == status)
    }

    /// Every kind.
    pub const ALL: [ErrorKind; 13] = {
        use ErrorKind::*;
        [
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            TooManyRequests,
            Internal,
            BadGateway,
            Unavailable,
            GatewayTimeout,
        ]
    };

    /// Status, stable code and title: the single table every service shares.
    pub const fn describe(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ErrorKind::BadRequest => (StatusCode::BAD_REQUEST, "bad_request", "Bad client request"),
            ErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ErrorKind::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed")
            }
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ErrorKind::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large")
            }
            ErrorKind::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type")
            }
            ErrorKind::TooManyRequests => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "Too many requests")
            }
            ErrorKind::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal system error occurred, please retry later",
            ),
            ErrorKind::BadGateway => (StatusCode::BAD_GATEWAY, "bad_gateway", "Bad gateway"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ErrorKind::GatewayTimeout => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", "Gateway timeout"),
        }
    }
}

/// An error answer: a kind and a message that is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The kind, which decides status and code.
    pub kind: ErrorKind,
    /// Shown to the client as `detail`; never holds secrets or internal details.
    pub detail: String,
    /// Seconds after which a retry may succeed (`Retry-After`), for load shedding.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error of `kind` with a client-safe message.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into(), retry_after: None }
    }

    /// The same error, telling the client when to retry (`Retry-After: <seconds>`).
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 with a message.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, detail)
    }

    /// 401 with a message.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, detail)
    }

    /// 404 with a message.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, detail)
    }

    /// 503 with a message.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, detail)
    }

    /// 500: logs `cause` (with its chain) once here and shows the client a generic message.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error.chain = %chain, "internal error");
        Self::new(ErrorKind::Internal, "An unexpected error occurred.")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (status, code, _) = self.kind.describe();
        write!(f, "{} {code}: {}", status.as_u16(), self.detail)
    }
}

impl std::error::Error for ApiError {}

/// The JSON body of an error answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails<'a> {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short human title.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for this request.
    pub detail: &'a str,
    /// Stable machine code.
    pub code: &'static str,
    /// Trace id of the request, to find it in logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Problem details for an answer of `status` (for errors that did not start as an [`ApiError`]:
/// the status is kept as it is).
pub fn problem_response(status: StatusCode, detail: &str) -> HttpResponse {
    let kind = ErrorKind::for_status(status);
    let (code, title) = match kind {
        Some(k) if k.describe().0 == status => (k.describe().1, k.describe().2),
        _ => ("error", status.canonical_reason().unwrap_or("Error")),
    };
    let body = ProblemDetails {
        type_uri: format!("https://httpstatuses.io/{}", status.as_u16()),
        title,
        status: status.as_u16(),
        detail,
        code,
        trace_id: crate::telemetry::current_trace_id(),
    };
    HttpResponse::build(status).content_type("application/problem+json").json(body)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind.describe().0
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = problem_response(self.kind.describe().0, &self.detail);
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(seconds),
            );
        }
        response
    }
}

impl From<db_kit::DbError> for ApiError {
    fn from(e: db_kit::DbError) -> Self {
        match &e {
            db_kit::DbError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("The database is unavailable, retry later.")
            }
            _ => ApiError::internal(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_a_distinct_code() {
        let kinds = ErrorKind::ALL;
        let mut codes: Vec<_> = kinds.iter().map(|k| k.describe().1).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        for k in kinds {
            let (status, _, _) = k.describe();
            assert!(status.is_client_error() || status.is_server_error());
            assert_eq!(ErrorKind::for_status(status), Some(k), "one kind per status");
        }
    }
}
