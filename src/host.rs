//! The acquirer host on the network: the async adapter around `poslab_host::Host`.
//!
//! One task per connection (mini-redis shape, through [`crate::net::serve`]). A connection
//! reads frames with the dialect's framing, decodes each with the spec (compiled once),
//! asks the shared state machine for a [`Decision`] and executes it: delays (without
//! blocking the connection's other requests), duplicates, truncated or malformed frames,
//! closes and unsolicited messages. Requests that arrive together (pipelined) are all
//! answered before one write.
//!
//! The journal gets every frame in and out (connection, time, decoded and masked view)
//! and every decision (rule, flow, code, notes). Raw bytes are journaled only for frames
//! that did not decode, with card numbers and track data masked
//! (`poslab_host::redact::masked_hex`); a decoded message's raw bytes are left out, as
//! its decoded view holds every field, masked.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use poslab_host::redact::masked_hex;
use poslab_host::{Action, Decision, Host, RequestContext};
use poslab_iso8583::{tpdu_swap, Frame, Framing, Message, Spec};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::net::{FramedStream, Handler, Peer, ReadError};

/// The host server: shared state machine, spec and journal.
#[derive(Clone)]
pub struct HostServer {
    host: Arc<Mutex<Host>>,
    spec: Arc<Spec>,
    journal: Journal,
    link: Arc<str>,
    /// The host's clock: the wall clock at start, running with tokio's clock, so that a
    /// bench in simulated time moves the host's time windows (velocity, settlement) too.
    clock: (SystemTime, tokio::time::Instant),
    /// Service time of each answered request, in µs (`poslab host --stats`).
    service: Option<Arc<Mutex<hdrhistogram::Histogram<u64>>>>,
}

impl HostServer {
    pub fn new(mut host: Host, spec: Spec, journal: Journal) -> HostServer {
        host.set_spec(&spec);
        HostServer {
            host: Arc::new(Mutex::new(host)),
            spec: Arc::new(spec),
            journal,
            link: Arc::from("host"),
            clock: (crate::bench::time::wall_now(), tokio::time::Instant::now()),
            service: None,
        }
    }

    /// Measures each request's service time: from its bytes read (a batch of pipelined
    /// requests shares one) to its answer written, so the host's share of a load test's
    /// latency can be told from the network's and the load generator's.
    pub fn with_service_stats(mut self) -> HostServer {
        self.service = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
            .ok()
            .map(|h| Arc::new(Mutex::new(h)));
        self
    }

    /// The service times so far (µs), when measured.
    pub fn service_stats(&self) -> Option<hdrhistogram::Histogram<u64>> {
        self.service
            .as_ref()
            .map(|h| h.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Now, by the host's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.0 + self.clock.1.elapsed()
    }

    /// The state machine, for steps that push overrides or read the batch.
    pub fn host(&self) -> Arc<Mutex<Host>> {
        self.host.clone()
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Host> {
        self.host
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, kind: &str, body: Value) {
        self.journal.record(&self.link, kind, body);
    }

    /// Journals a frame that could not be read.
    fn bad_frame(&self, peer: &Peer, error: &str, raw: &[u8]) {
        if self.journal.is_enabled() {
            self.record(
                "bad-frame",
                json!({
                    "conn": peer.id,
                    "peer": peer.addr,
                    "dir": "in",
                    "error": error,
                    "bytes": raw.len(),
                    "raw_masked": masked_hex(raw),
                }),
            );
        }
        tracing::warn!(conn = peer.id, error, "bad frame");
    }

    /// Packs and frames a message; `None` (journaled) when it cannot be packed.
    fn frame_of(
        &self,
        msg: &Message,
        header: &[u8],
        trailer: &[u8],
        peer: &Peer,
    ) -> Option<Vec<u8>> {
        let packed = self
            .spec
            .pack(msg)
            .map_err(|e| e.to_string())
            .and_then(|payload| {
                self.spec
                    .framing()
                    .encode(header, &payload, trailer)
                    .map_err(|e| e.to_string())
            });
        match packed {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                self.record(
                    "error",
                    json!({"conn": peer.id, "mti": msg.mti.as_str(), "error": format!("cannot pack the answer: {error}")}),
                );
                tracing::error!(conn = peer.id, error, "cannot pack the answer");
                None
            }
        }
    }

    /// A frame whose length is right but whose message does not decode: the answer's
    /// payload cut after 60 % (a field runs past the end).
    fn malformed(&self, msg: &Message, header: &[u8], trailer: &[u8]) -> Option<Vec<u8>> {
        let payload = self.spec.pack(msg).ok()?;
        let cut = payload.get(..payload.len() * 6 / 10)?;
        self.spec.framing().encode(header, cut, trailer).ok()
    }
}

/// A write waiting for its time.
struct Pending {
    due: Instant,
    seq: u64,
    bytes: Vec<u8>,
    close: bool,
    journal: Option<Value>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// What one connection has to send.
#[derive(Default)]
struct Outbox {
    now: Vec<u8>,
    journal_now: Vec<Value>,
    later: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    close_now: bool,
}

impl Outbox {
    fn push(&mut self, due: Option<Instant>, bytes: Vec<u8>, close: bool, journal: Option<Value>) {
        match due {
            None => {
                self.now.extend_from_slice(&bytes);
                if let Some(j) = journal {
                    self.journal_now.push(j);
                }
                self.close_now |= close;
            }
            Some(due) => {
                self.seq += 1;
                self.later.push(Reverse(Pending {
                    due,
                    seq: self.seq,
                    bytes,
                    close,
                    journal,
                }));
            }
        }
    }
}

impl Handler for HostServer {
    async fn handle<S>(
        &self,
        stream: S,
        peer: Peer,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let framing: Framing = self.spec.framing().clone();
        let mut framed = FramedStream::new(stream);
        let mut out = Outbox::default();
        if self.journal.is_enabled() {
            self.record("connect", json!({"conn": peer.id, "peer": peer.addr}));
        }
        let result = loop {
            // answer every complete frame already buffered, then write once
            let mut fatal = None;
            let read_at = std::time::Instant::now();
            let mut requests = 0u64;
            loop {
                match framed.try_next(|buf| framing.decode(buf)) {
                    Ok(Some(frame)) => {
                        requests += 1;
                        self.on_frame(frame, &peer, &mut out)
                    }
                    Ok(None) => break,
                    Err(ReadError::Decode { error, buffered }) => {
                        let raw = framed
                            .buffered()
                            .get(..buffered.min(256))
                            .unwrap_or_default()
                            .to_vec();
                        self.bad_frame(&peer, &format!("framing: {error}"), &raw);
                        fatal = Some("a frame that cannot be delimited: connection closed");
                        break;
                    }
                    Err(other) => {
                        fatal = Some("read error");
                        tracing::warn!(conn = peer.id, error = %other, "read error");
                        break;
                    }
                }
                if out.close_now {
                    break;
                }
            }
            self.flush(&mut framed, &mut out, &peer).await?;
            if let (Some(h), true) = (&self.service, requests > 0) {
                let us = read_at.elapsed().as_micros().max(1) as u64;
                let _ = h
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record_n(us, requests);
            }
            if let Some(why) = fatal {
                break Ok(why);
            }
            if out.close_now {
                break Ok("closed by a rule or a bad frame");
            }
            let next_due = out.later.peek().map(|Reverse(p)| p.due);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ok("server shutting down"),
                _ = sleep_until_opt(next_due), if next_due.is_some() => {
                    let now = Instant::now();
                    while out.later.peek().is_some_and(|Reverse(p)| p.due <= now) {
                        if let Some(Reverse(p)) = out.later.pop() {
                            out.push(None, p.bytes, p.close, p.journal);
                        }
                    }
                }
                read = framed.fill() => match read {
                    Ok(0) => {
                        if !framed.buffered().is_empty() {
                            let raw = framed.buffered().to_vec();
                            self.bad_frame(&peer, "connection closed inside a frame", &raw);
                        }
                        break Ok("closed by the terminal");
                    }
                    Ok(_) => {}
                    Err(err) => break Err(anyhow::anyhow!("read: {err}")),
                },
            }
        };
        if self.journal.is_enabled() {
            let why = match &result {
                Ok(why) => (*why).to_string(),
                Err(e) => format!("{e:#}"),
            };
            self.record("disconnect", json!({"conn": peer.id, "why": why}));
        }
        result.map(|_| ())
    }
}

async fn sleep_until_opt(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

impl HostServer {
    async fn flush<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        framed: &mut FramedStream<S>,
        out: &mut Outbox,
        _peer: &Peer,
    ) -> anyhow::Result<()> {
        for entry in out.journal_now.drain(..) {
            self.record("frame", entry);
        }
        if !out.now.is_empty() {
            let bytes = std::mem::take(&mut out.now);
            framed.write_all(&bytes).await?;
        }
        Ok(())
    }

    fn on_frame(&self, frame: Frame, peer: &Peer, out: &mut Outbox) {
        let Frame {
            header,
            payload,
            trailer,
        } = frame;
        let journal = self.journal.is_enabled();
        let request = match self.spec.unpack(&payload) {
            Ok(msg) => msg,
            Err(error) => {
                let mut raw = header.clone();
                raw.extend_from_slice(&payload);
                self.bad_frame(peer, &error.to_string(), &raw);
                if self.lock().bad_frames() == poslab_host::config::BadFrames::Close {
                    out.close_now = true;
                }
                return;
            }
        };
        if journal {
            self.record(
                "frame",
                json!({
                    "conn": peer.id,
                    "dir": "in",
                    "mti": request.mti.as_str(),
                    "bytes": header.len() + payload.len() + trailer.len(),
                    "header": hex::encode_upper(&header),
                    "message": request.to_json(&self.spec),
                }),
            );
        }
        let ctx = RequestContext {
            conn: peer.id,
            now: self.now(),
            tid: None,
        };
        let decision = self.lock().handle_wire(&request, Some(&payload), &ctx);
        if journal {
            self.record(
                "decision",
                json!({
                    "conn": peer.id,
                    "mti": request.mti.as_str(),
                    "stan": request.text(11),
                    "flow": decision.flow,
                    "rule": decision.rule,
                    "code": decision.code.map(|c| c.as_str().to_string()),
                    "answer": decision.response.as_ref().map(|r| r.mti.as_str().to_string()),
                    "actions": decision.actions.iter().map(action_name).collect::<Vec<_>>(),
                    "notes": decision.notes,
                }),
            );
        }
        self.execute(decision, &header, &trailer, peer, out);
    }

    fn execute(
        &self,
        decision: Decision,
        header: &[u8],
        trailer: &[u8],
        peer: &Peer,
        out: &mut Outbox,
    ) {
        let reply_header = if header.len() == 5 {
            tpdu_swap(header)
        } else {
            header.to_vec()
        };
        let mut due = None;
        let mut twice = false;
        let mut truncate = false;
        let mut malform = false;
        let mut close = false;
        let mut unsolicited = Vec::new();
        for action in decision.actions {
            match action {
                Action::Delay(d) => due = Some(Instant::now() + d),
                Action::Twice => twice = true,
                Action::Truncate => truncate = true,
                Action::Malform => malform = true,
                Action::Close => close = true,
                Action::Unsolicited(m) => unsolicited.push(m),
            }
        }
        let journal = self.journal.is_enabled();
        let view = |msg: &Message, how: &str| {
            journal.then(|| {
                json!({
                    "conn": peer.id,
                    "dir": "out",
                    "mti": msg.mti.as_str(),
                    "delivery": how,
                    "message": msg.to_json(&self.spec),
                })
            })
        };
        if let Some(resp) = &decision.response {
            if let Some(bytes) = self.frame_of(resp, &reply_header, trailer, peer) {
                if truncate {
                    let half = bytes.get(..bytes.len() / 2).unwrap_or_default().to_vec();
                    out.push(due, half, false, view(resp, "truncated"));
                } else if malform {
                    let bad = self
                        .malformed(resp, &reply_header, trailer)
                        .unwrap_or_default();
                    out.push(due, bad, false, view(resp, "malformed"));
                } else if twice {
                    out.push(due, bytes.clone(), false, view(resp, "normal"));
                    out.push(due, bytes, false, view(resp, "duplicate"));
                } else {
                    out.push(due, bytes, false, view(resp, "normal"));
                }
            }
        }
        for msg in &unsolicited {
            if let Some(bytes) = self.frame_of(msg, &reply_header, trailer, peer) {
                out.push(due, bytes, false, view(msg, "unsolicited"));
            }
        }
        if close {
            out.push(due, Vec::new(), true, None);
        }
    }
}

fn action_name(a: &Action) -> String {
    match a {
        Action::Delay(d) => format!("delay {}", humantime::format_duration(*d)),
        Action::Twice => "twice".into(),
        Action::Truncate => "truncate".into(),
        Action::Malform => "malform".into(),
        Action::Close => "close".into(),
        Action::Unsolicited(m) => format!("unsolicited {}", m.mti.as_str()),
    }
}

/// Runs a host on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    server: HostServer,
    limits: crate::net::Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    crate::net::serve(listener, server, limits, shutdown).await
}
