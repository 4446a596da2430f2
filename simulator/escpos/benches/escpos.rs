//! Throughput of the parser, the printer and the renderers on a real receipt
//! (fixtures/escpos/sale.bin: text, styles, a raster logo, EAN13, QR, cut).
//! Run: cargo bench -p poslab-escpos --bench escpos

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use poslab_escpos::{codec, print_stream, render, Config};

fn sale() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/escpos/sale.bin"
    ))
    .expect("fixture")
}

fn benches(c: &mut Criterion) {
    let stream = sale();
    let mut g = c.benchmark_group("escpos");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("parse sale.bin", |b| b.iter(|| codec::parse_all(&stream)));
    g.bench_function("print sale.bin (parse + printer)", |b| {
        b.iter(|| print_stream(Config::default(), &stream))
    });
    let receipt = print_stream(Config::default(), &stream).remove(0);
    g.bench_function("render text", |b| b.iter(|| render::text(&receipt)));
    g.bench_function("render json", |b| b.iter(|| render::json(&receipt)));
    g.bench_function("render png", |b| b.iter(|| render::png(&receipt)));
    g.finish();
}

criterion_group!(escpos, benches);
criterion_main!(escpos);
