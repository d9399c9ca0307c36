//! Black-box tests of mapi over real HTTP, with a real PostgreSQL database and a real regtest node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod helpers;
mod mempool_checker;
mod minerid;
mod quotes;
mod resilience;
mod shutdown;
mod status;
mod submit;
mod through_gateway;
mod txouts;
mod txstore;
