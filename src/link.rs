//! Links as the devices see them: a byte stream ([`BoxIo`]), a way to open one
//! ([`Dialer`]) and a way to be offered them ([`Incoming`]), over TCP, a pty or serial
//! line, or an in-memory pipe. The same device code runs over all of them; the bench picks
//! in-memory pipes when every node is emulated (simulated time) and real transports when a
//! real device or a process is in the loop.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A bidirectional byte stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub type BoxIo = Box<dyn Io>;

type DialFn = dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>> + Send + Sync;

/// Opens a new connection to a peer.
#[derive(Clone)]
pub struct Dialer {
    what: String,
    dial: Arc<DialFn>,
}

/// Buffer of an in-memory pipe, per direction.
pub const PIPE_BUFFER: usize = 64 * 1024;

impl Dialer {
    /// TCP to `addr` (one attempt per dial; callers retry as their protocol says).
    pub fn tcp(addr: impl Into<String>) -> Dialer {
        let addr = addr.into();
        let what = format!("tcp {addr}");
        Dialer {
            what,
            dial: Arc::new(move || {
                let addr = addr.clone();
                Box::pin(async move {
                    let s = tokio::net::TcpStream::connect(&addr).await?;
                    let _ = s.set_nodelay(true);
                    Ok(Box::new(s) as BoxIo)
                })
            }),
        }
    }

    /// An in-memory pipe whose other end goes to `peer` (the peer's [`Incoming`]).
    pub fn memory(what: impl Into<String>, peer: Offer) -> Dialer {
        Dialer {
            what: what.into(),
            dial: Arc::new(move || {
                let peer = peer.clone();
                Box::pin(async move {
                    let (mine, theirs) = tokio::io::duplex(PIPE_BUFFER);
                    peer.offer(Box::new(theirs)).map_err(|_| {
                        io::Error::new(io::ErrorKind::ConnectionRefused, "peer is not there")
                    })?;
                    Ok(Box::new(mine) as BoxIo)
                })
            }),
        }
    }

    /// Any way of opening a stream (e.g. a pipe that runs through a fault link).
    pub fn custom<F, Fut>(what: impl Into<String>, f: F) -> Dialer
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<BoxIo>> + Send + 'static,
    {
        Dialer {
            what: what.into(),
            dial: Arc::new(move || Box::pin(f())),
        }
    }

    /// A link that never connects (a node the bench does not have).
    pub fn refused(what: impl Into<String>) -> Dialer {
        let what = what.into();
        let msg = format!("no {what} on this bench");
        Dialer {
            what,
            dial: Arc::new(move || {
                let msg = msg.clone();
                Box::pin(async move { Err(io::Error::new(io::ErrorKind::ConnectionRefused, msg)) })
            }),
        }
    }

    pub async fn dial(&self) -> io::Result<BoxIo> {
        (self.dial)().await
    }

    pub fn describe(&self) -> &str {
        &self.what
    }
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dialer({})", self.what)
    }
}

/// Streams offered to a device: accepted TCP connections, the one stream of a pty, or the
/// ends of in-memory pipes that someone dialed.
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<BoxIo>,
}

/// The sending side of an [`Incoming`].
#[derive(Clone)]
pub struct Offer {
    tx: mpsc::UnboundedSender<BoxIo>,
}

impl Offer {
    /// Hands a stream to the device; `Err` (with the stream) when it is gone.
    pub fn offer(&self, stream: BoxIo) -> Result<(), BoxIo> {
        self.tx.send(stream).map_err(|e| e.0)
    }

    /// A new in-memory pipe: one end offered to the device, the other returned.
    pub fn pipe(&self) -> io::Result<DuplexStream> {
        let (mine, theirs) = tokio::io::duplex(PIPE_BUFFER);
        self.offer(Box::new(theirs))
            .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "device is gone"))?;
        Ok(mine)
    }
}

impl Incoming {
    pub fn channel() -> (Offer, Incoming) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Offer { tx }, Incoming { rx })
    }

    /// Accepted connections of `listener` (the accept loop runs until the `Incoming` is
    /// dropped).
    pub fn tcp(listener: TcpListener) -> Incoming {
        let (offer, incoming) = Incoming::channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = offer.tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            if offer.offer(Box::new(s)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    },
                }
            }
        });
        incoming
    }

    /// One stream (a pty or a serial line), offered once.
    pub fn once(stream: BoxIo) -> Incoming {
        let (offer, incoming) = Incoming::channel();
        let _ = offer.offer(stream);
        // keep the channel open: a serial line is never "re-accepted"
        std::mem::forget(offer);
        incoming
    }

    /// The next stream; `None` when nobody can offer one any more.
    pub async fn next(&mut self) -> Option<BoxIo> {
        self.rx.recv().await
    }

    /// A stream already waiting, without blocking.
    pub fn try_next(&mut self) -> Option<BoxIo> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_memory_dial_reaches_the_incoming_side() {
        let (offer, mut incoming) = Incoming::channel();
        let dialer = Dialer::memory("host", offer);
        let mut a = dialer.dial().await.unwrap();
        let mut b = incoming.next().await.unwrap();
        a.write_all(b"0800").await.unwrap();
        let mut buf = [0; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"0800");
        drop(incoming);
        assert!(dialer.dial().await.is_err(), "nobody listens any more");
    }

    #[tokio::test]
    async fn tcp_dial_and_accept() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let mut incoming = Incoming::tcp(l);
        let mut a = Dialer::tcp(addr).dial().await.unwrap();
        let mut b = incoming.next().await.unwrap();
        b.write_all(b"ok").await.unwrap();
        let mut buf = [0; 2];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ok");
        assert!(Dialer::refused("tms").dial().await.is_err());
    }
}
