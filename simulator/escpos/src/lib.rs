//! ESC/POS: streaming parser into a receipt model, and the receipt printer as a state
//! machine. Sans-IO: bytes and `now` in; receipts, status bytes and deadlines out.
//!
//! - [`codec`]: the streaming parser (bytes split anywhere → [`codec::Command`]s with offsets);
//! - [`device`]: the [`Printer`] (faults, status answers, ASB, slow printing as deadlines);
//! - [`model`]: the [`Receipt`] model;
//! - [`render`]: plain text, PNG and JSON of a receipt.

#![forbid(unsafe_code)]

pub mod barcode;
pub mod codec;
pub mod codepage;
mod codepage_tables;
pub mod device;
mod font;
pub mod fuzz;
pub mod model;
pub mod render;

pub use device::{parse_faults, Config, Event, Fault, FaultKind, Printer, Status};
pub use model::Receipt;

/// Errors of this crate (the parser itself never fails: it reports diagnostics).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad fault '{spec}': {why}")]
    Fault { spec: String, why: String },
    #[error("cannot render receipt: {0}")]
    Render(String),
}

/// Prints a whole byte stream on a fresh printer and returns the receipts (the receipt in
/// progress at the end, if any, comes last, uncut).
pub fn print_stream(config: Config, bytes: &[u8]) -> Vec<Receipt> {
    let mut printer = Printer::new(config);
    printer.handle_bytes(std::time::Duration::ZERO, bytes);
    printer.handle_end_of_stream(std::time::Duration::ZERO);
    let mut out = Vec::new();
    while let Some(e) = printer.poll_event() {
        if let Event::Receipt(r) = e {
            out.push(r);
        }
    }
    out.extend(printer.finish_receipt());
    out
}
