//! A chain of stages for one direction of one link.

use std::collections::VecDeque;
use std::time::Duration;

use crate::{Action, Chunk, FaultEvent, Item, Out, Stage};

/// Stages in order; what the last one emits waits in a queue until its deadline.
///
/// The queue keeps the order the stages emitted and makes deadlines non-decreasing (an
/// item is never due before the one ahead of it), so the runtime writes the head when it
/// is due and never reorders.
#[derive(Default)]
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    queue: VecDeque<Item>,
    last_at: Duration,
    events: Vec<FaultEvent>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stages", &self.names())
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl Pipeline {
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// The stage names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    pub fn len(&self) -> usize {
        self.stages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// No stage and nothing queued: the runtime may copy bytes straight through.
    pub fn is_idle(&self) -> bool {
        self.stages.is_empty() && self.queue.is_empty()
    }

    /// Bytes held in stages and in the output queue (for back-pressure).
    pub fn buffered(&self) -> usize {
        let queued: usize = self
            .queue
            .iter()
            .map(|i| match i {
                Item::Data(c) => c.data.len(),
                _ => 0,
            })
            .sum();
        queued + self.stages.iter().map(|s| s.buffered()).sum::<usize>()
    }

    /// Appends a stage at the end of the chain (toxiproxy appends new toxics too).
    pub fn push(&mut self, stage: Box<dyn Stage>, now: Duration) {
        let at = self.stages.len();
        self.insert(at, stage, now);
    }

    /// Inserts a stage at `index` (clamped) and starts it.
    pub fn insert(&mut self, index: usize, mut stage: Box<dyn Stage>, now: Duration) {
        let index = index.min(self.stages.len());
        let mut out = Out::default();
        stage.handle_start(now, &mut out);
        self.stages.insert(index, stage);
        self.events.append(&mut out.events);
        self.feed(index + 1, out.items, now);
    }

    /// Removes the stage called `name`; what it held goes on through the stages after it.
    /// Returns its position, or `None` when no stage has that name.
    pub fn remove(&mut self, name: &str, now: Duration) -> Option<usize> {
        let index = self.stages.iter().position(|s| s.name() == name)?;
        let mut stage = self.stages.remove(index);
        let mut out = Out::default();
        stage.handle_remove(now, &mut out);
        self.events.append(&mut out.events);
        self.feed(index, out.items, now);
        Some(index)
    }

    /// Replaces the stage called `name` in place (an edited toxic); appends when absent.
    pub fn replace(&mut self, stage: Box<dyn Stage>, now: Duration) {
        let name = stage.name().to_owned();
        match self.remove(&name, now) {
            Some(index) => self.insert(index, stage, now),
            None => self.push(stage, now),
        }
    }

    /// A connection is about to be opened to `upstream`: the first stage that refuses it
    /// (or fails its name resolution) decides.
    pub fn handle_connect(&mut self, now: Duration, upstream: &str) -> Option<Action> {
        for stage in &mut self.stages {
            let mut out = Out::default();
            let verdict = stage.handle_connect(now, upstream, &mut out);
            self.events.append(&mut out.events);
            if verdict.is_some() {
                return verdict;
            }
        }
        None
    }

    /// Bytes read at `now`.
    pub fn handle_data(&mut self, data: Vec<u8>, now: Duration) {
        self.feed(0, vec![Item::Data(Chunk { data, at: now })], now);
    }

    /// The sender closed its side at `now`.
    pub fn handle_eof(&mut self, now: Duration) {
        self.feed(0, vec![Item::Eof { at: now }], now);
    }

    /// Delivers due timers to the stages.
    pub fn poll(&mut self, now: Duration) {
        let mut i = 0;
        while i < self.stages.len() {
            if self.stages[i].poll_timeout().is_some_and(|t| t <= now) {
                let mut out = Out::default();
                self.stages[i].poll(now, &mut out);
                self.events.append(&mut out.events);
                self.feed(i + 1, out.items, now);
            }
            i += 1;
        }
    }

    /// The next time the runtime must act: the head of the queue or a stage timer.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let head = self.queue.front().map(Item::at);
        let timers = self.stages.iter().filter_map(|s| s.poll_timeout()).min();
        match (head, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next item due at `now`, if any.
    pub fn poll_item(&mut self, now: Duration) -> Option<Item> {
        if self.queue.front().is_some_and(|i| i.at() <= now) {
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// The decisions taken since the last call.
    pub fn poll_events(&mut self) -> Vec<FaultEvent> {
        std::mem::take(&mut self.events)
    }

    fn feed(&mut self, from: usize, mut items: Vec<Item>, now: Duration) {
        for stage in self.stages.iter_mut().skip(from) {
            if items.is_empty() {
                return;
            }
            let mut out = Out::default();
            for item in items.drain(..) {
                stage.handle(item, now, &mut out);
            }
            self.events.append(&mut out.events);
            items = out.items;
        }
        for item in items {
            let at = item.at().max(self.last_at);
            self.last_at = at;
            self.queue.push_back(item.with_at(at));
        }
    }
}
