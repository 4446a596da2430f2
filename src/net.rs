//! Transports and servers (tokio).
//!
//! Servers have the mini-redis shape: [`serve`] accepts connections until the shutdown
//! token fires, runs one task per connection under a connection limit, logs (and never
//! propagates) one connection's error, and waits for the connections to drain before it
//! returns. Handlers are generic over `AsyncRead + AsyncWrite`, so a TCP stream, a serial
//! port, a pty and an in-memory `tokio::io::duplex` pipe all serve alike.
//!
//! [`FramedStream`] glues any sans-IO frame decoder (`&[u8] -> Result<Option<(T, used)>, E>`,
//! `Ok(None)` meaning "need more bytes") to a byte stream.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Who is on the other end of a connection, for logs and the journal.
#[derive(Clone, Debug)]
pub struct Peer {
    /// A number unique within one server run, in accept order, starting at 1.
    pub id: u64,
    pub addr: String,
}

/// Limits of a server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
        }
    }
}

/// What a server does with one connection.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle<S>(
        &self,
        stream: S,
        peer: Peer,
        shutdown: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static;
}

/// Accepts TCP connections on `listener` and serves each with `handler` until `shutdown`
/// is cancelled; then stops accepting, tells the connections (through the token they were
/// given) and waits for them to finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    limits: Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let mut next_id = 0u64;
    let mut backoff = Duration::from_millis(1);
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit?,
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(1);
                pair
            }
            Err(err) => {
                // Out of file descriptors and the like: wait a little, never give up.
                tracing::warn!(error = %err, "accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let peer = Peer {
            id: next_id,
            addr: addr.to_string(),
        };
        let handler = handler.clone();
        let token = shutdown.child_token();
        tracker.spawn(async move {
            tracing::debug!(conn = peer.id, peer = %peer.addr, "connection opened");
            let id = peer.id;
            if let Err(err) = handler.handle(stream, peer, token).await {
                tracing::warn!(
                    conn = id,
                    error = format!("{err:#}"),
                    "connection ended with an error"
                );
            }
            drop(permit);
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Binds a TCP listener, with the address in the error when it fails.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {addr}: {err}"))
}

/// Connects to `addr` with a time limit.
pub async fn connect(addr: &str, timeout: Duration) -> anyhow::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {addr} timed out after {timeout:?}"))?
        .map_err(|err| anyhow::anyhow!("cannot connect to {addr}: {err}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A token cancelled on Ctrl-C or SIGTERM, for graceful shutdown of a command.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        biased;
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// Why reading the next frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The decoder rejected the bytes; `buffered` bytes were waiting at that moment.
    #[error("{error}")]
    Decode { error: E, buffered: usize },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed with {0} bytes of an unfinished frame")]
    Truncated(usize),
}

/// A byte stream with a read buffer, read frame by frame with a sans-IO decoder.
pub struct FramedStream<S> {
    stream: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FramedStream<S> {
    pub fn new(stream: S) -> Self {
        FramedStream {
            stream,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// The next frame; `Ok(None)` when the peer closed the stream cleanly between frames.
    pub async fn next<T, E>(
        &mut self,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> Result<Option<T>, ReadError<E>> {
        loop {
            if !self.buf.is_empty() {
                match decode(&self.buf) {
                    Ok(Some((item, used))) => {
                        self.buf.advance(used.min(self.buf.len()));
                        return Ok(Some(item));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        return Err(ReadError::Decode {
                            error,
                            buffered: self.buf.len(),
                        })
                    }
                }
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated(self.buf.len()))
                };
            }
        }
    }

    /// The next frame already in the buffer, without reading: `Ok(None)` when the buffer
    /// holds no complete frame. With [`FramedStream::fill`], lets a caller answer every
    /// buffered (pipelined) request before it writes, and select on reading.
    pub fn try_next<T, E>(
        &mut self,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> Result<Option<T>, ReadError<E>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        match decode(&self.buf) {
            Ok(Some((item, used))) => {
                self.buf.advance(used.min(self.buf.len()));
                Ok(Some(item))
            }
            Ok(None) => Ok(None),
            Err(error) => Err(ReadError::Decode {
                error,
                buffered: self.buf.len(),
            }),
        }
    }

    /// Reads more bytes into the buffer; returns how many (0: the peer closed). Cancel
    /// safe: no bytes are lost when the future is dropped.
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Bytes received but not yet consumed by a frame.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops `n` buffered bytes (to skip past garbage after a decode error).
    pub fn discard(&mut self, n: usize) {
        self.buf.advance(n.min(self.buf.len()));
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    pub fn into_inner(self) -> S {
        self.stream
    }
}

/// The local address a listener got (useful with port 0).
pub fn local_addr(listener: &TcpListener) -> anyhow::Result<SocketAddr> {
    Ok(listener.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder of one-byte-length frames, for the tests.
    fn len1(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
        match buf.first() {
            None => Ok(None),
            Some(0) => Err("zero length".into()),
            Some(&n) => {
                let n = n as usize;
                Ok(buf.get(1..1 + n).map(|body| (body.to_vec(), 1 + n)))
            }
        }
    }

    #[tokio::test]
    async fn frames_split_across_writes_are_reassembled() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut framed = FramedStream::new(a);
        tokio::spawn(async move {
            b.write_all(&[3, b'a']).await.unwrap();
            tokio::task::yield_now().await;
            b.write_all(&[b'b', b'c', 1, b'z']).await.unwrap();
        });
        assert_eq!(framed.next(len1).await.unwrap(), Some(b"abc".to_vec()));
        assert_eq!(framed.next(len1).await.unwrap(), Some(b"z".to_vec()));
        assert_eq!(framed.next(len1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_decode_error_leaves_the_stream_usable() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut framed = FramedStream::new(a);
        b.write_all(&[0, 1, b'k']).await.unwrap();
        drop(b);
        match framed.next(len1).await {
            Err(ReadError::Decode { error, buffered }) => {
                assert_eq!(error, "zero length");
                assert_eq!(buffered, 3);
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
        framed.discard(1);
        assert_eq!(framed.next(len1).await.unwrap(), Some(b"k".to_vec()));
    }

    #[tokio::test]
    async fn try_next_takes_only_buffered_frames() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut framed = FramedStream::new(a);
        assert_eq!(framed.try_next(len1).unwrap(), None);
        b.write_all(&[1, b'x', 1, b'y', 2, b'z']).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            assert!(framed.fill().await.unwrap() > 0);
            while let Some(frame) = framed.try_next(len1).unwrap() {
                got.push(frame);
            }
        }
        assert_eq!(got, vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(framed.buffered(), &[2, b'z']);
        drop(b);
        assert_eq!(framed.fill().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_truncation() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut framed = FramedStream::new(a);
        b.write_all(&[5, b'a']).await.unwrap();
        drop(b);
        assert!(matches!(
            framed.next(len1).await,
            Err(ReadError::Truncated(2))
        ));
    }

    #[derive(Clone)]
    struct Echo;
    impl Handler for Echo {
        async fn handle<S>(
            &self,
            stream: S,
            _peer: Peer,
            shutdown: CancellationToken,
        ) -> anyhow::Result<()>
        where
            S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        {
            let mut framed = FramedStream::new(stream);
            loop {
                let frame = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    f = framed.next(len1) => f,
                };
                match frame {
                    Ok(Some(body)) if body == b"boom" => anyhow::bail!("asked to fail"),
                    Ok(Some(body)) => {
                        let mut out = vec![body.len() as u8];
                        out.extend(body);
                        framed.write_all(&out).await?;
                    }
                    Ok(None) => return Ok(()),
                    Err(err) => anyhow::bail!("{err}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn one_failing_connection_never_stops_the_server() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = local_addr(&listener).unwrap().to_string();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Echo, Limits::default(), shutdown.clone()));

        let mut bad = connect(&addr, Duration::from_secs(5)).await.unwrap();
        bad.write_all(&[4, b'b', b'o', b'o', b'm']).await.unwrap();
        let mut sink = Vec::new();
        bad.read_to_end(&mut sink).await.unwrap();
        assert!(
            sink.is_empty(),
            "the failing connection is closed without an answer"
        );

        let mut good = connect(&addr, Duration::from_secs(5)).await.unwrap();
        good.write_all(&[2, b'h', b'i']).await.unwrap();
        let mut answer = [0u8; 3];
        good.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, &[2, b'h', b'i']);

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server drains and stops")
            .unwrap()
            .unwrap();
    }
}
