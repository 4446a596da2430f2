//! The reference terminal's sans-IO parts.
//!
//! The terminal itself (`poslab terminal`, and the embedded device under test of the
//! default bench) runs in `src/terminal/`: it owns the links and the clock. Everything it
//! decides lives here, as plain functions and data: the keypad link codec, the ISO 8583
//! requests it builds and the answers it reads, the EMV kernel steps, receipts, totals and
//! the store-and-forward queue.

pub mod emv;
pub mod firmware;
pub mod fuzz;
pub mod iso;
pub mod keypad;
pub mod params;
pub mod receipt;
pub mod txn;

/// What went wrong in the terminal's own logic (a link's codec has its own errors).
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("the answer's MAC does not verify")]
    BadMac,
    #[error("key exchange: {0}")]
    KeyExchange(String),
    #[error("card: {0}")]
    Card(String),
}
