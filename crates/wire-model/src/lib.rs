#![doc = include_str!("../README.md")]

pub mod internal;
pub mod mapi;
pub mod newtypes;
pub mod timestamp;

pub use bsv_primitives::{BlockHash, Txid};
pub use newtypes::{CallbackEncryption, CallbackToken, CallbackUrl, FeeAmount, Satoshis, ValidationError};
pub use timestamp::MapiTimestamp;
