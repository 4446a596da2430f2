//! Fault stages as sans-IO, seeded, composable transforms of byte streams and messages.
//!
//! A link direction (client → server is *upstream*, server → client *downstream*, as in
//! toxiproxy) runs through a [`Pipeline`] of [`Stage`]s. The runtime feeds the pipeline
//! the bytes it read with the time it read them (`now`, a [`Duration`] since the start of
//! the run: simulated or real, the pipeline never reads a clock) and takes back [`Item`]s
//! with delivery deadlines: data to write, the end of the stream, or a connection-level
//! [`Action`] (close, reset, refuse, fail name resolution). Every random or scheduled
//! decision a stage makes is a [`FaultEvent`] the runtime journals.
//!
//! Randomness: each stage owns its own [`RngStream`], derived from the run seed and the
//! stage's key (link, direction, toxic name), so adding, removing or editing one stage
//! never changes another stage's decisions, and the same seed with the same input timing
//! replays the same decisions.
//!
//! Invariants (property-tested in `tests/props.rs`):
//! - items leave a pipeline in the order the stages emitted them, with non-decreasing
//!   deadlines; only a stage whose job it is (reordering) changes the order of bytes;
//! - a stage that is not about losing, duplicating or corrupting bytes delivers exactly its
//!   input bytes (latency, jitter, bandwidth, slicer, slow_close, flapping in stall mode,
//!   message stages whose rule does not fire);
//! - removing a stage from a live pipeline hands what it holds to the following stages:
//!   no byte in flight is lost.

use std::time::Duration;

use serde::Serialize;

mod error;
pub mod fuzz;
pub mod message;
mod pipeline;
pub mod protocol;
mod rng;
pub mod serial;
pub mod spec;
pub mod stages;

pub use error::FaultError;
pub use message::{
    Framer, LengthPrefix2, MessageDecision, MessageFault, MessageStage, NthMatching,
};
pub use pipeline::Pipeline;
pub use protocol::{Conversation, ProtocolAction};
pub use rng::RngStream;
pub use serial::SerialSpec;
pub use spec::{parse_config, Config, ProxySpec, StageKind, StreamDir, ToxicSpec};

/// Bytes read from one side of a link, and when they are due at the other side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub data: Vec<u8>,
    /// The earliest time the bytes may be delivered (when they were read, plus whatever
    /// delay the stages before added).
    pub at: Duration,
}

/// A connection-level consequence of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Close both sides of the connection (FIN).
    Close,
    /// Abort both sides of the connection (TCP RST: "connection reset by peer").
    Reset,
    /// Refuse a new connection before it reaches the upstream.
    Refuse,
    /// Fail the name resolution of an upstream given by name.
    DnsFailure,
}

/// What a pipeline hands back to the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// Bytes to write.
    Data(Chunk),
    /// The sender closed its side: shut down the writing side at `at`.
    Eof { at: Duration },
    /// A connection-level action, due at `at`.
    Action { at: Duration, action: Action },
}

impl Item {
    /// When the item is due.
    pub fn at(&self) -> Duration {
        match self {
            Item::Data(c) => c.at,
            Item::Eof { at } | Item::Action { at, .. } => *at,
        }
    }

    /// The item with its deadline moved to `at`.
    pub fn with_at(mut self, new: Duration) -> Item {
        match &mut self {
            Item::Data(c) => c.at = new,
            Item::Eof { at } | Item::Action { at, .. } => *at = new,
        }
        self
    }
}

/// One fault decision, for the journal: what, where, which seed stream, and the decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultEvent {
    /// When the decision was taken (the pipeline's `now`), in milliseconds.
    pub at_ms: f64,
    /// The stage (toxic) name.
    pub stage: String,
    /// The stage type (`latency`, `loss`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The key of the RNG stream the stage draws from (link/direction/name).
    pub rng: String,
    /// The decision, as JSON (e.g. `{"delay_ms": 734}` or `{"dropped": 12}`).
    pub decision: serde_json::Value,
}

/// What a stage emits in answer to one input or timer: items for the next stage and events.
#[derive(Debug, Default)]
pub struct Out {
    pub items: Vec<Item>,
    pub events: Vec<FaultEvent>,
}

impl Out {
    pub fn push(&mut self, item: Item) {
        self.items.push(item);
    }
}

/// One fault stage of a pipeline: a sans-IO transform of [`Item`]s.
///
/// Inputs are `handle_*`, outputs go into the [`Out`] passed in; timers are asked for with
/// [`Stage::poll_timeout`] and delivered with [`Stage::poll`].
pub trait Stage: Send {
    /// The stage's name (unique within its pipeline).
    fn name(&self) -> &str;
    /// The stage's type name (`latency`, `loss`, ...).
    fn kind(&self) -> &'static str;
    /// The stage joined a pipeline at `now` (connection start, or added live).
    fn handle_start(&mut self, _now: Duration, _out: &mut Out) {}
    /// A connection is being opened to `upstream` (a `host:port`): a stage may refuse it or
    /// fail its name resolution.
    fn handle_connect(
        &mut self,
        _now: Duration,
        _upstream: &str,
        _out: &mut Out,
    ) -> Option<Action> {
        None
    }
    /// One item from the previous stage (or the input).
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out);
    /// Time has reached a deadline this stage asked for.
    fn poll(&mut self, _now: Duration, _out: &mut Out) {}
    /// The next time [`Stage::poll`] must be called, if any.
    fn poll_timeout(&self) -> Option<Duration> {
        None
    }
    /// The stage leaves a live pipeline: emit whatever it holds, in order.
    fn handle_remove(&mut self, _now: Duration, _out: &mut Out) {}
    /// Bytes the stage holds.
    fn buffered(&self) -> usize {
        0
    }
}

/// Milliseconds as a float, for events.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
