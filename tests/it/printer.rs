//! Integration tests: printer.
