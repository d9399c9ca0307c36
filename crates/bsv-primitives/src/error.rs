//! Typed parse errors: callers (HTTP handlers, the block parser) decide what a malformed,
//! truncated or oversized input means for them, so the parser never panics or guesses.

use std::io;

/// Why bytes could not be parsed as a transaction or block.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The input ended before the structure did.
    #[error("truncated input: {context}")]
    Truncated {
        /// What was being read when the data ran out.
        context: String,
    },
    /// A declared element count cannot fit in the bytes that remain.
    #[error("{what} count {declared} cannot fit in the {remaining} bytes that remain")]
    CountBeyondData {
        /// The counted element.
        what: &'static str,
        /// The count the input declared.
        declared: u64,
        /// The bytes left after the count.
        remaining: u64,
    },
    /// The item is larger than the configured limit.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// The item that was too large.
        what: &'static str,
        /// Its size (or the size at which reading stopped).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// Bytes were left over after a complete item.
    #[error("{extra} unexpected bytes after the end of the {what}")]
    TrailingData {
        /// The item that ended early.
        what: &'static str,
        /// How many bytes were left.
        extra: u64,
    },
    /// The bytes are structurally invalid.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// The underlying reader failed (network, disk), not the data.
    #[error("reading input failed: {0}")]
    Io(#[source] io::Error),
}

impl ParseError {
    /// Maps an I/O error from a reader: end-of-file means the data was truncated.
    pub(crate) fn from_io(err: io::Error, context: &str) -> Self {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            ParseError::Truncated { context: context.to_owned() }
        } else if err.kind() == io::ErrorKind::InvalidData {
            ParseError::Malformed(format!("{context}: {err}"))
        } else {
            ParseError::Io(err)
        }
    }

    /// Maps an error from `chain-gang`'s readers onto our typed errors.
    pub(crate) fn from_chain_gang(err: chain_gang::util::ChainGangError, context: &str) -> Self {
        use chain_gang::util::ChainGangError as E;
        match err {
            E::IoError(io) => ParseError::from_io(io, context),
            // chain-gang reports a declared script length that the data cannot satisfy as BadData.
            E::BadData(msg) if msg.contains("declares") => {
                ParseError::Truncated { context: format!("{context}: {msg}") }
            }
            other => ParseError::Malformed(format!("{context}: {other}")),
        }
    }
}
