//! HTTP/1.1 to a node's RPC port, with connections kept alive and ACKs sent at once.
//!
//! The node writes every JSON-RPC answer as HTTP chunks (its `CHttpTextWriter`) on a socket with
//! Nagle's algorithm on, so the last small chunk waits until the client has acknowledged the
//! earlier ones. On a reused connection Linux delays that ACK (up to 40 ms) because it expects to
//! piggyback it on the next request, which cannot come before the answer is complete. Measured on
//! regtest: about one call in four stalled 40–44 ms with a general-purpose HTTP client, none
//! with this transport. Switching the socket back to quick-ACK mode after every read sends the ACK
//! at once and keeps connection reuse (one syscall per read; no new connection per call).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Why a request did not get an answer from the node.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be opened (the node is down or the address is wrong).
    #[error("cannot connect: {0}")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// The connection failed while the request was sent or the answer read.
    #[error("connection failed: {0}")]
    Io(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No complete answer within the call's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be built (an invalid header value, for example).
    #[error("invalid request: {0}")]
    Request(String),
}

impl TransportError {
    /// True when the request cannot have reached the node, so retrying is safe.
    pub fn is_connect(&self) -> bool {
        matches!(self, TransportError::Connect(_))
    }
}

/// A pooled HTTP client for one node.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: Client<QuickAckConnector, Full<Bytes>>,
}

impl Transport {
    pub(crate) fn new(connect_timeout: Duration, idle_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle_timeout)
            .build(QuickAckConnector(http));
        Self { client }
    }

    /// Sends `request`; the answer's head must arrive before `deadline`.
    pub(crate) async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, TransportError> {
        match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Err(_) => Err(TransportError::Timeout(timeout)),
            Ok(Err(e)) if e.is_connect() => Err(TransportError::Connect(e)),
            Ok(Err(e)) => Err(TransportError::Io(Box::new(e))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// Reads a whole body before `deadline`.
pub(crate) async fn read_body(
    body: Incoming,
    deadline: Instant,
    timeout: Duration,
) -> Result<Bytes, TransportError> {
    match tokio::time::timeout_at(deadline, body.collect()).await {
        Err(_) => Err(TransportError::Timeout(timeout)),
        Ok(Err(e)) => Err(TransportError::Io(Box::new(e))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The body as a stream of chunks that fails with `TimedOut` once `deadline` passes.
pub(crate) fn body_stream(
    body: Incoming,
    deadline: Instant,
) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static {
    DeadlineStream { body, sleep: Box::pin(tokio::time::sleep_until(deadline)), expired: false }
}

struct DeadlineStream {
    body: Incoming,
    sleep: Pin<Box<Sleep>>,
    expired: bool,
}

impl Stream for DeadlineStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "block download timed out",
            ))));
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                    // Trailers carry nothing we use.
                }
            }
        }
    }
}

/// `HttpConnector` whose connections re-enter quick-ACK mode after every read.
#[derive(Clone, Debug)]
struct QuickAckConnector(HttpConnector);

impl tower_service::Service<http::Uri> for QuickAckConnector {
    type Response = QuickAckStream;
    type Error = <HttpConnector as tower_service::Service<http::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(QuickAckStream) })
    }
}

/// A TCP connection that asks the kernel to acknowledge received data immediately.
struct QuickAckStream(TokioIo<TcpStream>);

impl QuickAckStream {
    fn quick_ack(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // Best effort: on failure the kernel falls back to its ordinary delayed ACK.
            let _ = socket2::SockRef::from(self.0.inner()).set_tcp_quickack(true);
        }
    }
}

impl Read for QuickAckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.quick_ack();
        }
        polled
    }
}

impl Write for QuickAckStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}
