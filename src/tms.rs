//! The terminal management system on the network: the async adapter around
//! `poslab_tms::device::TmsDevice`, and [`drive`], the async loop that runs a
//! `poslab_tms::client::ClientSession` over any stream (for the reference terminal and
//! the tests).
//!
//! One task per connection (mini-redis shape, through [`crate::net::serve`]): bytes read
//! go to the shared device with `now` (tokio's clock since the server started, so a bench
//! in simulated time moves the rollout's timed waves too); its answers are written, its
//! journal entries recorded (already masked: keys by KCV only), completed log uploads
//! written under the journal's directory (`<journal dir>/tms-logs/<tid>-<serial>-<n>.log`),
//! and the connection closed when the device says so (a fault, a frame that cannot be
//! resynchronised). A bad connection never stops the listener.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poslab_tms::client::{ClientSession, Event};
use poslab_tms::device::{Output, TmsDevice};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::net::{Handler, Peer};

/// The TMS server: the shared device, the journal, where logs go.
#[derive(Clone)]
pub struct TmsServer {
    device: Arc<Mutex<TmsDevice>>,
    journal: Journal,
    logs_dir: Option<PathBuf>,
    start: tokio::time::Instant,
    uploads: Arc<std::sync::atomic::AtomicU64>,
}

impl TmsServer {
    /// Logs go under the journal file's directory (none without a journal file).
    pub fn new(device: TmsDevice, journal: Journal) -> TmsServer {
        let logs_dir = journal.path().map(|p| {
            p.parent()
                .unwrap_or(std::path::Path::new("."))
                .join("tms-logs")
        });
        TmsServer {
            device: Arc::new(Mutex::new(device)),
            journal,
            logs_dir,
            start: tokio::time::Instant::now(),
            uploads: Arc::default(),
        }
    }

    /// Writes uploaded logs to this directory instead.
    pub fn with_logs_dir(mut self, dir: PathBuf) -> TmsServer {
        self.logs_dir = Some(dir);
        self
    }

    /// The state machine, for steps that set faults, give orders or read the records.
    pub fn device(&self) -> Arc<Mutex<TmsDevice>> {
        self.device.clone()
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Now, by the TMS's clock.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, TmsDevice> {
        self.device
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn apply<S: AsyncWrite + Unpin>(
        &self,
        out: Output,
        peer: &Peer,
        stream: &mut S,
    ) -> anyhow::Result<bool> {
        for entry in out.journal {
            let mut body = entry.body;
            if let Value::Object(m) = &mut body {
                m.insert("peer".into(), json!(peer.addr));
            }
            self.journal.record("tms", entry.kind, body);
        }
        for logs in out.logs {
            if let Some(dir) = &self.logs_dir {
                let n = self
                    .uploads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                let safe = |s: &str| -> String {
                    s.chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '-' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect()
                };
                let path = dir.join(format!(
                    "{}-{}-{n}.log",
                    safe(&logs.tid),
                    safe(&logs.serial)
                ));
                let written = async {
                    tokio::fs::create_dir_all(dir).await?;
                    tokio::fs::write(&path, &logs.bytes).await
                }
                .await;
                match written {
                    Ok(()) => self.journal.record(
                        "tms",
                        "logs-stored",
                        json!({"conn": peer.id, "tid": logs.tid, "path": path.display().to_string(), "bytes": logs.bytes.len()}),
                    ),
                    Err(e) => self.journal.record(
                        "tms",
                        "error",
                        json!({"conn": peer.id, "tid": logs.tid, "error": format!("cannot store logs in {}: {e}", path.display())}),
                    ),
                };
            }
        }
        for frame in &out.frames {
            stream.write_all(frame).await?;
        }
        stream.flush().await?;
        Ok(out.close)
    }
}

impl Handler for TmsServer {
    async fn handle<S>(
        &self,
        mut stream: S,
        peer: Peer,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let name = format!("{}", peer.id);
        let mut conn = self.lock().connect(&name);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = tokio::select! {
                _ = shutdown.cancelled() => break,
                n = stream.read(&mut buf) => n?,
            };
            if n == 0 {
                break;
            }
            let data = buf.get(..n).unwrap_or(&[]);
            let now = self.now();
            let out = self.lock().handle_bytes(&mut conn, data, now);
            if self.apply(out, &peer, &mut stream).await? {
                self.journal
                    .record("tms", "closed", json!({"conn": peer.id, "by": "tms"}));
                let _ = stream.shutdown().await;
                break;
            }
        }
        Ok(())
    }
}

/// Serves until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    server: TmsServer,
    limits: crate::net::Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    crate::net::serve(listener, server, limits, shutdown).await
}

/// Runs a client session over a stream until it is finished: writes its requests, feeds
/// it what is read, the end of the stream and its deadlines (tokio's clock, measured from
/// `epoch`), and hands every event to `on_event`, which may answer with the session's
/// inputs (`accept_package`, `provide_logs`, `keys_destroyed`, ...); an event asking for
/// input that `on_event` leaves unanswered aborts the session. The session must have been
/// created with `now = epoch.elapsed()`. Returns every event.
pub async fn drive<S, F>(
    stream: &mut S,
    session: &mut ClientSession,
    epoch: tokio::time::Instant,
    mut on_event: F,
) -> Vec<Event>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&Event, &mut ClientSession, Duration),
{
    let mut events = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let now = epoch.elapsed();
        while let Some(e) = session.poll_event() {
            on_event(&e, session, now);
            events.push(e);
        }
        let mut write_failed = false;
        while let Some(bytes) = session.poll_transmit() {
            if stream.write_all(&bytes).await.is_err() {
                write_failed = true;
                break;
            }
        }
        if write_failed {
            session.handle_closed(epoch.elapsed());
            continue;
        }
        if session.is_finished() {
            // events emitted by the last input are drained above
            if let Some(e) = session.poll_event() {
                on_event(&e, session, epoch.elapsed());
                events.push(e);
                continue;
            }
            break;
        }
        let Some(deadline) = session.poll_timeout() else {
            session.abort("the terminal did not answer the session's request for input");
            continue;
        };
        let sleep = tokio::time::sleep_until(epoch + deadline);
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => session.handle_closed(epoch.elapsed()),
                Ok(n) => session.handle_bytes(buf.get(..n).unwrap_or(&[]), epoch.elapsed()),
            },
            _ = sleep => session.handle_timeout(epoch.elapsed()),
        }
    }
    events
}
