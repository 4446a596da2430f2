//! The bench at run time: DUT adapters that turn a node's "where" (from a bench file,
//! `poslab_bench`) into a byte stream or a supervised program.
//!
//! - [`tcp::connect`] (`tcp: HOST:PORT`, retry with backoff and a time limit) and
//!   [`tcp::Listen`] (`listen: ADDR:PORT`, accept one connection);
//! - [`serial::open`] (`serial: ...`, an async stream over the port's descriptor);
//! - [`process::ProcessDut`] (`process: ...`): ptys and loopback ports for the
//!   placeholders ([`process::Wiring`]), ready pattern, output to the journal, exit / crash /
//!   hang detection, restart policy, `power_cycle()`;
//! - [`power::PowerHooks`] (`power: {off, on}`);
//! - [`time::runtime_for`]: simulated or real time, from [`poslab_bench::Bench::time_mode`].
//!
//! [`open`] is the one entry point for a real node's attachment: it gives a [`DutStream`]
//! that a device adapter serves like any `AsyncRead + AsyncWrite`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poslab_bench::{Node, Via};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::journal::Journal;
use crate::pty::FdStream;

pub mod live;
pub mod power;
pub mod process;
pub mod serial;
pub mod tcp;
pub mod time;
pub mod tms_node;

/// Why an adapter could not give a node's byte stream, or a process node failed.
#[derive(Debug, thiserror::Error)]
pub enum DutError {
    #[error("cannot connect to {addr} after {attempts} attempts in {}: {last}", humantime::format_duration(*waited))]
    Connect {
        addr: String,
        attempts: u32,
        waited: Duration,
        last: String,
    },
    #[error("nothing connected to {addr} within {}", humantime::format_duration(*waited))]
    AcceptTimeout { addr: String, waited: Duration },
    #[error("serial port {path}: {err}")]
    Serial { path: String, err: String },
    #[error("{what}: {err}")]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
    #[error("node {node}: {message}")]
    Config { node: String, message: String },
    #[error("node {node}: cannot start {program}: {err}")]
    Spawn {
        node: String,
        program: String,
        #[source]
        err: std::io::Error,
    },
    #[error("node {node}: the program ended ({exit})")]
    Exited { node: String, exit: String },
    #[error("node {node}: no sign of life for {}", humantime::format_duration(*silent))]
    Hung { node: String, silent: Duration },
    #[error("node {node}: not ready within {}", humantime::format_duration(*waited))]
    NotReady { node: String, waited: Duration },
    #[error("node {node}: interrupted by a power cycle")]
    Interrupted { node: String },
    #[error("node {node}: its supervisor has ended")]
    Supervisor { node: String },
    #[error("power hook `{command}`: {problem}")]
    Hook { command: String, problem: String },
}

/// Time limits for [`open`].
#[derive(Debug, Clone, Copy)]
pub struct OpenLimits {
    /// `tcp:`: retry schedule while the device boots.
    pub connect: tcp::Retry,
    /// `listen:`: how long to wait for the device to connect.
    pub accept: Duration,
}

impl Default for OpenLimits {
    fn default() -> Self {
        OpenLimits {
            connect: tcp::Retry::default(),
            accept: Duration::from_secs(60),
        }
    }
}

/// A real node's byte stream, whatever carries it.
pub enum DutStream {
    Tcp(TcpStream),
    Serial(FdStream),
}

/// Opens the attachment `via` of real node `name` (`tcp`, `listen` or `serial`). A process
/// node is reached through its [`process::Wiring`], and `peer` through the emulated end's
/// own listener, so those are errors here.
pub async fn open(
    name: &str,
    node: &Node,
    via: Via,
    limits: OpenLimits,
    journal: &Journal,
) -> Result<DutStream, DutError> {
    let missing = |what: &str| DutError::Config {
        node: name.to_owned(),
        message: format!("no `{what}` attachment"),
    };
    match via {
        Via::Tcp => {
            let addr = node.tcp.as_deref().ok_or_else(|| missing("tcp"))?;
            tcp::connect(name, addr, limits.connect, journal)
                .await
                .map(DutStream::Tcp)
        }
        Via::Listen => {
            let addr = node.listen.as_deref().ok_or_else(|| missing("listen"))?;
            let listen = tcp::Listen::bind(addr).await?;
            let (stream, _) = listen.accept(name, limits.accept, journal).await?;
            Ok(DutStream::Tcp(stream))
        }
        Via::Serial => {
            let spec = node.serial.as_ref().ok_or_else(|| missing("serial"))?;
            serial::open(name, spec, journal).map(DutStream::Serial)
        }
        Via::Process | Via::Peer => Err(DutError::Config {
            node: name.to_owned(),
            message: format!(
                "`{}` is not opened as a stream: a process node is wired through its placeholders, a peer dials the emulated end",
                via.as_str()
            ),
        }),
    }
}

impl AsyncRead for DutStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DutStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            DutStream::Serial(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DutStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DutStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            DutStream::Serial(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DutStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            DutStream::Serial(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DutStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            DutStream::Serial(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
