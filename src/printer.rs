//! The receipt printer on real transports: the async adapter around the sans-IO
//! [`poslab_escpos::Printer`].
//!
//! One task owns the printer (one paper roll, one set of faults) and takes everything
//! through a `tokio::sync::mpsc` channel: bytes from connections, and [`Control`] commands
//! (set or clear a fault, read the status) from the CLI, Gherkin steps or a control API.
//! Connections (TCP through [`crate::net::serve`], a pty, a serial port, an in-memory pipe)
//! are served by [`serve_stream`], generic over `AsyncRead + AsyncWrite`. Answers go back on
//! the connection that sent the last bytes. Every finished receipt is written to the output
//! directory as `NNNN.txt`, `NNNN.png` and `NNNN.json`, journaled (with card numbers
//! masked) and broadcast to subscribers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use poslab_escpos::{render, Config, Event, Fault, FaultKind, Printer, Receipt, Status};
use poslab_sensitive::mask_digit_runs;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::net::{Handler, Peer};

/// How to run the printer.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: Config,
    /// Where receipts are written (`None`: kept in memory only).
    pub out_dir: Option<PathBuf>,
    /// Faults active from power-on.
    pub faults: Vec<Fault>,
    /// The journal link name.
    pub link: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: Config::default(),
            out_dir: None,
            faults: Vec::new(),
            link: "printer".into(),
        }
    }
}

/// Commands to the running printer.
#[derive(Debug)]
pub enum Control {
    SetFault(Fault),
    ClearFault(FaultKind),
    Status(oneshot::Sender<Status>),
}

enum Msg {
    Open {
        conn: u64,
        peer: String,
        replies: mpsc::UnboundedSender<Vec<u8>>,
    },
    Data {
        conn: u64,
        bytes: Vec<u8>,
    },
    Close {
        conn: u64,
    },
    Control(Control),
    /// Ends the receipt in progress (uncut) and stops the printer task.
    PowerOff(oneshot::Sender<()>),
}

/// A handle on the running printer: cheap to clone.
#[derive(Clone)]
pub struct PrinterHandle {
    tx: mpsc::Sender<Msg>,
    receipts: broadcast::Sender<Arc<WrittenReceipt>>,
    next_conn: Arc<std::sync::atomic::AtomicU64>,
}

/// A finished receipt and the files written for it.
#[derive(Clone, Debug)]
pub struct WrittenReceipt {
    pub receipt: Receipt,
    /// The `NNNN` stem in the output directory (`None` without one).
    pub files: Option<PathBuf>,
}

impl PrinterHandle {
    pub async fn set_fault(&self, fault: Fault) -> anyhow::Result<()> {
        self.control(Control::SetFault(fault)).await
    }

    pub async fn clear_fault(&self, kind: FaultKind) -> anyhow::Result<()> {
        self.control(Control::ClearFault(kind)).await
    }

    pub async fn status(&self) -> anyhow::Result<Status> {
        let (tx, rx) = oneshot::channel();
        self.control(Control::Status(tx)).await?;
        Ok(rx.await?)
    }

    pub async fn control(&self, control: Control) -> anyhow::Result<()> {
        self.tx
            .send(Msg::Control(control))
            .await
            .map_err(|_| anyhow::anyhow!("the printer is switched off"))
    }

    /// Receipts as they are finished.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WrittenReceipt>> {
        self.receipts.subscribe()
    }

    /// Ends the receipt in progress (written uncut) and stops the printer.
    pub async fn power_off(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::PowerOff(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts the printer task.
pub fn spawn(
    options: Options,
    journal: Journal,
) -> anyhow::Result<(PrinterHandle, tokio::task::JoinHandle<()>)> {
    let first_number = match &options.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            highest_receipt_number(dir)
        }
        None => 0,
    };
    let (tx, rx) = mpsc::channel(256);
    let (receipts, _) = broadcast::channel(64);
    let handle = PrinterHandle {
        tx,
        receipts: receipts.clone(),
        next_conn: Arc::new(std::sync::atomic::AtomicU64::new(1)),
    };
    let task = tokio::spawn(run(options, journal, rx, receipts, first_number));
    Ok((handle, task))
}

/// The highest `NNNN` of `NNNN.json` in `dir`, so a restarted printer does not overwrite.
fn highest_receipt_number(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

struct Actor {
    printer: Printer,
    options: Options,
    journal: Journal,
    receipts: broadcast::Sender<Arc<WrittenReceipt>>,
    number_base: u64,
    start: Instant,
    connections: Vec<(u64, mpsc::UnboundedSender<Vec<u8>>)>,
    /// The connection answers go to (the last one that sent bytes).
    current: Option<u64>,
}

async fn run(
    options: Options,
    journal: Journal,
    mut rx: mpsc::Receiver<Msg>,
    receipts: broadcast::Sender<Arc<WrittenReceipt>>,
    number_base: u64,
) {
    let mut a = Actor {
        printer: Printer::new(options.config.clone()),
        options,
        journal,
        receipts,
        number_base,
        start: Instant::now(),
        connections: Vec::new(),
        current: None,
    };
    for fault in a.options.faults.clone() {
        let now = a.now();
        a.printer.set_fault(now, fault);
    }
    a.flush();
    loop {
        let deadline = a.printer.poll_timeout().map(|d| a.start + d);
        let msg = tokio::select! {
            biased;
            msg = rx.recv() => msg,
            _ = sleep_until(deadline) => {
                let now = a.now();
                a.printer.handle_timeout(now);
                a.flush();
                continue;
            }
        };
        let Some(msg) = msg else {
            break;
        };
        let now = a.now();
        match msg {
            Msg::Open {
                conn,
                peer,
                replies,
            } => {
                a.journal.record(
                    &a.options.link,
                    "connection",
                    json!({"conn": conn, "peer": peer, "event": "open"}),
                );
                a.connections.push((conn, replies));
            }
            Msg::Data { conn, bytes } => {
                a.current = Some(conn);
                a.printer.handle_bytes(now, &bytes);
            }
            Msg::Close { conn } => {
                a.printer.handle_end_of_stream(now);
                a.connections.retain(|(c, _)| *c != conn);
                a.journal.record(
                    &a.options.link,
                    "connection",
                    json!({"conn": conn, "event": "close"}),
                );
            }
            Msg::Control(Control::SetFault(f)) => a.printer.set_fault(now, f),
            Msg::Control(Control::ClearFault(k)) => a.printer.clear_fault(now, k),
            Msg::Control(Control::Status(reply)) => {
                let _ = reply.send(a.printer.status());
            }
            Msg::PowerOff(done) => {
                a.flush();
                if let Some(r) = a.printer.finish_receipt() {
                    a.write_receipt(r);
                }
                let _ = done.send(());
                break;
            }
        }
        a.flush();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Sends answers and handles events.
    fn flush(&mut self) {
        if let Some(bytes) = self.printer.poll_transmit() {
            let target = self
                .current
                .and_then(|c| self.connections.iter().find(|(id, _)| *id == c))
                .or(self.connections.last());
            match target {
                Some((_, tx)) => {
                    let _ = tx.send(bytes);
                }
                None => tracing::debug!(
                    bytes = bytes.len(),
                    "printer answer dropped: nobody connected"
                ),
            }
        }
        while let Some(event) = self.printer.poll_event() {
            match event {
                Event::Receipt(r) => self.write_receipt(r),
                Event::Status { command, reply } => {
                    self.journal.record(
                        &self.options.link,
                        "status",
                        json!({"command": command, "reply": hex::encode(&reply)}),
                    );
                }
                Event::Fault {
                    fault,
                    active,
                    reason,
                } => {
                    tracing::info!(%fault, active, %reason, "printer fault");
                    self.journal.record(
                        &self.options.link,
                        "fault",
                        json!({"fault": fault, "active": active, "reason": reason}),
                    );
                }
            }
        }
    }

    fn write_receipt(&mut self, mut receipt: Receipt) {
        receipt.number += self.number_base;
        let files = self.options.out_dir.as_ref().map(|dir| {
            let stem = dir.join(format!("{:04}", receipt.number));
            if let Err(err) = write_files(&stem, &receipt) {
                tracing::error!(receipt = receipt.number, error = %err, "cannot write receipt");
            }
            stem
        });
        let masked_lines: Vec<String> = receipt
            .text_lines()
            .iter()
            .map(|l| mask_digit_runs(l))
            .collect();
        let diagnostics: Vec<serde_json::Value> = receipt
            .diagnostics
            .iter()
            .map(|d| json!({"offset": d.offset, "message": mask_digit_runs(&d.message)}))
            .collect();
        tracing::info!(
            receipt = receipt.number,
            lines = masked_lines.len(),
            diagnostics = diagnostics.len(),
            incomplete = receipt.incomplete,
            "receipt printed"
        );
        for d in &receipt.diagnostics {
            tracing::warn!(
                receipt = receipt.number,
                offset = d.offset,
                "{}",
                mask_digit_runs(&d.message)
            );
        }
        self.journal.record(
            &self.options.link,
            "receipt",
            json!({
                "number": receipt.number,
                "lines": masked_lines,
                "cut": receipt.cut,
                "incomplete": receipt.incomplete,
                "diagnostics": diagnostics,
                "files": files.as_ref().map(|f| f.display().to_string()),
            }),
        );
        let _ = self
            .receipts
            .send(Arc::new(WrittenReceipt { receipt, files }));
    }
}

/// Writes `stem.txt`, `stem.png` and `stem.json`.
pub fn write_files(stem: &Path, receipt: &Receipt) -> anyhow::Result<()> {
    std::fs::write(stem.with_extension("txt"), render::text(receipt))?;
    std::fs::write(stem.with_extension("png"), render::png(receipt)?)?;
    std::fs::write(stem.with_extension("json"), render::json(receipt)?)?;
    Ok(())
}

/// Serves one byte stream (a TCP connection, a pty master, a pipe) until it closes or
/// `shutdown` fires.
pub async fn serve_stream<S>(
    handle: &PrinterHandle,
    stream: S,
    peer: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = handle
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (replies_tx, mut replies) = mpsc::unbounded_channel();
    handle
        .tx
        .send(Msg::Open {
            conn,
            peer,
            replies: replies_tx,
        })
        .await
        .map_err(|_| anyhow::anyhow!("the printer is switched off"))?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = vec![0u8; 8192];
    let result = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            answer = replies.recv() => {
                let Some(answer) = answer else { break Ok(()) };
                if let Err(err) = async {
                    writer.write_all(&answer).await?;
                    writer.flush().await
                }.await {
                    break Err(err.into());
                }
            }
            read = reader.read(&mut buf) => match read {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if handle.tx.send(Msg::Data { conn, bytes }).await.is_err() {
                        break Ok(());
                    }
                }
                Err(err) => break Err(err.into()),
            },
        }
    };
    let _ = handle.tx.send(Msg::Close { conn }).await;
    result
}

/// The TCP side: a [`Handler`] for [`crate::net::serve`].
#[derive(Clone)]
pub struct PrinterService {
    pub handle: PrinterHandle,
}

impl Handler for PrinterService {
    async fn handle<S>(
        &self,
        stream: S,
        peer: Peer,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        serve_stream(&self.handle, stream, peer.addr, shutdown).await
    }
}

/// Opens a serial port (a real one, a USB adapter, a pty standing in for one) for
/// [`serve_serial`]. serialport without its default features needs no system library.
pub fn open_serial(path: &str, baud: u32) -> anyhow::Result<Box<dyn serialport::SerialPort>> {
    serialport::new(path, baud)
        .timeout(Duration::from_millis(100))
        .open()
        .map_err(|e| anyhow::anyhow!("cannot open serial port {path}: {e}"))
}

/// Serves an open serial port with blocking I/O on two threads until `shutdown` fires or
/// the port fails.
pub async fn serve_serial(
    handle: &PrinterHandle,
    port: Box<dyn serialport::SerialPort>,
    path: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut writer = port
        .try_clone()
        .map_err(|e| anyhow::anyhow!("cannot clone serial port {path}: {e}"))?;
    let conn = handle
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (replies_tx, mut replies) = mpsc::unbounded_channel::<Vec<u8>>();
    handle
        .tx
        .send(Msg::Open {
            conn,
            peer: path.to_string(),
            replies: replies_tx,
        })
        .await
        .map_err(|_| anyhow::anyhow!("the printer is switched off"))?;
    let tx = handle.tx.clone();
    let stop = shutdown.clone();
    let label = path.to_string();
    let reader = tokio::task::spawn_blocking(move || {
        let mut port = port;
        let mut buf = [0u8; 4096];
        while !stop.is_cancelled() {
            match port.read(&mut buf) {
                Ok(0) => continue,
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if tx.blocking_send(Msg::Data { conn, bytes }).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(port = %label, error = %e, "serial read failed");
                    break;
                }
            }
        }
    });
    let writer_task = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        while let Some(answer) = replies.blocking_recv() {
            if writer
                .write_all(&answer)
                .and_then(|_| writer.flush())
                .is_err()
            {
                break;
            }
        }
    });
    let _ = reader.await;
    let _ = handle.tx.send(Msg::Close { conn }).await;
    writer_task.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_answers_on_an_in_memory_link_and_receipts_are_broadcast() {
        let journal = Journal::in_memory();
        let (handle, _task) = spawn(Options::default(), journal.clone()).unwrap();
        let mut receipts = handle.subscribe();
        let (client, server) = tokio::io::duplex(1024);
        let h = handle.clone();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move { serve_stream(&h, server, "pipe".into(), stop).await });
        let (mut rd, mut wr) = tokio::io::split(client);
        wr.write_all(b"\x10\x04\x04").await.unwrap();
        let mut b = [0u8; 1];
        rd.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], 0x12);
        handle.set_fault(Fault::PaperNearEnd).await.unwrap();
        wr.write_all(b"\x10\x04\x04PAN 4111111111111111\n\x1dV\x00")
            .await
            .unwrap();
        rd.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], 0x1E);
        let r = receipts.recv().await.unwrap();
        assert_eq!(r.receipt.text_lines(), vec!["PAN 4111111111111111"]);
        let status = handle.status().await.unwrap();
        assert_eq!(status.paper, "near-end");
        let entries = journal.entries().unwrap();
        let receipt = entries.iter().find(|e| e["kind"] == "receipt").unwrap();
        assert_eq!(receipt["lines"][0], "PAN 411111******1111");
        assert!(entries
            .iter()
            .any(|e| e["kind"] == "fault" && e["fault"] == "paper-near-end"));
        assert!(!serde_json::to_string(&entries)
            .unwrap()
            .contains("4111111111111111"));
        shutdown.cancel();
    }
}
