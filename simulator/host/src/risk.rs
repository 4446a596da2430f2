//! Abnormal transaction monitoring: velocity (the same card approved too often within a
//! window) and unusual amounts (a large purchase from a card the host has never approved).
//! Both only turn an approval into a decline; both are off unless configured
//! (`risk:` in the host configuration).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::SystemTime;

use poslab_sensitive::Pan;

use crate::config::{Amount, ResponseCode, RiskConfig};

/// How many approvals between two sweeps of cards whose window has passed.
const SWEEP_EVERY: u32 = 4096;

/// What the host remembers per card. Cards are [`Pan`]s, masked in any `Debug`.
#[derive(Debug, Default)]
pub(crate) struct Risk {
    /// Approval times per card within the velocity window, oldest first.
    approvals: HashMap<Pan, VecDeque<SystemTime>>,
    /// Cards with an approved purchase (kept only when `unusual_amount` is on).
    approved: HashSet<Pan>,
    since_sweep: u32,
}

impl Risk {
    /// The decline, with its journal note, for a purchase of `amount` (minor units) by
    /// `card` at `now` that the host would otherwise approve; `None` lets it through.
    pub(crate) fn check(
        &mut self,
        config: &RiskConfig,
        card: &Pan,
        amount: u64,
        now: SystemTime,
    ) -> Option<(ResponseCode, String)> {
        if let Some(v) = &config.velocity {
            let n = self.approvals.get_mut(card).map_or(0, |times| {
                prune(times, now, v.window);
                times.len()
            });
            if n >= v.max as usize {
                return Some((
                    v.code,
                    format!(
                        "velocity: {n} approvals in window ({} within {}): declined {}",
                        card.masked(),
                        humantime::format_duration(v.window),
                        v.code
                    ),
                ));
            }
        }
        if let Some(u) = &config.unusual_amount {
            if amount > u.above.0 && !self.approved.contains(card) {
                return Some((
                    u.code,
                    format!(
                        "unusual amount: {} above {} from a card not seen before ({}): declined {}",
                        Amount(amount),
                        u.above,
                        card.masked(),
                        u.code
                    ),
                ));
            }
        }
        None
    }

    /// Records an approved purchase by `card` at `now`.
    pub(crate) fn approved(&mut self, config: &RiskConfig, card: &Pan, now: SystemTime) {
        if let Some(v) = &config.velocity {
            let times = self.approvals.entry(card.clone()).or_default();
            prune(times, now, v.window);
            times.push_back(now);
            self.since_sweep += 1;
            if self.since_sweep >= SWEEP_EVERY {
                self.since_sweep = 0;
                self.approvals.retain(|_, times| {
                    prune(times, now, v.window);
                    !times.is_empty()
                });
            }
        }
        if config.unusual_amount.is_some() {
            self.approved.insert(card.clone());
        }
    }
}

/// Drops the approval times that are `window` or more before `now` (a time after `now`,
/// from a clock that stepped back, is kept).
fn prune(times: &mut VecDeque<SystemTime>, now: SystemTime, window: std::time::Duration) {
    times.retain(|t| now.duration_since(*t).map_or(true, |age| age < window));
}
