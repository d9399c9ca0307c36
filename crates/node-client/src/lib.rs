#![doc = include_str!("../README.md")]

mod block_stream;
mod rpc;
pub mod rpc_types;
mod transport;
mod zmq;

pub use rpc::{RpcClient, RpcConfig, RpcError};
pub use transport::TransportError;
pub use zmq::{
    InvalidTxInfo, MempoolRemoval, ZmqEvent, ZmqNotice, ZmqOptions, ZmqSubscription, ZmqTopic,
    decode as decode_zmq_message,
};
