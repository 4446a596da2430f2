#![no_main]
//! ESC/POS bytes through the streaming parser and the printer: never a panic, a split
//! stream prints the same receipts, every receipt renders.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| poslab_escpos::fuzz::parse(data));
