//! Integration tests: the ZVT cash-register link. A purchase between poslab's ECR and
//! poslab's terminal role (scripted application) over TCP and over a pty, the journal,
//! money safety when the link drops the final answer, and the `zvt` crate (EVerest/qwello,
//! an independent implementation) as the ECR talking to poslab's terminal role.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use poslab::journal::Journal;
use poslab::net::{self, Limits};
use poslab::zvt::{run_ecr, TerminalHandler};
use poslab_zvt::apdu::{self, Command as ZvtCommand};
use poslab_zvt::ecr::{Ecr, EcrCommand, EcrConfig, Status};
use poslab_zvt::link::LinkConfig;
use poslab_zvt::scripted::ScriptedApplication;
use poslab_zvt::terminal::{Terminal, TerminalConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const PAN_CLEAR: &str = "4761739001010010";
const PAN_MASKED: &str = "476173******0010";

fn script(name: &str) -> String {
    format!("{}/fixtures/zvt-scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Starts `poslab zvt-terminal` and returns it with the first word after `prefix` on its
/// first stdout line (the address or the pty path).
fn spawn_terminal(args: &[&str], prefix: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .arg("zvt-terminal")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start poslab zvt-terminal");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let value = line
        .trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
        .to_string();
    (child, value)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ecr(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .arg("ecr")
        .args(args)
        .output()
        .expect("run poslab ecr");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), text)
}

fn assert_approved_purchase(json: &Value) {
    assert_eq!(json["status"], "success", "{json:#}");
    assert_eq!(json["amount"], 4250);
    assert_eq!(json["pan"], PAN_MASKED);
    assert_eq!(json["result_code"], "00");
    assert_eq!(json["auth_code"], "123456");
    assert_eq!(
        json["intermediate"],
        serde_json::json!([
            "insert card",
            "please watch PIN pad",
            "waiting for response from host"
        ])
    );
    assert!(json["receipt_lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "AMOUNT EUR 42.50"));
    assert!(!json.to_string().contains(PAN_CLEAR));
}

#[test]
fn a_purchase_over_tcp_between_poslab_ecr_and_poslab_terminal() {
    let (child, addr) = spawn_terminal(
        &[
            "--listen",
            "127.0.0.1:0",
            "--script",
            &script("approve.yaml"),
        ],
        "listening on ",
    );
    let _guard = Kill(child);
    let (code, out) = ecr(&["--connect", &addr, "--json", "purchase", "42.50"]);
    assert_eq!(code, 0, "{out}");
    let json: Value = serde_json::from_str(&out).expect("json");
    assert_approved_purchase(&json);

    // the readable form, then a reversal of that receipt
    let (code, text) = ecr(&["--connect", &addr, "purchase", "42.50"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("purchase 42.50: APPROVED"), "{text}");
    assert!(
        text.contains("00 (no error)") && text.contains(PAN_MASKED),
        "{text}"
    );
    let receipt = json["receipt"].as_u64().unwrap().to_string();
    let (code, text) = ecr(&["--connect", &addr, "reverse", "--receipt", &receipt]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = ecr(&["--connect", &addr, "reverse", "--receipt", &receipt]);
    assert_eq!(code, 1, "already reversed: {text}");
    assert!(text.contains("B4 (already reversed)"), "{text}");
    for args in [
        &["status"][..],
        &["register"],
        &["end-of-day"],
        &["log-off"],
        &["abort"],
    ] {
        let mut all = vec!["--connect", addr.as_str()];
        all.extend_from_slice(args);
        let (code, text) = ecr(&all);
        assert_eq!(code, 0, "{args:?}: {text}");
    }
}

#[test]
fn a_declined_purchase_exits_1_with_the_meaning() {
    let (child, addr) = spawn_terminal(
        &[
            "--listen",
            "127.0.0.1:0",
            "--script",
            &script("decline.yaml"),
        ],
        "listening on ",
    );
    let _guard = Kill(child);
    let (code, text) = ecr(&["--connect", &addr, "purchase", "10"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("DECLINED"), "{text}");
    assert!(
        text.contains("05 (declined by the authorisation system, code 05)"),
        "{text}"
    );
    let (code, text) = ecr(&["--connect", &addr, "purchase", "10"]);
    assert_eq!(code, 1);
    assert!(text.contains("78 (card expired)"), "{text}");
    assert!(text.contains("541333******0020"), "{text}");
}

#[cfg(unix)]
#[test]
fn a_purchase_over_a_pty_with_serial_framing() {
    let journal = std::env::temp_dir().join(format!("poslab-zvt-pty-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&journal);
    let (child, path) = spawn_terminal(
        &[
            "--pty",
            "--script",
            &script("approve.yaml"),
            "--journal",
            journal.to_str().unwrap(),
        ],
        "pty ",
    );
    let _guard = Kill(child);
    let (code, out) = ecr(&["--serial", &path, "--json", "purchase", "42.50"]);
    assert_eq!(code, 0, "{out}");
    assert_approved_purchase(&serde_json::from_str(&out).expect("json"));

    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(!text.contains(PAN_CLEAR));
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let apdus: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "zvt").collect();
    assert!(apdus
        .iter()
        .any(|e| e["dir"] == "in" && e["command"] == "06 01 authorisation"));
    assert!(apdus.iter().any(|e| e["dir"] == "out"
        && e["decoded"]["name"] == "status information"
        && e["decoded"]["fields"].to_string().contains(PAN_MASKED)));
    let _ = std::fs::remove_file(&journal);
}

/// A TCP proxy that, on its first connection, swallows the terminal's status information
/// and drops the connection: the terminal charged the card, the register never heard.
/// Later connections pass everything.
async fn dropping_proxy(upstream: String) -> String {
    let listener = net::bind("127.0.0.1:0").await.unwrap();
    let addr = net::local_addr(&listener).unwrap().to_string();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let first = n == 1;
            let server = net::connect(&upstream, Duration::from_secs(5))
                .await
                .unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(k) = cr.read(&mut buf).await {
                    if k == 0 || sw.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            });
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 1024];
                'outer: while let Ok(k) = sr.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..k]);
                    while let Ok(Some((a, used))) = apdu::decode(&pending) {
                        let bytes: Vec<u8> = pending.drain(..used).collect();
                        let swallow = first
                            && matches!(
                                a.command,
                                ZvtCommand::STATUS_INFORMATION
                                    | ZvtCommand::PRINT_LINE
                                    | ZvtCommand::COMPLETION
                            );
                        if swallow {
                            break 'outer; // the final answer is lost, and the line goes down
                        }
                        if cw.write_all(&bytes).await.is_err() {
                            break 'outer;
                        }
                    }
                }
                let _ = cw.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_safety_the_link_drops_the_final_answer_and_the_ecr_recovers_without_paying_twice() {
    let journal = Journal::in_memory();
    let terminal = Terminal::new(
        ScriptedApplication::new(
            poslab::cmd::zvt_terminal::load_script(Some(std::path::Path::new(&script(
                "approve.yaml",
            ))))
            .unwrap(),
        ),
        TerminalConfig {
            ecr_ack_timeout: Duration::from_millis(500),
            ..TerminalConfig::default()
        },
    );
    let handler = TerminalHandler::new(terminal, journal.clone());
    let shared = handler.terminal();
    let listener = net::bind("127.0.0.1:0").await.unwrap();
    let upstream = net::local_addr(&listener).unwrap().to_string();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(net::serve(
        listener,
        handler,
        Limits::default(),
        shutdown.clone(),
    ));
    let proxy = dropping_proxy(upstream).await;

    let mut ecr = Ecr::new(EcrConfig {
        link: LinkConfig::tcp(),
        completion_timeout: Duration::from_secs(10),
        ..EcrConfig::default()
    });
    let stream = net::connect(&proxy, Duration::from_secs(5)).await.unwrap();
    let p = proxy.clone();
    let outcome = run_ecr(
        stream,
        &mut ecr,
        EcrCommand::Purchase {
            amount: 4250,
            currency: Some(978),
        },
        &journal,
        "ecr",
        || {
            let p = p.clone();
            async move { net::connect(&p, Duration::from_secs(5)).await }
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(outcome.status, Status::Success, "{outcome:?}");
    assert!(outcome.recovered && !outcome.resent, "{outcome:?}");
    assert_eq!(outcome.amount, Some(4250));
    assert_eq!(outcome.pan.as_deref(), Some(PAN_MASKED));
    assert_eq!(
        shared.lock().await.app().count("authorise"),
        1,
        "exactly one authorisation"
    );

    let entries = journal.entries().unwrap();
    let sent_by_ecr: Vec<String> = entries
        .iter()
        .filter(|e| e["link"] == "ecr" && e["kind"] == "zvt" && e["dir"] == "out")
        .map(|e| e["command"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        sent_by_ecr
            .iter()
            .filter(|c| c.starts_with("06 01"))
            .count(),
        1,
        "the payment went out once: {sent_by_ecr:?}"
    );
    assert!(
        sent_by_ecr.iter().any(|c| c.starts_with("06 20")),
        "{sent_by_ecr:?}"
    );
    assert!(entries.iter().any(|e| e["kind"] == "zvt_decision"));
    assert!(!serde_json::to_string(&entries).unwrap().contains(PAN_CLEAR));
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}

/// The `zvt` crate (crates.io, EVerest/qwello) as an independent ECR: registration, an
/// authorisation and the end of day (its report as a 06 D3 text block) against poslab's
/// terminal role, parsed with its own packet definitions.
mod zvt_crate_peer {
    use super::*;
    use zvt as zvt_builder; // the derive macro names the builder crate; zvt re-exports it
    use zvt::sequences::{
        read_packet_async, write_with_ack_async, AuthorizationResponse, EndOfDay, EndOfDayResponse,
        Registration, Sequence,
    };
    use zvt::{encoding, length, packets, Zvt, ZvtParser, ZvtSerializer};

    /// Authorisation (06 01): the zvt 0.1 crate defines the answers but not this command.
    #[derive(Debug, PartialEq, Zvt)]
    #[zvt_control_field(class = 0x06, instr = 0x01)]
    struct Authorization {
        #[zvt_bmp(number = 0x04, length = length::Fixed<6>, encoding = encoding::Bcd)]
        amount: Option<usize>,
        #[zvt_bmp(number = 0x49, length = length::Fixed<2>, encoding = encoding::Bcd)]
        currency: Option<usize>,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_zvt_crate_registers_and_pays_at_poslabs_terminal() {
        let _ = zvt_builder::Tag(0);
        let terminal = Terminal::new(ScriptedApplication::default(), TerminalConfig::default());
        let handler = TerminalHandler::new(terminal, Journal::discard());
        let shared = handler.terminal();
        let listener = net::bind("127.0.0.1:0").await.unwrap();
        let addr = net::local_addr(&listener).unwrap().to_string();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(net::serve(
            listener,
            handler,
            Limits::default(),
            shutdown.clone(),
        ));

        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // registration through the crate's own sequence
        let reg = packets::Registration {
            password: 123456,
            config_byte: 0xBA,
            currency: Some(978),
            tlv: None,
        };
        {
            use futures::StreamExt;
            let mut stream = Registration::into_stream(&reg, &mut socket);
            let mut answers = Vec::new();
            while let Some(item) = stream.next().await {
                answers.push(item.expect("the zvt crate parses poslab's answer"));
            }
            match answers.as_slice() {
                [zvt::sequences::RegistrationResponse::CompletionData(c)] => {
                    assert_eq!(c.terminal_id, Some(52_523_535));
                    assert_eq!(c.currency, Some(978));
                }
                other => panic!("unexpected registration answers {other:?}"),
            }
        }
        // an authorisation, read packet by packet with the crate's reader and parser
        let auth = Authorization {
            amount: Some(4250),
            currency: Some(978),
        };
        let mut pinned = std::pin::Pin::new(&mut socket);
        write_with_ack_async(&auth, &mut pinned)
            .await
            .expect("poslab acknowledges 06 01");
        let mut status = None;
        let mut printed = Vec::new();
        loop {
            let bytes = read_packet_async(&mut pinned).await.unwrap();
            let packet = AuthorizationResponse::zvt_parse(&bytes).expect("the zvt crate parses it");
            pinned
                .write_all(&packets::Ack {}.zvt_serialize())
                .await
                .unwrap();
            match packet {
                AuthorizationResponse::StatusInformation(s) => status = Some(s),
                AuthorizationResponse::PrintLine(l) => printed.push(l.text),
                AuthorizationResponse::CompletionData(_) => break,
                AuthorizationResponse::Abort(a) => panic!("aborted {a:?}"),
                _ => {}
            }
        }
        let status = status.expect("a status information");
        assert_eq!(status.result_code, Some(0));
        assert_eq!(status.amount, Some(4250));
        assert_eq!(status.currency, Some(978));
        assert_eq!(status.trace_number, Some(1));
        assert_eq!(status.terminal_id, Some(52_523_535));
        assert_eq!(status.card_name.as_deref(), Some("Visa"));
        assert!(
            printed.iter().any(|l| l == "AMOUNT EUR 42.50"),
            "{printed:?}"
        );
        assert!(
            printed.iter().any(|l| l.contains(PAN_MASKED)),
            "{printed:?}"
        );
        // the end of day through the crate's own sequence: the day's report arrives as
        // a 06 D3 text block (an administration receipt) that the crate parses
        {
            use futures::StreamExt;
            let eod = packets::EndOfDay { password: 123456 };
            let mut stream = EndOfDay::into_stream(&eod, &mut socket);
            let mut blocks = Vec::new();
            let mut completed = false;
            while let Some(item) = stream.next().await {
                match item.expect("the zvt crate parses poslab's end-of-day answers") {
                    EndOfDayResponse::PrintTextBlock(b) => blocks.push(b),
                    EndOfDayResponse::CompletionData(_) => completed = true,
                    EndOfDayResponse::Abort(a) => panic!("end of day aborted: {a:?}"),
                    _ => {}
                }
            }
            assert!(completed, "the end of day completed");
            let block = blocks
                .first()
                .and_then(|b| b.tlv.as_ref())
                .expect("a text block");
            assert_eq!(block.receipt_type, Some(3), "an administration receipt");
            let lines = block.lines.as_ref().expect("lines");
            assert!(lines.lines.iter().any(|l| l == "END OF DAY"), "{lines:?}");
            assert!(
                lines.lines.iter().any(|l| l == "AMOUNT EUR 42.50"),
                "{lines:?}"
            );
            assert_eq!(lines.eol, Some(0xFF));
        }
        drop(socket);
        assert_eq!(shared.lock().await.app().count("authorise"), 1);
        assert_eq!(shared.lock().await.app().count("end_of_day"), 1);
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
}

/// Two ECR processes one after the other on the same pty: the first one's last
/// acknowledgement reaches the terminal before that process ends (it waits for the link's
/// ACK and for the serial bridge to drain), so the terminal is idle, not busy (`84 83`),
/// when the second one asks. Half the runs failed before that.
#[cfg(unix)]
#[test]
fn a_second_session_on_the_same_pty() {
    let (child, path) = spawn_terminal(&["--pty", "--script", &script("approve.yaml")], "pty ");
    let _guard = Kill(child);
    let (code, out) = ecr(&["--serial", &path, "--json", "purchase", "42.50"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = ecr(&["--serial", &path, "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("software poslab-zvt"), "{out}");
}
