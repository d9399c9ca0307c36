//! Storage of channels, tokens and messages, and the per-token read and delete state, in four
//! parts: `channels` (channels and their tokens), `messages` (writes and reads of a channel's
//! messages), `read_state` (marks and deletes per token) and `feed` (the account socket's catch-up
//! and the pruner). Every function is re-exported here.
//!
//! Read state of message `m` for token `t`: an explicit mark if `t` set one, otherwise read when
//! `t` wrote it or `m.seq <= t.read_upto`. So "mark everything up to n read" moves one watermark,
//! and a new token (watermark 0) sees the whole history as unread, without a row per token per
//! message.

mod account_sockets;
mod channels;
mod feed;
mod messages;
mod read_state;
mod write_batch;

pub use account_sockets::*;
pub use channels::*;
pub use feed::*;
pub use messages::*;
pub use read_state::*;
pub use write_batch::{MAX_BATCH, PlainWrite, WriteBatch};

/// `WHERE` fragment: message `m` (with left-joined mark `mk` of token `$TOKEN`) is unread by it.
pub(crate) const UNREAD: &str = "NOT COALESCE(mk.is_read, m.from_token = $2 OR m.seq <= $3)";
/// The join of a token's marks onto messages.
pub(crate) const MARKS: &str =
    "LEFT JOIN message_marks mk ON mk.token_id = $2 AND mk.seq = m.seq AND mk.channel_id = m.channel_id";
