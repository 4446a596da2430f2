//! The PIN pad / display link: lines from the pad (keys, swipes, self-test answers) go to
//! the core, display lines from the core go to the pad.

use poslab_terminal::keypad::{self, Decoder, PadLine};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::link::Incoming;

/// The core's end of the pad link.
pub(crate) struct Pad {
    pub(crate) rx: mpsc::UnboundedReceiver<PadLine>,
    tx: mpsc::UnboundedSender<PadLine>,
}

impl Pad {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<PadLine>,
        tx: mpsc::UnboundedSender<PadLine>,
    ) -> Pad {
        Pad { rx, tx }
    }

    pub(crate) fn send(&self, line: PadLine) {
        let _ = self.tx.send(line);
    }

    /// Forgets keys pressed before now (a stray key must not answer the next prompt).
    pub(crate) fn drain(&mut self) -> Vec<PadLine> {
        let mut out = Vec::new();
        while let Ok(l) = self.rx.try_recv() {
            out.push(l);
        }
        out
    }
}

pub(crate) async fn serve(
    mut incoming: Incoming,
    to_core: mpsc::UnboundedSender<PadLine>,
    mut from_core: mpsc::UnboundedReceiver<PadLine>,
    journal: Journal,
    shutdown: CancellationToken,
) {
    let mut stream = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return,
        s = incoming.next() => match s { Some(s) => s, None => return },
    };
    let mut decoder = Decoder::new();
    let mut open = true;
    let mut buf = vec![0u8; 1024];
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            next = incoming.next(), if open => match next {
                Some(s) => { stream = s; decoder = Decoder::new(); }
                None => open = false,
            },
            line = from_core.recv() => match line {
                Some(line) => {
                    let bytes = keypad::encode(&line);
                    if stream.write_all(&bytes).await.is_err() {
                        tracing::warn!("keypad link is down; waiting for it");
                    }
                    let _ = stream.flush().await;
                }
                None => return,
            },
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return,
                        next = incoming.next(), if open => match next {
                            Some(s) => { stream = s; decoder = Decoder::new(); }
                            None => open = false,
                        },
                    }
                }
                Ok(n) => {
                    decoder.push(buf.get(..n).unwrap_or(&[]));
                    while let Some(item) = decoder.next() {
                        match item {
                            Ok(line) if line.from_pad() => { let _ = to_core.send(line); }
                            Ok(line) => {
                                journal.record("terminal/keypad", "bad-line", json!({"error": format!("a terminal line from the pad: {line}")}));
                            }
                            Err(e) => {
                                journal.record("terminal/keypad", "bad-line", json!({"error": e.to_string()}));
                            }
                        }
                    }
                }
            },
        }
    }
}
