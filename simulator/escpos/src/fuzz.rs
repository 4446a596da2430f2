//! Fuzz entry points (the cargo-fuzz targets are one-liners over these).

use std::time::Duration;

use crate::{codec, render, Config, Event, Printer};

/// Parses and prints arbitrary bytes, split in two at a point chosen by the input, and
/// checks the invariants: never a panic, always a model, the split changes nothing, every
/// receipt renders.
pub fn parse(data: &[u8]) {
    let whole = crate::print_stream(Config::default(), data);
    let cut = data
        .first()
        .map(|&b| usize::from(b) % (data.len() + 1))
        .unwrap_or(0);
    let (a, b) = data.split_at(cut.min(data.len()));
    let mut p = Printer::new(Config::default());
    p.handle_bytes(Duration::ZERO, a);
    p.handle_bytes(Duration::ZERO, b);
    p.handle_end_of_stream(Duration::ZERO);
    let mut split = Vec::new();
    while let Some(e) = p.poll_event() {
        if let Event::Receipt(r) = e {
            split.push(r);
        }
    }
    split.extend(p.finish_receipt());
    assert_eq!(whole, split, "a split stream printed differently");
    let parsed = codec::parse_all(data);
    let total: u64 = parsed.iter().map(|p| p.len).sum();
    assert_eq!(
        total,
        data.len() as u64,
        "every byte belongs to one command"
    );
    for r in &whole {
        let _ = render::text(r);
        let _ = render::json(r);
        if data.len() < 512 {
            let _ = render::png(r);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn regression_del_dle_dle() {
        let data = [127u8, 16, 16];
        let _ = crate::print_stream(crate::Config::default(), &data);
        super::parse(&data);
    }
}
