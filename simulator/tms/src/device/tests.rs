//! The client session against the device, in memory: every flow and fault.

use std::time::Duration;

use poslab_crypto::{KeyAlgorithm, KeyFile, KeyUnderKey};

use super::*;
use crate::client::{
    ClientConfig, ClientSession, Event, InstallOutcome, InstallReport, LoadedKey, TerminalStatus,
};
use crate::config::Fault;
use crate::package::{test_transport_key, test_verifying_key};

const T1: &str = "00000001";

fn device() -> TmsDevice {
    TmsDevice::new(Config::default(), 7).unwrap()
}

/// A terminal as the client's user: holds keys, parameters, a download in progress.
struct Term {
    serial: String,
    tid: Option<String>,
    tmk: Option<Key>,
    keys: Vec<LoadedKey>,
    ksn: Option<String>,
    firmware: String,
    params: String,
    manifest: Option<Manifest>,
    image: Vec<u8>,
    pending: Option<InstallReport>,
    logs: Vec<u8>,
    destroy: bool,
    decline: Option<String>,
}

impl Term {
    fn new(serial: &str) -> Term {
        Term {
            serial: serial.into(),
            tid: None,
            tmk: None,
            keys: Vec::new(),
            ksn: None,
            firmware: "1.0.0".into(),
            params: String::new(),
            manifest: None,
            image: Vec::new(),
            pending: None,
            logs: b"boot ok\nsale 1 approved\n".to_vec(),
            destroy: true,
            decline: None,
        }
    }

    fn session(&mut self, dev: &mut TmsDevice) -> (Vec<Event>, Vec<JournalEntry>, Vec<StoredLogs>) {
        let mut cfg = ClientConfig::new(&self.serial, "poslab-ref", test_transport_key());
        cfg.tid = self.tid.clone();
        cfg.master_key = self.tmk.clone();
        cfg.chunk_size = 4096;
        let status = TerminalStatus {
            firmware_version: self.firmware.clone(),
            params_version: self.params.clone(),
            ..TerminalStatus::default()
        };
        let now = Duration::from_secs(10);
        let mut s = ClientSession::new(cfg, status, self.pending.take(), now);
        let mut conn = dev.connect("test");
        let (mut events, mut journal, mut logs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..10_000 {
            while let Some(e) = s.poll_event() {
                self.react(&e, &mut s, now);
                events.push(e);
            }
            if s.is_finished() {
                break;
            }
            let Some(bytes) = s.poll_transmit() else {
                continue;
            };
            let out = dev.handle_bytes(&mut conn, &bytes, now);
            journal.extend(out.journal);
            logs.extend(out.logs);
            for f in out.frames {
                s.handle_bytes(&f, now);
            }
            if out.close {
                s.handle_closed(now);
            }
        }
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
        assert!(s.is_finished(), "session did not finish: {events:?}");
        (events, journal, logs)
    }

    fn react(&mut self, e: &Event, s: &mut ClientSession, now: Duration) {
        match e {
            Event::Assigned { tid, .. } => self.tid = Some(tid.clone()),
            Event::KeysLoaded { keys, ksn } => {
                for k in keys {
                    if k.usage == KeyUsage::Tmk {
                        self.tmk = Some(k.to_key().unwrap());
                    }
                }
                self.keys = keys.clone();
                self.ksn = ksn.clone();
            }
            Event::Parameters { version, .. } => self.params = version.clone(),
            Event::PackageOffered(m) => {
                if let Some(why) = &self.decline {
                    s.decline_package(why, now);
                    return;
                }
                if self.manifest.as_ref().map(|x| &x.id) != Some(&m.id) {
                    self.image.clear();
                }
                self.manifest = Some(m.clone());
                s.accept_package(self.image.len() as u64, now);
            }
            Event::Chunk { offset, bytes, .. } => {
                assert_eq!(*offset, self.image.len() as u64, "chunks arrive in order");
                self.image.extend_from_slice(bytes);
            }
            Event::LogsRequested => s.provide_logs(&self.logs.clone(), now),
            Event::DecommissionOrdered if self.destroy => {
                let kcvs = self.keys.iter().map(|k| k.kcv.clone()).collect();
                self.tmk = None;
                self.keys.clear();
                s.keys_destroyed(kcvs, now);
            }
            _ => {}
        }
    }

    /// Verifies and "installs" the downloaded image; the report goes with the next session.
    fn install(&mut self) -> Result<(), TmsError> {
        let m = self.manifest.clone().expect("a manifest");
        let r = package::verify(&m, &self.image, &test_verifying_key());
        let outcome = match &r {
            Ok(()) => {
                self.firmware = m.version.clone();
                InstallOutcome::Installed
            }
            Err(e) if e.to_string().contains("signature") => InstallOutcome::RejectedSignature,
            Err(_) => InstallOutcome::RejectedDigest,
        };
        self.pending = Some(InstallReport {
            package: m.id.clone(),
            version: m.version.clone(),
            outcome,
            detail: r.as_ref().err().map(|e| e.to_string()).unwrap_or_default(),
        });
        self.image.clear();
        self.manifest = None;
        r
    }
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

fn last(events: &[Event]) -> &Event {
    events.last().expect("events")
}

fn failed(events: &[Event]) -> String {
    match last(events) {
        Event::Failed { why } => why.clone(),
        e => panic!("expected Failed, got {e:?}"),
    }
}

#[test]
fn first_provisioning_then_update_then_quiet() {
    let mut dev = device();
    let mut t = Term::new("PL-0001");
    let (ev, journal, _) = t.session(&mut dev);
    assert_eq!(
        orders(&ev),
        vec![Order::KeysLoad, Order::Params, Order::Firmware]
    );
    assert_eq!(
        last(&ev),
        &Event::Done {
            decommissioned: false
        }
    );
    assert_eq!(t.tid.as_deref(), Some(T1));
    // the master key is the host's
    let host_tmk = KeyFile::parse(HOST_KEYS_YAML)
        .unwrap()
        .key("tmk")
        .unwrap()
        .clone();
    assert_eq!(t.tmk.as_ref().unwrap().expose(), host_tmk.expose());
    let usages: Vec<_> = t.keys.iter().map(|k| k.usage.clone()).collect();
    assert_eq!(
        usages,
        vec![KeyUsage::Tmk, KeyUsage::Mac, KeyUsage::Data, KeyUsage::Pin]
    );
    assert_eq!(t.keys[0].kcv, "5771F3");
    assert!(!format!("{:?}", t.keys[1].key).contains(&hex::encode_upper(t.keys[1].key.expose())));
    let params = ev
        .iter()
        .find_map(|e| match e {
            Event::Parameters { set, .. } => Some(set.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(params.terminal["merchant_name"], "POSLAB DEMO SHOP");
    assert_eq!(params.terminal["tid"], T1);
    assert_eq!(
        params.terminal["applications"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(params.terminal["ca_keys"].as_array().map(Vec::len), Some(2));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::DownloadComplete { size: 65536, .. })));
    t.install().unwrap();
    // the journal shows keys by KCV only
    let text = serde_json::to_string(&journal).unwrap();
    assert!(text.contains("K0:tdes2:<16 bytes>:5771F3"), "{text}");
    for k in &t.keys {
        assert!(!text.contains(&hex::encode_upper(k.key.expose())));
    }
    // next session: install report, then nothing to do
    let (ev, journal, _) = t.session(&mut dev);
    assert_eq!(orders(&ev), vec![]);
    assert_eq!(
        last(&ev),
        &Event::Done {
            decommissioned: false
        }
    );
    assert!(journal.iter().any(|j| j.kind == "install"));
    let rec = dev.terminal(T1).unwrap();
    assert_eq!(rec.installs[0].outcome, "installed");
    assert_eq!(rec.status.as_ref().unwrap().firmware_version, "1.1.0");
    assert_eq!(rec.serial.as_deref(), Some("PL-0001"));
    assert_eq!(
        dev.rollout("poslab-ref-1.1.0").unwrap().successes,
        vec![1, 0]
    );
}

#[test]
fn a_terminal_provisioned_by_the_tms_unwraps_the_hosts_session_keys() {
    use poslab_host::{CryptoSecurity, Host, RequestContext};
    use poslab_iso8583::{Field, Message, Mti};
    let mut dev = device();
    let mut t = Term::new("PL-0001");
    t.session(&mut dev);
    let tmk = t.tmk.clone().unwrap();
    let mut h = Host::new(poslab_host::Config::default_config());
    h.set_security(Box::new(
        CryptoSecurity::from_key_file(&KeyFile::parse(HOST_KEYS_YAML).unwrap(), 7).unwrap(),
    ));
    let mut req = Message::new(Mti::new("0800").unwrap());
    for (de, v) in [(7, "1123101010"), (11, "000001"), (41, T1), (70, "101")] {
        req.set(de, Field::Text(v.into()));
    }
    let ctx = RequestContext {
        conn: 1,
        now: std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        tid: None,
    };
    let d = h.handle(&req, &ctx);
    let de48 = d.response.as_ref().unwrap().text(48).unwrap().to_string();
    let pk = KeyUnderKey::from_hex(KeyAlgorithm::Tdes2, &de48[2..34], &de48[34..40]).unwrap();
    poslab_crypto::unwrap_key(&tmk, &pk).expect("the host's PIN key unwraps under the TMS's TMK");
}

#[test]
fn download_cut_at_50_percent_resumes_from_the_offset() {
    let mut dev = device();
    dev.set_fault(Fault::new(FaultKind::DownAtPercent(50)).times(1));
    let mut t = Term::new("PL-0001");
    let (ev, journal, _) = t.session(&mut dev);
    let why = failed(&ev);
    assert!(
        why.contains(
            "connection closed during the download of poslab-ref-1.1.0 at offset 32768 of 65536"
        ),
        "{why}"
    );
    assert_eq!(t.image.len(), 32768);
    assert!(journal
        .iter()
        .any(|j| j.body.to_string().contains("down_at_percent 50")));
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(
        orders(&ev),
        vec![Order::Firmware],
        "keys and params were applied before the cut"
    );
    let first = ev
        .iter()
        .find_map(|e| match e {
            Event::Chunk { offset, .. } => Some(*offset),
            _ => None,
        })
        .unwrap();
    assert_eq!(first, 32768, "resumed, not restarted");
    assert_eq!(
        last(&ev),
        &Event::Done {
            decommissioned: false
        }
    );
    t.install().unwrap();
}

#[test]
fn down_after_n_chunks_then_resume() {
    let mut dev = device();
    dev.set_fault(
        Fault::new(FaultKind::DownAfterChunks(3))
            .for_tid(T1)
            .times(1),
    );
    let mut t = Term::new("PL-0001");
    let (ev, _, _) = t.session(&mut dev);
    assert!(failed(&ev).contains("at offset 12288"));
    t.session(&mut dev);
    t.install().unwrap();
}

#[test]
fn bad_signature_is_rejected_reported_and_not_offered_again() {
    let mut dev = device();
    dev.set_fault(Fault::new(FaultKind::WrongSignature));
    let mut t = Term::new("PL-0001");
    t.session(&mut dev);
    assert_eq!(
        t.install().unwrap_err().to_string(),
        "package poslab-ref-1.1.0: bad signature"
    );
    assert_eq!(t.firmware, "1.0.0");
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(orders(&ev), vec![], "a failed package is not offered again");
    let rec = dev.terminal(T1).unwrap();
    assert_eq!(rec.installs[0].outcome, "rejected-signature");
    assert_eq!(
        dev.rollout("poslab-ref-1.1.0").unwrap().failures,
        vec![1, 0]
    );
}

#[test]
fn corrupted_chunk_and_truncated_image_fail_the_digest() {
    for fault in [
        FaultKind::CorruptChunk(40_000),
        FaultKind::TruncatedImage(50_000),
    ] {
        let mut dev = device();
        dev.set_fault(Fault::new(fault.clone()));
        let mut t = Term::new("PL-0001");
        let (ev, _, _) = t.session(&mut dev);
        assert_eq!(
            last(&ev),
            &Event::Done {
                decommissioned: false
            },
            "{fault:?}"
        );
        let e = t.install().unwrap_err().to_string();
        assert!(e.contains("sha-256 mismatch"), "{fault:?}: {e}");
    }
}

#[test]
fn wrong_version_is_offered_signed_and_the_image_says_otherwise() {
    let mut dev = device();
    dev.set_fault(Fault::new(FaultKind::WrongVersion("0.9.0".into())));
    let mut t = Term::new("PL-0001");
    t.session(&mut dev);
    let m = t.manifest.clone().unwrap();
    assert_eq!(m.version, "0.9.0");
    package::verify(&m, &t.image, &test_verifying_key()).unwrap();
    let (_, version, _) = package::image_header(&t.image).unwrap();
    assert_eq!(version, "1.1.0");
}

#[test]
fn a_key_with_a_wrong_check_value_loads_nothing() {
    let mut dev = device();
    dev.set_fault(Fault::new(FaultKind::WrongKcv("pin".into())).times(1));
    let mut t = Term::new("PL-0001");
    let (ev, _, _) = t.session(&mut dev);
    let why = failed(&ev);
    assert!(why.starts_with("key pin: check value mismatch"), "{why}");
    assert!(!ev.iter().any(|e| matches!(e, Event::KeysLoaded { .. })));
    assert!(t.tmk.is_none());
    // next time it works
    let (ev, _, _) = t.session(&mut dev);
    assert!(ev.iter().any(|e| matches!(e, Event::KeysLoaded { .. })));
}

#[test]
fn wrong_tmk_check_value_fails_too() {
    let mut dev = device();
    dev.set_fault(Fault::new(FaultKind::WrongKcv("tmk".into())));
    let mut t = Term::new("PL-0001");
    let (ev, _, _) = t.session(&mut dev);
    assert!(failed(&ev).starts_with("key tmk: check value mismatch"));
}

#[test]
fn key_rotation_gives_new_session_keys_under_the_same_master_key() {
    let mut dev = device();
    let mut t = Term::new("PL-0001");
    t.session(&mut dev);
    let before: Vec<String> = t.keys.iter().map(|k| k.kcv.clone()).collect();
    dev.order(T1, Order::KeysRotate).unwrap();
    t.decline = Some("busy".into());
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(orders(&ev), vec![Order::KeysRotate, Order::Firmware]);
    let usages: Vec<_> = t.keys.iter().map(|k| k.usage.clone()).collect();
    assert_eq!(usages, vec![KeyUsage::Mac, KeyUsage::Data, KeyUsage::Pin]);
    assert!(t.keys.iter().all(|k| !before.contains(&k.kcv)));
    assert_eq!(dev.terminal(T1).unwrap().key_kcvs["pin"], t.keys[2].kcv);
    // declining is reported, not counted as a failure
    assert_eq!(dev.terminal(T1).unwrap().installs[0].outcome, "declined");
    assert_eq!(
        dev.rollout("poslab-ref-1.1.0").unwrap().failures,
        vec![0, 0]
    );
}

#[test]
fn dukpt_terminal_gets_an_ipek_and_ksn() {
    let mut dev = device();
    let mut t = Term::new("PL-0003");
    t.tid = Some("00000003".into());
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(orders(&ev)[0], Order::KeysDukpt);
    let ksn = t.ksn.clone().unwrap();
    assert_eq!(ksn, "FFFF9876540000600000");
    let file = KeyFile::parse(HOST_KEYS_YAML).unwrap();
    let ipek = derive_ipek(
        file.key("bdk-tdes").unwrap(),
        &TdesKsn::parse_hex(&ksn).unwrap(),
    )
    .unwrap();
    let got = t.keys.iter().find(|k| k.usage == KeyUsage::Ipek).unwrap();
    assert_eq!(got.key.expose(), ipek.expose());
}

#[test]
fn decommission_retires_the_tid_and_a_replacement_takes_it() {
    let mut dev = device();
    let mut t = Term::new("PL-0001");
    t.session(&mut dev);
    dev.decommission(T1).unwrap();
    dev.order(T1, Order::Logs).unwrap();
    let (ev, _, logs) = t.session(&mut dev);
    assert_eq!(orders(&ev), vec![Order::Logs, Order::Decommission]);
    assert_eq!(
        last(&ev),
        &Event::Done {
            decommissioned: true
        }
    );
    assert_eq!(logs[0].bytes, t.logs);
    let rec = dev.terminal(T1).unwrap();
    assert!(rec.retired);
    assert_eq!(rec.destroyed_kcvs.len(), 4);
    // the old terminal is refused with RT
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(
        failed(&ev),
        "call-home: response code RT (terminal retired)"
    );
    // a replacement with a new serial gets the same TID and merchant
    dev.provision_replacement(T1, "PL-0001-B").unwrap();
    let mut r = Term::new("PL-0001-B");
    let (ev, _, _) = r.session(&mut dev);
    assert_eq!(
        ev.first(),
        Some(&Event::Assigned {
            tid: T1.into(),
            mid: "000000000000001".into()
        })
    );
    assert_eq!(orders(&ev)[0], Order::KeysLoad);
    let (ev, _, _) = t.session(&mut dev);
    assert!(failed(&ev).contains("RT"));
}

#[test]
fn waves_open_after_the_pilot_succeeds() {
    let mut dev = device();
    let mut a = Term::new("PL-A");
    let mut b = Term::new("PL-B");
    a.decline = None;
    let (ev, _, _) = a.session(&mut dev);
    assert!(orders(&ev).contains(&Order::Firmware));
    let (ev, journal, _) = b.session(&mut dev);
    assert!(!orders(&ev).contains(&Order::Firmware), "wave 2 is closed");
    assert!(journal
        .iter()
        .any(|j| j.body.to_string().contains("no open wave")));
    a.install().unwrap();
    a.session(&mut dev);
    let (ev, _, _) = b.session(&mut dev);
    assert!(orders(&ev).contains(&Order::Firmware), "wave 2 opened");
    assert_eq!(
        dev.rollout("poslab-ref-1.1.0").unwrap().members,
        vec![("00000001".to_string(), 0), ("00000002".to_string(), 1)]
    );
}

#[test]
fn a_new_parameter_version_is_sent_on_the_next_call_home() {
    let mut dev = device();
    let mut t = Term::new("PL-0001");
    t.decline = Some("later".into());
    t.session(&mut dev);
    let mut set = dev.parameters_for(T1).unwrap();
    set.version = "2".into();
    set.terminal
        .insert("merchant_name".into(), "NEW NAME".into());
    dev.publish_parameters("retail", set);
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(orders(&ev), vec![Order::Params]);
    assert_eq!(t.params, "2");
}

#[test]
fn unknown_serial_and_bad_frames_are_answered_or_closed() {
    let mut dev = TmsDevice::new(Config::empty(), 1).unwrap();
    let mut t = Term::new("NOBODY");
    let (ev, _, _) = t.session(&mut dev);
    assert!(failed(&ev).contains("25 (unknown terminal)"));
    // a frame that does not decode: format error answer, connection stays
    let mut conn = dev.connect("x");
    let out = dev.handle_bytes(&mut conn, b"\x00\x05hello", Duration::ZERO);
    assert!(!out.close);
    assert_eq!(out.frames.len(), 1);
    assert!(out.journal.iter().any(|j| j.kind == "bad-frame"));
    let m = protocol::unpack(&out.frames[0][2..]).unwrap();
    assert_eq!(m.text(39), Some("30"));
    // a zero length cannot be resynchronised: closed
    let out = dev.handle_bytes(&mut conn, b"\x00\x00", Duration::ZERO);
    assert!(out.close);
    // an unknown processing code: 12
    let mut conn = dev.connect("y");
    let r = Request::new(
        Exchange::Other("9Z0000".into()),
        1,
        NO_TID,
        SubElements::new().with("01", "X").unwrap(),
    );
    let out = dev.handle_bytes(&mut conn, &r.encode().unwrap(), Duration::ZERO);
    let m = protocol::unpack(&out.frames[0][2..]).unwrap();
    assert_eq!(m.text(39), Some("12"));
}

#[test]
fn the_tms_down_fault_closes_at_once() {
    let mut dev = device();
    dev.set_fault(Fault::new(FaultKind::Down).times(1));
    let mut t = Term::new("PL-0001");
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(
        failed(&ev),
        "connection closed waiting for the call-home answer"
    );
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(
        last(&ev),
        &Event::Done {
            decommissioned: false
        }
    );
}

#[test]
fn a_timeout_fails_the_session() {
    let cfg = ClientConfig::new("PL-1", "poslab-ref", test_transport_key());
    let mut s = ClientSession::new(cfg, TerminalStatus::default(), None, Duration::from_secs(1));
    assert!(s.poll_transmit().is_some());
    assert_eq!(s.poll_timeout(), Some(Duration::from_secs(31)));
    s.handle_timeout(Duration::from_secs(30));
    assert!(!s.is_finished());
    s.handle_timeout(Duration::from_secs(31));
    assert_eq!(
        s.poll_event(),
        Some(Event::Failed {
            why: "no answer to call-home within 30000 ms".into()
        })
    );
    assert!(s.is_finished());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn logs_larger_than_a_part_arrive_whole() {
    let mut dev = device();
    let mut t = Term::new("PL-0001");
    t.decline = Some("no".into());
    t.session(&mut dev);
    t.logs = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    dev.order(T1, Order::Logs).unwrap();
    let (ev, _, logs) = t.session(&mut dev);
    assert!(ev.contains(&Event::LogsRequested));
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].bytes, t.logs);
    assert_eq!(dev.terminal(T1).unwrap().log_uploads, 1);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_session_input_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        crate::fuzz::session(&data);
    }

    #[test]
    fn arbitrary_config_text_never_panics(text in "[a-z_:{} \\[\\],\"0-9\\n-]{0,200}") {
        crate::fuzz::config(text.as_bytes());
    }
}

#[test]
fn a_package_published_at_run_time_is_offered_at_the_next_call_home() {
    let mut cfg = Config::default();
    cfg.packages.clear();
    let mut dev = TmsDevice::new(cfg, 7).unwrap();
    let mut t = Term::new("PL-0001");
    let (ev, _, _) = t.session(&mut dev);
    assert!(!orders(&ev).contains(&Order::Firmware));
    let pkg = crate::config::PackageConfig {
        id: "app-2".into(),
        version: "2.0.0".into(),
        image: crate::config::ImageSource {
            file: None,
            generate: Some(crate::config::Generate {
                size: 9000,
                seed: 3,
                health: "fail".into(),
            }),
        },
        target: crate::config::Target {
            tids: vec![T1.into()],
            ..Default::default()
        },
        waves: Vec::new(),
    };
    dev.publish_package(pkg).unwrap();
    let (ev, _, _) = t.session(&mut dev);
    assert_eq!(orders(&ev), vec![Order::Firmware]);
    t.install().unwrap();
    assert_eq!(t.firmware, "2.0.0");
}

#[test]
fn a_terminal_added_at_run_time_is_provisioned_like_a_configured_one() {
    let mut dev = device();
    let entry = TerminalEntry {
        tid: "00000101".into(),
        mid: "000000000000001".into(),
        model: Some("poslab-ref".into()),
        ..TerminalEntry::default()
    };
    dev.add_terminal(&entry).unwrap();
    let e = dev.add_terminal(&entry).unwrap_err();
    assert!(e.to_string().contains("already registered"), "{e}");
    let bad = TerminalEntry {
        tid: "101".into(),
        ..entry.clone()
    };
    assert!(dev
        .add_terminal(&bad)
        .unwrap_err()
        .to_string()
        .contains("8 ASCII"));
    let mut t = Term::new("FL-0001");
    t.tid = Some("00000101".into());
    let (ev, _, _) = t.session(&mut dev);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Assigned { tid, .. } if tid == "00000101")),
        "{ev:?}"
    );
    let r = dev.terminal("00000101").unwrap();
    assert_eq!(r.serial.as_deref(), Some("FL-0001"));
    assert!(r.key_kcvs.contains_key("tmk"), "{r:?}");
}
