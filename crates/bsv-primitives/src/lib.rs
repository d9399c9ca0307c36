#![doc = include_str!("../README.md")]

mod beef;
mod block;
mod bump;
mod envelope;
mod error;
mod extended;
mod hash;
mod header;
mod keys;
mod merkle;
mod merkle_paths;
mod skim;
mod tx;
mod varint;

pub use beef::{ATOMIC_PREFIX, BEEF_V1, BEEF_V2, Beef, BeefError, BeefTx, BeefTxBody, BeefVersion, is_beef};
pub use block::{BlockReader, BlockSummary};
pub use bump::{Bump, BumpError, BumpLeaf, MAX_TREE_HEIGHT};
pub use envelope::{ENCODING_UTF8, EnvelopeError, JsonEnvelope, MIMETYPE_JSON, sign_payload, verify_payload};
pub use error::ParseError;
pub use extended::{EF_MARKER, ExtendedTx, Prevout, is_extended, parse_extended, read_extended};
pub use hash::{BlockHash, HashParseError, Txid, merkle_parent, sha256d};
pub use header::BlockHeader;
pub use keys::{KeyError, KeyNetwork, PrivateKey, PublicKey};
pub use merkle::{MerkleRootBuilder, MerkleTree, ProofError, ProofNode, TargetType, TscProof, merkle_root};
pub use merkle_paths::{LeafPath, MerklePaths};
pub use skim::SkimmedTx;
pub use tx::{FeeBytes, OutPoint, ParseLimits, Transaction, is_data_script};
pub use varint::{read_varint, varint_size, write_varint};

/// The `chain-gang` crate this one is built on, re-exported so that callers needing scripts,
/// sighashes or signing use the same version.
pub use chain_gang;
