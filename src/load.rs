//! The load generator: N terminals, each on its own connection with its own TID and STAN
//! sequence, sending 0200 purchases to a host; latency in an HDR histogram.
//!
//! Bounded: `requests` in total (shared out evenly between the terminals), a connect
//! timeout, and an overall time limit counted from when every terminal has connected,
//! after which requests still in flight count as unanswered. With `rate`, the terminals
//! pace their sends (open loop) and latency is measured from the time a request was due,
//! so a stalled host shows in the percentiles (no coordinated omission); without it, each
//! terminal keeps `window` requests in flight (closed loop) and latency is measured from
//! the send.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use poslab_iso8583::{Field, Message, Mti, Spec};
use serde_json::json;
use tokio::time::Instant;

use crate::net::{self, FramedStream};

/// The test card the load generator uses: the Visa test card of `fixtures/cards/`
/// (journaled masked).
pub fn load_pan() -> &'static str {
    poslab_sensitive::test_cards::visa()
}

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

/// How long a terminal may take to connect (before the clock starts).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the load and reports. Every terminal connects (and gets its histogram) first; the
/// clock (the time limit, the pacing schedule and the elapsed time) starts when all have
/// connected or failed to, so set-up is not counted as the first requests' latency.
pub async fn run(options: LoadOptions, spec: Arc<Spec>) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(options.terminals > 0, "at least one terminal");
    anyhow::ensure!(options.window > 0, "a window of at least one request");
    let connecting: Vec<_> = (0..options.terminals)
        .map(|_| {
            let target = options.target.clone();
            tokio::spawn(async move { net::connect(&target, CONNECT_TIMEOUT).await })
        })
        .collect();
    let mut streams = Vec::with_capacity(connecting.len());
    for c in connecting {
        // each terminal's report (its histogram is some 200 KB to zero) is made now too
        streams.push((c.await?, LoadReport::new(1)));
    }
    let start = Instant::now();
    let deadline = start + options.time_limit;
    let n = options.terminals as u64;
    let pacer = options
        .rate
        .filter(|r| *r > 0.0)
        .map(|rate| Pacer::start(rate, options.terminals, options.requests, start, deadline));
    let mut tasks = Vec::new();
    for (i, (stream, report)) in streams.into_iter().enumerate() {
        let quota = options.requests / n + u64::from((i as u64) < options.requests % n);
        let tid = format!("{:08}", options.tid_start + i as u64);
        let options = options.clone();
        let spec = spec.clone();
        let seat = Seat {
            tid,
            stream,
            report,
            quota,
            pace: pacer.as_ref().map(|p| p.terminal(i)),
        };
        tasks.push(tokio::spawn(async move {
            terminal(&options, &spec, seat, deadline).await
        }));
    }
    let mut report = LoadReport::new(options.terminals);
    for task in tasks {
        report.merge(&task.await?);
    }
    report.elapsed = start.elapsed();
    if let Some(p) = pacer {
        p.stop();
    }
    Ok(report)
}

/// Open-loop pacing. Request `k` (0-based, over all terminals) is due at
/// `start + k / rate` and belongs to terminal `k % n`, so the terminals' sends interleave
/// evenly instead of falling due together. One OS thread sleeps to each due time (the OS
/// timer: tens of µs late, where tokio's timer wheel rounds up to its 1 ms tick and so
/// released a whole millisecond of requests at once) and hands the terminal its credit.
struct Pacer {
    credits: Vec<Arc<Credit>>,
    rate: f64,
    start: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Requests released to one terminal so far, and the wake-up that says so.
#[derive(Default)]
struct Credit {
    released: std::sync::atomic::AtomicU64,
    notify: tokio::sync::Notify,
}

/// What a terminal needs to pace itself.
#[derive(Clone)]
struct Pace {
    credit: Arc<Credit>,
    /// This terminal's index and the number of terminals: its j-th request is number
    /// `index + j * terminals` overall.
    index: u64,
    terminals: u64,
    rate: f64,
    start: Instant,
}

impl Pace {
    /// When this terminal's `j`-th request is due.
    fn due(&self, j: u64) -> Instant {
        self.start + Duration::from_secs_f64((self.index + j * self.terminals) as f64 / self.rate)
    }

    fn released(&self) -> u64 {
        self.credit
            .released
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The pacer wakes at most this often (requests due within one tick go out together).
const PACER_TICK: Duration = Duration::from_micros(50);

impl Pacer {
    fn start(
        rate: f64,
        terminals: usize,
        requests: u64,
        start: Instant,
        deadline: Instant,
    ) -> Pacer {
        use std::sync::atomic::Ordering;
        let credits: Vec<Arc<Credit>> = (0..terminals).map(|_| Arc::default()).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, s) = (credits.clone(), stop.clone());
        let t0 = start;
        let (start, deadline) = (start.into_std(), deadline.into_std());
        let n = terminals as u64;
        let thread = std::thread::Builder::new()
            .name("poslab-load-pacer".into())
            .spawn(move || {
                let due = |k: u64| start + Duration::from_secs_f64(k as f64 / rate);
                let mut k = 0u64;
                let mut woken = vec![false; c.len()];
                while k < requests && !s.load(Ordering::Relaxed) {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        break;
                    }
                    let next = due(k);
                    if next > now {
                        // bounded, so that a stop is seen soon even at a slow rate
                        let nap = (next - now).clamp(PACER_TICK, Duration::from_millis(100));
                        std::thread::sleep(nap);
                        continue;
                    }
                    while k < requests && due(k) <= now {
                        let t = (k % n) as usize;
                        if let Some(credit) = c.get(t) {
                            credit.released.fetch_add(1, Ordering::Release);
                        }
                        if let Some(w) = woken.get_mut(t) {
                            *w = true;
                        }
                        k += 1;
                    }
                    for (credit, w) in c.iter().zip(woken.iter_mut()) {
                        if std::mem::take(w) {
                            credit.notify.notify_one();
                        }
                    }
                }
            })
            .ok();
        Pacer {
            credits,
            rate,
            start: t0,
            stop,
            thread,
        }
    }

    fn terminal(&self, i: usize) -> Pace {
        Pace {
            credit: self.credits.get(i).cloned().unwrap_or_default(),
            index: i as u64,
            terminals: self.credits.len() as u64,
            rate: self.rate,
            start: self.start,
        }
    }

    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A purchase from terminal `tid`, without its STAN: a 0200, or a 1200 in a 1993 dialect.
pub fn purchase(spec: &Spec, tid: &str, mid: &str, amount: u64) -> anyhow::Result<Message> {
    let iso93 = spec.name().contains("93");
    let mut msg = Message::new(Mti::new(if iso93 { "1200" } else { "0200" })?);
    msg.set(2, Field::Text(load_pan().into()));
    msg.set(3, Field::Text("000000".into()));
    msg.set(4, Field::Text(format!("{amount:012}").into()));
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

/// Waits for the pacer to release more requests (forever without pacing, or when this
/// terminal may not send anyway).
async fn notified(credit: Option<Arc<Credit>>) {
    match credit {
        Some(c) => c.notify.notified().await,
        None => std::future::pending().await,
    }
}

/// The header a request carries: a TPDU for 5-byte headers, zeros otherwise.
pub fn request_header(spec: &Spec) -> Vec<u8> {
    match spec.framing().header_len {
        5 => vec![0x60, 0x00, 0x01, 0x00, 0x00],
        n => vec![0; n],
    }
}

/// One load terminal, ready before the clock starts: its TID, its connection (or why
/// there is none), its empty report, its share of the requests and its pace.
struct Seat {
    tid: String,
    stream: anyhow::Result<tokio::net::TcpStream>,
    report: LoadReport,
    quota: u64,
    pace: Option<Pace>,
}

async fn terminal(o: &LoadOptions, spec: &Spec, seat: Seat, deadline: Instant) -> LoadReport {
    let Seat {
        tid,
        stream,
        mut report,
        quota,
        pace,
    } = seat;
    if quota == 0 {
        return report;
    }
    let stream = match stream {
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
    let mut buf = Vec::new();
    loop {
        // read the answers that are here
        loop {
            match framed.try_next(|b| framing.decode(b)) {
                Ok(Some(frame)) => {
                    let now = Instant::now();
                    // a checked view: the answer's values are not copied, DE 11 and 39
                    // are read in place
                    match spec.unpack_ref(&frame.payload) {
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
                                    let code = answer.text(39).unwrap_or("--".into());
                                    match report.codes.get_mut(code.as_ref()) {
                                        Some(n) => *n += 1,
                                        None => {
                                            report.codes.insert(code.into_owned(), 1);
                                        }
                                    }
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
            && pace.as_ref().is_none_or(|p| report.sent < p.released())
        {
            msg.set(11, Field::Text(format!("{stan:06}").into()));
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
            // paced: from when the request was due, so a late answer that held up this
            // terminal's next request counts against the host (no coordinated omission)
            let sent_at = pace.as_ref().map_or(now, |p| p.due(report.sent));
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
        let may_send = report.sent < quota && inflight.len() < o.window;
        let credit = pace.as_ref().filter(|_| may_send).map(|p| p.credit.clone());
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                report.unanswered += inflight.len() as u64 + (quota - report.sent);
                return report;
            }
            _ = notified(credit) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_requests_interleave_evenly_over_the_terminals() {
        let start = Instant::now();
        let pace = |index| Pace {
            credit: Arc::default(),
            index,
            terminals: 4,
            rate: 1_000.0,
            start,
        };
        // request k overall is due at k ms; terminal i sends requests i, i+4, i+8...
        let ms = |t: Instant| t.duration_since(start).as_secs_f64() * 1e3;
        assert!((ms(pace(0).due(0)) - 0.0).abs() < 1e-6);
        assert!((ms(pace(1).due(0)) - 1.0).abs() < 1e-6);
        assert!((ms(pace(3).due(2)) - 11.0).abs() < 1e-6);
        let mut all: Vec<f64> = (0..4)
            .flat_map(|i| (0..5).map(move |j| ms(pace(i).due(j))))
            .collect();
        all.sort_by(f64::total_cmp);
        for (k, t) in all.iter().enumerate() {
            assert!((t - k as f64).abs() < 1e-6, "request {k} due at {t} ms");
        }
    }
}
