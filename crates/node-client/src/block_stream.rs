//! Decodes the hex string of a JSON-RPC `result` while the HTTP body is still arriving.
//!
//! `getblock <hash> 0` answers `{"result":"<hex of the whole block>","error":null,"id":..}`. A large
//! block is gigabytes of hex, so it is decoded chunk by chunk into bytes for a streaming parser.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// How far into the body `"result":"` must appear before the answer is treated as malformed.
const MAX_PREFIX: usize = 64 * 1024;
/// Largest error body kept to report the node's message.
const MAX_ERROR_BODY: usize = 1024 * 1024;

enum State {
    /// Looking for `"result":"`.
    Prefix(BytesMut),
    /// Inside the hex string; holds a dangling high nibble between chunks.
    Hex(Option<u8>),
    /// The result is not a string: collect the body to report the node's error.
    ErrorBody(BytesMut),
    /// The closing quote was seen.
    Done,
}

/// A stream of decoded bytes over a stream of JSON body chunks.
pub(crate) struct HexResultStream;

impl HexResultStream {
    /// Wraps the body stream of a JSON-RPC answer whose `result` is a hex string.
    #[expect(clippy::new_ret_no_self, reason = "returns an opaque stream, not the marker type")]
    pub(crate) fn new<S>(body: S) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static
    where
        S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    {
        Box::pin(futures_util::stream::unfold(
            (body, State::Prefix(BytesMut::new())),
            |(mut body, mut state)| async move {
                loop {
                    if matches!(state, State::Done) {
                        return None;
                    }
                    let chunk = match body.next().await {
                        Some(Ok(c)) => c,
                        Some(Err(e)) => return Some((Err(e), (body, State::Done))),
                        None => {
                            let err = end_of_body(&state);
                            return Some((Err(err), (body, State::Done)));
                        }
                    };
                    match feed(&mut state, &chunk) {
                        Ok(out) if !out.is_empty() => return Some((Ok(out), (body, state))),
                        Ok(_) => continue,
                        Err(e) => return Some((Err(e), (body, State::Done))),
                    }
                }
            },
        ))
    }
}

fn end_of_body(state: &State) -> io::Error {
    match state {
        State::ErrorBody(buf) => node_error(buf),
        State::Prefix(_) => io::Error::new(io::ErrorKind::InvalidData, "node answer has no result"),
        _ => io::Error::new(io::ErrorKind::UnexpectedEof, "node answer ended inside the result"),
    }
}

fn node_error(buf: &[u8]) -> io::Error {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Option<Err>,
    }
    #[derive(serde::Deserialize)]
    struct Err {
        code: i64,
        message: String,
    }
    match serde_json::from_slice::<Body>(buf) {
        Ok(Body { error: Some(e) }) => io::Error::other(format!("node RPC error {}: {}", e.code, e.message)),
        _ => io::Error::new(io::ErrorKind::InvalidData, "node answer's result is not a hex string"),
    }
}

/// Advances the state machine over one chunk and returns the bytes decoded from it.
fn feed(state: &mut State, chunk: &[u8]) -> io::Result<Bytes> {
    match state {
        State::Prefix(buf) => {
            buf.extend_from_slice(chunk);
            match find_result_string(buf) {
                Some(Ok(start)) => {
                    let rest = buf.split_off(start);
                    *state = State::Hex(None);
                    feed(state, &rest)
                }
                Some(Err(())) => {
                    let all = std::mem::take(buf);
                    *state = State::ErrorBody(all);
                    Ok(Bytes::new())
                }
                None if buf.len() > MAX_PREFIX => {
                    Err(io::Error::new(io::ErrorKind::InvalidData, "node answer has no result"))
                }
                None => Ok(Bytes::new()),
            }
        }
        State::Hex(pending) => {
            let mut out = BytesMut::with_capacity(chunk.len() / 2 + 1);
            for &c in chunk {
                if c == b'"' {
                    if pending.is_some() {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "odd-length hex"));
                    }
                    *state = State::Done;
                    return Ok(out.freeze());
                }
                let nibble = hex_value(c).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "non-hex character in result")
                })?;
                match pending.take() {
                    Some(high) => out.extend_from_slice(&[(high << 4) | nibble]),
                    None => *pending = Some(nibble),
                }
            }
            Ok(out.freeze())
        }
        State::ErrorBody(buf) => {
            if buf.len() + chunk.len() > MAX_ERROR_BODY {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "node error answer too large"));
            }
            buf.extend_from_slice(chunk);
            Ok(Bytes::new())
        }
        State::Done => Ok(Bytes::new()),
    }
}

/// Finds where the hex of `"result": "` starts. `Some(Err)` when `result` is not a string.
fn find_result_string(buf: &[u8]) -> Option<Result<usize, ()>> {
    const KEY: &[u8] = b"\"result\"";
    let at = buf.windows(KEY.len()).position(|w| w == KEY)?;
    let mut i = at + KEY.len();
    let mut seen_colon = false;
    while i < buf.len() {
        match buf[i] {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b':' if !seen_colon => seen_colon = true,
            b'"' if seen_colon => return Some(Ok(i + 1)),
            _ => return Some(Err(())),
        }
        i += 1;
    }
    None
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    async fn run(chunks: Vec<&'static [u8]>) -> io::Result<Vec<u8>> {
        let body = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))));
        let parts: Vec<Bytes> = HexResultStream::new(body).try_collect().await?;
        Ok(parts.concat())
    }

    #[tokio::test]
    async fn decodes_hex_split_anywhere() {
        let body = br#"{"result": "00ff10Ab","error":null,"id":1}"#;
        for split in 1..body.len() {
            let (a, b) = body.split_at(split);
            let a: &'static [u8] = Box::leak(a.to_vec().into_boxed_slice());
            let b: &'static [u8] = Box::leak(b.to_vec().into_boxed_slice());
            assert_eq!(run(vec![a, b]).await.unwrap(), vec![0x00, 0xff, 0x10, 0xab], "split {split}");
        }
    }

    #[tokio::test]
    async fn reports_node_errors_and_malformed_bodies() {
        let err = run(vec![br#"{"result":null,"error":{"code":-5,"message":"Block not found"},"id":1}"#])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Block not found"), "{err}");
        assert!(run(vec![br#"{"result":"0g"}"#]).await.is_err());
        assert!(run(vec![br#"{"result":"00"#]).await.is_err());
        assert!(run(vec![br#"{"result":"0"}"#]).await.is_err());
    }
}
