//! The terminal's link to its receipt printer (ESC/POS): asks the real-time status
//! (`DLE EOT n`) before and after each receipt, and tells the caller whether the receipt
//! made it onto paper. A receipt that did not is held by the terminal and printed again
//! when the printer is back.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::journal::Journal;
use crate::link::{BoxIo, Dialer};

/// What stops the printer, as its status bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrinterProblem {
    Unreachable,
    Offline,
    CoverOpen,
    PaperOut,
    /// The paper jammed (an autocutter error).
    Jammed,
    /// Paper ran out (or the printer went offline) while the receipt printed.
    CutShort,
}

impl PrinterProblem {
    pub fn operator_text(self) -> &'static str {
        match self {
            PrinterProblem::Unreachable => "PRINTER NOT CONNECTED",
            PrinterProblem::Offline => "PRINTER OFFLINE",
            PrinterProblem::CoverOpen => "PRINTER COVER OPEN",
            PrinterProblem::Jammed => "PRINTER JAMMED",
            PrinterProblem::PaperOut | PrinterProblem::CutShort => "PRINTER OUT OF PAPER",
        }
    }
}

pub struct PrinterLink {
    dialer: Dialer,
    conn: Option<BoxIo>,
    journal: Journal,
    timeout: Duration,
    /// The paper near-end sensor said so at the last check.
    near_end: bool,
    /// The operator was told of it (once per roll).
    near_end_told: bool,
}

/// A real-time status byte has bits 1 and 4 set and bits 0 and 7 clear (every `n`).
fn is_status_byte(b: u8) -> bool {
    b & 0x93 == 0x12
}

/// Bytes skipped while looking for a status byte before the line is taken for dead.
const MAX_JUNK: usize = 16;

impl PrinterLink {
    pub fn new(dialer: Dialer, journal: Journal) -> PrinterLink {
        PrinterLink {
            dialer,
            conn: None,
            journal,
            timeout: Duration::from_secs(2),
            near_end: false,
            near_end_told: false,
        }
    }

    /// Once per roll, when the paper is near its end: the operator should change it soon.
    pub fn near_end_news(&mut self) -> bool {
        if self.near_end && !self.near_end_told {
            self.near_end_told = true;
            return true;
        }
        if !self.near_end {
            self.near_end_told = false;
        }
        false
    }

    async fn conn(&mut self) -> Result<&mut BoxIo, PrinterProblem> {
        if self.conn.is_none() {
            let c = tokio::time::timeout(self.timeout, self.dialer.dial())
                .await
                .map_err(|_| PrinterProblem::Unreachable)?
                .map_err(|_| PrinterProblem::Unreachable)?;
            self.conn = Some(c);
        }
        self.conn.as_mut().ok_or(PrinterProblem::Unreachable)
    }

    /// One real-time status byte (`DLE EOT n`). Bytes that cannot be a status byte
    /// (noise on the line) are skipped and journaled; only a line that says nothing
    /// sensible makes the printer unreachable.
    async fn status(&mut self, n: u8) -> Result<u8, PrinterProblem> {
        let timeout = self.timeout;
        let conn = self.conn().await?;
        let mut junk = Vec::new();
        let r = async {
            conn.write_all(&[0x10, 0x04, n]).await?;
            conn.flush().await?;
            loop {
                let mut b = [0u8; 1];
                conn.read_exact(&mut b).await?;
                if is_status_byte(b[0]) {
                    return Ok::<Option<u8>, std::io::Error>(Some(b[0]));
                }
                junk.push(b[0]);
                if junk.len() > MAX_JUNK {
                    return Ok(None);
                }
            }
        };
        let answer = tokio::time::timeout(timeout, r).await;
        if !junk.is_empty() {
            self.journal.record(
                "printer",
                "junk",
                json!({"request": format!("DLE EOT {n}"), "skipped": hex::encode_upper(&junk)}),
            );
        }
        match answer {
            Ok(Ok(Some(b))) => Ok(b),
            _ => {
                self.conn = None;
                Err(PrinterProblem::Unreachable)
            }
        }
    }

    /// Whether the printer can print now.
    pub async fn check(&mut self) -> Result<(), PrinterProblem> {
        let printer = self.status(1).await?;
        let paper = self.status(4).await?;
        if paper & 0x60 == 0x60 {
            return Err(PrinterProblem::PaperOut);
        }
        self.near_end = paper & 0x0C == 0x0C;
        if printer & 0x08 != 0 {
            let offline = self.status(2).await?;
            if offline & 0x04 != 0 {
                return Err(PrinterProblem::CoverOpen);
            }
            if offline & 0x20 != 0 {
                return Err(PrinterProblem::PaperOut);
            }
            if offline & 0x40 != 0 && self.status(3).await? & 0x08 != 0 {
                return Err(PrinterProblem::Jammed);
            }
            return Err(PrinterProblem::Offline);
        }
        Ok(())
    }

    /// Prints one receipt; `Ok` only when the printer was ready before and after.
    pub async fn print(&mut self, what: &str, bytes: &[u8]) -> Result<(), PrinterProblem> {
        if let Err(p) = self.check().await {
            self.journal.record(
                "printer",
                "held",
                json!({"receipt": what, "why": p.operator_text()}),
            );
            return Err(p);
        }
        let timeout = self.timeout;
        let conn = self.conn().await?;
        let w = async {
            conn.write_all(bytes).await?;
            conn.flush().await
        };
        if !matches!(tokio::time::timeout(timeout, w).await, Ok(Ok(()))) {
            self.conn = None;
            return Err(PrinterProblem::Unreachable);
        }
        match self.check().await {
            Ok(()) => {
                self.journal.record(
                    "printer",
                    "printed",
                    json!({"receipt": what, "bytes": bytes.len()}),
                );
                Ok(())
            }
            Err(p) => {
                // what the printer did not print stays in its buffer and would come out
                // after the fault, before the reprint: clear it (DLE ENQ 2, recover and
                // clear the buffers) so the held receipt is printed whole, once
                if let Some(conn) = self.conn.as_mut() {
                    if conn.write_all(&[0x10, 0x05, 0x02]).await.is_err() {
                        self.conn = None;
                    }
                }
                self.journal.record(
                    "printer",
                    "held",
                    json!({"receipt": what, "why": "the printer stopped while printing", "problem": p.operator_text()}),
                );
                Err(if p == PrinterProblem::Jammed {
                    PrinterProblem::Jammed
                } else {
                    PrinterProblem::CutShort
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_status_byte;

    #[test]
    fn status_bytes_are_told_from_noise_by_their_fixed_bits() {
        // all well, paper out (n=4), cover open (n=2), paper near end (n=4), offline (n=1)
        for b in [0x12, 0x72, 0x16, 0x1E, 0x1A] {
            assert!(is_status_byte(b), "{b:02X}");
        }
        for b in [0x00, 0xFF, 0x13, 0x92, 0x10, 0x02, 0x41] {
            assert!(!is_status_byte(b), "{b:02X}");
        }
    }
}
