//! The reference terminal's sans-IO parts.
//!
//! The terminal itself (`poslab terminal`, and the embedded device under test of the
//! default bench) runs in `src/terminal/`: it owns the links and the clock. Everything it
//! decides lives here, as plain functions and data: the keypad link codec, the ISO 8583
//! requests it builds and the answers it reads, the EMV kernel steps, receipts, totals and
//! the store-and-forward queue.

pub mod keypad;
