//! Block-parser as black-box HTTP and websockets, following real regtest nodes that a real mapi
//! lists, on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain_events;
mod headers;
mod helpers;
mod shutdown;
