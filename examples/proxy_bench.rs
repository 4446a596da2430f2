//! Benchmark of the fault proxy on loopback: added round-trip latency with no toxics
//! (direct vs through `poslab proxy`), and single-connection throughput (direct, poslab,
//! and socat when it is installed), all bounded.
//!
//! Run: `cargo run --release --example proxy_bench [-- ROUND_TRIPS MIB]`
//! (defaults: 20000 round trips of 64 bytes, 2048 MiB per throughput run). Figures are
//! recorded in BENCHMARKS.md ("Proxy").

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use poslab::journal::Journal;
use poslab::proxy::Proxies;
use poslab_faults::ProxySpec;
use tokio_util::sync::CancellationToken;

/// Echo server for the latency runs (one thread per connection; serves `max` connections).
fn echo_server(max: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sink server for the throughput runs: reads to EOF, then answers one byte.
fn sink_server(max: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                let _ = s.write_all(b"k");
            });
        }
    });
    addr
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Round trips of 64 bytes; returns sorted durations (after 1000 warm-up trips).
fn round_trips(addr: &str, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = [0x5au8; 64];
    let mut back = [0u8; 64];
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 1000 {
        let t = Instant::now();
        s.write_all(&msg).expect("write");
        s.read_exact(&mut back).expect("read");
        if i >= 1000 {
            out.push(t.elapsed());
        }
    }
    out.sort();
    out
}

/// Sends `mib` MiB in 64 KiB writes; returns MB/s (10^6 bytes per second).
fn throughput(addr: &str, mib: usize) -> f64 {
    let mut s = TcpStream::connect(addr).expect("connect");
    let block = vec![0xa5u8; 64 * 1024];
    let t = Instant::now();
    for _ in 0..mib * 16 {
        s.write_all(&block).expect("write");
    }
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut k = [0u8; 1];
    s.read_exact(&mut k).expect("sink answer");
    (mib * 1024 * 1024) as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let trips = args.first().copied().unwrap_or(20_000).min(1_000_000);
    let mib = args.get(1).copied().unwrap_or(2048).min(16_384);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let proxies = Proxies::new(1, Journal::discard(), CancellationToken::new());
    let echo = echo_server(8);
    let sink = sink_server(8);
    let make = |name: &str, upstream: &str| -> anyhow::Result<String> {
        let spec = ProxySpec {
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.into(),
            enabled: true,
            toxics: Vec::new(),
        };
        let shown = runtime
            .block_on(proxies.create(spec))
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        Ok(shown["listen"].as_str().unwrap_or_default().to_owned())
    };
    let echo_proxy = make("echo", &echo)?;
    let sink_proxy = make("sink", &sink)?;

    println!("round trips of 64 bytes: {trips} (after 1000 warm-up)");
    let direct = round_trips(&echo, trips);
    let proxied = round_trips(&echo_proxy, trips);
    for (p, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let d = percentile(&direct, p);
        let x = percentile(&proxied, p);
        println!(
            "  {label}: direct {:7.1} µs  proxied {:7.1} µs  added {:7.1} µs",
            us(d),
            us(x),
            us(x.saturating_sub(d))
        );
    }

    println!("throughput, one connection, {mib} MiB in 64 KiB writes (MB/s):");
    println!("  direct         {:8.0}", throughput(&sink, mib));
    println!("  poslab proxy   {:8.0}", throughput(&sink_proxy, mib));
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    // socat forks a child per connection; the readiness probe uses one sink connection
    match Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!("TCP:{sink}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(mut socat) => {
            let addr = format!("127.0.0.1:{port}");
            let sock = addr.parse()?;
            let ready = (0..100).any(|_| {
                let ok = TcpStream::connect_timeout(&sock, Duration::from_millis(50)).is_ok();
                if !ok {
                    std::thread::sleep(Duration::from_millis(20));
                }
                ok
            });
            if ready {
                println!("  socat          {:8.0}", throughput(&addr, mib));
            }
            let _ = socat.kill();
            let _ = socat.wait();
        }
        Err(_) => println!("  socat          (not installed: apt-get install -y socat)"),
    }
    Ok(())
}
