//! The byte-stream stages: toxiproxy's toxics and netem-style extras.
//!
//! Every stage is built from a [`crate::StageKind`] (its attributes) and an [`RngStream`]
//! (its own seeded randomness). Units follow toxiproxy: milliseconds, KB/s (1000 bytes),
//! and microseconds for the slicer's delay.

use std::time::Duration;

use serde_json::json;

use crate::{ms, Action, Chunk, FaultEvent, Item, Out, RngStream, Stage};

/// What every stage has: its name, its type and its random stream.
#[derive(Debug)]
pub struct Base {
    pub name: String,
    pub kind: &'static str,
    pub rng: RngStream,
}

impl Base {
    pub fn new(name: &str, kind: &'static str, rng: RngStream) -> Base {
        Base {
            name: name.to_owned(),
            kind,
            rng,
        }
    }

    pub fn event(&self, now: Duration, out: &mut Out, decision: serde_json::Value) {
        out.events.push(FaultEvent {
            at_ms: ms(now),
            stage: self.name.clone(),
            kind: self.kind,
            rng: self.rng.key().to_owned(),
            decision,
        });
    }
}

macro_rules! base_methods {
    () => {
        fn name(&self) -> &str {
            &self.base.name
        }
        fn kind(&self) -> &'static str {
            self.base.kind
        }
    };
}

/// A stage whose toxicity roll said "not on this connection": passes everything.
pub struct Inactive {
    pub base: Base,
    pub toxicity: f64,
}

impl Stage for Inactive {
    base_methods!();
    fn handle_start(&mut self, now: Duration, out: &mut Out) {
        self.base.event(
            now,
            out,
            json!({"active": false, "toxicity": self.toxicity}),
        );
    }
    fn handle(&mut self, item: Item, _now: Duration, out: &mut Out) {
        out.push(item);
    }
}

/// `latency`: delay = latency ± uniform jitter, per chunk; never reorders.
pub struct Latency {
    pub base: Base,
    pub latency: Duration,
    pub jitter: Duration,
    last: Duration,
}

impl Latency {
    pub fn new(base: Base, latency_ms: u64, jitter_ms: u64) -> Latency {
        Latency {
            base,
            latency: Duration::from_millis(latency_ms),
            jitter: Duration::from_millis(jitter_ms),
            last: Duration::ZERO,
        }
    }
}

impl Stage for Latency {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let at = match &item {
            Item::Data(c) => {
                let delay = if self.jitter.is_zero() {
                    self.latency
                } else {
                    let j = self.jitter.as_micros().min(u128::from(u64::MAX / 4)) as u64;
                    let offset = self.base.rng.below(2 * j) as i128 - j as i128;
                    let total = self.latency.as_micros() as i128 + offset;
                    Duration::from_micros(total.max(0) as u64)
                };
                self.base.event(
                    now,
                    out,
                    json!({"delay_ms": ms(delay), "bytes": c.data.len()}),
                );
                c.at + delay
            }
            other => other.at(),
        };
        let at = at.max(self.last);
        self.last = at;
        out.push(item.with_at(at));
    }
}

/// `bandwidth`: at most `rate` KB/s; chunks larger than 100 ms worth are split.
pub struct Bandwidth {
    pub base: Base,
    /// Bytes per second; 0 means unlimited.
    pub bytes_per_sec: u64,
    busy: Duration,
}

impl Bandwidth {
    pub fn new(base: Base, rate_kbs: u64) -> Bandwidth {
        Bandwidth {
            base,
            bytes_per_sec: rate_kbs.saturating_mul(1000),
            busy: Duration::ZERO,
        }
    }
}

impl Stage for Bandwidth {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(chunk) = item else {
            let at = item.at().max(self.busy);
            out.push(item.with_at(at));
            return;
        };
        if self.bytes_per_sec == 0 {
            out.push(Item::Data(chunk));
            return;
        }
        let piece = (self.bytes_per_sec / 10).max(1) as usize;
        let mut start = chunk.at.max(self.busy);
        let mut pieces = 0usize;
        for part in chunk.data.chunks(piece) {
            let cost = Duration::from_secs_f64(part.len() as f64 / self.bytes_per_sec as f64);
            start += cost;
            pieces += 1;
            out.push(Item::Data(Chunk {
                data: part.to_vec(),
                at: start,
            }));
        }
        self.busy = start;
        self.base.event(
            now,
            out,
            json!({"bytes": chunk.data.len(), "pieces": pieces, "due_ms": ms(start)}),
        );
    }
}

/// `slicer`: cuts chunks into ~`average_size` pieces, `delay` µs apart.
pub struct Slicer {
    pub base: Base,
    pub average: u64,
    pub variation: u64,
    pub delay: Duration,
    last: Duration,
}

impl Slicer {
    pub fn new(base: Base, average: u64, variation: u64, delay_us: u64) -> Slicer {
        Slicer {
            base,
            average,
            variation: variation.min(average.saturating_sub(1)),
            delay: Duration::from_micros(delay_us),
            last: Duration::ZERO,
        }
    }
}

impl Stage for Slicer {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(chunk) = item else {
            let at = item.at().max(self.last);
            out.push(item.with_at(at));
            return;
        };
        if self.average == 0 || chunk.data.is_empty() {
            self.last = self.last.max(chunk.at);
            out.push(Item::Data(chunk));
            return;
        }
        let mut sizes = Vec::new();
        let mut rest = chunk.data.as_slice();
        let mut at = chunk.at.max(self.last);
        while !rest.is_empty() {
            let spread =
                self.base.rng.below(2 * self.variation + 1) as i128 - self.variation as i128;
            let size = (self.average as i128 + spread).max(1) as usize;
            let (head, tail) = rest.split_at(size.min(rest.len()));
            sizes.push(head.len());
            out.push(Item::Data(Chunk {
                data: head.to_vec(),
                at,
            }));
            rest = tail;
            if !rest.is_empty() {
                at += self.delay;
            }
        }
        self.last = at;
        self.base.event(now, out, json!({"slices": sizes}));
    }
}

/// `slow_close`: the end of the stream is delivered `delay` ms late.
pub struct SlowClose {
    pub base: Base,
    pub delay: Duration,
}

impl Stage for SlowClose {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        if let Item::Eof { at } = item {
            self.base
                .event(now, out, json!({"eof_delay_ms": ms(self.delay)}));
            out.push(Item::Eof {
                at: at + self.delay,
            });
        } else {
            out.push(item);
        }
    }
}

/// `timeout`: drops all data; closes the connection `timeout` ms after it joined (0: never,
/// a black hole). Removed after it dropped data, it closes the connection (the stream lost
/// bytes), as toxiproxy does.
pub struct Timeout {
    pub base: Base,
    pub timeout: Duration,
    due: Option<Duration>,
    dropped: usize,
}

impl Timeout {
    pub fn new(base: Base, timeout_ms: u64) -> Timeout {
        Timeout {
            base,
            timeout: Duration::from_millis(timeout_ms),
            due: None,
            dropped: 0,
        }
    }
}

impl Stage for Timeout {
    base_methods!();
    fn handle_start(&mut self, now: Duration, out: &mut Out) {
        if !self.timeout.is_zero() {
            self.due = Some(now + self.timeout);
        }
        self.base
            .event(now, out, json!({"close_at_ms": self.due.map(ms)}));
    }
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        match item {
            Item::Data(c) => {
                self.dropped += c.data.len();
                self.base.event(now, out, json!({"dropped": c.data.len()}));
            }
            other => out.push(other),
        }
    }
    fn poll(&mut self, now: Duration, out: &mut Out) {
        if let Some(at) = self.due.take() {
            self.base.event(now, out, json!({"action": Action::Close}));
            out.push(Item::Action {
                at,
                action: Action::Close,
            });
        }
    }
    fn poll_timeout(&self) -> Option<Duration> {
        self.due
    }
    fn handle_remove(&mut self, now: Duration, out: &mut Out) {
        if self.dropped > 0 {
            self.base
                .event(now, out, json!({"action": Action::Close, "removed": true}));
            out.push(Item::Action {
                at: now,
                action: Action::Close,
            });
        }
    }
}

/// `reset_peer`: on the first data, wait `timeout` ms and reset the connection; data dropped.
pub struct ResetPeer {
    pub base: Base,
    pub timeout: Duration,
    due: Option<Duration>,
    fired: bool,
}

impl ResetPeer {
    pub fn new(base: Base, timeout_ms: u64) -> ResetPeer {
        ResetPeer {
            base,
            timeout: Duration::from_millis(timeout_ms),
            due: None,
            fired: false,
        }
    }
}

impl Stage for ResetPeer {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        match item {
            Item::Data(c) => {
                if !self.fired && self.due.is_none() {
                    let at = c.at + self.timeout;
                    self.due = Some(at);
                    self.base.event(
                        now,
                        out,
                        json!({"reset_at_ms": ms(at), "dropped": c.data.len()}),
                    );
                } else {
                    self.base.event(now, out, json!({"dropped": c.data.len()}));
                }
            }
            other => out.push(other),
        }
    }
    fn poll(&mut self, _now: Duration, out: &mut Out) {
        if let Some(at) = self.due.take() {
            self.fired = true;
            out.push(Item::Action {
                at,
                action: Action::Reset,
            });
        }
    }
    fn poll_timeout(&self) -> Option<Duration> {
        self.due
    }
}

/// `limit_data`: forwards `bytes` bytes, then closes the connection.
pub struct LimitData {
    pub base: Base,
    pub remaining: u64,
    closed: bool,
}

impl LimitData {
    pub fn new(base: Base, bytes: u64) -> LimitData {
        LimitData {
            base,
            remaining: bytes,
            closed: false,
        }
    }
}

impl Stage for LimitData {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(mut chunk) = item else {
            if !self.closed {
                out.push(item);
            }
            return;
        };
        if self.closed {
            return;
        }
        let n = chunk.data.len() as u64;
        if n < self.remaining {
            self.remaining -= n;
            out.push(Item::Data(chunk));
            return;
        }
        let keep = self.remaining as usize;
        let dropped = chunk.data.len() - keep;
        chunk.data.truncate(keep);
        let at = chunk.at;
        if keep > 0 {
            out.push(Item::Data(chunk));
        }
        self.remaining = 0;
        self.closed = true;
        self.base.event(
            now,
            out,
            json!({"action": Action::Close, "dropped": dropped}),
        );
        out.push(Item::Action {
            at,
            action: Action::Close,
        });
    }
}

/// `down`: the link is down: an open connection is reset at once, new ones are refused.
pub struct Down {
    pub base: Base,
}

impl Stage for Down {
    base_methods!();
    fn handle_start(&mut self, now: Duration, out: &mut Out) {
        self.base.event(now, out, json!({"action": Action::Reset}));
        out.push(Item::Action {
            at: now,
            action: Action::Reset,
        });
    }
    fn handle_connect(&mut self, now: Duration, _upstream: &str, out: &mut Out) -> Option<Action> {
        self.base.event(now, out, json!({"action": Action::Refuse}));
        Some(Action::Refuse)
    }
    fn handle(&mut self, item: Item, _now: Duration, out: &mut Out) {
        if !matches!(item, Item::Data(_)) {
            out.push(item);
        }
    }
}

/// `refuse`: new connections are refused; open ones are left alone.
pub struct Refuse {
    pub base: Base,
}

impl Stage for Refuse {
    base_methods!();
    fn handle_connect(&mut self, now: Duration, _upstream: &str, out: &mut Out) -> Option<Action> {
        self.base.event(now, out, json!({"action": Action::Refuse}));
        Some(Action::Refuse)
    }
    fn handle(&mut self, item: Item, _now: Duration, out: &mut Out) {
        out.push(item);
    }
}

/// `dns_failure`: an upstream given by name cannot be resolved (an IP literal still works).
pub struct DnsFailure {
    pub base: Base,
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
pub fn host_of(upstream: &str) -> &str {
    if let Some(rest) = upstream.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match upstream.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host,
        _ => upstream,
    }
}

impl Stage for DnsFailure {
    base_methods!();
    fn handle_connect(&mut self, now: Duration, upstream: &str, out: &mut Out) -> Option<Action> {
        let host = host_of(upstream);
        if host.parse::<std::net::IpAddr>().is_ok() {
            self.base.event(
                now,
                out,
                json!({"host": host, "resolved": true, "reason": "ip literal"}),
            );
            return None;
        }
        self.base.event(
            now,
            out,
            json!({"host": host, "action": Action::DnsFailure}),
        );
        Some(Action::DnsFailure)
    }
    fn handle(&mut self, item: Item, _now: Duration, out: &mut Out) {
        out.push(item);
    }
}

/// `loss`: each chunk is dropped, whole, with `probability`.
pub struct Loss {
    pub base: Base,
    pub probability: f64,
}

impl Stage for Loss {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        match item {
            Item::Data(c) => {
                if self.base.rng.chance(self.probability) {
                    self.base.event(now, out, json!({"dropped": c.data.len()}));
                } else {
                    out.push(Item::Data(c));
                }
            }
            other => out.push(other),
        }
    }
}

/// `duplication`: each chunk is sent twice with `probability`.
pub struct Duplication {
    pub base: Base,
    pub probability: f64,
}

impl Stage for Duplication {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        match item {
            Item::Data(c) => {
                if self.base.rng.chance(self.probability) {
                    self.base
                        .event(now, out, json!({"duplicated": c.data.len()}));
                    out.push(Item::Data(c.clone()));
                }
                out.push(Item::Data(c));
            }
            other => out.push(other),
        }
    }
}

/// `corruption`: with `probability`, flips `bits` random bits of a chunk.
pub struct Corruption {
    pub base: Base,
    pub probability: f64,
    pub bits: u32,
}

impl Stage for Corruption {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        match item {
            Item::Data(mut c) => {
                if self.base.rng.chance(self.probability) && !c.data.is_empty() {
                    let mut flipped = Vec::new();
                    let total_bits = c.data.len() as u64 * 8;
                    for _ in 0..self.bits {
                        let bit = self.base.rng.below(total_bits);
                        let byte = (bit / 8) as usize;
                        if let Some(b) = c.data.get_mut(byte) {
                            *b ^= 1 << (bit % 8);
                        }
                        flipped.push(bit);
                    }
                    self.base.event(now, out, json!({"flipped_bits": flipped}));
                }
                out.push(Item::Data(c));
            }
            other => out.push(other),
        }
    }
}

/// `reordering`: with `probability`, holds a chunk back until `gap` later chunks have
/// passed (or `max_hold` ms have gone by, or the stream ends).
pub struct Reordering {
    pub base: Base,
    pub probability: f64,
    pub gap: u32,
    pub max_hold: Duration,
    held: Option<(Chunk, u32, Duration)>,
}

impl Reordering {
    pub fn new(base: Base, probability: f64, gap: u32, max_hold_ms: u64) -> Reordering {
        Reordering {
            base,
            probability,
            gap: gap.max(1),
            max_hold: Duration::from_millis(max_hold_ms),
            held: None,
        }
    }

    fn release(&mut self, at: Duration, out: &mut Out) {
        if let Some((mut c, _, _)) = self.held.take() {
            c.at = c.at.max(at);
            out.push(Item::Data(c));
        }
    }
}

impl Stage for Reordering {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        match item {
            Item::Data(c) => {
                if let Some((_, left, _)) = &mut self.held {
                    let at = c.at;
                    out.push(Item::Data(c));
                    *left -= 1;
                    if *left == 0 {
                        self.release(at, out);
                    }
                } else if self.base.rng.chance(self.probability) {
                    self.base
                        .event(now, out, json!({"held": c.data.len(), "gap": self.gap}));
                    let until = c.at + self.max_hold;
                    self.held = Some((c, self.gap, until));
                } else {
                    out.push(Item::Data(c));
                }
            }
            other => {
                self.release(other.at(), out);
                out.push(other);
            }
        }
    }
    fn poll(&mut self, now: Duration, out: &mut Out) {
        if self.held.as_ref().is_some_and(|h| h.2 <= now) {
            self.base.event(now, out, json!({"released": "max_hold"}));
            self.release(now, out);
        }
    }
    fn poll_timeout(&self) -> Option<Duration> {
        self.held.as_ref().map(|h| h.2)
    }
    fn handle_remove(&mut self, now: Duration, out: &mut Out) {
        self.release(now, out);
    }
    fn buffered(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.0.data.len())
    }
}

/// What a flapping link does with data while it is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlapMode {
    /// Hold the bytes until the link is up again (TCP would retransmit).
    Stall,
    /// Drop the chunks.
    Drop,
    /// Reset the connection when the link goes down.
    Reset,
}

/// `flapping`: up for `up` ms, down for `down` ms, again and again, from when it joined.
pub struct Flapping {
    pub base: Base,
    pub up: Duration,
    pub down: Duration,
    pub mode: FlapMode,
    start: Duration,
    reset_due: Option<Duration>,
    last: Duration,
}

impl Flapping {
    pub fn new(base: Base, up_ms: u64, down_ms: u64, mode: FlapMode) -> Flapping {
        Flapping {
            base,
            up: Duration::from_millis(up_ms),
            down: Duration::from_millis(down_ms),
            mode,
            start: Duration::ZERO,
            reset_due: None,
            last: Duration::ZERO,
        }
    }

    /// `None` when the link is up at `t`, else when it comes up again.
    fn down_until(&self, t: Duration) -> Option<Duration> {
        if self.down.is_zero() {
            return None;
        }
        let period = self.up + self.down;
        let since = t.saturating_sub(self.start).as_nanos();
        let phase = since % period.as_nanos();
        if phase < self.up.as_nanos() {
            None
        } else {
            let left = period.as_nanos() - phase;
            Some(t + Duration::from_nanos(left.min(u128::from(u64::MAX)) as u64))
        }
    }
}

impl Stage for Flapping {
    base_methods!();
    fn handle_start(&mut self, now: Duration, out: &mut Out) {
        self.start = now;
        if self.mode == FlapMode::Reset && !self.down.is_zero() {
            self.reset_due = Some(now + self.up);
        }
        self.base.event(
            now,
            out,
            json!({"up_ms": ms(self.up), "down_ms": ms(self.down), "mode": self.mode}),
        );
    }
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(mut c) = item else {
            let at = item.at().max(self.last);
            out.push(item.with_at(at));
            return;
        };
        match (self.down_until(c.at), self.mode) {
            (None, _) => {}
            (Some(up_at), FlapMode::Stall) => {
                self.base.event(
                    now,
                    out,
                    json!({"stalled": c.data.len(), "until_ms": ms(up_at)}),
                );
                c.at = up_at;
            }
            (Some(_), FlapMode::Drop | FlapMode::Reset) => {
                self.base.event(now, out, json!({"dropped": c.data.len()}));
                return;
            }
        }
        c.at = c.at.max(self.last);
        self.last = c.at;
        out.push(Item::Data(c));
    }
    fn poll(&mut self, now: Duration, out: &mut Out) {
        if let Some(at) = self.reset_due.take() {
            self.base.event(now, out, json!({"action": Action::Reset}));
            out.push(Item::Action {
                at,
                action: Action::Reset,
            });
        }
    }
    fn poll_timeout(&self) -> Option<Duration> {
        self.reset_due
    }
}

/// `cut`: closes (or resets) the connection after `after_chunks` chunks or `after` ms of
/// traffic, whichever comes first (0 turns a trigger off).
pub struct Cut {
    pub base: Base,
    pub after_chunks: u64,
    pub after: Duration,
    pub action: Action,
    seen: u64,
    due: Option<Duration>,
    cut: bool,
}

impl Cut {
    pub fn new(base: Base, after_chunks: u64, after_ms: u64, reset: bool) -> Cut {
        Cut {
            base,
            after_chunks,
            after: Duration::from_millis(after_ms),
            action: if reset { Action::Reset } else { Action::Close },
            seen: 0,
            due: None,
            cut: false,
        }
    }
}

impl Stage for Cut {
    base_methods!();
    fn handle_start(&mut self, now: Duration, _out: &mut Out) {
        if !self.after.is_zero() {
            self.due = Some(now + self.after);
        }
    }
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        if self.cut {
            return;
        }
        let Item::Data(c) = item else {
            out.push(item);
            return;
        };
        let at = c.at;
        out.push(Item::Data(c));
        self.seen += 1;
        if self.after_chunks > 0 && self.seen >= self.after_chunks {
            self.cut = true;
            self.due = None;
            self.base.event(
                now,
                out,
                json!({"action": self.action, "after_chunks": self.seen}),
            );
            out.push(Item::Action {
                at,
                action: self.action,
            });
        }
    }
    fn poll(&mut self, now: Duration, out: &mut Out) {
        if let Some(at) = self.due.take() {
            self.cut = true;
            self.base.event(
                now,
                out,
                json!({"action": self.action, "after_ms": ms(self.after)}),
            );
            out.push(Item::Action {
                at,
                action: self.action,
            });
        }
    }
    fn poll_timeout(&self) -> Option<Duration> {
        self.due
    }
}
