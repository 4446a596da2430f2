//! Property tests of the pipeline invariants and the spec parsers, and the replay of the
//! `faults_toxic` and `faults_config` fuzz corpora.

use std::time::Duration;

use poslab_faults::{Action, Chunk, Item, Pipeline, StageKind, StreamDir, ToxicSpec};
use proptest::prelude::*;

fn toxic(name: &str, kind: StageKind) -> ToxicSpec {
    ToxicSpec {
        name: name.into(),
        stream: StreamDir::Downstream,
        toxicity: 1.0,
        kind,
    }
}

/// Feeds `chunks` (data, gap before it in µs) and an EOF, runs the clock to the end, and
/// returns every item in delivery order.
fn run(pipeline: &mut Pipeline, chunks: &[(Vec<u8>, u64)]) -> Vec<Item> {
    let mut now = Duration::ZERO;
    let mut out = Vec::new();
    let drain = |p: &mut Pipeline, now: Duration, out: &mut Vec<Item>| {
        p.poll(now);
        while let Some(item) = p.poll_item(now) {
            out.push(item);
        }
    };
    for (data, gap) in chunks {
        now += Duration::from_micros(*gap);
        drain(pipeline, now, &mut out);
        pipeline.handle_data(data.clone(), now);
        drain(pipeline, now, &mut out);
    }
    pipeline.handle_eof(now);
    for _ in 0..10_000 {
        match pipeline.poll_timeout() {
            Some(t) => {
                now = now.max(t);
                drain(pipeline, now, &mut out);
            }
            None => break,
        }
    }
    out
}

fn bytes(items: &[Item]) -> Vec<u8> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Data(c) => Some(c.data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn data_chunks(items: &[Item]) -> Vec<Vec<u8>> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Data(Chunk { data, .. }) => Some(data.clone()),
            _ => None,
        })
        .collect()
}

fn input() -> impl Strategy<Value = Vec<(Vec<u8>, u64)>> {
    proptest::collection::vec(
        (proptest::collection::vec(any::<u8>(), 1..300), 0u64..5_000),
        0..30,
    )
}

fn order_keeping_kind() -> impl Strategy<Value = StageKind> {
    prop_oneof![
        (0u64..2_000, 0u64..500)
            .prop_map(|(latency, jitter)| StageKind::Latency { latency, jitter }),
        (0u64..500).prop_map(|rate| StageKind::Bandwidth { rate }),
        (0u64..64, 0u64..64, 0u64..2_000).prop_map(|(average_size, v, delay)| StageKind::Slicer {
            average_size,
            size_variation: v,
            delay
        }),
        (0u64..1_000).prop_map(|delay| StageKind::SlowClose { delay }),
        (1u64..50, 0u64..50).prop_map(|(up, down)| StageKind::Flapping {
            up,
            down,
            mode: poslab_faults::stages::FlapMode::Stall
        }),
        (0u64..3).prop_map(|nth| StageKind::Message {
            framing: "len2".into(),
            nth,
            action: poslab_faults::message::MessageAction::Delay,
            delay: 30,
            match_offset: 0,
            match_hex: String::new(),
        }),
    ]
}

proptest! {
    #[test]
    fn latency_slicer_bandwidth_deliver_exactly_the_input_in_order(
        chunks in input(), seed in any::<u64>(),
        latency in 0u64..500, jitter in 0u64..200, avg in 1u64..40, var in 0u64..40, rate in 1u64..100,
    ) {
        let mut p = Pipeline::new();
        p.push(toxic("lat", StageKind::Latency { latency, jitter }).build(seed, "l/downstream"), Duration::ZERO);
        p.push(toxic("sl", StageKind::Slicer { average_size: avg, size_variation: var, delay: 100 }).build(seed, "l/downstream"), Duration::ZERO);
        p.push(toxic("bw", StageKind::Bandwidth { rate }).build(seed, "l/downstream"), Duration::ZERO);
        let out = run(&mut p, &chunks);
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.0.clone()).collect();
        prop_assert_eq!(bytes(&out), want);
        let ats: Vec<Duration> = out.iter().map(Item::at).collect();
        prop_assert!(ats.windows(2).all(|w| w[0] <= w[1]), "deadlines never go back");
        prop_assert!(matches!(out.last(), Some(Item::Eof { .. })), "ends with the eof");
    }

    #[test]
    fn loss_only_removes_whole_chunks(chunks in input(), seed in any::<u64>(), p in 0.0f64..=1.0) {
        let mut pipe = Pipeline::new();
        pipe.push(toxic("loss", StageKind::Loss { probability: p }).build(seed, "l/up"), Duration::ZERO);
        let out = data_chunks(&run(&mut pipe, &chunks));
        // the output is a subsequence of the input chunks
        let mut it = chunks.iter().map(|c| &c.0);
        for c in &out {
            prop_assert!(it.any(|i| i == c), "chunk not from the input, or out of order");
        }
    }

    #[test]
    fn duplication_only_duplicates(chunks in input(), seed in any::<u64>(), p in 0.0f64..=1.0) {
        let mut pipe = Pipeline::new();
        pipe.push(toxic("dup", StageKind::Duplication { probability: p }).build(seed, "l/up"), Duration::ZERO);
        let out = data_chunks(&run(&mut pipe, &chunks));
        let mut dedup = out.clone();
        dedup.dedup();
        let mut want: Vec<Vec<u8>> = chunks.iter().map(|c| c.0.clone()).collect();
        want.dedup();
        prop_assert_eq!(dedup, want);
        prop_assert!(out.len() >= chunks.len() && out.len() <= 2 * chunks.len());
    }

    #[test]
    fn corruption_keeps_lengths_and_flips_at_most_the_bits_asked(chunks in input(), seed in any::<u64>(), bits in 1u32..4) {
        let mut pipe = Pipeline::new();
        pipe.push(toxic("c", StageKind::Corruption { probability: 0.5, bits }).build(seed, "l/up"), Duration::ZERO);
        let out = data_chunks(&run(&mut pipe, &chunks));
        prop_assert_eq!(out.len(), chunks.len());
        for (o, (i, _)) in out.iter().zip(&chunks) {
            prop_assert_eq!(o.len(), i.len());
            let diff: u32 = o.iter().zip(i).map(|(a, b)| (a ^ b).count_ones()).sum();
            prop_assert!(diff <= bits);
        }
    }

    #[test]
    fn reordering_is_a_permutation(chunks in input(), seed in any::<u64>(), p in 0.0f64..=1.0, gap in 1u32..4) {
        let mut pipe = Pipeline::new();
        pipe.push(toxic("r", StageKind::Reordering { probability: p, gap, max_hold: 3 }).build(seed, "l/up"), Duration::ZERO);
        let mut out = data_chunks(&run(&mut pipe, &chunks));
        let mut want: Vec<Vec<u8>> = chunks.iter().map(|c| c.0.clone()).collect();
        out.sort();
        want.sort();
        prop_assert_eq!(out, want);
    }

    /// Adding and removing order-keeping stages while bytes are in flight never loses or
    /// reorders them.
    #[test]
    fn adding_or_removing_stages_live_loses_nothing(
        chunks in input(), seed in any::<u64>(),
        kinds in proptest::collection::vec(order_keeping_kind(), 1..5),
        ops in proptest::collection::vec((0usize..30, any::<bool>(), 0usize..5), 0..12),
    ) {
        let mut p = Pipeline::new();
        let mut now = Duration::ZERO;
        let mut out = Vec::new();
        for (i, (data, gap)) in chunks.iter().enumerate() {
            now += Duration::from_micros(*gap);
            for (at, add, which) in &ops {
                if *at == i {
                    let k = &kinds[*which % kinds.len()];
                    let name = format!("s{}", which % kinds.len());
                    if *add {
                        p.replace(toxic(&name, k.clone()).build(seed, "l/d"), now);
                    } else {
                        p.remove(&name, now);
                    }
                }
            }
            p.poll(now);
            while let Some(item) = p.poll_item(now) { out.push(item); }
            p.handle_data(data.clone(), now);
        }
        for name in p.names().iter().map(|s| s.to_string()).collect::<Vec<_>>() {
            p.remove(&name, now);
        }
        p.handle_eof(now);
        for _ in 0..10_000 {
            let Some(t) = p.poll_timeout() else { break };
            now = now.max(t);
            p.poll(now);
            while let Some(item) = p.poll_item(now) { out.push(item); }
        }
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.0.clone()).collect();
        prop_assert_eq!(bytes(&out), want);
    }

    /// Same seed and same input timing: same output and same decisions. Adding a stage
    /// never changes another stage's decisions.
    #[test]
    fn decisions_replay_by_seed_and_stay_independent(chunks in input(), seed in any::<u64>()) {
        let build = |extra: bool| {
            let mut p = Pipeline::new();
            p.push(toxic("loss", StageKind::Loss { probability: 0.3 }).build(seed, "h#1/up"), Duration::ZERO);
            if extra {
                p.push(toxic("lat", StageKind::Latency { latency: 5, jitter: 5 }).build(seed, "h#1/up"), Duration::ZERO);
            }
            p.push(toxic("dup", StageKind::Duplication { probability: 0.3 }).build(seed, "h#1/up"), Duration::ZERO);
            p
        };
        let (mut a, mut b, mut c) = (build(false), build(false), build(true));
        let (oa, ob, oc) = (run(&mut a, &chunks), run(&mut b, &chunks), run(&mut c, &chunks));
        prop_assert_eq!(&oa, &ob);
        prop_assert_eq!(a.poll_events(), b.poll_events());
        prop_assert_eq!(data_chunks(&oa), data_chunks(&oc));
    }

    #[test]
    fn toxic_json_round_trips(kind in any_kind(), name in "[a-z_]{1,12}", up in any::<bool>(), toxicity in 0.0f64..=1.0) {
        let t = ToxicSpec { name, stream: if up { StreamDir::Upstream } else { StreamDir::Downstream }, toxicity, kind };
        let text = t.to_json().to_string();
        prop_assert_eq!(ToxicSpec::from_json(text.as_bytes()), Ok(t));
    }

    #[test]
    fn parsers_never_panic(text in ".{0,200}") {
        poslab_faults::fuzz::config(text.as_bytes());
        poslab_faults::fuzz::toxic(text.as_bytes());
    }
}

fn any_kind() -> impl Strategy<Value = StageKind> {
    prop_oneof![
        order_keeping_kind(),
        (0.0f64..=1.0).prop_map(|probability| StageKind::Loss { probability }),
        (0.0f64..=1.0).prop_map(|probability| StageKind::Duplication { probability }),
        (0.0f64..=1.0, 1u32..9, 0u64..1000).prop_map(|(probability, gap, max_hold)| {
            StageKind::Reordering {
                probability,
                gap,
                max_hold,
            }
        }),
        (0.0f64..=1.0, 0u32..9)
            .prop_map(|(probability, bits)| StageKind::Corruption { probability, bits }),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(after_chunks, after, reset)| {
            StageKind::Cut {
                after_chunks,
                after,
                reset,
            }
        }),
        any::<u64>().prop_map(|timeout| StageKind::Timeout { timeout }),
        any::<u64>().prop_map(|timeout| StageKind::ResetPeer { timeout }),
        any::<u64>().prop_map(|bytes| StageKind::LimitData { bytes }),
        Just(StageKind::Down {}),
        Just(StageKind::Refuse {}),
        Just(StageKind::DnsFailure {}),
    ]
}

#[test]
fn limit_data_forwards_exactly_n_bytes_then_closes() {
    let mut p = Pipeline::new();
    p.push(
        toxic("lim", StageKind::LimitData { bytes: 5 }).build(1, "l"),
        Duration::ZERO,
    );
    let out = run(
        &mut p,
        &[
            (b"abc".to_vec(), 0),
            (b"defg".to_vec(), 0),
            (b"h".to_vec(), 0),
        ],
    );
    assert_eq!(bytes(&out), b"abcde");
    assert!(out.iter().any(|i| matches!(
        i,
        Item::Action {
            action: Action::Close,
            ..
        }
    )));
}

#[test]
fn timeout_drops_then_closes_on_time_and_blackholes_at_zero() {
    let mut p = Pipeline::new();
    p.push(
        toxic("t", StageKind::Timeout { timeout: 250 }).build(1, "l"),
        Duration::ZERO,
    );
    p.handle_data(b"lost".to_vec(), Duration::from_millis(10));
    assert_eq!(p.poll_timeout(), Some(Duration::from_millis(250)));
    p.poll(Duration::from_millis(250));
    assert_eq!(
        p.poll_item(Duration::from_millis(250)),
        Some(Item::Action {
            at: Duration::from_millis(250),
            action: Action::Close
        })
    );
    let mut p = Pipeline::new();
    p.push(
        toxic("t", StageKind::Timeout { timeout: 0 }).build(1, "l"),
        Duration::ZERO,
    );
    p.handle_data(b"lost".to_vec(), Duration::ZERO);
    assert_eq!(
        p.poll_timeout(),
        None,
        "a black hole never closes by itself"
    );
    p.remove("t", Duration::from_secs(1));
    assert!(
        matches!(
            p.poll_item(Duration::from_secs(1)),
            Some(Item::Action {
                action: Action::Close,
                ..
            })
        ),
        "removing it after it dropped data closes the corrupt stream"
    );
}

#[test]
fn reset_peer_cut_down_refuse_and_dns() {
    let mut p = Pipeline::new();
    p.push(
        toxic("r", StageKind::ResetPeer { timeout: 100 }).build(1, "l"),
        Duration::ZERO,
    );
    p.handle_data(b"x".to_vec(), Duration::from_millis(5));
    p.poll(Duration::from_millis(105));
    assert_eq!(
        p.poll_item(Duration::from_millis(105)),
        Some(Item::Action {
            at: Duration::from_millis(105),
            action: Action::Reset
        })
    );

    let mut p = Pipeline::new();
    p.push(
        toxic(
            "c",
            StageKind::Cut {
                after_chunks: 2,
                after: 0,
                reset: true,
            },
        )
        .build(1, "l"),
        Duration::ZERO,
    );
    let out = run(
        &mut p,
        &[(b"a".to_vec(), 0), (b"b".to_vec(), 0), (b"c".to_vec(), 0)],
    );
    assert_eq!(bytes(&out), b"ab");
    assert!(matches!(
        out.last(),
        Some(Item::Action {
            action: Action::Reset,
            ..
        })
    ));

    let mut p = Pipeline::new();
    p.push(
        toxic(
            "c",
            StageKind::Cut {
                after_chunks: 0,
                after: 1000,
                reset: false,
            },
        )
        .build(1, "l"),
        Duration::from_secs(1),
    );
    assert_eq!(p.poll_timeout(), Some(Duration::from_secs(2)));

    let mut p = Pipeline::new();
    p.push(
        toxic("dns", StageKind::DnsFailure {}).build(1, "l"),
        Duration::ZERO,
    );
    assert_eq!(p.handle_connect(Duration::ZERO, "127.0.0.1:80"), None);
    assert_eq!(
        p.handle_connect(Duration::ZERO, "acquirer.example:80"),
        Some(Action::DnsFailure)
    );
    p.push(
        toxic("refuse", StageKind::Refuse {}).build(1, "l"),
        Duration::ZERO,
    );
    assert_eq!(
        p.handle_connect(Duration::ZERO, "127.0.0.1:80"),
        Some(Action::Refuse)
    );

    let mut p = Pipeline::new();
    p.push(
        toxic("down", StageKind::Down {}).build(1, "l"),
        Duration::from_secs(3),
    );
    assert_eq!(
        p.poll_item(Duration::from_secs(3)),
        Some(Item::Action {
            at: Duration::from_secs(3),
            action: Action::Reset
        })
    );
}

#[test]
fn flapping_stalls_while_down() {
    use poslab_faults::stages::FlapMode;
    let mut p = Pipeline::new();
    p.push(
        toxic(
            "f",
            StageKind::Flapping {
                up: 100,
                down: 50,
                mode: FlapMode::Stall,
            },
        )
        .build(1, "l"),
        Duration::ZERO,
    );
    p.handle_data(b"up".to_vec(), Duration::from_millis(10));
    p.handle_data(b"down".to_vec(), Duration::from_millis(120));
    assert_eq!(
        p.poll_item(Duration::from_millis(10)).map(|i| i.at()),
        Some(Duration::from_millis(10))
    );
    assert_eq!(p.poll_timeout(), Some(Duration::from_millis(150)));
}

#[test]
fn toxicity_decides_once_per_connection_and_is_journaled() {
    let t = ToxicSpec {
        name: "lat".into(),
        stream: StreamDir::Upstream,
        toxicity: 0.5,
        kind: StageKind::Latency {
            latency: 100,
            jitter: 0,
        },
    };
    let active = (0..200)
        .filter(|conn| {
            let mut p = Pipeline::new();
            p.push(t.build(9, &format!("h#{conn}/upstream")), Duration::ZERO);
            p.handle_data(b"x".to_vec(), Duration::ZERO);
            p.poll_item(Duration::ZERO).is_none()
        })
        .count();
    assert!(
        (70..130).contains(&active),
        "{active} of 200 connections delayed"
    );
    let mut p = Pipeline::new();
    let t0 = ToxicSpec { toxicity: 0.0, ..t };
    p.push(t0.build(9, "h#1/upstream"), Duration::ZERO);
    let events = p.poll_events();
    assert_eq!(events[0].decision["active"], false);
}

fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        f(&std::fs::read(&path).expect("corpus file"));
        n += 1;
    }
    assert!(n >= 3, "{target} corpus has seeds");
}

#[test]
fn fuzz_corpus_faults_toxic_replays() {
    replay("faults_toxic", poslab_faults::fuzz::toxic);
}

#[test]
fn fuzz_corpus_faults_config_replays() {
    replay("faults_config", poslab_faults::fuzz::config);
}

#[test]
fn shipped_proxy_configs_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/proxy");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/proxy exists") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let config = poslab_faults::parse_config(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!config.proxies.is_empty(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 1);
}
