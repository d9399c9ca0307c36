//! The one reading of `Authorization: Bearer <token>` every service shares, so that the gateway and
//! the services behind it agree on what a bearer credential is.
//!
//! As in the ElectrumSV reference, the header must start with exactly `Bearer ` and the token is
//! the rest; surrounding whitespace is not part of a token, and an empty token is no token.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;

/// What a request's `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header.
    Absent,
    /// A header that is not `Bearer <token>` (another scheme, not text, or an empty token).
    Malformed,
    /// The token of a `Bearer` header.
    Token(&'a str),
}

impl<'a> Bearer<'a> {
    /// Reads the request's `Authorization` header.
    pub fn of(req: &'a HttpRequest) -> Self {
        match req.headers().get(AUTHORIZATION) {
            None => Bearer::Absent,
            Some(value) => value.to_str().map_or(Bearer::Malformed, Self::parse),
        }
    }

    /// Reads an `Authorization` header value.
    pub fn parse(value: &'a str) -> Self {
        match value.strip_prefix("Bearer ").map(str::trim) {
            Some(token) if !token.is_empty() => Bearer::Token(token),
            _ => Bearer::Malformed,
        }
    }

    /// The token, when there is one.
    pub fn token(self) -> Option<&'a str> {
        match self {
            Bearer::Token(t) => Some(t),
            Bearer::Absent | Bearer::Malformed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bearer;

    #[test]
    fn only_the_bearer_scheme_with_a_token_is_a_token() {
        assert_eq!(Bearer::parse("Bearer abc"), Bearer::Token("abc"));
        assert_eq!(Bearer::parse("Bearer  abc "), Bearer::Token("abc"));
        assert_eq!(Bearer::parse("Bearer "), Bearer::Malformed);
        assert_eq!(Bearer::parse("Bearer"), Bearer::Malformed);
        assert_eq!(Bearer::parse("bearer abc"), Bearer::Malformed);
        assert_eq!(Bearer::parse("Basic eHl6"), Bearer::Malformed);
        assert_eq!(Bearer::parse("Bearer abc").token(), Some("abc"));
        assert_eq!(Bearer::Absent.token(), None);
    }

    #[test]
    fn a_request_without_the_header_is_absent() {
        let req = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(Bearer::of(&req), Bearer::Absent);
        let req = actix_web::test::TestRequest::default()
            .insert_header(("authorization", "Bearer t0k"))
            .to_http_request();
        assert_eq!(Bearer::of(&req), Bearer::Token("t0k"));
    }
}
