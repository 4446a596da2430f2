//! The line between ECR and terminal, under the APDU protocol.
//!
//! - TCP: APDUs go raw in both directions; nothing to acknowledge at this level.
//! - Serial: each APDU travels in a frame ([`crate::frame`]); the receiver answers `ACK`
//!   (good CRC) or `NAK`; the sender retransmits on `NAK` or when no answer came within
//!   `ack_timeout`, at most `max_retries` times, then reports the APDU as lost. One frame
//!   is in flight at a time; others queue.
//!
//! The APDU-level acknowledgement (`80 00 00`) is the roles' business, not the link's.

use std::collections::VecDeque;
use std::time::Duration;

use crate::apdu::{self, Apdu};
use crate::frame::{self, Item};
use crate::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Serial,
}

#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    pub transport: Transport,
    /// Serial only: how long to wait for `ACK`/`NAK` after a frame.
    pub ack_timeout: Duration,
    /// Serial only: retransmissions after the first attempt.
    pub max_retries: u8,
}

impl LinkConfig {
    pub fn tcp() -> LinkConfig {
        LinkConfig {
            transport: Transport::Tcp,
            ack_timeout: Duration::from_secs(5),
            max_retries: 3,
        }
    }
    pub fn serial() -> LinkConfig {
        LinkConfig {
            transport: Transport::Serial,
            ..LinkConfig::tcp()
        }
    }
}

impl LinkConfig {
    /// How long an application waits for the peer's `80 00 00`, given its own timeout: on
    /// a serial line at least the peer's whole retry span (each of its attempts at that
    /// frame after an ACK timeout) and a second more, so that the peer's last
    /// retransmission is not crossed by a give-up (a repeat-receipt request, a dropped
    /// command). Over TCP the timeout as given.
    pub fn answer_wait(&self, timeout: Duration) -> Duration {
        match self.transport {
            Transport::Tcp => timeout,
            Transport::Serial => {
                let span = self.ack_timeout * (u32::from(self.max_retries) + 1);
                timeout.max(span + Duration::from_secs(1))
            }
        }
    }
}

/// What the link reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// An APDU arrived.
    Received(Apdu),
    /// Serial: a frame was rejected (and NAKed), or its content was not one APDU.
    Rejected(String),
    /// Serial: our frame got a `NAK` or no answer; sent again (attempt number).
    Retransmitted { attempt: u8, reason: &'static str },
    /// Serial: this APDU was given up after the retries.
    Lost(Apdu),
    /// Serial: bytes outside any frame were skipped.
    Noise(usize),
}

struct Inflight {
    apdu: Apdu,
    frame: Vec<u8>,
    attempts: u8,
    deadline: Time,
}

pub struct Link {
    config: LinkConfig,
    rx: Vec<u8>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    outbox: VecDeque<Apdu>,
    inflight: Option<Inflight>,
}

impl Link {
    pub fn new(config: LinkConfig) -> Link {
        Link {
            config,
            rx: Vec::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            outbox: VecDeque::new(),
            inflight: None,
        }
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Forgets everything in flight (a new connection).
    pub fn reset(&mut self) {
        *self = Link::new(self.config);
    }

    /// Gives up the frames still waiting to be sent or acknowledged (their command is
    /// over); what is already queued for writing (acknowledgements) still goes out.
    pub fn abandon(&mut self) {
        self.outbox.clear();
        self.inflight = None;
    }

    pub fn send(&mut self, apdu: Apdu, now: Time) {
        match self.config.transport {
            Transport::Tcp => self.tx.push_back(apdu.to_bytes()),
            Transport::Serial => {
                self.outbox.push_back(apdu);
                self.pump(now);
            }
        }
    }

    fn pump(&mut self, now: Time) {
        if self.inflight.is_some() {
            return;
        }
        if let Some(apdu) = self.outbox.pop_front() {
            let frame = frame::encode(&apdu.to_bytes());
            self.tx.push_back(frame.clone());
            self.inflight = Some(Inflight {
                apdu,
                frame,
                attempts: 1,
                deadline: now + self.config.ack_timeout,
            });
        }
    }

    fn retransmit(&mut self, now: Time, reason: &'static str) {
        let Some(mut f) = self.inflight.take() else {
            return;
        };
        if f.attempts > self.config.max_retries {
            self.events.push_back(LinkEvent::Lost(f.apdu));
            self.pump(now);
            return;
        }
        f.attempts += 1;
        f.deadline = now + self.config.ack_timeout;
        self.tx.push_back(f.frame.clone());
        self.events.push_back(LinkEvent::Retransmitted {
            attempt: f.attempts,
            reason,
        });
        self.inflight = Some(f);
    }

    pub fn handle_input(&mut self, bytes: &[u8], now: Time) {
        self.rx.extend_from_slice(bytes);
        let mut used_total = 0;
        loop {
            let buf = self.rx.get(used_total..).unwrap_or(&[]);
            match self.config.transport {
                Transport::Tcp => match apdu::decode(buf) {
                    Ok(Some((apdu, used))) => {
                        used_total += used;
                        self.events.push_back(LinkEvent::Received(apdu));
                    }
                    _ => break,
                },
                Transport::Serial => match frame::decode(buf) {
                    Ok(Some((item, used))) => {
                        used_total += used.max(1);
                        self.on_item(item, now);
                    }
                    _ => break,
                },
            }
        }
        self.rx.drain(..used_total.min(self.rx.len()));
    }

    fn on_item(&mut self, item: Item, now: Time) {
        match item {
            Item::Ack => {
                if self.inflight.take().is_some() {
                    self.pump(now);
                }
            }
            Item::Nak => {
                if self.inflight.is_some() {
                    self.retransmit(now, "nak");
                }
            }
            Item::Frame(bytes) => match apdu::decode_exact(&bytes) {
                Ok(apdu) => {
                    self.tx.push_back(vec![frame::ACK]);
                    // The peer's application answered (80 00 / 84 xx) while our command
                    // still waits for its link ACK: that ACK was lost on the line, the
                    // command arrived. Sending it again would make the peer run it twice
                    // (ZVT frames carry no sequence number to spot the repeat).
                    let answers_ours = is_answer(&apdu)
                        && self.inflight.as_ref().is_some_and(|f| !is_answer(&f.apdu));
                    self.events.push_back(LinkEvent::Received(apdu));
                    if answers_ours {
                        self.inflight = None;
                        self.pump(now);
                    }
                }
                Err(err) => {
                    self.tx.push_back(vec![frame::NAK]);
                    self.events.push_back(LinkEvent::Rejected(err.to_string()));
                }
            },
            // A frame cut short by a new DLE STX: its sender already gave up on it and is
            // sending again (that is the new frame). A NAK now would arrive after the new
            // frame's ACK and be taken for its answer, and the sender would repeat a frame
            // that got through, once more than it should.
            Item::Bad(fault @ frame::Fault::Restarted { .. }) => {
                self.events
                    .push_back(LinkEvent::Rejected(format!("{fault} (not NAKed)")));
            }
            Item::Bad(fault) => {
                self.tx.push_back(vec![frame::NAK]);
                self.events
                    .push_back(LinkEvent::Rejected(fault.to_string()));
            }
            Item::Noise(n) => self.events.push_back(LinkEvent::Noise(n)),
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if self.inflight.as_ref().is_some_and(|f| f.deadline <= now) {
            self.retransmit(now, "no answer");
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        self.inflight.as_ref().map(|f| f.deadline)
    }

    /// Serial: a frame of ours is still being delivered (waiting for its `ACK`, or queued
    /// behind one): it may yet reach the peer, so the command is not lost yet.
    pub fn is_delivering(&self) -> bool {
        self.inflight.is_some() || !self.outbox.is_empty()
    }

    /// True when nothing waits to be sent or acknowledged.
    pub fn is_idle(&self) -> bool {
        self.tx.is_empty() && self.outbox.is_empty() && self.inflight.is_none()
    }
}

/// An application-level answer to a command: `80 00` or a negative `84 xx`.
fn is_answer(apdu: &Apdu) -> bool {
    matches!(apdu.command.0, 0x80 | 0x84)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::Command;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn serial_retransmits_on_nak_and_timeout_then_gives_up() {
        let mut link = Link::new(LinkConfig::serial());
        link.send(
            Apdu::new(Command::AUTHORISATION, vec![0x10]),
            Duration::ZERO,
        );
        let first = link.poll_transmit().unwrap();
        assert_eq!(first, frame::encode(&[0x06, 0x01, 0x01, 0x10]));
        link.handle_input(&[frame::NAK], S);
        assert_eq!(link.poll_transmit().unwrap(), first);
        assert_eq!(link.poll_timeout(), Some(S * 6));
        link.handle_timeout(S * 6);
        assert_eq!(link.poll_transmit().unwrap(), first);
        link.handle_timeout(S * 11);
        assert_eq!(link.poll_transmit().unwrap(), first);
        let events: Vec<_> = std::iter::from_fn(|| link.poll_event()).collect();
        assert_eq!(events.len(), 3, "{events:?}");
        link.handle_timeout(S * 16);
        assert_eq!(link.poll_transmit(), None, "1 try + 3 retries, no more");
        assert!(matches!(link.poll_event(), Some(LinkEvent::Lost(_))));
        assert!(link.is_idle());
    }

    #[test]
    fn serial_acks_good_frames_and_naks_bad_ones() {
        let mut link = Link::new(LinkConfig::serial());
        let mut good = frame::encode(&[0x80, 0x00, 0x00]);
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 2] ^= 1;
        good.splice(0..0, bad);
        link.handle_input(&good[..5], Duration::ZERO);
        link.handle_input(&good[5..], Duration::ZERO);
        assert_eq!(link.poll_transmit(), Some(vec![frame::NAK]));
        assert_eq!(link.poll_transmit(), Some(vec![frame::ACK]));
        assert!(matches!(link.poll_event(), Some(LinkEvent::Rejected(_))));
        assert_eq!(link.poll_event(), Some(LinkEvent::Received(Apdu::ack())));
    }

    #[test]
    fn serial_sends_one_frame_at_a_time() {
        let mut link = Link::new(LinkConfig::serial());
        link.send(Apdu::ack(), Duration::ZERO);
        link.send(Apdu::nak(0x83), Duration::ZERO);
        assert!(link.poll_transmit().is_some());
        assert_eq!(link.poll_transmit(), None);
        link.handle_input(&[frame::ACK], S);
        assert_eq!(
            link.poll_transmit(),
            Some(frame::encode(&[0x84, 0x83, 0x00]))
        );
    }

    #[test]
    fn serial_takes_the_peers_answer_for_the_lost_ack_of_a_command() {
        let mut link = Link::new(LinkConfig::serial());
        link.send(
            Apdu::new(Command::AUTHORISATION, vec![0x10]),
            Duration::ZERO,
        );
        link.send(Apdu::ack(), Duration::ZERO);
        assert!(link.poll_transmit().is_some());
        assert_eq!(
            link.poll_transmit(),
            None,
            "the ack waits behind the command"
        );
        // the link ACK is lost on the line; the terminal's 80 00 arrives
        link.handle_input(&frame::encode(&[0x80, 0x00, 0x00]), S);
        assert_eq!(link.poll_transmit(), Some(vec![frame::ACK]));
        assert_eq!(
            link.poll_transmit(),
            Some(frame::encode(&[0x80, 0x00, 0x00])),
            "the queued frame goes out, the command is not sent again"
        );
        link.handle_input(&[frame::ACK], S);
        link.handle_timeout(S * 30);
        assert_eq!(link.poll_transmit(), None);
        assert!(link.is_idle());
        let events: Vec<_> = std::iter::from_fn(|| link.poll_event()).collect();
        assert_eq!(events, vec![LinkEvent::Received(Apdu::ack())]);
    }

    #[test]
    fn serial_does_not_take_a_status_for_the_ack_of_its_own_ack() {
        let mut link = Link::new(LinkConfig::serial());
        link.send(Apdu::ack(), Duration::ZERO);
        assert!(link.poll_transmit().is_some());
        // a new status from the terminal is no proof that our 80 00 arrived
        link.handle_input(&frame::encode(&[0x04, 0xFF, 0x01, 0x0A]), S);
        assert_eq!(link.poll_transmit(), Some(vec![frame::ACK]));
        link.handle_timeout(S * 5);
        assert_eq!(
            link.poll_transmit(),
            Some(frame::encode(&[0x80, 0x00, 0x00])),
            "sent again"
        );
    }

    #[test]
    fn serial_does_not_nak_a_frame_its_sender_restarted() {
        let mut link = Link::new(LinkConfig::serial());
        let good = frame::encode(&[0x06, 0x0F, 0x00]);
        // the first attempt lost its DLE ETX on the line; the retransmission follows
        let mut cut = good.clone();
        cut.truncate(good.len() - 4);
        cut.extend_from_slice(&good);
        link.handle_input(&cut, S);
        assert_eq!(link.poll_transmit(), Some(vec![frame::ACK]), "only the ACK");
        assert_eq!(link.poll_transmit(), None);
        let events: Vec<_> = std::iter::from_fn(|| link.poll_event()).collect();
        assert!(
            matches!(
                events.as_slice(),
                [LinkEvent::Rejected(_), LinkEvent::Received(_)]
            ),
            "{events:?}"
        );
    }

    #[test]
    fn tcp_is_raw() {
        let mut link = Link::new(LinkConfig::tcp());
        link.send(Apdu::ack(), Duration::ZERO);
        assert_eq!(link.poll_transmit(), Some(vec![0x80, 0x00, 0x00]));
        link.handle_input(&[0x80, 0x00], Duration::ZERO);
        assert_eq!(link.poll_event(), None);
        link.handle_input(&[0x00, 0x84], Duration::ZERO);
        assert_eq!(link.poll_event(), Some(LinkEvent::Received(Apdu::ack())));
        assert_eq!(link.poll_timeout(), None);
    }
}
