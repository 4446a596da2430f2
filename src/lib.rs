//! poslab: the runtime around the sans-IO simulator crates.
//!
//! The crates under `simulator/` hold codecs and device state machines; they know nothing
//! of tokio. This crate gives them transports (TCP, serial, pty, in-memory), servers in the
//! mini-redis shape, the journal writer and the command line.

pub mod bench;
pub mod card;
pub mod chaos;
pub mod cli;
pub mod cmd;
pub mod faultlink;
pub mod fleet;
pub mod host;
pub mod journal;
pub mod link;
pub mod load;
pub mod net;
pub mod printer;
pub mod proxy;
pub mod pty;
pub mod report;
pub mod run;
pub mod terminal;
pub mod tms;
pub mod tms_api;
pub mod zvt;
