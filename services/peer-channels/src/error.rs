//! Every failure a peer-channels client can see, mapped to HTTP in one place.
//!
//! Clients of the reference log the status line's reason phrase (`400 10001: Channel is locked.
//! Write failed.`), so each error carries that phrase, and the body is the same JSON problem shape
//! as the other services with the phrase as `detail`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use service_kit::{ApiError, ErrorKind};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// No `Authorization: Bearer ...` header (the reference answers 400, before anything else).
    #[error("No 'Bearer' authentication.")]
    NoBearer,
    /// Unknown, revoked or insufficient credentials, or a token of another channel.
    #[error("10023: Unauthorized - invalid Bearer Token")]
    Unauthorized,
    /// A websocket request without `?token=`.
    #[error("10018: Missing 'token' query parameter")]
    MissingToken,
    /// The channel does not exist for this caller.
    #[error("10016: Channel not found.")]
    ChannelNotFound,
    /// The token does not exist on this channel of this caller.
    #[error("Token not found.")]
    TokenNotFound,
    /// No message with that sequence for this token.
    #[error("10014: Sequence number not found.")]
    SequenceNotFound,
    /// The message was already deleted for this token.
    #[error("10015: Message metadata not found.")]
    MessageDeleted,
    /// Writes to a locked channel fail.
    #[error("10001: Channel is locked. Write failed.")]
    Locked,
    /// A sequenced channel refuses writers that have unread messages.
    #[error("10002: Sequencing failure. This channel still has unread messages. Write failed.")]
    Sequencing,
    /// Retention minimum above maximum, or negative.
    #[error("10007: Invalid retention minimum or maximum.")]
    InvalidRetention,
    /// A message younger than the channel's retention minimum cannot be deleted.
    #[error("10017: Retention period has not yet expired.")]
    RetentionNotExpired,
    /// The message's content type is neither JSON nor octet-stream.
    #[error("10020: content-type header must be either 'application/octet-stream' or 'application/json'")]
    ContentType,
    /// `Accept` of a read is not JSON.
    #[error("Accept header must be 'application/json' or '*/*'")]
    Accept,
    /// An empty message.
    #[error("Payload is empty")]
    EmptyPayload,
    /// A message larger than `MAX_MESSAGE_CONTENT_LENGTH`.
    #[error("10009: Payload too large.")]
    TooLarge,
    /// A malformed body or path segment; the text says what.
    #[error("{0}")]
    BadRequest(String),
    /// Storage or another dependency failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ChannelError {
    fn kind(&self) -> ErrorKind {
        use ChannelError::*;
        match self {
            NoBearer | MissingToken | Locked | Sequencing | InvalidRetention | RetentionNotExpired
            | ContentType | Accept | EmptyPayload | BadRequest(_) => ErrorKind::BadRequest,
            Unauthorized => ErrorKind::Unauthorized,
            ChannelNotFound | TokenNotFound | SequenceNotFound | MessageDeleted => ErrorKind::NotFound,
            TooLarge => ErrorKind::PayloadTooLarge,
            Api(e) => e.kind,
        }
    }

    /// The reason phrase of the status line (static: actix keeps a `&'static str`).
    fn reason(&self) -> Option<&'static str> {
        use ChannelError::*;
        Some(match self {
            NoBearer => "No 'Bearer' authentication.",
            Unauthorized => "10023: Unauthorized - invalid Bearer Token",
            MissingToken => "10018: Missing 'token' query parameter",
            ChannelNotFound => "10016: Channel not found.",
            TokenNotFound => "Token not found.",
            SequenceNotFound => "10014: Sequence number not found.",
            MessageDeleted => "10015: Message metadata not found.",
            Locked => "10001: Channel is locked. Write failed.",
            Sequencing => "10002: Sequencing failure. This channel still has unread messages. Write failed.",
            InvalidRetention => "10007: Invalid retention minimum or maximum.",
            RetentionNotExpired => "10017: Retention period has not yet expired.",
            ContentType => {
                "10020: content-type header must be either 'application/octet-stream' or 'application/json'"
            }
            Accept => "Accept header must be 'application/json' or '*/*'",
            EmptyPayload => "Payload is empty",
            TooLarge => "10009: Payload too large.",
            BadRequest(_) | Api(_) => return None,
        })
    }
}

impl From<db_kit::DbError> for ChannelError {
    fn from(e: db_kit::DbError) -> Self {
        ChannelError::Api(e.into())
    }
}

impl From<diesel::result::Error> for ChannelError {
    fn from(e: diesel::result::Error) -> Self {
        ChannelError::Api(db_kit::DbError::Query(e).into())
    }
}

impl ResponseError for ChannelError {
    fn status_code(&self) -> StatusCode {
        self.kind().describe().0
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = match self {
            ChannelError::Api(e) => e.error_response(),
            other => ApiError::new(other.kind(), other.to_string()).error_response(),
        };
        if let Some(reason) = self.reason() {
            resp.head_mut().reason = Some(reason);
        }
        resp
    }
}
