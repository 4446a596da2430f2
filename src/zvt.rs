//! ZVT over real transports: the async adapters around the sans-IO roles of `poslab-zvt`.
//!
//! - [`TerminalHandler`]: the terminal role as a [`crate::net::Handler`] (TCP via
//!   [`crate::net::serve`]) and [`serve_terminal_stream`] for one serial port or pty.
//!   The payment application is shared by every connection (the terminal keeps its last
//!   result across a reconnect, which an ECR needs to recover a lost answer).
//! - [`run_ecr`]: the cash-register role for one command over any stream, with a
//!   reconnect hook for TCP.
//! - [`open_serial`] and [`open_pty`]: a serial port (the `serialport` crate, no libudev)
//!   or a fresh pty pair, as an async byte stream (two threads bridge the blocking port).
//!
//! Every APDU each way is journaled, decoded, card data masked (`kind: "zvt"`).

use std::future::Future;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poslab_sensitive::mask_digit_runs;
use poslab_zvt::ecr::{Ecr, EcrCommand, EcrEvent, Outcome};
use poslab_zvt::message::Message;
use poslab_zvt::terminal::{Direction, PaymentApplication, Terminal, TerminalEvent};
use poslab_zvt::{Apdu, WallTime};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::net::{Handler, Peer};

/// The wall clock in UTC, as ZVT carries it.
pub fn wall_now() -> WallTime {
    let secs = crate::bench::time::wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
    WallTime {
        year,
        month,
        day,
        hour: (rem / 3600) as u8,
        minute: (rem / 60 % 60) as u8,
        second: (rem % 60) as u8,
    }
}

fn journal_apdu(
    journal: &Journal,
    link: &str,
    dir: Direction,
    apdu: &Apdu,
    message: Option<&Message>,
    error: Option<&str>,
) {
    if !journal.is_enabled() {
        return;
    }
    let raw: String = apdu.to_bytes().iter().map(|b| format!("{b:02X}")).collect();
    let mut body = json!({
        "dir": dir,
        "raw": mask_digit_runs(&raw),
        "command": apdu.command.to_string(),
    });
    if let Some(m) = message {
        body["decoded"] = serde_json::to_value(m).unwrap_or_default();
    }
    if let Some(e) = error {
        body["error"] = e.into();
    }
    journal.record(link, "zvt", body);
}

pub fn log_terminal_event(ev: TerminalEvent, journal: &Journal, link: &str) {
    match ev {
        TerminalEvent::Apdu {
            dir,
            apdu,
            message,
            error,
        } => {
            tracing::debug!(link, ?dir, command = %apdu.command, "apdu");
            journal_apdu(
                journal,
                link,
                dir,
                &apdu,
                message.as_ref(),
                error.as_deref(),
            );
        }
        TerminalEvent::Finished(m) => {
            tracing::info!(link, command = %m.command(), "command finished");
        }
        TerminalEvent::EcrSilent(m) => {
            tracing::warn!(link, sent = %m.command(), "the ECR did not acknowledge; command dropped");
            journal.record(
                link,
                "zvt_ecr_silent",
                json!({"sent": m.command().to_string()}),
            );
        }
        TerminalEvent::Link(ev) => {
            tracing::debug!(link, event = ?ev, "link");
            journal.record(link, "zvt_link", json!({"event": format!("{ev:?}")}));
        }
    }
}

/// Serves the terminal role on one stream until EOF or shutdown.
pub async fn serve_terminal_stream<A, S>(
    stream: S,
    terminal: &mut Terminal<A>,
    journal: &Journal,
    link: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()>
where
    A: PaymentApplication,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let start = Instant::now();
    terminal.reset_link();
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(bytes) = terminal.poll_transmit() {
            wr.write_all(&bytes).await?;
            wr.flush().await?;
        }
        while let Some(ev) = terminal.poll_event() {
            log_terminal_event(ev, journal, link);
        }
        let deadline = terminal.poll_timeout().map(|t| start + t);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            r = rd.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Ok(());
                }
                terminal.set_wall_clock(wall_now());
                terminal.handle_input(buf.get(..n).unwrap_or(&[]), start.elapsed());
            }
            _ = sleep_until(deadline) => {
                terminal.set_wall_clock(wall_now());
                terminal.handle_timeout(start.elapsed());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The terminal role for [`crate::net::serve`]: one ECR at a time (a second connection
/// waits until the first ends), one application shared by all.
pub struct TerminalHandler<A> {
    terminal: Arc<Mutex<Terminal<A>>>,
    journal: Journal,
}

impl<A> Clone for TerminalHandler<A> {
    fn clone(&self) -> Self {
        TerminalHandler {
            terminal: self.terminal.clone(),
            journal: self.journal.clone(),
        }
    }
}

impl<A: PaymentApplication + Send + 'static> TerminalHandler<A> {
    pub fn new(terminal: Terminal<A>, journal: Journal) -> Self {
        TerminalHandler {
            terminal: Arc::new(Mutex::new(terminal)),
            journal,
        }
    }

    /// The shared terminal (tests read the application's history through it).
    pub fn terminal(&self) -> Arc<Mutex<Terminal<A>>> {
        self.terminal.clone()
    }
}

impl<A: PaymentApplication + Send + 'static> Handler for TerminalHandler<A> {
    async fn handle<S>(
        &self,
        stream: S,
        peer: Peer,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut terminal = self.terminal.lock().await;
        let link = format!("zvt-terminal/{}", peer.id);
        tracing::info!(conn = peer.id, peer = %peer.addr, "ECR connected");
        serve_terminal_stream(stream, &mut terminal, &self.journal, &link, &shutdown).await
    }
}

/// Runs one ECR command over `stream`. When the TCP connection drops while a payment is
/// open, `reconnect` is called (at most 3 times, 200 ms apart) to get a new stream, and
/// the ECR asks the terminal for its last result on it.
pub async fn run_ecr<S, R, F>(
    stream: S,
    ecr: &mut Ecr,
    command: EcrCommand,
    journal: &Journal,
    link: &str,
    reconnect: R,
    on_event: impl FnMut(&EcrEvent),
) -> anyhow::Result<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: FnMut() -> F,
    F: Future<Output = anyhow::Result<S>>,
{
    let start = Instant::now();
    ecr.start(command, start.elapsed(), Some(wall_now()));
    drive_ecr(stream, ecr, start, journal, link, reconnect, on_event).await
}

/// Drives the command `ecr` runs (started at `start`, the origin of its clock) over
/// `stream` until it has an outcome; see [`run_ecr`]. After the terminal restarted under
/// a command ([`Ecr::handle_restart`]) this finishes it on the new stream.
pub async fn drive_ecr<S, R, F>(
    mut stream: S,
    ecr: &mut Ecr,
    start: Instant,
    journal: &Journal,
    link: &str,
    mut reconnect: R,
    mut on_event: impl FnMut(&EcrEvent),
) -> anyhow::Result<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: FnMut() -> F,
    F: Future<Output = anyhow::Result<S>>,
{
    let mut buf = vec![0u8; 4096];
    let mut outcome: Option<Outcome> = None;
    let mut delivered_by: Option<Instant> = None;
    let ecr_link = ecr.link_config();
    let mut closed = false;
    loop {
        let mut write_failed = false;
        while let Some(bytes) = ecr.poll_transmit() {
            if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
                write_failed = true;
                break;
            }
        }
        let mut need_reconnect = false;
        while let Some(ev) = ecr.poll_event() {
            on_event(&ev);
            match &ev {
                EcrEvent::Apdu {
                    dir,
                    apdu,
                    message,
                    error,
                } => journal_apdu(
                    journal,
                    link,
                    *dir,
                    apdu,
                    message.as_ref(),
                    error.as_deref(),
                ),
                EcrEvent::NeedReconnect => need_reconnect = true,
                EcrEvent::Decision(text) => {
                    tracing::warn!(link, "{text}");
                    journal.record(link, "zvt_decision", json!({"decision": text}));
                }
                EcrEvent::Link(ev) => {
                    journal.record(link, "zvt_link", json!({"event": format!("{ev:?}")}));
                }
            }
        }
        if outcome.is_none() {
            outcome = ecr.poll_outcome();
            if outcome.is_some() {
                // on a serial line the last acknowledgement may still wait for (or need
                // a retransmission after) the terminal's link ACK: it is part of the
                // command, the terminal holds the command open until it has it
                let span = ecr_link.ack_timeout * (u32::from(ecr_link.max_retries) + 1);
                delivered_by = Some(Instant::now() + span);
            }
        }
        let delivered =
            ecr.link_idle() || closed || delivered_by.is_some_and(|t| Instant::now() >= t);
        if outcome.is_some() && delivered {
            if let Some(o) = outcome.take() {
                let _ = stream.flush().await;
                return Ok(o);
            }
        }
        if need_reconnect {
            let mut last_err = String::new();
            let mut connected = false;
            for attempt in 0..3 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                match reconnect().await {
                    Ok(s) => {
                        stream = s;
                        connected = true;
                        break;
                    }
                    Err(err) => last_err = format!("{err:#}"),
                }
            }
            if connected {
                closed = false;
                journal.record(link, "zvt_reconnected", json!({}));
                ecr.handle_link_up(start.elapsed());
            } else {
                ecr.handle_link_failed(&last_err);
            }
            continue;
        }
        if write_failed && !closed {
            closed = true;
            ecr.handle_link_down(start.elapsed());
            continue;
        }
        let deadline = match (ecr.poll_timeout().map(|t| start + t), delivered_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if closed {
            if ecr.is_idle() {
                anyhow::bail!("the connection closed and the register has no outcome");
            }
            // nothing more will arrive on this stream; only the ECR's timers can move it
            if deadline.is_none() {
                ecr.handle_link_failed("the connection closed");
                continue;
            }
            sleep_until(deadline).await;
            ecr.handle_timeout(start.elapsed());
            continue;
        }
        tokio::select! {
            biased;
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    closed = true;
                    ecr.handle_link_down(start.elapsed());
                }
                Ok(n) => ecr.handle_input(buf.get(..n).unwrap_or(&[]), start.elapsed()),
            },
            _ = sleep_until(deadline) => ecr.handle_timeout(start.elapsed()),
        }
    }
}

/// A blocking serial port (or pty) bridged to an async byte stream by two threads that
/// end when the stream is dropped.
pub fn bridge(port: Box<dyn serialport::SerialPort>, name: &str) -> anyhow::Result<DuplexStream> {
    bridge_drained(port, name).map(|(stream, _)| stream)
}

/// Says when a bridge's writer thread has put every byte written to the stream on the
/// port (after the stream was dropped). A program that exits right after its last write
/// waits for it: the last bytes (a final `80 00`) would otherwise die with the process,
/// and the device on the line would wait for them.
pub struct Drained(std::sync::mpsc::Receiver<()>);

impl Drained {
    /// Waits, at most `within`, for the writer to finish; false when it did not.
    pub fn wait(&self, within: Duration) -> bool {
        !matches!(
            self.0.recv_timeout(within),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        )
    }
}

/// [`bridge`], with the signal that the writer finished.
pub fn bridge_drained(
    port: Box<dyn serialport::SerialPort>,
    name: &str,
) -> anyhow::Result<(DuplexStream, Drained)> {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let handle = tokio::runtime::Handle::current();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_port_rd, mut to_port_wr) = tokio::io::split(theirs);
    let mut reader = port
        .try_clone()
        .map_err(|err| anyhow::anyhow!("cannot clone serial port {name}: {err}"))?;
    let mut writer = port;
    let closed = Arc::new(AtomicBool::new(false));
    let closed_r = closed.clone();
    let h = handle.clone();
    std::thread::Builder::new()
        .name(format!("serial-rx {name}"))
        .spawn(move || {
            let mut buf = [0u8; 1024];
            while !closed_r.load(Ordering::Relaxed) {
                match reader.read(&mut buf) {
                    Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                    Ok(n) => {
                        let chunk = buf.get(..n).unwrap_or(&[]);
                        if h.block_on(to_port_wr.write_all(chunk)).is_err() {
                            break;
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // a pty master reads EIO while no slave is open: wait and retry
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        })?;
    std::thread::Builder::new()
        .name(format!("serial-tx {name}"))
        .spawn(move || {
            let mut buf = [0u8; 1024];
            loop {
                match handle.block_on(from_port_rd.read(&mut buf)) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = buf.get(..n).unwrap_or(&[]);
                        if writer
                            .write_all(chunk)
                            .and_then(|_| writer.flush())
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            closed.store(true, Ordering::Relaxed);
            let _ = done_tx.send(());
        })?;
    Ok((ours, Drained(done_rx)))
}

/// Opens a serial port: `baud`, 8 data bits, no parity, 2 stop bits (the ZVT default).
pub fn open_serial(path: &str, baud: u32) -> anyhow::Result<DuplexStream> {
    open_serial_drained(path, baud).map(|(stream, _)| stream)
}

/// [`open_serial`], with the signal that every byte written reached the port.
pub fn open_serial_drained(path: &str, baud: u32) -> anyhow::Result<(DuplexStream, Drained)> {
    let port = serialport::new(path, baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::Two)
        .flow_control(serialport::FlowControl::None)
        .timeout(Duration::from_millis(50))
        .open()
        .map_err(|err| anyhow::anyhow!("cannot open serial port {path}: {err}"))?;
    bridge_drained(port, path)
}

/// A new pty pair: the master as an async stream, and the slave's path (what a cash
/// register, or `poslab ecr --serial`, opens). The returned guard keeps the slave open so
/// the master does not see a hang-up between two ECR sessions.
#[cfg(unix)]
pub fn open_pty() -> anyhow::Result<(DuplexStream, String, PtyGuard)> {
    use serialport::SerialPort;
    let (mut master, slave) = serialport::TTYPort::pair()
        .map_err(|err| anyhow::anyhow!("cannot open a pty pair: {err}"))?;
    let path = slave
        .name()
        .ok_or_else(|| anyhow::anyhow!("the pty slave has no name"))?;
    master
        .set_timeout(Duration::from_millis(50))
        .map_err(|err| anyhow::anyhow!("pty: {err}"))?;
    let stream = bridge(Box::new(master), &path)?;
    Ok((stream, path, PtyGuard { _slave: slave }))
}

/// Keeps a pty's slave side open.
#[cfg(unix)]
pub struct PtyGuard {
    _slave: serialport::TTYPort,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_is_a_plausible_date() {
        let w = wall_now();
        assert!(w.year >= 2024 && (1..=12).contains(&w.month) && (1..=31).contains(&w.day));
        assert!(w.hour < 24 && w.minute < 60 && w.second < 60);
    }
}
