//! CPU time per pack/unpack of the benchmark message, for a shared (busy) machine where
//! criterion's wall-clock figures include time spent waiting for a core.
//!
//! `cargo run --release -p poslab-iso8583 --example codec_cpu [ITERATIONS]`
//!
//! Reads this thread's on-CPU nanoseconds from /proc/thread-self/schedstat (Linux) around
//! each loop; prints wall time too.

use std::hint::black_box;
use std::time::Instant;

use poslab_iso8583::samples::purchase_0200_for;
use poslab_iso8583::Spec;

fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn measure(n: u32, mut f: impl FnMut()) -> (f64, Option<f64>) {
    for _ in 0..n / 10 {
        f();
    }
    let (c0, t0) = (cpu_ns(), Instant::now());
    for _ in 0..n {
        f();
    }
    let wall = t0.elapsed().as_nanos() as f64 / n as f64;
    let cpu = match (c0, cpu_ns()) {
        (Some(a), Some(b)) => Some((b - a) as f64 / n as f64),
        _ => None,
    };
    (wall, cpu)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    println!("{n} iterations each; ns per operation (CPU time of this thread / wall time)");
    for name in ["iso87ascii", "iso87binary", "iso87binary-tpdu"] {
        let spec = Spec::builtin(name).expect("built-in");
        let msg = purchase_0200_for(&spec);
        let bytes = spec.pack(&msg).expect("packs");
        let mut out = Vec::with_capacity(512);
        let (pw, pc) = measure(n, || {
            out.clear();
            spec.pack_into(black_box(&msg), &mut out).expect("packs");
            black_box(out.len());
        });
        let (uw, uc) = measure(n, || {
            black_box(spec.unpack(black_box(&bytes)).expect("unpacks"));
        });
        let (rw, rc) = measure(n, || {
            black_box(spec.unpack_ref(black_box(&bytes)).expect("unpacks"));
        });
        let (fw, fc) = measure(n, || {
            let v = spec.unpack_ref(black_box(&bytes)).expect("unpacks");
            black_box((v.text(4), v.text(11), v.text(41), v.get(55)));
        });
        let show = |c: Option<f64>| c.map_or("n/a".to_string(), |c| format!("{c:.0}"));
        println!(
            "{name:<17} {} bytes  pack {} cpu / {pw:.0} wall   unpack {} cpu / {uw:.0} wall\n\
             {:<17} unpack_ref {} cpu / {rw:.0} wall   unpack_ref + DE 4, 11, 41, 55 {} cpu / {fw:.0} wall",
            bytes.len(),
            show(pc),
            show(uc),
            "",
            show(rc),
            show(fc)
        );
    }
}
