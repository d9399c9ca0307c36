//! The notifier as black-box HTTP: alone against recording receivers, and behind the whole stack
//! with real regtest nodes, on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod channels;
mod crash;
mod delivery;
mod dsnt;
mod end_to_end;
mod helpers;
