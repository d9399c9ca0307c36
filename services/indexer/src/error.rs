//! Every failure an indexer client can see, mapped to HTTP in one place.
//!
//! The reference server puts its text (often led by an error code, `10026: ...`) in the status
//! line's reason phrase, which clients log; each error here carries that phrase too, and the body
//! is the JSON problem shape of the other services with the same text as `detail`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use service_kit::{ApiError, ErrorKind};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// No master token, or not a valid one (the reference answers 401 for both here).
    #[error("Unauthorized")]
    Unauthorized,
    /// The external indexer's websocket is down (proxy mode).
    #[error("10026: This functionality is temporarily unavailable")]
    IndexerUnavailable,
    /// A bad tip-filter callback URL (or a token without one).
    #[error("10004: {0}")]
    InvalidCallback(String),
    /// A callback token with fewer than 8 non-space characters.
    #[error("10032: Invalid tip filter callback token. Got {0} non-whitespace characters, expected 8+")]
    CallbackTokenTooShort(usize),
    /// A callback token that is not a printable ASCII header value.
    #[error("10033: Invalid tip filter callback token. Failed header value validation")]
    CallbackTokenInvalid,
    /// A registration of a pushdata hash this account already has.
    #[error("10024: some pushdata hashes already registered")]
    AlreadyRegistered,
    /// A deletion of a pushdata hash that is not (or no longer) registered.
    #[error("10025: some pushdata hashes are not registered")]
    NotRegistered,
    /// Output-spend notifications need the account's websocket open.
    #[error("client account not connected to websocket")]
    NotConnected,
    /// Nothing known by that id.
    #[error("{0}")]
    NotFound(String),
    /// A malformed request; the text says what.
    #[error("{0}")]
    BadRequest(String),
    /// The external indexer answered with a non-2xx status: passed on with an empty body.
    #[error("the indexer answered {0}")]
    Upstream(StatusCode),
    /// Storage, a node or another dependency failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl IndexerError {
    /// A 400 with `text`.
    pub fn bad(text: impl Into<String>) -> Self {
        Self::BadRequest(text.into())
    }

    fn kind(&self) -> ErrorKind {
        use IndexerError::*;
        match self {
            Unauthorized => ErrorKind::Unauthorized,
            IndexerUnavailable => ErrorKind::Unavailable,
            InvalidCallback(_)
            | CallbackTokenTooShort(_)
            | CallbackTokenInvalid
            | AlreadyRegistered
            | NotRegistered
            | NotConnected
            | BadRequest(_) => ErrorKind::BadRequest,
            NotFound(_) => ErrorKind::NotFound,
            Upstream(_) => ErrorKind::BadGateway,
            Api(e) => e.kind,
        }
    }

    /// The reason phrase of the status line, where the reference sets one (static: actix keeps a
    /// `&'static str`).
    fn reason(&self) -> Option<&'static str> {
        use IndexerError::*;
        Some(match self {
            IndexerUnavailable => "10026: This functionality is temporarily unavailable",
            AlreadyRegistered => "10024: some pushdata hashes already registered",
            NotRegistered => "10025: some pushdata hashes are not registered",
            NotConnected => "client account not connected to websocket",
            CallbackTokenInvalid => {
                "10033: Invalid tip filter callback token. Failed header value validation"
            }
            InvalidCallback(_) => "10004: Invalid tip filter callback url",
            CallbackTokenTooShort(_) => "10032: Invalid tip filter callback token",
            _ => return None,
        })
    }
}

impl From<db_kit::DbError> for IndexerError {
    fn from(e: db_kit::DbError) -> Self {
        IndexerError::Api(e.into())
    }
}

impl From<diesel::result::Error> for IndexerError {
    fn from(e: diesel::result::Error) -> Self {
        IndexerError::Api(db_kit::DbError::Query(e).into())
    }
}

impl ResponseError for IndexerError {
    fn status_code(&self) -> StatusCode {
        match self {
            IndexerError::Upstream(status) => *status,
            other => other.kind().describe().0,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = match self {
            IndexerError::Api(e) => e.error_response(),
            // The reference passes the indexer's status on with an empty body.
            IndexerError::Upstream(status) => return HttpResponse::new(*status),
            other => ApiError::new(other.kind(), other.to_string()).error_response(),
        };
        if let Some(reason) = self.reason() {
            resp.head_mut().reason = Some(reason);
        }
        resp
    }
}
