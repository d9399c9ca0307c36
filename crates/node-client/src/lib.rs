#![doc = include_str!("../README.md")]

mod block_stream;
mod rpc;
pub mod rpc_types;
mod zmq;

pub use rpc::{RpcClient, RpcConfig, RpcError};
pub use zmq::{
    InvalidTxInfo, MempoolRemoval, ZmqEvent, ZmqNotice, ZmqOptions, ZmqSubscription, ZmqTopic,
    decode as decode_zmq_message,
};
