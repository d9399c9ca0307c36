//! zmq-listener against real regtest nodes, with the real mapi (node list, `status/zmq`) and the
//! real block-parser (where `hashblock` goes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod listener;
mod replicas;
mod shutdown;
