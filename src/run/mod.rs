//! `poslab run`: Gherkin features against a bench, with cucumber-rs.

pub mod money;
pub mod runner;
pub mod steps;
pub mod world;
