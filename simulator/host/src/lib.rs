//! The acquirer host as a state machine: merchant registry, rules, reversals, settlement.
//! Sans-IO.
//!
//! [`Host::handle`] takes one decoded request and a [`RequestContext`] (connection id and
//! the time, passed in) and returns a [`Decision`]: the answer (if any), how to deliver it
//! ([`Action`]: delay, twice, truncated, malformed, close, unsolicited message), the rule
//! that decided and notes for the journal. The async adapter (`poslab::host`) reads and
//! writes the frames, sleeps and closes; this crate never does I/O, reads no clock and
//! uses no random numbers.
//!
//! What the host does, flow by flow:
//! - provisioning: a TID that is not provisioned, or a MID that is not the terminal's,
//!   gets `03`;
//! - 0100/0200 (authorisation, financial): rules decide (first match wins); approvals
//!   get an approval code (DE 38) and an RRN (DE 37), both unique; the same TID + STAN +
//!   amount again within the batch is a duplicate (`94`, or the first answer again);
//!   processing code 02xxxx/22xxxx is a void of the original named by DE 37 (its RRN) or
//!   DE 90, 20xxxx a refund; risk monitoring ([`config::RiskConfig`]: velocity, unusual
//!   amounts) can then turn a purchase approval into a decline (`59`);
//! - 0120/0220 advices: recorded and acknowledged, repeats answered as before; a 0220
//!   completion of a 0100 pre-authorisation settles (the 0100 never does);
//! - 0400/0420 (repeats 0401/0421): matched to the original by TID + STAN (DE 90 where
//!   present, else DE 11); idempotent, never reversing twice; an unknown original gets
//!   `25` (configurable);
//! - 0800: sign-on (001), sign-off (002), echo (301), key exchange (101/161, through
//!   [`Security`]);
//! - 0500: the terminal's totals (DE 74-77, 86-89, 97) against the host's own batch:
//!   `00` and the batch closes, or `95`; after 0320 batch upload the uploaded
//!   transactions are the basis of the next 0500.
//!
//! 1993 requests (MTI `1xxx`: 1100, 1200, 1420, 1500, 1804...) go through the same flows
//! and are answered with the 1993 action code in DE 39 ([`action_code`]).

pub mod action_code;
pub mod config;
pub mod crypto_security;
pub mod fuzz;
pub mod ids;
mod machine;
pub mod redact;
mod risk;
pub mod rules;
pub mod security;
pub mod settlement;

pub use config::{Config, Delivery, ResponseCode, DEFAULT_CONFIG};
pub use crypto_security::CryptoSecurity;
pub use machine::{
    Action, Decision, Host, RequestContext, TerminalState, Txn, TxnKind, TxnState, Uploaded, ECHOED,
};
pub use rules::{Facts, Rule, RuleSet};
pub use security::{NoSecurity, Security};
pub use settlement::Totals;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A configuration file that does not parse: `origin` is `file:line:column`.
    #[error("{origin}: {message}")]
    Config { origin: String, message: String },
}
