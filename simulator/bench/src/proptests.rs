//! Properties: any model written as YAML reads back to the same model; no text makes the
//! loader panic, and a syntax error that has a position has a real line.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::model::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ./:_{}#'\"-]{0,16}",
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("~".to_owned()),
        Just("0x1F".to_owned()),
        Just("- x".to_owned()),
        Just("a: b".to_owned()),
        Just("".to_owned()),
        Just("12".to_owned()),
        Just("1e3".to_owned()),
    ]
}

fn duration() -> impl Strategy<Value = HumanDuration> {
    (0u64..100_000_000).prop_map(|ms| HumanDuration(Duration::from_millis(ms)))
}

fn serial() -> impl Strategy<Value = Serial> {
    (
        text(),
        any::<u32>(),
        prop_oneof![Just(Parity::None), Just(Parity::Odd), Just(Parity::Even)],
        any::<u8>(),
        any::<u8>(),
        prop_oneof![
            Just(FlowControl::None),
            Just(FlowControl::Software),
            Just(FlowControl::Hardware)
        ],
    )
        .prop_map(
            |(path, baud, parity, data_bits, stop_bits, flow_control)| Serial {
                path,
                baud,
                parity,
                data_bits,
                stop_bits,
                flow_control,
            },
        )
}

fn process() -> impl Strategy<Value = Process> {
    (
        text(),
        prop::collection::vec(text(), 0..4),
        prop::collection::btree_map("[A-Z_]{1,6}", text(), 0..3),
        prop::option::of(text()),
        prop::option::of(
            (text(), duration()).prop_map(|(pattern, timeout)| Ready { pattern, timeout }),
        ),
        prop::option::of((duration(), prop::option::of(text())).prop_map(
            |(hang_timeout, heartbeat)| Watchdog {
                hang_timeout,
                heartbeat,
            },
        )),
        (
            prop_oneof![
                Just(RestartPolicy::Never),
                Just(RestartPolicy::OnFailure),
                Just(RestartPolicy::Always)
            ],
            any::<u32>(),
            duration(),
        )
            .prop_map(|(policy, max_restarts, delay)| Restart {
                policy,
                max_restarts,
                delay,
            }),
    )
        .prop_map(
            |(command, args, env, cwd, ready, watchdog, restart)| Process {
                command,
                exchange: (args.len() % 2 == 1).then(|| crate::model::Exchange {
                    args: args.iter().rev().cloned().collect(),
                }),
                args,
                env,
                cwd,
                ready,
                watchdog,
                restart,
            },
        )
}

fn node() -> impl Strategy<Value = Node> {
    (
        prop::option::of(prop::sample::select(NodeKind::ALL.to_vec())),
        prop::option::of(
            (
                prop::option::of(text()),
                prop::option::of(text()),
                prop::option::of(text()),
                prop::option::of(text()),
            )
                .prop_map(|(listen, config, protocol, vpcd)| Emulated {
                    listen,
                    config,
                    protocol,
                    vpcd,
                    faults: Vec::new(),
                }),
        ),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(serial()),
        prop::option::of(process()),
        prop::option::of((text(), text(), duration(), duration()).prop_map(
            |(off, on, timeout, settle)| Power {
                off,
                on,
                timeout,
                settle,
            },
        )),
    )
        .prop_map(
            |(kind, emulated, tcp, listen, serial, process, power)| Node {
                kind,
                emulated,
                tcp,
                listen,
                serial,
                process,
                power,
            },
        )
}

fn attribute() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ]
}

fn fault() -> impl Strategy<Value = FaultSpec> {
    (
        "[a-z_]{1,12}",
        prop::option::of(text()),
        prop_oneof![
            Just(Stream::Upstream),
            Just(Stream::Downstream),
            Just(Stream::Both)
        ],
        0.0f64..=1.0,
        prop::collection::btree_map("[a-z_]{1,10}", attribute(), 0..4),
    )
        .prop_map(|(kind, name, stream, toxicity, attributes)| FaultSpec {
            kind,
            name,
            stream,
            toxicity,
            attributes,
        })
}

fn bench() -> impl Strategy<Value = BenchFile> {
    (
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::btree_map("[a-z][a-z0-9_-]{0,8}", node(), 0..4),
        prop::collection::btree_map(
            "[a-z]{1,6}->[a-z]{1,6}",
            (
                prop::option::of(prop::sample::select(vec![
                    Via::Tcp,
                    Via::Listen,
                    Via::Serial,
                    Via::Process,
                    Via::Peer,
                ])),
                prop::collection::vec(fault(), 0..3),
            )
                .prop_map(|(via, faults)| Link { via, faults }),
            0..3,
        ),
    )
        .prop_map(|(name, description, nodes, links)| BenchFile {
            name,
            description,
            nodes,
            links,
            provisioning: None,
        })
}

/// The strategies and the YAML (de)serialiser nest deeply in a debug build: run the
/// properties on a thread with room for them.
fn with_stack(name: &str, body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(32 * 1024 * 1024)
        .spawn(body)
        .expect("spawn property thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    if let Err(err) = runner.run(&strategy, test) {
        panic!("{err}");
    }
}

#[test]
fn any_model_round_trips_through_yaml() {
    with_stack("round-trip", || {
        run(256, bench(), |file| {
            let yaml = crate::to_yaml(&file);
            let back: BenchFile = serde_saphyr::from_str(&yaml)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
            prop_assert_eq!(back, file, "{}", yaml);
            Ok(())
        })
    });
}

#[test]
fn arbitrary_text_never_panics() {
    with_stack("arbitrary", || {
        run(512, "[a-z:{}\\[\\], '\"#>|&*!\n-]{0,80}", |text| {
            crate::fuzz::load(text.as_bytes());
            Ok(())
        })
    });
}

#[test]
fn mutated_benches_never_panic_and_errors_carry_a_line() {
    with_stack("mutated", || {
        let strategy = (0usize..2000, 0usize..40, "[a-z0-9:{}\\[\\] \n-]{0,6}");
        run(512, strategy, |(at, cut, insert)| {
            let original = include_str!("../../../scenarios/examples/desk-terminal.yaml");
            let mut text: Vec<char> = original.chars().collect();
            let at = at.min(text.len());
            let end = (at + cut).min(text.len());
            text.splice(at..end, insert.chars());
            let text: String = text.into_iter().collect();
            crate::fuzz::load(text.as_bytes());
            if let Err(crate::LoadError::Syntax { line, .. }) = crate::Bench::load("m.yaml", &text)
            {
                prop_assert!(line.is_some_and(|l| l >= 1), "syntax error without a line");
            }
            Ok(())
        })
    });
}

#[test]
fn the_committed_benches_round_trip() {
    for text in [
        include_str!("../../../scenarios/default.yaml"),
        include_str!("../../../scenarios/process.yaml"),
        include_str!("../../../scenarios/examples/desk-terminal.yaml"),
    ] {
        crate::fuzz::load(text.as_bytes());
        let bench = crate::Bench::load("b.yaml", text).unwrap();
        assert_ne!(bench.file().nodes, BTreeMap::new());
    }
}
