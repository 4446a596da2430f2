//! `tcp: HOST:PORT` (poslab connects to a real device, retrying while it boots) and
//! `listen: ADDR:PORT` (a real device connects to poslab; one connection is accepted).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::journal::Journal;

use super::DutError;

/// Retry schedule for [`connect`]: exponential backoff from `first` up to `max`, until
/// `limit` has passed since the first attempt.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub first: Duration,
    pub max: Duration,
    pub limit: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
            limit: Duration::from_secs(30),
        }
    }
}

/// Connects to `addr`, retrying with backoff until `retry.limit`; each failed attempt is
/// journalled on `link`. A device that is still booting refuses connections for a while.
pub async fn connect(
    link: &str,
    addr: &str,
    retry: Retry,
    journal: &Journal,
) -> Result<TcpStream, DutError> {
    let start = tokio::time::Instant::now();
    let deadline = start + retry.limit;
    let mut delay = retry.first;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = tokio::time::timeout(
            remaining.max(Duration::from_millis(1)),
            TcpStream::connect(addr),
        )
        .await;
        let err = match result {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                journal.record(link, "connected", json!({"to": addr, "attempts": attempt}));
                return Ok(stream);
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        journal.record(
            link,
            "connect-failed",
            json!({"to": addr, "attempt": attempt, "error": err}),
        );
        let now = tokio::time::Instant::now();
        if now + delay >= deadline {
            return Err(DutError::Connect {
                addr: addr.to_owned(),
                attempts: attempt,
                waited: now - start,
                last: err,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(retry.max);
    }
}

/// A bound listener waiting for the real device: bind first (to learn the port when it is
/// 0), accept later.
pub struct Listen {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Listen {
    pub async fn bind(addr: &str) -> Result<Listen, DutError> {
        let listener = TcpListener::bind(addr).await.map_err(|err| DutError::Io {
            what: format!("listen on {addr}"),
            err,
        })?;
        let addr = listener.local_addr().map_err(|err| DutError::Io {
            what: format!("local address of {addr}"),
            err,
        })?;
        Ok(Listen { listener, addr })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts one connection within `limit`.
    pub async fn accept(
        &self,
        link: &str,
        limit: Duration,
        journal: &Journal,
    ) -> Result<(TcpStream, SocketAddr), DutError> {
        match tokio::time::timeout(limit, self.listener.accept()).await {
            Ok(Ok((stream, peer))) => {
                let _ = stream.set_nodelay(true);
                journal.record(
                    link,
                    "accepted",
                    json!({"on": self.addr.to_string(), "from": peer.to_string()}),
                );
                Ok((stream, peer))
            }
            Ok(Err(err)) => Err(DutError::Io {
                what: format!("accept on {}", self.addr),
                err,
            }),
            Err(_) => Err(DutError::AcceptTimeout {
                addr: self.addr.to_string(),
                waited: limit,
            }),
        }
    }

    pub fn into_listener(self) -> TcpListener {
        self.listener
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connect_retries_until_the_device_listens() {
        // find a free port, then start listening on it only after a few refused attempts
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let listener = TcpListener::bind(addr).await.unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"hello").await.unwrap();
        });
        let journal = Journal::in_memory();
        let retry = Retry {
            first: Duration::from_millis(20),
            max: Duration::from_millis(80),
            limit: Duration::from_secs(10),
        };
        let mut stream = connect("terminal", &addr.to_string(), retry, &journal)
            .await
            .unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        late.await.unwrap();
        let entries = journal.entries().unwrap();
        assert!(entries.iter().any(|e| e["kind"] == "connect-failed"));
        let last = entries.last().unwrap();
        assert_eq!(last["kind"], "connected");
        assert!(last["attempts"].as_u64().unwrap() >= 2);
    }

    #[tokio::test]
    async fn connect_gives_up_at_the_time_limit() {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = probe.local_addr().unwrap().to_string();
        drop(probe);
        let retry = Retry {
            first: Duration::from_millis(10),
            max: Duration::from_millis(20),
            limit: Duration::from_millis(200),
        };
        let err = connect("host", &addr, retry, &Journal::discard())
            .await
            .unwrap_err();
        let DutError::Connect { attempts, .. } = &err else {
            panic!("{err}")
        };
        assert!(*attempts >= 2, "{err}");
        assert!(err.to_string().contains(&addr), "{err}");
    }

    #[tokio::test]
    async fn listen_accepts_one_connection_or_times_out() {
        let listen = Listen::bind("127.0.0.1:0").await.unwrap();
        let addr = listen.local_addr();
        assert_ne!(addr.port(), 0);
        let err = listen
            .accept("printer", Duration::from_millis(50), &Journal::discard())
            .await
            .unwrap_err();
        assert!(matches!(err, DutError::AcceptTimeout { .. }), "{err}");
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"\x1b@").await.unwrap();
        });
        let journal = Journal::in_memory();
        let (mut stream, _) = listen
            .accept("printer", Duration::from_secs(10), &journal)
            .await
            .unwrap();
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"\x1b@");
        client.await.unwrap();
        assert_eq!(journal.entries().unwrap()[0]["kind"], "accepted");
    }
}
