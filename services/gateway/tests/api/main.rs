//! Black-box tests of the gateway over real HTTP with a real PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod docs;
mod guards;
mod helpers;
mod routing;
mod shutdown;
