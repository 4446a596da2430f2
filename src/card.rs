//! The card and the reader on a real wire (tokio): the vpcd protocol over TCP.
//!
//! [`run_card`] is the card side: it connects to a virtual reader (vsmartcard's vpcd, as
//! loaded by pcscd, or poslab's own reader), answers its frames with the sans-IO
//! [`poslab_emv::VpcdCard`], and reconnects when the reader goes away (the card keeps its
//! counters, as a real card kept in a wallet does). [`ReaderLink`] is the reader side:
//! it accepts a card's connection and exchanges APDUs through the sans-IO
//! [`poslab_emv::Reader`].
//!
//! Logs show command headers and status words, never command or response data.

use std::time::Duration;

use poslab_emv::vpcd::{self, ReaderMessage};
use poslab_emv::{
    Card, Command, Interface, Reader, ReaderError, ReaderEvent, ReaderOutput, Response, VpcdCard,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::net::{FramedStream, ReadError};

/// How the card side behaves on its connection.
#[derive(Clone, Debug)]
pub struct CardOptions {
    /// Wait between connection attempts while the reader is not there.
    pub retry: Duration,
    /// Stop after the first connection ends, instead of reconnecting.
    pub once: bool,
}

impl Default for CardOptions {
    fn default() -> Self {
        CardOptions {
            retry: Duration::from_millis(500),
            once: false,
        }
    }
}

/// Runs `card` against the vpcd reader at `addr` until `shutdown`; returns the card (with
/// its counters) when it stops.
pub async fn run_card(
    card: Card,
    addr: &str,
    options: CardOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<Card> {
    let mut card = VpcdCard::new(card);
    let mut waiting_logged = false;
    loop {
        let stream = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(card.into_card()),
            s = TcpStream::connect(addr) => s,
        };
        match stream {
            Ok(stream) => {
                waiting_logged = false;
                let _ = stream.set_nodelay(true);
                tracing::info!(reader = addr, "card connected to the reader");
                let result = serve_card(&mut card, stream, &shutdown).await;
                card.disconnected();
                match result {
                    Ok(()) => tracing::info!(reader = addr, "reader closed the connection"),
                    Err(e) => {
                        tracing::warn!(reader = addr, "connection to the reader failed: {e:#}")
                    }
                }
                if options.once || shutdown.is_cancelled() {
                    return Ok(card.into_card());
                }
            }
            Err(e) => {
                if options.once {
                    anyhow::bail!("cannot connect to the reader at {addr}: {e}");
                }
                if !waiting_logged {
                    tracing::info!(reader = addr, "waiting for the reader ({e})");
                    waiting_logged = true;
                }
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(card.into_card()),
            _ = tokio::time::sleep(options.retry) => {}
        }
    }
}

/// Serves one connection: frames in, the card's answers out.
pub async fn serve_card<S>(
    card: &mut VpcdCard,
    stream: S,
    shutdown: &CancellationToken,
) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = FramedStream::new(stream);
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            f = framed.next(vpcd::decode_frame) => f,
        };
        let payload = match frame {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(ReadError::Truncated(n)) => {
                anyhow::bail!("reader closed the connection in a frame ({n} bytes)")
            }
            Err(e) => return Err(e.into()),
        };
        let msg = ReaderMessage::from_payload(payload);
        let header = match &msg {
            ReaderMessage::Apdu(b) => b.get(..4).map(hex::encode_upper),
            _ => None,
        };
        let answer = card.card_mut().handle_message(msg.clone());
        match (&header, &answer) {
            (Some(h), Some(a)) => {
                let sw = a
                    .len()
                    .checked_sub(2)
                    .and_then(|i| a.get(i..))
                    .map(hex::encode_upper)
                    .unwrap_or_else(|| "no answer".into());
                tracing::debug!("apdu {h} -> {sw} ({} bytes)", a.len());
            }
            _ => tracing::debug!("control {msg:?}"),
        }
        if let Some(answer) = answer {
            framed.write_all(&vpcd::encode_frame(&answer)?).await?;
        }
    }
}

/// The reader side of one card's connection.
pub struct ReaderLink<S> {
    reader: Reader,
    stream: FramedStream<S>,
    timeout: Duration,
}

/// Accepts the next card on `listener` (a card connects to its reader).
pub async fn accept_card(
    listener: &TcpListener,
    timeout: Duration,
) -> anyhow::Result<ReaderLink<TcpStream>> {
    let (stream, peer) = tokio::time::timeout(timeout, listener.accept())
        .await
        .map_err(|_| anyhow::anyhow!("no card connected within {timeout:?}"))??;
    let _ = stream.set_nodelay(true);
    tracing::info!(card = %peer, "card connected");
    Ok(ReaderLink::new(stream, timeout))
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReaderLink<S> {
    pub fn new(stream: S, timeout: Duration) -> Self {
        ReaderLink {
            reader: Reader::new(),
            stream: FramedStream::new(stream),
            timeout,
        }
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The card was inserted (contact) or tapped (contactless): power it and read its ATR.
    pub async fn activate(&mut self, interface: Interface) -> Result<Vec<u8>, ReaderError> {
        self.reader.handle_event(match interface {
            Interface::Contactless => ReaderEvent::Tapped,
            _ => ReaderEvent::CardInserted,
        });
        match self.round_trip().await? {
            ReaderOutput::Atr { atr, .. } => Ok(atr),
            ReaderOutput::Error(e) => Err(e),
            other => Err(ReaderError::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Sends a command and waits for the card's response.
    pub async fn exchange(&mut self, cmd: &Command) -> Result<Response, ReaderError> {
        self.reader.transmit(cmd)?;
        match self.round_trip().await? {
            ReaderOutput::Response(r) => Ok(r),
            ReaderOutput::Error(e) => Err(e),
            other => Err(ReaderError::Protocol(format!("unexpected {other:?}"))),
        }
    }

    async fn round_trip(&mut self) -> Result<ReaderOutput, ReaderError> {
        if let Some(bytes) = self.reader.poll_transmit() {
            if self.stream.write_all(&bytes).await.is_err() {
                self.reader.handle_event(ReaderEvent::CardRemoved);
            }
        }
        while self.reader.is_waiting() {
            let next =
                tokio::time::timeout(self.timeout, self.stream.next(vpcd::decode_frame)).await;
            match next {
                Err(_) => return Err(ReaderError::Mute),
                Ok(Ok(Some(payload))) => {
                    let frame = vpcd::encode_frame(&payload)
                        .map_err(|e| ReaderError::Protocol(e.to_string()))?;
                    self.reader.handle_input(&frame);
                }
                Ok(Ok(None)) | Ok(Err(_)) => self.reader.handle_event(ReaderEvent::CardRemoved),
            }
        }
        self.reader
            .poll_output()
            .ok_or(ReaderError::Protocol("the reader reported nothing".into()))
    }
}
