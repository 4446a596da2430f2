//! Pack and unpack of the realistic 23-field 0200 (DE 35, 52, 55, 90, 128) per dialect.
//! `cargo bench -p poslab-iso8583 -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use poslab_iso8583::samples::purchase_0200_for;
use poslab_iso8583::Spec;

fn codec(c: &mut Criterion) {
    for name in ["iso87ascii", "iso87binary", "iso87binary-tpdu"] {
        let spec = Spec::builtin(name).expect("built-in");
        let msg = purchase_0200_for(&spec);
        let bytes = spec.pack(&msg).expect("packs");
        let mut out = Vec::with_capacity(512);
        c.bench_function(&format!("{name}/pack_0200_23_fields"), |b| {
            b.iter(|| {
                out.clear();
                spec.pack_into(black_box(&msg), &mut out).expect("packs");
                black_box(out.len())
            })
        });
        c.bench_function(&format!("{name}/unpack_0200_23_fields"), |b| {
            b.iter(|| black_box(spec.unpack(black_box(&bytes)).expect("unpacks")))
        });
        c.bench_function(&format!("{name}/unpack_ref_0200_23_fields"), |b| {
            b.iter(|| black_box(spec.unpack_ref(black_box(&bytes)).expect("unpacks")))
        });
        c.bench_function(&format!("{name}/unpack_ref_0200_then_read_4_fields"), |b| {
            b.iter(|| {
                let v = spec.unpack_ref(black_box(&bytes)).expect("unpacks");
                black_box((v.text(4), v.text(11), v.text(41), v.get(55)))
            })
        });
    }
    let text = Spec::builtin_yaml("iso87ascii").expect("built-in");
    c.bench_function("iso87ascii/spec_load", |b| {
        b.iter(|| black_box(Spec::from_yaml(black_box(text), "bench").expect("loads")))
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
