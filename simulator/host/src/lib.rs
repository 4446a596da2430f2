//! The acquirer host as a state machine: merchant registry, rules, reversals, settlement. Sans-IO.
