//! Message-aware faults: a framer cuts the byte stream into messages, a [`MessageFault`]
//! decides per message (drop, delay, duplicate, replace).
//!
//! The framer is user-supplied (any `FnMut(&[u8]) -> Result<Option<usize>, FaultError>`, or
//! [`LengthPrefix2`]), so the ISO 8583 dialects, STX/ETX framing and APDUs plug in later
//! without this crate knowing them. Bytes that do not yet make a whole message wait in the
//! stage; if the framer rejects the stream, the stage stops framing and passes every byte
//! through unchanged (a fault stage never loses bytes by accident).

use std::time::Duration;

use serde_json::json;

use crate::stages::Base;
use crate::{ms, Chunk, FaultError, Item, Out, Stage};

/// Cuts a byte stream into messages.
pub trait Framer: Send {
    /// The length of the first whole message in `buf` (header included), `Ok(None)` when
    /// more bytes are needed.
    fn frame_len(&mut self, buf: &[u8]) -> Result<Option<usize>, FaultError>;
}

impl<F> Framer for F
where
    F: FnMut(&[u8]) -> Result<Option<usize>, FaultError> + Send,
{
    fn frame_len(&mut self, buf: &[u8]) -> Result<Option<usize>, FaultError> {
        self(buf)
    }
}

/// A 2-byte big-endian length header followed by that many bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct LengthPrefix2;

impl Framer for LengthPrefix2 {
    fn frame_len(&mut self, buf: &[u8]) -> Result<Option<usize>, FaultError> {
        match buf {
            [hi, lo, ..] => {
                let body = usize::from(u16::from_be_bytes([*hi, *lo]));
                let total = 2 + body;
                Ok((buf.len() >= total).then_some(total))
            }
            _ => Ok(None),
        }
    }
}

/// What to do with one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageDecision {
    Pass,
    Drop,
    /// Deliver it (and so everything after it: a stream keeps its order) this much later.
    Delay(Duration),
    Duplicate,
    Replace(Vec<u8>),
}

/// A per-message fault rule. `frame` is one whole message, header included.
pub trait MessageFault: Send {
    fn handle_message(&mut self, frame: &[u8], now: Duration) -> MessageDecision;
}

/// The action of an [`NthMatching`] rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageAction {
    Drop,
    Delay,
    Duplicate,
}

/// Applies `action` to the `n`th message (1-based) for which `predicate` holds, once.
pub struct NthMatching<P> {
    pub predicate: P,
    pub n: u64,
    pub action: MessageAction,
    pub delay: Duration,
    matched: u64,
}

impl<P: FnMut(&[u8]) -> bool + Send> NthMatching<P> {
    pub fn new(predicate: P, n: u64, action: MessageAction, delay: Duration) -> Self {
        NthMatching {
            predicate,
            n: n.max(1),
            action,
            delay,
            matched: 0,
        }
    }
}

impl<P: FnMut(&[u8]) -> bool + Send> MessageFault for NthMatching<P> {
    fn handle_message(&mut self, frame: &[u8], _now: Duration) -> MessageDecision {
        if self.matched >= self.n || !(self.predicate)(frame) {
            return MessageDecision::Pass;
        }
        self.matched += 1;
        if self.matched < self.n {
            return MessageDecision::Pass;
        }
        match self.action {
            MessageAction::Drop => MessageDecision::Drop,
            MessageAction::Delay => MessageDecision::Delay(self.delay),
            MessageAction::Duplicate => MessageDecision::Duplicate,
        }
    }
}

/// A stage that frames the stream and lets a [`MessageFault`] decide per message.
pub struct MessageStage {
    base: Base,
    framer: Box<dyn Framer>,
    fault: Box<dyn MessageFault>,
    buf: Vec<u8>,
    buf_at: Duration,
    index: u64,
    unframed: bool,
    last: Duration,
}

impl MessageStage {
    pub fn new(base: Base, framer: Box<dyn Framer>, fault: Box<dyn MessageFault>) -> Self {
        MessageStage {
            base,
            framer,
            fault,
            buf: Vec::new(),
            buf_at: Duration::ZERO,
            index: 0,
            unframed: false,
            last: Duration::ZERO,
        }
    }

    fn emit(&mut self, data: Vec<u8>, at: Duration, out: &mut Out) {
        let at = at.max(self.last);
        self.last = at;
        out.push(Item::Data(Chunk { data, at }));
    }

    fn flush(&mut self, at: Duration, out: &mut Out) {
        if !self.buf.is_empty() {
            let data = std::mem::take(&mut self.buf);
            self.emit(data, at.max(self.buf_at), out);
        }
    }

    fn frames(&mut self, now: Duration, out: &mut Out) {
        while !self.unframed && !self.buf.is_empty() {
            let len = match self.framer.frame_len(&self.buf) {
                Ok(Some(len)) if len > 0 && len <= self.buf.len() => len,
                Ok(Some(len)) => {
                    self.unframed = true;
                    let reason =
                        format!("framer returned length {len} for {} bytes", self.buf.len());
                    self.base.event(now, out, json!({"unframed": reason}));
                    break;
                }
                Ok(None) => return,
                Err(err) => {
                    self.unframed = true;
                    self.base
                        .event(now, out, json!({"unframed": err.to_string()}));
                    break;
                }
            };
            let rest = self.buf.split_off(len);
            let frame = std::mem::replace(&mut self.buf, rest);
            self.index += 1;
            let at = self.buf_at;
            match self.fault.handle_message(&frame, now) {
                MessageDecision::Pass => self.emit(frame, at, out),
                MessageDecision::Drop => {
                    self.base.event(
                        now,
                        out,
                        json!({"message": self.index, "bytes": frame.len(), "decision": "drop"}),
                    );
                }
                MessageDecision::Delay(d) => {
                    self.base.event(
                        now,
                        out,
                        json!({"message": self.index, "bytes": frame.len(), "decision": "delay", "delay_ms": ms(d)}),
                    );
                    self.emit(frame, at + d, out);
                }
                MessageDecision::Duplicate => {
                    self.base.event(
                        now,
                        out,
                        json!({"message": self.index, "bytes": frame.len(), "decision": "duplicate"}),
                    );
                    self.emit(frame.clone(), at, out);
                    self.emit(frame, at, out);
                }
                MessageDecision::Replace(new) => {
                    self.base.event(
                        now,
                        out,
                        json!({"message": self.index, "bytes": frame.len(), "decision": "replace", "new_bytes": new.len()}),
                    );
                    self.emit(new, at, out);
                }
            }
        }
        if self.unframed {
            self.flush(now, out);
        }
    }
}

impl Stage for MessageStage {
    fn name(&self) -> &str {
        &self.base.name
    }
    fn kind(&self) -> &'static str {
        self.base.kind
    }
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        match item {
            Item::Data(c) => {
                if self.unframed {
                    self.emit(c.data, c.at, out);
                    return;
                }
                self.buf.extend_from_slice(&c.data);
                self.buf_at = self.buf_at.max(c.at);
                self.frames(now, out);
            }
            other => {
                self.flush(other.at(), out);
                let at = other.at().max(self.last);
                out.push(other.with_at(at));
            }
        }
    }
    fn handle_remove(&mut self, now: Duration, out: &mut Out) {
        self.flush(now, out);
    }
    fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RngStream;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    fn stage(action: MessageAction, n: u64) -> MessageStage {
        let rule = NthMatching::new(
            |f: &[u8]| f.get(2) == Some(&b'Q'),
            n,
            action,
            Duration::from_secs(5),
        );
        MessageStage::new(
            Base::new("m", "message", RngStream::derive(0, "m")),
            Box::new(LengthPrefix2),
            Box::new(rule),
        )
    }

    fn run(stage: &mut MessageStage, input: &[Vec<u8>]) -> Vec<Chunk> {
        let mut out = Out::default();
        for (i, piece) in input.iter().enumerate() {
            stage.handle(
                Item::Data(Chunk {
                    data: piece.clone(),
                    at: Duration::from_millis(i as u64),
                }),
                Duration::from_millis(i as u64),
                &mut out,
            );
        }
        out.items
            .into_iter()
            .filter_map(|i| match i {
                Item::Data(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn drops_the_second_matching_message_across_split_reads() {
        let mut s = stage(MessageAction::Drop, 2);
        let mut stream = frame(b"Q1");
        stream.extend(frame(b"A1"));
        stream.extend(frame(b"Q2"));
        stream.extend(frame(b"Q3"));
        let pieces: Vec<Vec<u8>> = stream.chunks(3).map(|c| c.to_vec()).collect();
        let out: Vec<u8> = run(&mut s, &pieces)
            .into_iter()
            .flat_map(|c| c.data)
            .collect();
        let mut want = frame(b"Q1");
        want.extend(frame(b"A1"));
        want.extend(frame(b"Q3"));
        assert_eq!(out, want);
    }

    #[test]
    fn delays_and_duplicates_the_first_match() {
        let mut s = stage(MessageAction::Delay, 1);
        let out = run(&mut s, &[frame(b"A"), frame(b"Q"), frame(b"B")]);
        assert_eq!(out[1].at, Duration::from_millis(1) + Duration::from_secs(5));
        assert_eq!(out[2].at, out[1].at, "later messages keep their order");

        let mut s = stage(MessageAction::Duplicate, 1);
        let out = run(&mut s, &[frame(b"Q"), frame(b"Q")]);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn a_rejecting_framer_passes_bytes_through() {
        let framer = |buf: &[u8]| -> Result<Option<usize>, FaultError> {
            Err(FaultError::Framing {
                offset: 0,
                reason: format!("{} bytes of garbage", buf.len()),
            })
        };
        let rule = NthMatching::new(|_: &[u8]| true, 1, MessageAction::Drop, Duration::ZERO);
        let mut s = MessageStage::new(
            Base::new("m", "message", RngStream::derive(0, "m")),
            Box::new(framer),
            Box::new(rule),
        );
        let out: Vec<u8> = run(&mut s, &[b"abc".to_vec(), b"def".to_vec()])
            .into_iter()
            .flat_map(|c| c.data)
            .collect();
        assert_eq!(out, b"abcdef");
    }
}
