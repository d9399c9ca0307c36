//! Integration tests of the indexer service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod native;
mod proxy;
