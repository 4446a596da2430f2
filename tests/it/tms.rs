//! `poslab tms` as a real process on a loopback port, driven by the client session over
//! TCP (`poslab::tms::drive`); and the in-process server with its runtime API.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use poslab::tms::drive;
use poslab_tms::client::{
    ClientConfig, ClientSession, Event, InstallOutcome, InstallReport, TerminalStatus,
};
use poslab_tms::package::{self, test_transport_key, test_verifying_key, Manifest};
use poslab_tms::{KeyUsage, Order};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http::{json, request as http};

/// A `poslab tms` process, killed (by its handle) when dropped.
struct TmsProcess(std::process::Child);

impl Drop for TmsProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_tms(extra: &[&str]) -> (TmsProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .args(["tms", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start poslab tms");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (TmsProcess(child), addr)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poslab-it-tms-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a terminal keeps between sessions.
#[derive(Default)]
struct Held {
    tid: Option<String>,
    tmk_kcv: Option<String>,
    tmk: Option<poslab_crypto::Key>,
    manifest: Option<Manifest>,
    image: Vec<u8>,
    firmware: String,
    params: String,
    pending: Option<InstallReport>,
}

async fn session(addr: &str, held: &mut Held, serial: &str) -> Vec<Event> {
    let epoch = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect to the tms");
    let mut cfg = ClientConfig::new(serial, "poslab-ref", test_transport_key());
    cfg.tid = held.tid.clone();
    cfg.master_key = held.tmk.clone();
    cfg.timeout = Duration::from_secs(10);
    let status = TerminalStatus {
        firmware_version: if held.firmware.is_empty() {
            "1.0.0".into()
        } else {
            held.firmware.clone()
        },
        params_version: held.params.clone(),
        ..TerminalStatus::default()
    };
    let mut s = ClientSession::new(cfg, status, held.pending.take(), epoch.elapsed());
    drive(&mut stream, &mut s, epoch, |e, s, now| match e {
        Event::Assigned { tid, .. } => held.tid = Some(tid.clone()),
        Event::KeysLoaded { keys, .. } => {
            if let Some(k) = keys.iter().find(|k| k.usage == KeyUsage::Tmk) {
                held.tmk_kcv = Some(k.kcv.clone());
                held.tmk = Some(k.to_key().expect("a tdes key"));
            }
        }
        Event::Parameters { version, .. } => held.params = version.clone(),
        Event::PackageOffered(m) => {
            if held.manifest.as_ref().map(|x| &x.id) != Some(&m.id) {
                held.image.clear();
            }
            held.manifest = Some(m.clone());
            s.accept_package(held.image.len() as u64, now);
        }
        Event::Chunk { offset, bytes, .. } => {
            assert_eq!(*offset, held.image.len() as u64);
            held.image.extend_from_slice(bytes);
        }
        Event::LogsRequested => s.provide_logs(b"power on\nsale approved\n", now),
        Event::DecommissionOrdered => s.keys_destroyed(vec!["5771F3".into()], now),
        _ => {}
    })
    .await
}

fn install(held: &mut Held) {
    let m = held.manifest.take().expect("a downloaded package");
    package::verify(&m, &held.image, &test_verifying_key()).expect("the image verifies");
    held.firmware = m.version.clone();
    held.pending = Some(InstallReport {
        package: m.id,
        version: m.version,
        outcome: InstallOutcome::Installed,
        detail: String::new(),
    });
}

fn orders(events: &[Event]) -> Vec<Order> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Orders(o) => Some(o.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_tms_process_provisions_updates_and_survives_a_bad_connection() {
    let dir = temp_dir("process");
    let journal = dir.join("tms.jsonl");
    let (_tms, addr) = spawn_tms(&["--journal", journal.to_str().unwrap()]);

    // a connection that sends garbage is closed; the listener keeps serving
    let mut bad = TcpStream::connect(&addr).await.unwrap();
    bad.write_all(b"\x00\x00garbage").await.unwrap();

    let mut held = Held::default();
    let ev = session(&addr, &mut held, "PL-IT-1").await;
    assert_eq!(
        orders(&ev),
        vec![Order::KeysLoad, Order::Params, Order::Firmware]
    );
    assert_eq!(
        ev.last(),
        Some(&Event::Done {
            decommissioned: false
        })
    );
    assert_eq!(held.tid.as_deref(), Some("00000001"));
    assert_eq!(held.tmk_kcv.as_deref(), Some("5771F3"), "the host's TMK");
    assert_eq!(held.params, "1");
    assert_eq!(held.image.len(), 65536);
    install(&mut held);

    let ev = session(&addr, &mut held, "PL-IT-1").await;
    assert_eq!(
        orders(&ev),
        vec![],
        "installed, keyed, parameterised: nothing to do"
    );
    assert_eq!(
        ev.last(),
        Some(&Event::Done {
            decommissioned: false
        })
    );

    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.contains("\"kind\":\"bad-frame\""),
        "bad frames are journaled"
    );
    assert!(text.contains("K0:tdes2:<16 bytes>:5771F3"), "keys by KCV");
    assert!(
        !text.contains("7EA3A0DE29EC7173C5631E2E18842E6E"),
        "no clear TMK"
    );
    assert!(text.contains("\"kind\":\"install\""));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_download_cut_at_half_resumes_from_its_offset_in_the_next_session() {
    let dir = temp_dir("resume");
    let config = dir.join("tms.yaml");
    let text = poslab_tms::config::DEFAULT_YAML.replace(
        "faults: []",
        "faults: [{fault: {down_at_percent: 50}, times: 1}]",
    );
    std::fs::write(&config, text).unwrap();
    let (_tms, addr) = spawn_tms(&["--config", config.to_str().unwrap()]);
    let mut held = Held::default();
    let ev = session(&addr, &mut held, "PL-IT-2").await;
    match ev.last() {
        Some(Event::Failed { why }) => assert!(why.contains("at offset 32768 of 65536"), "{why}"),
        e => panic!("expected a cut, got {e:?}"),
    }
    assert_eq!(held.image.len(), 32768);
    let ev = session(&addr, &mut held, "PL-IT-2").await;
    assert_eq!(orders(&ev), vec![Order::Firmware]);
    let first = ev.iter().find_map(|e| match e {
        Event::Chunk { offset, .. } => Some(*offset),
        _ => None,
    });
    assert_eq!(first, Some(32768));
    install(&mut held);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn logs_pulled_by_the_in_process_server_are_stored_and_a_decommissioned_tid_is_refused() {
    let dir = temp_dir("logs");
    let journal = poslab::journal::Journal::to_file(&dir.join("tms.jsonl")).unwrap();
    let device = poslab::cmd::tms::load_device(None, 1).unwrap();
    let server = poslab::tms::TmsServer::new(device, journal);
    let listener = poslab::net::bind("127.0.0.1:0").await.unwrap();
    let addr = poslab::net::local_addr(&listener).unwrap().to_string();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(poslab::tms::run(
        listener,
        server.clone(),
        poslab::net::Limits::default(),
        shutdown.clone(),
    ));
    let mut held = Held::default();
    session(&addr, &mut held, "PL-IT-3").await;
    {
        let dev = server.device();
        let mut dev = dev.lock().unwrap();
        dev.order("00000001", Order::Logs).unwrap();
        dev.decommission("00000001").unwrap();
    }
    let ev = session(&addr, &mut held, "PL-IT-3").await;
    assert_eq!(orders(&ev), vec![Order::Logs, Order::Decommission]);
    assert_eq!(
        ev.last(),
        Some(&Event::Done {
            decommissioned: true
        })
    );
    let stored = std::fs::read(dir.join("tms-logs/00000001-PL-IT-3-1.log")).unwrap();
    assert_eq!(stored, b"power on\nsale approved\n");
    let ev = session(&addr, &mut held, "PL-IT-3").await;
    assert_eq!(
        ev.last(),
        Some(&Event::Failed {
            why: "call-home: response code RT (terminal retired)".into()
        })
    );
    assert!(
        server
            .device()
            .lock()
            .unwrap()
            .terminal("00000001")
            .unwrap()
            .retired
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_operator_drives_the_tms_process_through_its_control_api() {
    let dir = temp_dir("api");
    let journal = dir.join("tms.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .args(["tms", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
        .args(["--journal", journal.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start poslab tms");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    let _tms = TmsProcess(child);
    let api = first
        .trim()
        .strip_prefix("api on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let addr = second
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .to_string();

    // first provisioning, then the operator's orders and a new parameter version
    let mut held = Held::default();
    session(&addr, &mut held, "PL-API-1").await;
    install(&mut held);
    let (status, _) = http(
        &api,
        "POST",
        "/terminals/00000001/orders",
        Some(r#"{"order":"keys-rotate"}"#),
    );
    assert_eq!(status, 202);
    let (status, _) = http(
        &api,
        "POST",
        "/terminals/00000001/orders",
        Some(r#"{"order":"logs"}"#),
    );
    assert_eq!(status, 202);
    let (status, body) = http(
        &api,
        "PUT",
        "/parameter-sets/retail",
        Some(r#"{"version":"2","terminal":{"merchant_name":"CORNER BAKERY"}}"#),
    );
    assert_eq!(status, 204, "{body}");
    let ev = session(&addr, &mut held, "PL-API-1").await;
    let o = orders(&ev);
    for want in [Order::KeysRotate, Order::Params, Order::Logs] {
        assert!(o.contains(&want), "{want:?} not in {o:?}");
    }
    assert_eq!(held.params, "2");
    let (status, body) = http(&api, "GET", "/terminals/00000001", None);
    assert_eq!(status, 200);
    let record = json(&body);
    assert_eq!(record["serial"], "PL-API-1");
    assert_eq!(record["params_sent"], "2");
    assert_eq!(record["installs"][0]["outcome"], "installed");
    assert!(
        !body.contains("7EA3A0DE29EC7173C5631E2E18842E6E"),
        "no clear key: {body}"
    );
    let (status, body) = http(&api, "GET", "/terminals/00000001/logs", None);
    assert_eq!((status, body.as_str()), (200, "power on\nsale approved\n"));

    // a standing fault from the API: the TMS is down until cleared
    let (status, _) = http(&api, "POST", "/faults", Some(r#"{"fault":"down"}"#));
    assert_eq!(status, 201);
    let ev = session(&addr, &mut held, "PL-API-1").await;
    assert!(matches!(ev.last(), Some(Event::Failed { .. })), "{ev:?}");
    assert_eq!(http(&api, "DELETE", "/faults", None).0, 204);

    // a new package, its rollout, and the device exchange
    let (status, body) = http(
        &api,
        "POST",
        "/packages",
        Some(
            r#"{"id":"fw-2","version":"2.0.0","image":{"generate":{"size":8192,"seed":2,"health":"ok"}},"target":{"tids":["00000001"]}}"#,
        ),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["manifest"]["size"], 8192);
    let ev = session(&addr, &mut held, "PL-API-1").await;
    assert!(orders(&ev).contains(&Order::Firmware), "{ev:?}");
    let (status, body) = http(&api, "GET", "/packages/fw-2", None);
    assert_eq!(status, 200);
    assert_eq!(json(&body)["members"][0][0], "00000001");
    http(
        &api,
        "POST",
        "/terminals/00000001/orders",
        Some(r#"{"order":"decommission"}"#),
    );
    let ev = session(&addr, &mut held, "PL-API-1").await;
    assert_eq!(
        ev.last(),
        Some(&Event::Done {
            decommissioned: true
        })
    );
    let (status, body) = http(
        &api,
        "POST",
        "/terminals/00000001/replacement",
        Some(r#"{"serial":"PL-API-2"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let mut fresh = Held::default();
    let ev = session(&addr, &mut fresh, "PL-API-2").await;
    assert!(orders(&ev).contains(&Order::KeysLoad), "{ev:?}");
    assert_eq!(fresh.tid.as_deref(), Some("00000001"));

    // mistakes are typed answers
    assert_eq!(
        http(
            &api,
            "POST",
            "/terminals/00000001/orders",
            Some(r#"{"order":"firmware"}"#)
        )
        .0,
        400
    );
    assert_eq!(
        http(
            &api,
            "POST",
            "/terminals/99999999/orders",
            Some(r#"{"order":"logs"}"#)
        )
        .0,
        404
    );
    assert_eq!(http(&api, "GET", "/terminals/99999999", None).0, 404);
    assert_eq!(
        http(&api, "PUT", "/parameter-sets/retail", Some("{")).0,
        400
    );
    assert_eq!(http(&api, "GET", "/version", None).0, 200);
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.contains("\"kind\":\"api\""),
        "operator actions are journaled"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
