//! Integration tests: `poslab host` on a real TCP socket (127.0.0.1:0), the load
//! generator against it, and an independent pyiso8583 terminal against the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use poslab::host::HostServer;
use poslab::journal::Journal;
use poslab::load::{self, load_pan, LoadOptions};
use poslab::net::{self, FramedStream, Limits};
use poslab_host::config::{ActionConfig, CodeSpec, MatchConfig, MtiPattern};
use poslab_host::{Config, Delivery, Host, ResponseCode, Rule};
use poslab_iso8583::{Field, Message, Spec};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Running {
    addr: String,
    server: HostServer,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(config: Config, journal: Journal) -> Running {
    let listener = net::bind("127.0.0.1:0").await.unwrap();
    let addr = net::local_addr(&listener).unwrap().to_string();
    let spec = Spec::load("iso87ascii").unwrap();
    let server = HostServer::new(Host::new(config), spec, journal);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(poslab::host::run(
        listener,
        server.clone(),
        Limits::default(),
        shutdown.clone(),
    ));
    Running {
        addr,
        server,
        shutdown,
        task,
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the server drains and stops")
            .unwrap()
            .unwrap();
    }
}

struct Terminal {
    framed: FramedStream<TcpStream>,
    spec: Spec,
    tid: String,
}

impl Terminal {
    async fn connect(addr: &str, tid: &str) -> Terminal {
        Terminal {
            framed: FramedStream::new(net::connect(addr, WAIT).await.unwrap()),
            spec: Spec::load("iso87ascii").unwrap(),
            tid: tid.into(),
        }
    }

    fn purchase(&self, stan: u32, minor: u64) -> Message {
        let mut m = load::purchase(&self.spec, &self.tid, "000000000000001", minor).unwrap();
        m.set(11, Field::Text(format!("{stan:06}").into()));
        m
    }

    async fn send(&mut self, msg: &Message) {
        let payload = self.spec.pack(msg).unwrap();
        let bytes = self.spec.framing().encode(&[], &payload, &[]).unwrap();
        self.framed.write_all(&bytes).await.unwrap();
    }

    /// The next answer; `None` when none comes within `wait` or the host closed.
    async fn recv_within(&mut self, wait: Duration) -> Option<Message> {
        let framing = self.spec.framing().clone();
        let frame = tokio::time::timeout(wait, self.framed.next(|b| framing.decode(b)))
            .await
            .ok()?
            .ok()??;
        Some(
            self.spec
                .unpack(&frame.payload)
                .expect("the answer decodes"),
        )
    }

    async fn recv(&mut self) -> Message {
        self.recv_within(WAIT).await.expect("an answer")
    }

    async fn buy(&mut self, stan: u32, minor: u64) -> Message {
        let m = self.purchase(stan, minor);
        self.send(&m).await;
        self.recv().await
    }
}

/// The default configuration without its risk checks (velocity declines the 6th purchase
/// with one card within 10 minutes).
fn without_risk() -> Config {
    let mut config = Config::default_config();
    config.risk = Default::default();
    config
}

fn once(name: &str, mti: &str, then: ActionConfig) -> Rule {
    Rule::once(
        name,
        MatchConfig {
            mti: vec![MtiPattern(mti.into())],
            ..Default::default()
        },
        then,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_terminals_buy_at_once() {
    // twenty purchases per terminal with one card: the default velocity check is off here
    let host = start(without_risk(), Journal::discard()).await;
    let mut tasks = Vec::new();
    for i in 1..=10 {
        let addr = host.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Terminal::connect(&addr, &format!("{i:08}")).await;
            for stan in 1..=20u32 {
                let a = t.buy(stan, 100 + u64::from(stan)).await;
                assert_eq!(a.mti.as_str(), "0210");
                assert_eq!(a.text(11), Some(format!("{stan:06}").as_str()));
                assert_eq!(a.text(39), Some("00"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    {
        let state = host.server.host();
        let h = state.lock().unwrap();
        for i in 1..=10 {
            assert_eq!(h.terminal(&format!("{i:08}")).unwrap().batch.len(), 20);
        }
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_host_declines_the_sixth_purchase_with_one_card_59() {
    let journal = Journal::in_memory();
    let host = start(Config::default_config(), journal.clone()).await;
    let mut t = Terminal::connect(&host.addr, "00000003").await;
    for stan in 1..=5 {
        assert_eq!(
            t.buy(stan, 1000).await.text(39),
            Some("00"),
            "purchase {stan}"
        );
    }
    let answer = t.buy(6, 1000).await;
    assert_eq!(answer.text(39), Some("59"));
    assert!(answer.get(38).is_none(), "no approval code on a decline");
    host.stop().await;

    let entries = journal.entries().unwrap();
    let decision = entries
        .iter()
        .find(|e| e["kind"] == "decision" && e["code"] == "59")
        .expect("the velocity decision is journaled");
    let notes = decision["notes"].to_string();
    assert!(notes.contains("velocity: 5 approvals in window"), "{notes}");
    assert!(!notes.contains(load_pan()), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_frame_on_one_connection_leaves_the_others_serving() {
    let journal = Journal::in_memory();
    let host = start(Config::default_config(), journal.clone()).await;
    let mut good = Terminal::connect(&host.addr, "00000001").await;
    let mut bad = Terminal::connect(&host.addr, "00000002").await;

    // a well-delimited frame whose message is garbage (bitmap "ZZZZ...")
    let mut garbage = vec![0, 24];
    garbage.extend_from_slice(b"0200ZZZZZZZZZZZZZZZZZZZZ");
    bad.framed.write_all(&garbage).await.unwrap();
    assert_eq!(good.buy(1, 500).await.text(39), Some("00"));
    assert!(bad.recv_within(Duration::from_millis(300)).await.is_none());
    // the bad connection is still served (bad_frames: ignore)
    assert_eq!(bad.buy(1, 700).await.text(39), Some("00"));
    assert_eq!(good.buy(2, 500).await.text(39), Some("00"));

    let entries = journal.entries().unwrap();
    let bad_frame = entries
        .iter()
        .find(|e| e["kind"] == "bad-frame")
        .expect("the bad frame is journaled");
    assert!(
        bad_frame["error"].as_str().unwrap().contains("bitmap"),
        "{bad_frame}"
    );
    assert!(bad_frame["raw_masked"].is_string());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_the_connection_when_configured() {
    let mut config = Config::default_config();
    config.bad_frames = poslab_host::config::BadFrames::Close;
    let host = start(config, Journal::discard()).await;
    let mut bad = Terminal::connect(&host.addr, "00000002").await;
    bad.framed
        .write_all(&[0, 6, b'0', b'2', b'0', b'0', b'Z', b'Z'])
        .await
        .unwrap();
    let framing = bad.spec.framing().clone();
    let end = tokio::time::timeout(WAIT, bad.framed.next(|b| framing.decode(b)))
        .await
        .expect("the host closes");
    assert!(matches!(end, Ok(None)), "closed without an answer");
    let mut good = Terminal::connect(&host.addr, "00000001").await;
    assert_eq!(good.buy(1, 500).await.text(39), Some("00"));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_idle_connections() {
    let host = start(Config::default_config(), Journal::discard()).await;
    let mut t = Terminal::connect(&host.addr, "00000001").await;
    assert_eq!(t.buy(1, 500).await.text(39), Some("00"));
    host.stop().await;
    let framing = t.spec.framing().clone();
    let end = tokio::time::timeout(WAIT, t.framed.next(|b| framing.decode(b)))
        .await
        .expect("the connection ends");
    assert!(matches!(end, Ok(None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_actions_delay_withhold_duplicate_and_truncate() {
    let host = start(Config::default_config(), Journal::discard()).await;
    let state = host.server.host();
    let mut t = Terminal::connect(&host.addr, "00000001").await;

    // no answer, then the next one is answered
    state.lock().unwrap().push_override(once(
        "drop",
        "0200",
        ActionConfig {
            answer: Delivery::None,
            ..Default::default()
        },
    ));
    let m = t.purchase(1, 100);
    t.send(&m).await;
    assert!(t.recv_within(Duration::from_millis(300)).await.is_none());
    assert_eq!(t.buy(2, 100).await.text(11), Some("000002"));

    // a late answer does not hold up the connection's next request
    state.lock().unwrap().push_override(once(
        "late",
        "0200",
        ActionConfig {
            code: Some(CodeSpec::Fixed(ResponseCode(*b"51"))),
            delay: Some(Duration::from_millis(400)),
            ..Default::default()
        },
    ));
    let started = tokio::time::Instant::now();
    let late = t.purchase(3, 100);
    t.send(&late).await;
    let echo = t.purchase(4, 100);
    t.send(&echo).await;
    let first = t.recv().await;
    assert_eq!(
        first.text(11),
        Some("000004"),
        "the undelayed answer comes first"
    );
    let second = t.recv().await;
    assert_eq!(second.text(11), Some("000003"));
    assert_eq!(second.text(39), Some("51"));
    assert!(started.elapsed() >= Duration::from_millis(400));

    // twice
    state.lock().unwrap().push_override(once(
        "twice",
        "0200",
        ActionConfig {
            answer: Delivery::Twice,
            ..Default::default()
        },
    ));
    let a = t.buy(5, 100).await;
    let b = t.recv().await;
    assert_eq!(a.text(11), b.text(11));
    assert_eq!(a.text(38), b.text(38));

    // truncated: half a frame, then nothing
    state.lock().unwrap().push_override(once(
        "truncated",
        "0200",
        ActionConfig {
            answer: Delivery::Truncated,
            ..Default::default()
        },
    ));
    let m = t.purchase(6, 100);
    t.send(&m).await;
    assert!(t.recv_within(Duration::from_millis(300)).await.is_none());
    assert!(!t.framed.buffered().is_empty(), "half a frame arrived");

    // malformed: a whole frame whose message does not decode
    let mut t2 = Terminal::connect(&host.addr, "00000002").await;
    state.lock().unwrap().push_override(once(
        "malformed",
        "0200",
        ActionConfig {
            answer: Delivery::Malformed,
            ..Default::default()
        },
    ));
    let m = t2.purchase(1, 100);
    t2.send(&m).await;
    let framing = t2.spec.framing().clone();
    let frame = tokio::time::timeout(WAIT, t2.framed.next(|b| framing.decode(b)))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(t2.spec.unpack(&frame.payload).is_err());

    // close
    state.lock().unwrap().push_override(once(
        "hang up",
        "0200",
        ActionConfig {
            answer: Delivery::Close,
            ..Default::default()
        },
    ));
    let m = t2.purchase(2, 100);
    t2.send(&m).await;
    let end = tokio::time::timeout(WAIT, t2.framed.next(|b| framing.decode(b)))
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_never_holds_the_test_pan_in_clear() {
    let dir = std::env::temp_dir().join(format!("poslab-host-journal-{}", std::process::id()));
    let path = dir.join("host.jsonl");
    let _ = std::fs::remove_file(&path);
    let host = start(Config::default_config(), Journal::to_file(&path).unwrap()).await;
    let mut t = Terminal::connect(&host.addr, "00000001").await;
    assert_eq!(t.buy(1, 1000).await.text(39), Some("00"));
    assert_eq!(t.buy(2, 90551).await.text(39), Some("51"));
    // a bad frame that carries the PAN and a track 2
    let mut body = b"0200ZZ".to_vec();
    body.extend_from_slice(load_pan().as_bytes());
    body.extend_from_slice(format!("{}=25121010000012345", load_pan()).as_bytes());
    let mut frame = (body.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    t.framed.write_all(&frame).await.unwrap();
    assert_eq!(t.buy(3, 1000).await.text(39), Some("00"));
    host.stop().await;

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("bad-frame"), "{text}");
    assert!(text.contains("476173******0010"), "the masked PAN is there");
    assert!(!text.contains(load_pan()), "clear PAN in the journal");
    assert!(
        !text.contains(&hex::encode(load_pan())),
        "clear PAN (hex) in the journal"
    );
    assert!(
        !text.contains(&hex::encode_upper(load_pan())),
        "clear PAN (HEX) in the journal"
    );
    let entries = poslab::journal::read(&path).unwrap();
    let decision = entries
        .iter()
        .find(|e| e["kind"] == "decision" && e["code"] == "51")
        .expect("the decline's decision");
    assert_eq!(decision["rule"], "decline-by-amount");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_counts_every_answer() {
    // the load generator buys with one card: the default velocity check is off here
    let host = start(without_risk(), Journal::discard()).await;
    let spec = Arc::new(Spec::load("iso87ascii").unwrap());
    let report = load::run(
        LoadOptions {
            target: host.addr.clone(),
            terminals: 4,
            requests: 402,
            window: 4,
            time_limit: Duration::from_secs(30),
            stan_start: 1,
            ..Default::default()
        },
        spec.clone(),
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 402);
    assert_eq!(report.answered, 402, "{}", report.render());
    assert_eq!(report.codes.get("00"), Some(&402));
    assert_eq!(report.errors(), 0);
    assert_eq!(report.latency.len(), 402);

    // terminals the host does not know are answered 03, and counted
    let report = load::run(
        LoadOptions {
            target: host.addr.clone(),
            terminals: 2,
            requests: 10,
            tid_start: 99,
            rate: Some(200.0),
            ..Default::default()
        },
        spec,
    )
    .await
    .unwrap();
    assert_eq!(report.codes.get("03"), Some(&10));
    host.stop().await;
}

/// A `poslab host` process, killed (by its handle) when dropped, even by a failing test.
struct HostProcess(std::process::Child);

impl HostProcess {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_host(extra: &[&str]) -> (HostProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .args(["host", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start poslab host");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (HostProcess(child), addr)
}

#[test]
fn an_independent_pyiso8583_client_signs_on_buys_is_declined_reverses_and_settles() {
    if !crate::peers::python_module("iso8583", "host: pyiso8583 client") {
        return;
    }
    let (mut child, addr) = spawn_host(&[]);
    let out = Command::new(crate::peers::python())
        .arg(crate::peers::script("host_client.py"))
        .args([&addr, "00000003"])
        .output()
        .expect("run the python client");
    child.kill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
    assert!(!stdout.contains(load_pan()), "the client prints no PAN");
}

#[test]
fn the_binary_load_command_reports_throughput() {
    let (mut child, addr) = spawn_host(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .args([
            "load",
            "--target",
            &addr,
            "--terminals",
            "3",
            "--requests",
            "60",
            "--json",
        ])
        .output()
        .expect("run poslab load");
    child.kill();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["answered"], 60);
    assert!(report["latency_us"]["p99"].as_u64().unwrap() > 0);
}

#[test]
fn a_config_error_names_the_file_and_line() {
    let dir = std::env::temp_dir().join(format!("poslab-host-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "merchants:\n  - mid: \"000000000000001\"\n    terminals: [\"123\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .args(["host", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:3"), "{err}");
    assert!(err.contains("TID"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `poslab host --security`: a key exchange over TCP gives session keys under the TMK, a
/// purchase MACed with the new MAC key is approved and answered with a MAC, a wrong MAC
/// is answered A0.
#[tokio::test]
async fn the_host_with_security_exchanges_keys_and_checks_macs() {
    use poslab_crypto::{KeyAlgorithm, KeyFile, KeyUnderKey, MacAlgorithm, Padding};
    use poslab_host::crypto_security::mac_data;

    let keys_path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/keys/test-keys.yaml");
    let (_host, addr) = spawn_host(&["--security", keys_path]);
    let mut t = Terminal::connect(&addr, "00000004").await;

    let mut kx = Message::new(poslab_iso8583::Mti::new("0800").unwrap());
    kx.set(7, Field::Text("1123101010".into()));
    kx.set(11, Field::Text("000001".into()));
    kx.set(41, Field::Text("00000004".into()));
    kx.set(70, Field::Text("101".into()));
    t.send(&kx).await;
    let answer = t.recv().await;
    assert_eq!(answer.text(39), Some("00"));
    let de48 = answer.text(48).expect("session keys in DE 48").to_string();
    assert!(de48.starts_with("PK") && de48.len() == 80, "{de48:?}");
    let keys = KeyFile::parse(&std::fs::read_to_string(keys_path).unwrap()).unwrap();
    let under = KeyUnderKey::from_hex(KeyAlgorithm::Tdes2, &de48[42..74], &de48[74..80]).unwrap();
    let mac_key = poslab_crypto::unwrap_key(keys.key("tmk").unwrap(), &under).unwrap();
    let mac = |m: &Message| {
        poslab_crypto::generate_mac(
            MacAlgorithm::Alg3(Padding::Method1),
            &mac_key,
            &mac_data(&Spec::load("iso87ascii").unwrap(), m),
            8,
        )
        .unwrap()
    };

    let mut buy = t.purchase(2, 2_500);
    let m = mac(&buy);
    buy.set(64, Field::Binary(m));
    t.send(&buy).await;
    let answer = t.recv().await;
    assert_eq!(answer.text(39), Some("00"));
    assert_eq!(answer.binary(64), Some(mac(&answer).as_slice()));

    let mut bad = t.purchase(3, 2_500);
    bad.set(64, Field::Binary(vec![0; 8]));
    t.send(&bad).await;
    assert_eq!(t.recv().await.text(39), Some("A0"));
}

#[test]
fn the_host_measures_its_service_time_and_prints_it_when_it_stops() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .args(["host", "--listen", "127.0.0.1:0", "--stats"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start poslab host");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let mut host = HostProcess(child);
    let load = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .args([
            "load",
            "--target",
            &addr,
            "--terminals",
            "4",
            "--requests",
            "200",
            "--json",
        ])
        .output()
        .expect("run poslab load");
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    // a graceful stop (SIGTERM) prints the figures
    let killed = Command::new("kill")
        .args(["-TERM", &host.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let _ = host.0.wait();
    let stats = rest
        .lines()
        .find(|l| l.starts_with("service time"))
        .unwrap_or_else(|| panic!("no service time line in {rest:?}"));
    assert!(stats.contains(", 200 requests: p50 "), "{stats}");
    assert!(
        stats.contains("p99.9 ") && stats.contains(" µs, max "),
        "{stats}"
    );
}
