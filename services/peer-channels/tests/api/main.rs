//! Peer channels as black-box HTTP and websockets, through the real gateway, on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_matrix;
mod errors;
mod helpers;
mod notifications;
mod paging;
mod scenarios;
mod shutdown;
mod storage;
