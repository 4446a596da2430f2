//! The card reader: the vpcd side of the wire, as a sans-IO state machine.
//!
//! Inputs: [`Reader::handle_event`] (a card was inserted, tapped, swiped or removed —
//! on a socket, "inserted" is a card connecting and "removed" its connection closing),
//! [`Reader::transmit`] (the terminal sends a command APDU) and [`Reader::handle_input`]
//! (bytes that came from the card). Outputs: [`Reader::poll_transmit`] (bytes to write
//! to the card) and [`Reader::poll_output`] (ATR, responses, swiped tracks, errors).
//!
//! When a card arrives the reader powers it and asks for its ATR (`01`, `04`). A card
//! that answers with no ATR, or no answer to a command, is [`ReaderError::Mute`]; a card
//! taken away while a command is outstanding is [`ReaderError::CardRemoved`]. Both map
//! to `6F00` for a terminal that only understands status words.
//!
//! [`Slot`] joins a reader and a card in memory (no sockets) for tests and for an
//! emulated bench.

use std::collections::VecDeque;
use std::fmt;

use crate::apdu::{Command, Response, StatusWord};
use crate::card::{Card, VpcdCard};
use crate::magstripe::Track2;
use crate::profile::{CardProfile, Interface};
use crate::vpcd::{FrameBuffer, ReaderMessage};

/// Something that happened to the reader's slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReaderEvent {
    /// A chip card was inserted (contact interface).
    CardInserted,
    /// A card was held to the contactless antenna.
    Tapped,
    /// The card left the slot or the field.
    CardRemoved,
    /// A card was swiped; the stripe gave this track 2.
    Swiped(Track2),
}

/// Why an exchange with the card failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReaderError {
    #[error("no card in the reader")]
    NoCard,
    #[error("card removed during the exchange")]
    CardRemoved,
    #[error("card does not answer (no atr or no response)")]
    Mute,
    #[error("card is not powered (no atr yet)")]
    NotReady,
    #[error("a command is already outstanding")]
    Busy,
    #[error("bad answer from the card: {0}")]
    Protocol(String),
}

impl ReaderError {
    /// The status word a PC/SC-style terminal sees for this error.
    pub fn status_word(&self) -> StatusWord {
        StatusWord::NO_PRECISE_DIAGNOSIS
    }
}

/// What the reader has to tell the terminal.
#[derive(Clone, PartialEq, Eq)]
pub enum ReaderOutput {
    /// The card answered reset; it is ready for commands.
    Atr {
        interface: Interface,
        atr: Vec<u8>,
    },
    Response(Response),
    Swiped(Track2),
    Error(ReaderError),
}

impl fmt::Debug for ReaderOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderOutput::Atr { interface, atr } => {
                write!(f, "Atr({interface:?}, {})", hex::encode_upper(atr))
            }
            ReaderOutput::Response(r) => write!(f, "{r:?}"),
            ReaderOutput::Swiped(t) => write!(f, "Swiped({t})"),
            ReaderOutput::Error(e) => write!(f, "Error({e})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Empty,
    /// Powered, waiting for the ATR.
    Activating(Interface),
    Ready {
        interface: Interface,
        atr: Vec<u8>,
    },
    /// A card is there but its chip does not work.
    Mute(Interface),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    Atr,
    Apdu,
}

/// The reader state machine.
#[derive(Debug)]
pub struct Reader {
    state: State,
    pending: Pending,
    frames: FrameBuffer,
    outbox: VecDeque<u8>,
    outputs: VecDeque<ReaderOutput>,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    pub fn new() -> Self {
        Reader {
            state: State::Empty,
            pending: Pending::None,
            frames: FrameBuffer::new(),
            outbox: VecDeque::new(),
            outputs: VecDeque::new(),
        }
    }

    pub fn card_present(&self) -> bool {
        self.state != State::Empty
    }

    /// The ATR and interface of a ready card.
    pub fn atr(&self) -> Option<(Interface, &[u8])> {
        match &self.state {
            State::Ready { interface, atr } => Some((*interface, atr)),
            _ => None,
        }
    }

    pub fn handle_event(&mut self, event: ReaderEvent) {
        match event {
            ReaderEvent::CardInserted => self.activate(Interface::Contact),
            ReaderEvent::Tapped => self.activate(Interface::Contactless),
            ReaderEvent::CardRemoved => {
                if self.pending != Pending::None {
                    self.outputs
                        .push_back(ReaderOutput::Error(ReaderError::CardRemoved));
                }
                self.pending = Pending::None;
                self.state = State::Empty;
                self.frames.clear();
                self.outbox.clear();
            }
            ReaderEvent::Swiped(track) => self.outputs.push_back(ReaderOutput::Swiped(track)),
        }
    }

    fn activate(&mut self, interface: Interface) {
        self.frames.clear();
        self.outbox.clear();
        self.state = State::Activating(interface);
        self.pending = Pending::Atr;
        self.queue(&ReaderMessage::PowerOn);
        self.queue(&ReaderMessage::GetAtr);
    }

    fn queue(&mut self, msg: &ReaderMessage) {
        // payloads the reader sends are tiny or APDUs that `transmit` checked
        if let Ok(frame) = msg.encode() {
            self.outbox.extend(frame);
        }
    }

    /// Sends a command to the card. The answer comes later through [`Reader::poll_output`].
    pub fn transmit(&mut self, cmd: &Command) -> Result<(), ReaderError> {
        match &self.state {
            State::Empty => return Err(ReaderError::NoCard),
            State::Mute(_) => return Err(ReaderError::Mute),
            State::Activating(_) => return Err(ReaderError::NotReady),
            State::Ready { .. } => {}
        }
        if self.pending != Pending::None {
            return Err(ReaderError::Busy);
        }
        let bytes = cmd
            .encode()
            .map_err(|e| ReaderError::Protocol(e.to_string()))?;
        let frame = ReaderMessage::Apdu(bytes)
            .encode()
            .map_err(|e| ReaderError::Protocol(e.to_string()))?;
        self.outbox.extend(frame);
        self.pending = Pending::Apdu;
        Ok(())
    }

    /// Powers the card off (`00`); the card stays in the slot.
    pub fn power_off(&mut self) {
        if let State::Ready { interface, .. } = self.state {
            self.queue(&ReaderMessage::PowerOff);
            self.state = State::Mute(interface);
            self.pending = Pending::None;
        }
    }

    /// Bytes that came from the card.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        self.frames.feed(bytes);
        while let Some(payload) = self.frames.next_frame() {
            match (self.pending, &self.state) {
                (Pending::Atr, State::Activating(interface)) => {
                    let interface = *interface;
                    self.pending = Pending::None;
                    if payload.is_empty() {
                        self.state = State::Mute(interface);
                        self.outputs
                            .push_back(ReaderOutput::Error(ReaderError::Mute));
                    } else {
                        self.state = State::Ready {
                            interface,
                            atr: payload.clone(),
                        };
                        self.outputs.push_back(ReaderOutput::Atr {
                            interface,
                            atr: payload,
                        });
                    }
                }
                (Pending::Apdu, _) => {
                    self.pending = Pending::None;
                    let out = if payload.is_empty() {
                        ReaderOutput::Error(ReaderError::Mute)
                    } else {
                        match Response::parse(&payload) {
                            Ok(r) => ReaderOutput::Response(r),
                            Err(e) => ReaderOutput::Error(ReaderError::Protocol(e.to_string())),
                        }
                    };
                    self.outputs.push_back(out);
                }
                _ => self
                    .outputs
                    .push_back(ReaderOutput::Error(ReaderError::Protocol(format!(
                        "unsolicited {} bytes from the card",
                        payload.len()
                    )))),
            }
        }
    }

    /// Bytes to write to the card, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.outbox.is_empty() {
            None
        } else {
            Some(self.outbox.drain(..).collect())
        }
    }

    pub fn poll_output(&mut self) -> Option<ReaderOutput> {
        self.outputs.pop_front()
    }

    /// Waiting for the card's answer (ATR or response).
    pub fn is_waiting(&self) -> bool {
        self.pending != Pending::None
    }
}

/// A reader and the card in it, joined in memory: the bytes go through the real vpcd
/// framing on both sides, nothing touches a socket.
#[derive(Debug, Default)]
pub struct Slot {
    reader: Reader,
    card: Option<VpcdCard>,
}

impl Slot {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn reader(&self) -> &Reader {
        &self.reader
    }
    pub fn reader_mut(&mut self) -> &mut Reader {
        &mut self.reader
    }
    pub fn card(&self) -> Option<&Card> {
        self.card.as_ref().map(VpcdCard::card)
    }
    pub fn card_mut(&mut self) -> Option<&mut Card> {
        self.card.as_mut().map(VpcdCard::card_mut)
    }

    /// Inserts (contact) or taps (contactless) a card and runs the activation; returns
    /// what the reader reported (the ATR or an error).
    pub fn present(&mut self, mut card: Card, interface: Interface) -> ReaderOutput {
        card.set_interface(interface);
        self.card = Some(VpcdCard::new(card));
        self.reader.handle_event(match interface {
            Interface::Contactless => ReaderEvent::Tapped,
            _ => ReaderEvent::CardInserted,
        });
        self.pump();
        self.reader
            .poll_output()
            .unwrap_or(ReaderOutput::Error(ReaderError::Mute))
    }

    /// Takes the card out; a pending exchange fails with [`ReaderError::CardRemoved`].
    pub fn remove(&mut self) -> Option<Card> {
        self.reader.handle_event(ReaderEvent::CardRemoved);
        self.card.take().map(|mut c| {
            c.disconnected();
            c.into_card()
        })
    }

    /// Swipes a card's stripe through the reader: the track 2 from its profile.
    pub fn swipe(&mut self, profile: &CardProfile) -> ReaderOutput {
        self.reader
            .handle_event(ReaderEvent::Swiped(profile.track2.clone()));
        self.reader
            .poll_output()
            .unwrap_or(ReaderOutput::Error(ReaderError::NoCard))
    }

    /// Moves bytes both ways until neither side has more to say.
    pub fn pump(&mut self) {
        // each round trip moves at least one frame; bounded by the bytes in flight
        for _ in 0..64 {
            let Some(out) = self.reader.poll_transmit() else {
                return;
            };
            let Some(card) = self.card.as_mut() else {
                return;
            };
            let back = card.handle_bytes(&out);
            self.reader.handle_input(&back);
        }
    }

    /// Sends a command and returns the card's response.
    pub fn exchange(&mut self, cmd: &Command) -> Result<Response, ReaderError> {
        self.reader.transmit(cmd)?;
        self.pump();
        match self.reader.poll_output() {
            Some(ReaderOutput::Response(r)) => Ok(r),
            Some(ReaderOutput::Error(e)) => Err(e),
            Some(other) => Err(ReaderError::Protocol(format!("unexpected {other:?}"))),
            None => Err(ReaderError::Mute),
        }
    }
}
