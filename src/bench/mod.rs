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

use std::time::Duration;

pub mod power;
pub mod process;
pub mod serial;
pub mod tcp;
pub mod time;

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
