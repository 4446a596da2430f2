//! Loading and checking bench files: the committed benches load, and each kind of mistake
//! is reported with the file, line and column of the key at fault.

use super::*;

fn scenario(path: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/");
    std::fs::read_to_string(format!("{root}{path}")).unwrap()
}

fn problems(text: &str) -> Vec<String> {
    match Bench::load("b.yaml", text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(err) => err.to_string().lines().map(str::to_owned).collect(),
    }
}

#[test]
fn the_default_bench_is_all_emulated_and_simulated() {
    let bench = Bench::load("default.yaml", &scenario("default.yaml")).unwrap();
    assert_eq!(bench.name(), "default");
    assert_eq!(bench.nodes().count(), 8);
    assert!(bench.nodes().all(|(_, _, n)| n.is_emulated()));
    assert!(bench.links().iter().all(|l| l.wire == Wire::Memory));
    assert_eq!(bench.time_mode(), TimeMode::Simulated);
}

#[test]
fn the_process_bench_runs_the_terminal_as_a_program_in_real_time() {
    let bench = Bench::load("process.yaml", &scenario("process.yaml")).unwrap();
    assert_eq!(bench.time_mode(), TimeMode::Real);
    let terminal = bench.node("terminal").unwrap();
    let process = terminal.process.as_ref().unwrap();
    assert_eq!(process.command, "{poslab}");
    assert_eq!(process.restart.policy, RestartPolicy::OnFailure);
    let holes = bench.placeholders("terminal");
    for want in [
        Placeholder::Addr("host".into()),
        Placeholder::Pty("ecr".into()),
        Placeholder::Addr("printer".into()),
        Placeholder::Listen("reader".into()),
        Placeholder::Workdir,
        Placeholder::Poslab,
    ] {
        assert!(holes.contains(&want), "{want} missing from {holes:?}");
    }
    let to_host = bench
        .links()
        .into_iter()
        .find(|l| l.key == "terminal->host")
        .unwrap();
    assert_eq!(
        to_host.wire,
        Wire::Real {
            node: "terminal".into(),
            via: Via::Process
        }
    );
}

#[test]
fn the_desk_bench_resolves_each_link_to_an_attachment() {
    let bench = Bench::load(
        "desk-terminal.yaml",
        &scenario("examples/desk-terminal.yaml"),
    )
    .unwrap();
    assert_eq!(bench.time_mode(), TimeMode::Real);
    let terminal = bench.node("terminal").unwrap();
    let serial = terminal.serial.as_ref().unwrap();
    assert_eq!(
        (
            serial.path.as_str(),
            serial.baud,
            serial.data_bits,
            serial.parity,
            serial.stop_bits
        ),
        ("/dev/ttyUSB0", 9600, 8, Parity::None, 1)
    );
    let wires: Vec<(String, Wire)> = bench
        .links()
        .into_iter()
        .map(|l| (l.key.to_owned(), l.wire))
        .collect();
    let real = |via| Wire::Real {
        node: "terminal".into(),
        via,
    };
    assert!(wires.contains(&("ecr->terminal".into(), real(Via::Serial))));
    assert!(wires.contains(&("terminal->host".into(), real(Via::Peer))));
    let faults = &bench.file().links["terminal->host"].faults;
    assert_eq!(
        faults[0].to_toxics(),
        vec![serde_json::json!({
            "name": "latency_downstream", "type": "latency", "stream": "downstream",
            "toxicity": 1.0, "attributes": {"latency": 300, "jitter": 50}
        })]
    );
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let err = Bench::load("b.yaml", "nodes:\n  terminal:\n    tcpp: 1.2.3.4:5\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("b.yaml:3:5: nodes.terminal.tcpp: unknown field `tcpp`"),
        "{text}"
    );
    assert!(text.contains("tcpp"), "{text}");

    let err = Bench::load(
        "b.yaml",
        "nodes:\n  terminal:\n    serial: { path: /dev/x, baud: fast }\n",
    )
    .unwrap_err();
    assert_eq!(err.line(), Some(3), "{err}");
    assert!(
        err.to_string().contains("nodes.terminal.serial.baud: "),
        "{err}"
    );

    let err = Bench::load("b.yaml", "nodes:\n  terminal: real\n").unwrap_err();
    assert!(err.to_string().starts_with("b.yaml:2:"), "{err}");
    assert!(err.to_string().contains("emulated"), "{err}");

    let err = Bench::load("b.yaml", "nodes: [\n").unwrap_err();
    assert!(err.line().is_some(), "{err}");

    let err = Bench::load(
        "b.yaml",
        "nodes:\n  terminal:\n    process:\n      command: x\n      ready: { pattern: x, timeout: 10 }\n",
    )
    .unwrap_err();
    assert_eq!(err.line(), Some(5), "{err}");
}

#[test]
fn unknown_node_kinds_are_reported_at_the_node() {
    let p = problems("nodes:\n  terminal: emulated\n  gizmo: emulated\n");
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("b.yaml:3:3: nodes.gizmo: unknown node kind `gizmo`"),
        "{p:?}"
    );
    // a name with `kind:` is fine
    Bench::load("b.yaml", "nodes:\n  backup-host: { kind: host }\n").unwrap();
}

#[test]
fn a_node_both_emulated_and_real_is_refused() {
    let p = problems("nodes:\n  host:\n    emulated: {}\n    tcp: 10.0.0.5:5000\n");
    assert!(
        p[0].starts_with(
            "b.yaml:3:5: nodes.host.emulated: node `host` is both emulated and real (tcp)"
        ),
        "{p:?}"
    );
}

#[test]
fn ports_out_of_range_point_at_the_value() {
    let p = problems(
        "nodes:\n  host:\n    tcp: 10.0.0.5:70000\n  printer:\n    listen: \"0.0.0.0:x\"\n",
    );
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("b.yaml:3:10: nodes.host.tcp: `10.0.0.5:70000`: port 70000 out of range"),
        "{p:?}"
    );
    assert!(
        p[1].starts_with("b.yaml:5:13: nodes.printer.listen:"),
        "{p:?}"
    );
}

#[test]
fn placeholders_must_be_provided_by_a_linked_node() {
    let text = "\
nodes:
  terminal:
    process:
      command: fw
      args: [--host, \"{host}\", --tms, \"{tms}\", --ecr, \"{ecr_pty}\", \"{oops\"]
  host: emulated
  ecr: emulated
links:
  terminal->host: {}
";
    let p = problems(text);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].starts_with("b.yaml:5:39: nodes.terminal.process.args[3]: placeholder {tms} is not provided by any node: no node `tms`"), "{p:?}");
    assert!(
        p[1].contains("args[5]: placeholder {ecr_pty}: node `ecr` has no link to `terminal`"),
        "{p:?}"
    );
    assert!(p[2].contains("args[6]: unclosed `{`"), "{p:?}");
}

#[test]
fn the_replacements_serial_is_only_for_exchange_args() {
    let text = "\
nodes:
  terminal:
    process:
      command: fw
      args: [--host, \"{host}\", --serial, \"{serial}\"]
      exchange:
        args: [--host, \"{host}\", --serial, \"{serial}\", \"{nope}\"]
  host: emulated
links:
  terminal->host: {}
";
    let p = problems(text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains(
            "args[3]: placeholder {serial} is a replacement's serial number: only in exchange.args"
        ),
        "{p:?}"
    );
    assert!(
        p[1].contains("exchange.args[4]: placeholder {nope} is not provided by any node"),
        "{p:?}"
    );
    let ok = text
        .replace(
            "--serial, \"{serial}\"]\n      exchange",
            "--serial, PT-1]\n      exchange",
        )
        .replace(", \"{nope}\"", "");
    let bench = Bench::load("b.yaml", &ok).unwrap_or_else(|e| panic!("{e}\n{ok}"));
    assert!(bench
        .placeholders("terminal")
        .contains(&Placeholder::Serial));
}

#[test]
fn bad_regular_expressions_and_zero_timeouts_are_reported() {
    let text = "\
nodes:
  terminal:
    process:
      command: fw
      ready: { pattern: \"ready(\", timeout: 0s }
      watchdog: { hang_timeout: 5s, heartbeat: \"[\" }
";
    let p = problems(text);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p[0].starts_with(
            "b.yaml:5:25: nodes.terminal.process.ready.pattern: not a regular expression"
        ),
        "{p:?}"
    );
    assert!(p[1].contains("ready.timeout: a zero time limit"), "{p:?}");
    assert!(
        p[2].starts_with("b.yaml:6:48: nodes.terminal.process.watchdog.heartbeat"),
        "{p:?}"
    );
}

#[test]
fn links_are_checked() {
    let text = "\
nodes:
  terminal:
    serial: /dev/ttyUSB0
    tcp: 192.0.2.1:20007
  ecr: emulated
  host: { tcp: 192.0.2.2:8583 }
  printer: emulated
links:
  ecr->terminal: {}
  terminal->host: {}
  terminal->nowhere: {}
  printer: {}
  terminal->printer: { via: listen, faults: [{ type: latency, toxicity: 1.5 }] }
";
    let p = problems(text);
    let joined = p.join("\n");
    assert!(joined.contains("b.yaml:9:3: links.ecr->terminal: node `terminal` has several attachments (tcp, serial)"), "{joined}");
    assert!(
        joined.contains("b.yaml:10:3: links.terminal->host: both `terminal` and `host` are real"),
        "{joined}"
    );
    assert!(
        joined.contains(
            "b.yaml:11:3: links.terminal->nowhere: link `terminal->nowhere`: no node `nowhere`"
        ),
        "{joined}"
    );
    assert!(
        joined.contains("b.yaml:12:3: links.printer: link `printer`: expected `FROM->TO`"),
        "{joined}"
    );
    assert!(
        joined.contains(
            "b.yaml:13:73: links.terminal->printer.faults[0].toxicity: toxicity 1.5 out of range"
        ),
        "{joined}"
    );
    assert!(joined.contains("b.yaml:13:24: links.terminal->printer.via: `via: listen` but node `terminal` has no `listen` attachment"), "{joined}");
    assert_eq!(p.len(), 6, "{joined}");
}

#[test]
fn power_hooks_belong_to_real_nodes() {
    let p = problems("nodes:\n  terminal:\n    power: { off: 'relay 0', on: 'relay 1' }\n");
    assert!(
        p[0].starts_with("b.yaml:3:5: nodes.terminal.power: node `terminal` is emulated"),
        "{p:?}"
    );
}

#[test]
fn serial_shorthand_and_mapping_agree() {
    let short = Serial::parse_shorthand("/dev/ttyS1 @ 115200 7E2").unwrap();
    assert_eq!(
        (short.baud, short.data_bits, short.parity, short.stop_bits),
        (115200, 7, Parity::Even, 2)
    );
    assert_eq!(Serial::parse_shorthand("/dev/ttyS1").unwrap().baud, 9600);
    assert!(Serial::parse_shorthand("@ 9600").is_err());
    assert!(Serial::parse_shorthand("/dev/x @ 9600 8X1").is_err());
    assert!(Serial::parse_shorthand("/dev/x @ fast").is_err());
    let p = problems("nodes:\n  ecr:\n    serial: { path: /dev/x, data_bits: 9, stop_bits: 3 }\n");
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn time_is_real_as_soon_as_a_socket_is() {
    let bench = Bench::load(
        "b.yaml",
        "nodes:\n  host:\n    emulated: { listen: '127.0.0.1:0' }\n",
    )
    .unwrap();
    assert_eq!(bench.time_mode(), TimeMode::Real);
}

#[test]
fn models_built_in_code_are_checked_too() {
    let mut file = BenchFile {
        name: None,
        description: None,
        nodes: Default::default(),
        links: Default::default(),
        provisioning: None,
    };
    let err = Bench::from_model("code", file.clone()).unwrap_err();
    assert_eq!(err.problems()[0].path, "nodes");
    file.nodes.insert("terminal".into(), Node::default());
    let bench = Bench::from_model("code", file).unwrap();
    assert_eq!(bench.name(), "code");
}

#[test]
fn the_schema_describes_nodes_and_links() {
    let schema = schema();
    assert_eq!(schema["title"], "poslab bench file");
    assert!(schema["properties"]["nodes"]["additionalProperties"]["anyOf"].is_array());
    assert!(schema["$defs"]["Process"]["properties"]["watchdog"].is_object());
    assert!(schema_json().ends_with("}\n"));
}

#[test]
fn faults_are_checked_by_the_fault_engine() {
    let text = "\
nodes:
  terminal: emulated
  host: emulated
links:
  terminal->host:
    faults:
      - { type: latency, attributes: { latency: 100 } }
      - { type: latncy }
";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("b.yaml:8:17: links.terminal->host.faults[1].type: fault `latncy`"),
        "{p:?}"
    );
    let bench = Bench::load("b.yaml", &text.replace("latncy", "slicer")).unwrap();
    let specs = bench.file().links["terminal->host"].faults[0]
        .to_toxic_specs()
        .unwrap();
    assert_eq!(specs[0].name, "latency_downstream");
}
