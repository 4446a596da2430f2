//! Runs a pair of byte streams through fault pipelines (tokio side of `poslab-faults`).
//!
//! [`spawn_link`] copies `a → b` through the *upstream* pipeline and `b → a` through the
//! *downstream* one, writing each item when its deadline comes (tokio's clock: real time,
//! or simulated time under `tokio::time::pause` over in-memory links). A link can follow
//! a live set of toxics ([`Side::live`]): when the set changes, stages are added, replaced
//! or removed in the running pipelines without losing bytes in flight. Every fault
//! decision is journaled (`kind: "fault"`).
//!
//! The streams are generic (`AsyncRead + AsyncWrite`): a TCP connection, a serial port, a
//! pty or a `tokio::io::duplex` pipe. They are handed back when the link ends, so a TCP
//! caller can turn a [`LinkEnd::Reset`] into a real RST (`SO_LINGER 0`).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poslab_faults::protocol::Tally;
use poslab_faults::{Action, Conversation, Item, Pipeline, StreamDir, ToxicSpec};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;

/// The toxics of one direction, as a proxy publishes them.
pub type ToxicSet = Arc<Vec<ToxicSpec>>;

/// Bytes a direction may hold in its pipeline before it stops reading (back-pressure).
const MAX_BUFFERED: usize = 4 << 20;

/// One direction of a link: its pipeline, and optionally the live toxic set it follows.
pub struct Side {
    pipeline: Pipeline,
    live: Option<Live>,
}

struct Live {
    rx: watch::Receiver<ToxicSet>,
    applied: Vec<ToxicSpec>,
    seed: u64,
    /// The other direction's toxics, for those that need an observer on this one.
    other: Option<watch::Receiver<ToxicSet>>,
    observing: Vec<ToxicSpec>,
    /// What the two directions of the connection share.
    conv: Conversation,
}

impl Side {
    /// A fixed pipeline.
    pub fn fixed(pipeline: Pipeline) -> Side {
        Side {
            pipeline,
            live: None,
        }
    }

    /// A pipeline built from the current value of `rx`, then kept in step with it. Stage
    /// RNG streams are keyed `key/<toxic name>` (e.g. `host#3/upstream/latency`).
    pub fn live(rx: watch::Receiver<ToxicSet>, seed: u64, key: &str) -> Side {
        let mut side = Side {
            pipeline: Pipeline::new(),
            live: Some(Live {
                rx,
                applied: Vec::new(),
                seed,
                other: None,
                observing: Vec::new(),
                conv: Conversation::new(),
            }),
        };
        side.sync(Duration::ZERO, key);
        side
    }

    /// Both directions of one connection (`link` names it, e.g. `terminal->host#3`),
    /// following `up` and `down`, sharing one [`Conversation`]: a protocol toxic on one
    /// direction that selects by what went the other way (an `apdu` toxic on the answers)
    /// gets its observer there. Protocol rules count their messages in `tally` (shared by
    /// the connections of a bench link; a fresh one per proxy connection).
    pub fn live_pair(
        up: watch::Receiver<ToxicSet>,
        down: watch::Receiver<ToxicSet>,
        seed: u64,
        link: &str,
        tally: &Tally,
    ) -> (Side, Side) {
        let conv = Conversation::sharing(tally);
        let side = |rx: watch::Receiver<ToxicSet>, other, dir: &str| {
            let mut side = Side {
                pipeline: Pipeline::new(),
                live: Some(Live {
                    rx,
                    applied: Vec::new(),
                    seed,
                    other: Some(other),
                    observing: Vec::new(),
                    conv: conv.clone(),
                }),
            };
            side.sync(Duration::ZERO, &format!("{link}/{dir}"));
            side
        };
        (
            side(up.clone(), down.clone(), "upstream"),
            side(down, up, "downstream"),
        )
    }

    /// The pipeline (e.g. to ask it about a new connection before the link starts).
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    fn sync(&mut self, now: Duration, key: &str) {
        let Some(live) = &mut self.live else { return };
        let wanted: ToxicSet = live.rx.borrow_and_update().clone();
        for old in &live.applied {
            if !wanted.iter().any(|t| t.name == old.name) {
                self.pipeline.remove(&old.name, now);
            }
        }
        for toxic in wanted.iter() {
            let stage = || toxic.build_in(live.seed, key, &live.conv);
            match live.applied.iter().find(|t| t.name == toxic.name) {
                Some(old) if old == toxic => {}
                Some(_) => self.pipeline.replace(stage(), now),
                None => self.pipeline.push(stage(), now),
            }
        }
        live.applied = wanted.to_vec();
        let Some(other) = &mut live.other else { return };
        let observed: Vec<ToxicSpec> = other
            .borrow_and_update()
            .iter()
            .filter(|t| t.needs_observer())
            .cloned()
            .collect();
        let stage_name = |t: &ToxicSpec| format!("{}:observe", t.name);
        for old in &live.observing {
            if !observed.iter().any(|t| t.name == old.name) {
                self.pipeline.remove(&stage_name(old), now);
            }
        }
        for toxic in &observed {
            let Some(stage) = toxic.build_observer(live.seed, key, &live.conv) else {
                continue;
            };
            match live.observing.iter().find(|t| t.name == toxic.name) {
                Some(old) if old == toxic => {}
                Some(_) => self.pipeline.replace(stage, now),
                None => self.pipeline.push(stage, now),
            }
        }
        live.observing = observed;
    }
}

/// How a link ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEnd {
    /// Both sides closed their streams and everything was delivered.
    Finished,
    /// A fault closed the connection.
    Closed,
    /// A fault reset the connection.
    Reset,
    /// The link was cancelled from outside.
    Cancelled,
    /// Reading or writing failed.
    Failed,
}

/// The streams, handed back, and how the link ended.
pub struct LinkOutcome<A, B> {
    pub a: A,
    pub b: B,
    pub end: LinkEnd,
}

/// Names and clocks shared by both directions of a link.
#[derive(Clone)]
pub struct LinkCtx {
    /// The link's name in the journal (e.g. `proxy/host#3`).
    pub link: String,
    pub journal: Journal,
    /// The time origin of the pipelines (`now` = elapsed since `start`).
    pub start: Instant,
    /// Cancelling it ends the link.
    pub cancel: CancellationToken,
}

impl LinkCtx {
    pub fn new(link: &str, journal: Journal) -> LinkCtx {
        LinkCtx {
            link: link.to_owned(),
            journal,
            start: Instant::now(),
            cancel: CancellationToken::new(),
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

const END_NONE: u8 = 0;
const END_CLOSED: u8 = 1;
const END_RESET: u8 = 2;
const END_FAILED: u8 = 3;

/// Starts copying `a → b` through `upstream` and `b → a` through `downstream`.
pub fn spawn_link<A, B>(
    a: A,
    b: B,
    upstream: Side,
    downstream: Side,
    ctx: LinkCtx,
) -> JoinHandle<LinkOutcome<A, B>>
where
    A: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(run_link(a, b, upstream, downstream, ctx))
}

/// [`spawn_link`] without the spawn: runs the link to its end in the calling task.
pub async fn run_link<A, B>(
    a: A,
    b: B,
    upstream: Side,
    downstream: Side,
    ctx: LinkCtx,
) -> LinkOutcome<A, B>
where
    A: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let end = AtomicU8::new(END_NONE);
    let stop = ctx.cancel.child_token();
    let up = pump(ar, bw, upstream, StreamDir::Upstream, &ctx, &stop, &end);
    let down = pump(br, aw, downstream, StreamDir::Downstream, &ctx, &stop, &end);
    let ((ar, bw), (br, aw)) = tokio::join!(up, down);
    let code = end.load(Ordering::SeqCst);
    let end = match code {
        END_CLOSED => LinkEnd::Closed,
        END_RESET => LinkEnd::Reset,
        END_FAILED => LinkEnd::Failed,
        _ if ctx.cancel.is_cancelled() => LinkEnd::Cancelled,
        _ => LinkEnd::Finished,
    };
    LinkOutcome {
        a: ar.unsplit(aw),
        b: br.unsplit(bw),
        end,
    }
}

/// Asks `side`'s stages about a new connection to `upstream` (a name: `host`); `Some` is
/// the refusal (`refuse`, `dns_failure`), journaled like every fault decision.
pub fn refuses(side: &mut Side, ctx: &LinkCtx, upstream: &str) -> Option<Action> {
    let verdict = side.pipeline.handle_connect(ctx.now(), upstream);
    journal_events(&mut side.pipeline, ctx, StreamDir::Upstream);
    verdict
}

fn journal_events(pipeline: &mut Pipeline, ctx: &LinkCtx, dir: StreamDir) {
    let events = pipeline.poll_events();
    if !ctx.journal.is_enabled() {
        return;
    }
    let link = format!("{}/{}", ctx.link, dir.as_str());
    for e in events {
        ctx.journal.record(
            &link,
            "fault",
            json!({
                "stage": e.stage,
                "type": e.kind,
                "rng": e.rng,
                "link_ms": e.at_ms,
                "decision": e.decision,
            }),
        );
    }
}

/// Copies one direction until its stream ends, a fault ends the link, or `stop` fires.
/// Returns the halves so the link can hand the streams back.
async fn pump<R, W>(
    mut r: R,
    mut w: W,
    mut side: Side,
    dir: StreamDir,
    ctx: &LinkCtx,
    stop: &CancellationToken,
    end: &AtomicU8,
) -> (R, W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let key = format!("{}/{}", ctx.link, dir.as_str());
    let mut buf = vec![0u8; 64 * 1024];
    let mut read_done = false;
    let finish = |code: u8| {
        let _ = end.compare_exchange(END_NONE, code, Ordering::SeqCst, Ordering::SeqCst);
        stop.cancel();
    };
    loop {
        let now = ctx.now();
        side.pipeline.poll(now);
        while let Some(item) = side.pipeline.poll_item(now) {
            match item {
                Item::Data(chunk) => {
                    let wrote = tokio::select! {
                        biased;
                        _ = stop.cancelled() => return (r, w),
                        wrote = w.write_all(&chunk.data) => wrote,
                    };
                    if wrote.is_err() {
                        finish(END_FAILED);
                        return (r, w);
                    }
                }
                Item::Eof { .. } => {
                    journal_events(&mut side.pipeline, ctx, dir);
                    let _ = w.shutdown().await;
                    return (r, w);
                }
                Item::Action { action, .. } => {
                    journal_events(&mut side.pipeline, ctx, dir);
                    finish(match action {
                        Action::Close => END_CLOSED,
                        Action::Reset | Action::Refuse | Action::DnsFailure => END_RESET,
                    });
                    return (r, w);
                }
            }
        }
        journal_events(&mut side.pipeline, ctx, dir);
        let deadline = side.pipeline.poll_timeout();
        let can_read = !read_done && side.pipeline.buffered() < MAX_BUFFERED;
        let live = side.live.is_some();
        tokio::select! {
            biased;
            _ = stop.cancelled() => return (r, w),
            changed = async {
                match &mut side.live {
                    Some(Live { rx, other: Some(other), .. }) => tokio::select! {
                        r = rx.changed() => (true, r.is_ok()),
                        r = other.changed() => (false, r.is_ok()),
                    },
                    Some(l) => (true, l.rx.changed().await.is_ok()),
                    None => std::future::pending().await,
                }
            }, if live => {
                match changed {
                    // the proxy was deleted: keep the toxics we have
                    (true, false) => side.live = None,
                    (false, false) => {
                        if let Some(l) = side.live.as_mut() {
                            l.other = None;
                        }
                    }
                    _ => side.sync(ctx.now(), &key),
                }
            }
            _ = tokio::time::sleep_until(ctx.start + deadline.unwrap_or_default()), if deadline.is_some() => {}
            read = r.read(&mut buf), if can_read => match read {
                Ok(0) => {
                    read_done = true;
                    side.pipeline.handle_eof(ctx.now());
                }
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if side.pipeline.is_idle() {
                        // no toxics, nothing in flight: straight through
                        let wrote = tokio::select! {
                            biased;
                            _ = stop.cancelled() => return (r, w),
                            wrote = w.write_all(data) => wrote,
                        };
                        if wrote.is_err() {
                            finish(END_FAILED);
                            return (r, w);
                        }
                    } else {
                        side.pipeline.handle_data(data.to_vec(), ctx.now());
                    }
                }
                Err(_) => {
                    finish(END_FAILED);
                    return (r, w);
                }
            },
        }
    }
}

/// Puts fixed serial faults (a command line's `--faults`) between a tool and its port:
/// what the tool writes to the returned stream goes `upstream` through the `tx` faults to
/// the port, what the port gives comes `downstream` through the `rx` faults. `baud` is the
/// port's speed (for `baud=N`); RNG streams are keyed `link/upstream|downstream/<toxic>`;
/// every decision is journaled.
pub fn with_serial_faults<S>(
    port: S,
    spec: &poslab_faults::SerialSpec,
    baud: u32,
    seed: u64,
    link: &str,
    journal: Journal,
) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mine, theirs) = tokio::io::duplex(64 * 1024);
    let mut up = Pipeline::new();
    let mut down = Pipeline::new();
    for toxic in spec.toxics(baud) {
        match toxic.stream {
            StreamDir::Upstream => up.push(
                toxic.build(seed, &format!("{link}/upstream")),
                Duration::ZERO,
            ),
            StreamDir::Downstream => down.push(
                toxic.build(seed, &format!("{link}/downstream")),
                Duration::ZERO,
            ),
        }
    }
    spawn_link(
        theirs,
        port,
        Side::fixed(up),
        Side::fixed(down),
        LinkCtx::new(link, journal),
    );
    mine
}

#[cfg(test)]
mod tests {
    use super::*;
    use poslab_faults::{StageKind, ToxicSpec};

    fn toxic(name: &str, stream: StreamDir, kind: StageKind) -> ToxicSpec {
        ToxicSpec {
            name: name.into(),
            stream,
            toxicity: 1.0,
            kind,
        }
    }

    fn pipeline(toxics: &[ToxicSpec], key: &str) -> Pipeline {
        let mut p = Pipeline::new();
        for t in toxics {
            p.push(t.build(1, key), Duration::ZERO);
        }
        p
    }

    /// A 60 s latency toxic over in-memory links under the paused clock: the bytes arrive
    /// after 60 s of simulated time and no wall time to speak of.
    #[tokio::test(start_paused = true)]
    async fn sixty_seconds_of_latency_take_no_wall_time() {
        let wall = std::time::Instant::now();
        let (mut client, a) = tokio::io::duplex(1024);
        let (b, mut server) = tokio::io::duplex(1024);
        let journal = Journal::in_memory();
        let up = pipeline(
            &[toxic(
                "lat",
                StreamDir::Upstream,
                StageKind::Latency {
                    latency: 60_000,
                    jitter: 0,
                },
            )],
            "t/upstream",
        );
        let ctx = LinkCtx::new("t", journal.clone());
        let link = spawn_link(a, b, Side::fixed(up), Side::fixed(Pipeline::new()), ctx);
        let sim = Instant::now();
        client.write_all(b"0200 purchase").await.unwrap();
        let mut got = [0u8; 13];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"0200 purchase");
        assert!(
            sim.elapsed() >= Duration::from_secs(60),
            "{:?}",
            sim.elapsed()
        );
        server.write_all(b"0210").await.unwrap();
        let mut back = [0u8; 4];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"0210");
        drop(client);
        drop(server);
        let outcome = link.await.unwrap();
        assert_eq!(outcome.end, LinkEnd::Finished);
        assert!(
            wall.elapsed() < Duration::from_secs(5),
            "{:?}",
            wall.elapsed()
        );
        let entries = journal.entries().unwrap();
        assert!(entries.iter().any(|e| e["link"] == "t/upstream"
            && e["type"] == "latency"
            && e["decision"]["delay_ms"] == 60_000.0));
    }

    #[tokio::test(start_paused = true)]
    async fn limit_data_closes_both_sides_and_live_toxics_apply_to_open_links() {
        let (mut client, a) = tokio::io::duplex(1024);
        let (b, mut server) = tokio::io::duplex(1024);
        let (tx, rx) = watch::channel::<ToxicSet>(Arc::new(Vec::new()));
        let (_dtx, drx) = watch::channel::<ToxicSet>(Arc::new(Vec::new()));
        let ctx = LinkCtx::new("live", Journal::in_memory());
        let up = Side::live(rx, 5, "live/upstream");
        let down = Side::live(drx, 5, "live/downstream");
        let link = spawn_link(a, b, up, down, ctx);

        client.write_all(b"free").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"free");

        tx.send(Arc::new(vec![toxic(
            "lim",
            StreamDir::Upstream,
            StageKind::LimitData { bytes: 3 },
        )]))
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        client.write_all(b"abcdef").await.unwrap();
        let outcome = link.await.unwrap();
        assert_eq!(outcome.end, LinkEnd::Closed);
        drop(outcome); // closes both streams, as the proxy does
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"abc");
        let mut nothing = Vec::new();
        client.read_to_end(&mut nothing).await.unwrap();
        assert!(nothing.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn removing_a_toxic_releases_what_it_held() {
        let (mut client, a) = tokio::io::duplex(1024);
        let (b, mut server) = tokio::io::duplex(1024);
        let (tx, rx) = watch::channel::<ToxicSet>(Arc::new(vec![toxic(
            "f",
            StreamDir::Upstream,
            StageKind::Reordering {
                probability: 1.0,
                gap: 5,
                max_hold: 3_600_000,
            },
        )]));
        let (_dtx, drx) = watch::channel::<ToxicSet>(Arc::new(Vec::new()));
        let link = spawn_link(
            a,
            b,
            Side::live(rx, 1, "r/upstream"),
            Side::live(drx, 1, "r/downstream"),
            LinkCtx::new("r", Journal::discard()),
        );
        client.write_all(b"held").await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        tx.send(Arc::new(Vec::new())).unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"held");
        drop(client);
        drop(server);
        assert_eq!(link.await.unwrap().end, LinkEnd::Finished);
    }
}
