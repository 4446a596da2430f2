//! The load generator: N terminals, each on its own connection with its own TID and STAN
//! sequence, sending 0200 purchases to a host; latency in an HDR histogram.
//!
//! Bounded: `requests` in total (shared out evenly between the terminals) and an overall
//! time limit, after which requests still in flight count as unanswered. With `rate`, the
//! terminals pace their sends (open loop) and latency is measured from the time a request
//! was due, so a stalled host shows in the percentiles (no coordinated omission); without
//! it, each terminal keeps `window` requests in flight (closed loop) and latency is
//! measured from the send.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use poslab_iso8583::{Field, Message, Mti, Spec};
use serde_json::json;
use tokio::time::Instant;

use crate::net::{self, FramedStream};

/// The test card the load generator uses (an EMV test PAN; journaled masked).
pub const LOAD_PAN: &str = "4761739001010010";

/// What to send.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub target: String,
    pub terminals: usize,
    /// Requests in total, shared out between the terminals.
    pub requests: u64,
    /// Requests per second in total (open loop); `None`: as fast as answers come.
    pub rate: Option<f64>,
    /// Requests in flight per connection.
    pub window: usize,
    pub time_limit: Duration,
    /// The first terminal's TID (as a number; TIDs are 8 digits).
    pub tid_start: u64,
    pub mid: String,
    /// DE 4 in minor units.
    pub amount: u64,
    /// Each terminal's first STAN.
    pub stan_start: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target: "127.0.0.1:8583".into(),
            terminals: 8,
            requests: 10_000,
            rate: None,
            window: 1,
            time_limit: Duration::from_secs(60),
            tid_start: 1,
            mid: "000000000000001".into(),
            amount: 1_000,
            stan_start: 1,
        }
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub terminals: usize,
    pub sent: u64,
    pub answered: u64,
    /// Answers by response code (DE 39).
    pub codes: BTreeMap<String, u64>,
    pub connect_errors: u64,
    pub io_errors: u64,
    /// Answers that did not decode.
    pub bad_frames: u64,
    /// Answers whose STAN matched no request in flight.
    pub unmatched: u64,
    /// Requests never answered (time limit, or the host closed the connection).
    pub unanswered: u64,
    pub elapsed: Duration,
    /// Round-trip latency in microseconds.
    pub latency: Histogram<u64>,
}

impl LoadReport {
    fn new(terminals: usize) -> LoadReport {
        LoadReport {
            terminals,
            sent: 0,
            answered: 0,
            codes: BTreeMap::new(),
            connect_errors: 0,
            io_errors: 0,
            bad_frames: 0,
            unmatched: 0,
            unanswered: 0,
            elapsed: Duration::ZERO,
            // ok: 1 µs .. 1 h with 3 significant digits is a valid histogram
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds"),
        }
    }

    fn merge(&mut self, other: &LoadReport) {
        self.sent += other.sent;
        self.answered += other.answered;
        for (code, n) in &other.codes {
            *self.codes.entry(code.clone()).or_default() += n;
        }
        self.connect_errors += other.connect_errors;
        self.io_errors += other.io_errors;
        self.bad_frames += other.bad_frames;
        self.unmatched += other.unmatched;
        self.unanswered += other.unanswered;
        let _ = self.latency.add(&other.latency);
    }

    pub fn errors(&self) -> u64 {
        self.connect_errors + self.io_errors + self.bad_frames + self.unmatched + self.unanswered
    }

    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "terminals": self.terminals,
            "sent": self.sent,
            "answered": self.answered,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "round_trips_per_s": self.throughput(),
            "latency_us": {
                "p50": self.percentile(0.5),
                "p90": self.percentile(0.9),
                "p99": self.percentile(0.99),
                "p99_9": self.percentile(0.999),
                "max": self.latency.max(),
            },
            "codes": self.codes,
            "errors": {
                "connect": self.connect_errors,
                "io": self.io_errors,
                "bad_frames": self.bad_frames,
                "unmatched": self.unmatched,
                "unanswered": self.unanswered,
            },
        })
    }

    pub fn render(&self) -> String {
        let codes: Vec<String> = self
            .codes
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        format!(
            "{} terminals, {} sent, {} answered in {:.2} s: {:.0} round trips/s\n\
             latency (µs): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n\
             response codes: {}\n\
             errors: {} (connect {}, i/o {}, bad frames {}, unmatched {}, unanswered {})\n",
            self.terminals,
            self.sent,
            self.answered,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.percentile(0.999),
            self.latency.max(),
            if codes.is_empty() {
                "none".into()
            } else {
                codes.join(", ")
            },
            self.errors(),
            self.connect_errors,
            self.io_errors,
            self.bad_frames,
            self.unmatched,
            self.unanswered,
        )
    }
}

/// Runs the load and reports.
pub async fn run(options: LoadOptions, spec: Arc<Spec>) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(options.terminals > 0, "at least one terminal");
    anyhow::ensure!(options.window > 0, "a window of at least one request");
    let start = Instant::now();
    let deadline = start + options.time_limit;
    let n = options.terminals as u64;
    let mut tasks = Vec::new();
    for i in 0..options.terminals {
        let quota = options.requests / n + u64::from((i as u64) < options.requests % n);
        let interval = options
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(n as f64 / r));
        let tid = format!("{:08}", options.tid_start + i as u64);
        let options = options.clone();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            terminal(&options, &spec, tid, quota, interval, deadline).await
        }));
    }
    let mut report = LoadReport::new(options.terminals);
    for task in tasks {
        report.merge(&task.await?);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// A purchase from terminal `tid`, without its STAN.
pub fn purchase(spec: &Spec, tid: &str, mid: &str, amount: u64) -> anyhow::Result<Message> {
    let mut msg = Message::new(Mti::new("0200")?);
    let iso93 = spec.name().contains("93");
    msg.set(2, Field::Text(LOAD_PAN.into()));
    msg.set(3, Field::Text("000000".into()));
    msg.set(4, Field::Text(format!("{amount:012}")));
    msg.set(7, Field::Text("1123100000".into()));
    if !iso93 {
        msg.set(12, Field::Text("100000".into()));
        msg.set(13, Field::Text("1123".into()));
        msg.set(22, Field::Text("051".into()));
        msg.set(25, Field::Text("00".into()));
    }
    msg.set(41, Field::Text(tid.into()));
    msg.set(42, Field::Text(mid.into()));
    msg.set(49, Field::Text("978".into()));
    Ok(msg)
}

/// The header a request carries: a TPDU for 5-byte headers, zeros otherwise.
pub fn request_header(spec: &Spec) -> Vec<u8> {
    match spec.framing().header_len {
        5 => vec![0x60, 0x00, 0x01, 0x00, 0x00],
        n => vec![0; n],
    }
}

async fn terminal(
    o: &LoadOptions,
    spec: &Spec,
    tid: String,
    quota: u64,
    interval: Option<Duration>,
    deadline: Instant,
) -> LoadReport {
    let mut report = LoadReport::new(1);
    if quota == 0 {
        return report;
    }
    let stream = match net::connect(&o.target, Duration::from_secs(10)).await {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(tid, error = %err, "connect failed");
            report.connect_errors += 1;
            report.unanswered += quota;
            return report;
        }
    };
    let mut framed = FramedStream::new(stream);
    let framing = spec.framing().clone();
    let header = request_header(spec);
    let trailer = vec![0u8; framing.trailer_len];
    let mut msg = match purchase(spec, &tid, &o.mid, o.amount) {
        Ok(m) => m,
        Err(err) => {
            tracing::error!(error = %err, "cannot build a purchase");
            report.io_errors += 1;
            return report;
        }
    };
    let mut stan = o.stan_start.clamp(1, 999_999);
    let mut inflight: HashMap<u32, Instant> = HashMap::new();
    let mut next_due = Instant::now();
    let mut buf = Vec::new();
    loop {
        // read the answers that are here
        loop {
            match framed.try_next(|b| framing.decode(b)) {
                Ok(Some(frame)) => {
                    let now = Instant::now();
                    match spec.unpack(&frame.payload) {
                        Ok(answer) => {
                            let matched = answer
                                .text(11)
                                .and_then(|s| s.parse::<u32>().ok())
                                .and_then(|s| inflight.remove(&s));
                            match matched {
                                Some(sent_at) => {
                                    report.answered += 1;
                                    let us = now.duration_since(sent_at).as_micros() as u64;
                                    let _ = report.latency.record(us.max(1));
                                    let code = answer.text(39).unwrap_or("--").to_string();
                                    *report.codes.entry(code).or_default() += 1;
                                }
                                None => report.unmatched += 1,
                            }
                        }
                        Err(_) => report.bad_frames += 1,
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(tid, error = %err, "answer cannot be delimited");
                    report.bad_frames += 1;
                    report.unanswered += inflight.len() as u64 + (quota - report.sent);
                    return report;
                }
            }
        }
        // send what the window and the pace allow
        let now = Instant::now();
        while report.sent < quota
            && inflight.len() < o.window
            && interval.is_none_or(|_| next_due <= now)
        {
            msg.set(11, Field::Text(format!("{stan:06}")));
            let packed = spec.pack(&msg).map_err(|e| e.to_string()).and_then(|p| {
                framing
                    .encode(&header, &p, &trailer)
                    .map_err(|e| e.to_string())
            });
            match packed {
                Ok(bytes) => buf.extend_from_slice(&bytes),
                Err(err) => {
                    tracing::error!(error = %err, "cannot pack a purchase");
                    report.io_errors += 1;
                    report.unanswered += quota - report.sent;
                    return report;
                }
            }
            let sent_at = if let Some(step) = interval {
                let due = next_due;
                next_due += step;
                due
            } else {
                now
            };
            inflight.insert(stan, sent_at);
            report.sent += 1;
            stan = stan % 999_999 + 1;
        }
        if !buf.is_empty() {
            if let Err(err) = framed.write_all(&buf).await {
                tracing::warn!(tid, error = %err, "write failed");
                report.io_errors += 1;
                report.unanswered += inflight.len() as u64;
                return report;
            }
            buf.clear();
        }
        if report.sent >= quota && inflight.is_empty() {
            return report;
        }
        if report.sent >= quota && inflight.is_empty() {
            return report;
        }
        let may_send = report.sent < quota && inflight.len() < o.window && interval.is_some();
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                report.unanswered += inflight.len() as u64 + (quota - report.sent);
                return report;
            }
            _ = tokio::time::sleep_until(next_due), if may_send => {}
            read = framed.fill() => match read {
                Ok(0) | Err(_) => {
                    report.io_errors += 1;
                    report.unanswered += inflight.len() as u64 + (quota - report.sent);
                    return report;
                }
                Ok(_) => {}
            }
        }
    }
}
