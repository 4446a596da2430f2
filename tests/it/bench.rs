//! Integration tests: bench files (loading, the shipped schema, `poslab schema`, the fuzz
//! corpus) and the DUT adapters that turn a node's "where" into a byte stream.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn poslab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_poslab"))
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let committed = std::fs::read_to_string(root().join("scenarios/bench.schema.json"))
        .expect("scenarios/bench.schema.json is committed");
    let generated = poslab_bench::schema_json();
    assert!(
        committed == generated,
        "scenarios/bench.schema.json is stale: regenerate it with \
         `cargo run -- schema > scenarios/bench.schema.json`"
    );
}

#[test]
fn poslab_schema_prints_the_schema() {
    let out = poslab().arg("schema").output().expect("run poslab schema");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        poslab_bench::schema_json()
    );
}

fn benches() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["scenarios", "scenarios/examples"] {
        for entry in std::fs::read_dir(root().join(dir)).expect("scenarios") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_committed_bench_passes_the_check() {
    let files = benches();
    assert!(files.len() >= 3, "{files:?}");
    let out = poslab()
        .arg("schema")
        .arg("--check")
        .args(&files)
        .output()
        .expect("run poslab schema --check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("default.yaml: ok (8 nodes, 7 links, simulated time)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("process.yaml: ok (8 nodes, 7 links, real time)"),
        "{stdout}"
    );
}

#[test]
fn a_broken_bench_fails_the_check_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("poslab-bench-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.yaml");
    std::fs::write(
        &path,
        "nodes:\n  terminal:\n    emulated: {}\n    serial: /dev/ttyUSB0 @ 9600\n",
    )
    .unwrap();
    let out = poslab()
        .args(["schema", "--check"])
        .arg(&path)
        .output()
        .expect("run poslab schema --check");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.yaml:3:5: nodes.terminal.emulated: node `terminal` is both emulated and real (serial)"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Replays the committed fuzz corpus through the fuzz target's library function.
#[test]
fn the_bench_load_fuzz_corpus_replays() {
    let dir = root().join("fuzz/corpus/bench_load");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/bench_load") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read seed");
        poslab_bench::fuzz::load(&data);
        n += 1;
    }
    assert!(n >= 5, "{n} seeds");
}

// ---------------------------------------------------------------------------------------
// Real attachments: a bench file's `tcp:` and `serial:` opened as byte streams.

#[tokio::test]
async fn a_real_nodes_attachments_open_as_byte_streams() {
    use poslab::bench::{open, OpenLimits};
    use poslab::journal::Journal;
    use poslab::pty::Pty;
    use poslab_bench::{Bench, Via};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // the "terminal" is a loopback listener and a pty standing in for a USB serial adapter
    let device = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = device.local_addr().unwrap();
    let (mut line, path) = Pty::open().unwrap();
    let text = format!(
        "nodes:\n  terminal:\n    tcp: \"{addr}\"\n    serial: \"{} @ 115200 8N1\"\n  ecr: emulated\nlinks:\n  ecr->terminal: {{ via: serial }}\n",
        path.display()
    );
    let bench = Bench::load("it.yaml", &text).unwrap();
    let terminal = bench.node("terminal").unwrap();
    let journal = Journal::in_memory();

    let serve = tokio::spawn(async move {
        let (mut s, _) = device.accept().await.unwrap();
        s.write_all(b"hello from the terminal").await.unwrap();
    });
    let mut tcp = open(
        "terminal",
        terminal,
        Via::Tcp,
        OpenLimits::default(),
        &journal,
    )
    .await
    .unwrap();
    let mut got = [0u8; 23];
    tcp.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello from the terminal");
    serve.await.unwrap();

    let mut serial = open(
        "terminal",
        terminal,
        Via::Serial,
        OpenLimits::default(),
        &journal,
    )
    .await
    .unwrap();
    serial.write_all(b"\x10\x02").await.unwrap();
    let mut got = [0u8; 2];
    line.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x10\x02");

    let err = open(
        "terminal",
        terminal,
        Via::Listen,
        OpenLimits::default(),
        &journal,
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("no `listen` attachment"), "{err}");
    let kinds: Vec<String> = journal
        .entries()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(kinds, ["connected", "serial-open"]);
}

// ---------------------------------------------------------------------------------------
// The process adapter, against small real programs (python3 and sh), in real time.

mod process {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use poslab::bench::process::{DutEvent, ProcessConfig, ProcessDut, Status, Wiring};
    use poslab::journal::Journal;
    use poslab_bench::Bench;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::sync::broadcast;

    /// Generous bound for anything a test waits for: the machine is shared and slow.
    const LIMIT: Duration = Duration::from_secs(20);

    fn workdir(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("poslab-it-bench-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A bench whose terminal is `command args...` with the given extra process settings.
    fn process_bench(command: &str, args: &[&str], extra: &str) -> Bench {
        let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        let text = format!(
            "nodes:\n  terminal:\n    process:\n      command: {command}\n      args: [{}]\n{extra}  ecr: emulated\n  host: emulated\nlinks:\n  ecr->terminal: {{}}\n  terminal->host: {{}}\n",
            args.join(", ")
        );
        Bench::load("it.yaml", &text).unwrap_or_else(|err| panic!("{err}\n{text}"))
    }

    async fn spawn(
        bench: &Bench,
        dir: &Path,
        journal: &Journal,
    ) -> (ProcessDut, broadcast::Receiver<DutEvent>, Wiring) {
        let wiring = Wiring::allocate(bench, "terminal", dir).await.unwrap();
        let spec = bench.node("terminal").unwrap().process.as_ref().unwrap();
        let config = ProcessConfig::new("terminal", spec, dir, |p| wiring.value(p)).unwrap();
        let (dut, events) = ProcessDut::spawn(config, journal.clone());
        (dut, events, wiring)
    }

    async fn expect(
        events: &mut broadcast::Receiver<DutEvent>,
        what: &str,
        want: impl FnMut(&DutEvent) -> bool,
    ) -> DutEvent {
        ProcessDut::wait_for(events, LIMIT, want)
            .await
            .unwrap_or_else(|| panic!("no {what} within {LIMIT:?}"))
    }

    const ECHO: &str = r#"
import socket, sys
pty, host = sys.argv[1], sys.argv[2]
h, p = host.rsplit(":", 1)
s = socket.create_connection((h, int(p)))
s.sendall(b"0800 from the terminal\n")
print("booting, card 5413330089010434", flush=True)
print("terminal ready", flush=True)
f = open(pty, "r+b", buffering=0)
while True:
    b = f.read(1)
    if not b:
        break
    f.write(b.upper())
"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_process_node_is_wired_through_a_pty_and_a_loopback_port() {
        if !crate::peers::python_module("sys", "process adapter echo") {
            return;
        }
        let dir = workdir("wired");
        let python = crate::peers::python();
        let bench = process_bench(
            &python,
            &["-c", ECHO, "{ecr_pty}", "{host}"],
            "      ready: { pattern: 'terminal ready', timeout: 20s }\n",
        );
        let journal = Journal::in_memory();
        let (dut, _events, mut wiring) = spawn(&bench, &dir, &journal).await;
        // the emulated host takes its listener and sees the terminal connect
        let listener = wiring.take_listener("host").unwrap();
        let (mut conn, _) = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        dut.ready().await.unwrap();
        assert!(
            matches!(dut.status(), Status::Ready { .. }),
            "{:?}",
            dut.status()
        );
        let mut line = String::new();
        BufReader::new(&mut conn)
            .read_line(&mut line)
            .await
            .unwrap();
        assert_eq!(line, "0800 from the terminal\n");
        // the emulated ECR talks through the pty
        let mut pty = wiring.take_pty("ecr").unwrap();
        pty.write_all(b"ping\x02\x03").await.unwrap();
        let mut back = [0u8; 6];
        tokio::time::timeout(LIMIT, pty.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&back, b"PING\x02\x03");
        // output is journalled, card numbers masked
        let entries = journal.entries().unwrap();
        let lines: Vec<&str> = entries
            .iter()
            .filter(|e| e["kind"] == "output")
            .filter_map(|e| e["line"].as_str())
            .collect();
        assert!(
            lines.iter().any(|l| l.starts_with("booting, card 541333")),
            "{lines:?}"
        );
        assert!(!format!("{entries:?}").contains("5413330089010434"));
        assert!(entries.iter().any(|e| e["kind"] == "ready"));
        dut.stop().await;
        assert_eq!(dut.status(), Status::Stopped);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exits_and_crashes_are_detected_with_code_and_signal() {
        let dir = workdir("crash");
        let journal = Journal::in_memory();
        let bench = process_bench("sh", &["-c", "echo up; echo failing >&2; exit 3"], "");
        let (dut, mut events, _wiring) = spawn(&bench, &dir, &journal).await;
        let exited = expect(&mut events, "exit", |e| {
            matches!(e, DutEvent::Exited { .. })
        })
        .await;
        let DutEvent::Exited { exit, .. } = exited else {
            unreachable!()
        };
        assert_eq!(
            (exit.code, exit.signal, exit.is_crash()),
            (Some(3), None, true)
        );
        let entries = journal.entries().unwrap();
        assert!(
            entries.iter().any(|e| e["kind"] == "output"
                && e["line"] == "failing"
                && e["stream"] == "stderr"),
            "{entries:?}"
        );
        let exit = entries.iter().find(|e| e["kind"] == "exit").unwrap();
        assert_eq!(
            (exit["code"].as_i64(), exit["crash"].as_bool()),
            (Some(3), Some(true))
        );
        dut.stop().await;

        let bench = process_bench("sh", &["-c", "echo up; kill -SEGV $$"], "");
        let (dut, mut events, _wiring) = spawn(&bench, &dir, &journal).await;
        let exited = expect(&mut events, "exit", |e| {
            matches!(e, DutEvent::Exited { .. })
        })
        .await;
        let DutEvent::Exited { exit, .. } = exited else {
            unreachable!()
        };
        assert_eq!((exit.code, exit.signal), (None, Some(11)));
        assert!(
            matches!(dut.status(), Status::Down { .. }),
            "{:?}",
            dut.status()
        );
        dut.stop().await;

        let bench = process_bench("sh", &["-c", "echo done"], "");
        let (dut, mut events, _wiring) = spawn(&bench, &dir, &journal).await;
        let exited = expect(&mut events, "exit", |e| {
            matches!(e, DutEvent::Exited { .. })
        })
        .await;
        let DutEvent::Exited { exit, .. } = exited else {
            unreachable!()
        };
        assert!(!exit.is_crash());
        dut.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn output_without_newlines_is_journalled_in_bounded_pieces() {
        let dir = workdir("longline");
        let journal = Journal::in_memory();
        let bench = process_bench("sh", &["-c", "head -c 40000 /dev/zero | tr '\\0' x"], "");
        let (dut, mut events, _wiring) = spawn(&bench, &dir, &journal).await;
        expect(&mut events, "exit", |e| {
            matches!(e, DutEvent::Exited { .. })
        })
        .await;
        let pieces: Vec<usize> = journal
            .entries()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "output")
            .map(|e| e["line"].as_str().unwrap_or("").len())
            .collect();
        assert_eq!(pieces, [16384, 16384, 7232]);
        dut.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_program_is_a_hang_and_is_killed() {
        let dir = workdir("hang");
        let journal = Journal::in_memory();
        // prints, then says nothing
        let bench = process_bench(
            "sh",
            &["-c", "echo ready; exec sleep 60"],
            "      ready: { pattern: '^ready$' }\n      watchdog: { hang_timeout: 300ms }\n",
        );
        let (dut, mut events, _wiring) = spawn(&bench, &dir, &journal).await;
        dut.ready().await.unwrap();
        let hung = expect(&mut events, "hang", |e| matches!(e, DutEvent::Hung { .. })).await;
        let DutEvent::Hung { silent, .. } = hung else {
            unreachable!()
        };
        assert!(silent >= Duration::from_millis(300), "{silent:?}");
        assert!(
            matches!(dut.status(), Status::Down { .. }),
            "{:?}",
            dut.status()
        );
        assert!(journal
            .entries()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "hang"));
        dut.stop().await;

        // busy output without the heartbeat line is a hang too
        let bench = process_bench(
            "sh",
            &["-c", "echo ready; while true; do echo noise; sleep 0.05; done"],
            "      ready: { pattern: ready }\n      watchdog: { hang_timeout: 400ms, heartbeat: '^alive' }\n",
        );
        let (dut, mut events, _wiring) = spawn(&bench, &dir, &journal).await;
        expect(&mut events, "hang", |e| matches!(e, DutEvent::Hung { .. })).await;
        dut.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_program_that_never_says_ready_fails_to_start() {
        let dir = workdir("notready");
        let bench = process_bench(
            "sh",
            &["-c", "echo booting; exec sleep 60"],
            "      ready: { pattern: 'terminal ready', timeout: 300ms }\n",
        );
        let journal = Journal::in_memory();
        let (dut, _events, _wiring) = spawn(&bench, &dir, &journal).await;
        let err = dut.ready().await.unwrap_err();
        assert!(err.to_string().contains("not ready within 300ms"), "{err}");
        assert_eq!(dut.status(), Status::Stopped);

        let bench = process_bench("sh", &["-c", "exit 7"], "      ready: { pattern: ready }\n");
        let (dut, _events, _wiring) = spawn(&bench, &dir, &journal).await;
        let err = dut.ready().await.unwrap_err();
        assert!(err.to_string().contains("exit code 7"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crashes_restart_within_the_budget() {
        let dir = workdir("restart");
        let bench = process_bench(
            "sh",
            &["-c", "echo ready; exit 1"],
            "      ready: { pattern: ready }\n      restart: { policy: on-failure, max_restarts: 2, delay: 50ms }\n",
        );
        let journal = Journal::in_memory();
        let (dut, mut events, _wiring) = spawn(&bench, &dir, &journal).await;
        let gave_up = expect(&mut events, "give-up", |e| {
            matches!(e, DutEvent::GaveUp { .. })
        })
        .await;
        assert_eq!(gave_up, DutEvent::GaveUp { restarts: 2 });
        let starts = journal
            .entries()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "process-start")
            .count();
        assert_eq!(starts, 3);
        dut.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_power_cycle_kills_and_starts_again_with_the_same_wiring() {
        let dir = workdir("power");
        // the program counts its boots in {workdir} (state on disk survives power loss) and
        // echoes through the same pty after each boot
        let script = "echo boot >> \"$1/boots\"; echo ready; exec cat < \"$2\" > \"$2\"";
        let bench = process_bench(
            "sh",
            &["-c", script, "sh", "{workdir}", "{ecr_pty}"],
            "      ready: { pattern: '^ready$' }\n",
        );
        let journal = Journal::in_memory();
        let (dut, mut events, mut wiring) = spawn(&bench, &dir, &journal).await;
        dut.ready().await.unwrap();
        let first_pid = match dut.status() {
            Status::Ready { pid } => pid,
            other => panic!("{other:?}"),
        };
        let mut pty = wiring.take_pty("ecr").unwrap();
        pty.write_all(b"a").await.unwrap();
        let mut b = [0u8; 1];
        tokio::time::timeout(LIMIT, pty.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"a");

        dut.power_cycle().await.unwrap();
        expect(&mut events, "power loss", |e| {
            matches!(e, DutEvent::PowerLoss { generation: 1 })
        })
        .await;
        let second_pid = match dut.status() {
            Status::Ready { pid } => pid,
            other => panic!("{other:?}"),
        };
        assert_ne!(first_pid, second_pid);
        assert_eq!(
            std::fs::read_to_string(dir.join("boots")).unwrap(),
            "boot\nboot\n"
        );
        pty.write_all(b"z").await.unwrap();
        tokio::time::timeout(LIMIT, pty.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"z");
        let kinds: Vec<String> = journal
            .entries()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
            .filter(|k| k != "output")
            .collect();
        assert_eq!(
            kinds,
            [
                "process-start",
                "ready",
                "power-loss",
                "process-start",
                "ready"
            ]
        );
        dut.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
