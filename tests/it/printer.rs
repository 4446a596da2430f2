//! Integration tests: `poslab printer` as a process, driven by python-escpos over TCP and
//! by a client writing to its pty.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::peers;

/// A running `poslab printer`; killed when dropped.
struct PrinterProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    out: PathBuf,
}

impl Drop for PrinterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poslab-it-printer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl PrinterProcess {
    fn start(name: &str, extra: &[&str]) -> PrinterProcess {
        let out = scratch(name).join("receipts");
        let mut child = Command::new(env!("CARGO_BIN_EXE_poslab"))
            .arg("printer")
            .arg("--out")
            .arg(&out)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start poslab printer");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        PrinterProcess {
            child,
            stdin,
            lines,
            out,
        }
    }

    /// The next stdout line starting with `prefix` (its remainder).
    fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(_) => panic!("poslab printer never printed '{prefix}'"),
            }
        }
    }

    fn control(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.line("")
    }

    /// Waits (bounded) for receipt `n` to be written.
    fn receipt(&self, n: u32) -> (String, serde_json::Value, Vec<u8>) {
        let stem = self.out.join(format!("{n:04}"));
        let json_path = stem.with_extension("json");
        wait_for(&json_path);
        let text = std::fs::read_to_string(stem.with_extension("txt")).unwrap();
        let json = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        let png = std::fs::read(stem.with_extension("png")).unwrap();
        (text, json, png)
    }
}

fn wait_for(path: &Path) {
    for _ in 0..200 {
        if path.exists() {
            // written in three files: give the last one a moment
            std::thread::sleep(Duration::from_millis(50));
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} was never written", path.display());
}

fn python_escpos(addr: &str, mode: &str) -> serde_json::Value {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new(peers::python())
        .arg(peers::script("printer_escpos.py"))
        .args([host, port, mode])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python-escpos failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn python_escpos_prints_a_receipt_and_reads_the_status() {
    if !peers::python_module(
        "escpos",
        "python_escpos_prints_a_receipt_and_reads_the_status",
    ) {
        return;
    }
    let p = PrinterProcess::start("pyprint", &["--listen", "127.0.0.1:0"]);
    let addr = p.line("listening on");
    let status = python_escpos(&addr, "print");
    assert_eq!(status, serde_json::json!({"online": true, "paper": 2}));

    let (text, json, png) = p.receipt(1);
    assert!(text.contains("PYTHON-ESCPOS"), "{text}");
    assert!(text.contains("TOTAL EUR                   2.40"), "{text}");
    assert!(text.contains("Café crème"), "{text}");
    assert!(text.contains("[CODE128 POSLAB-7]"), "{text}");
    assert!(text.contains("[QR poslab:receipt:7]"), "{text}");
    assert_eq!(json["cut"], "full");
    assert_eq!(json["incomplete"], false);
    let kinds: Vec<&str> = json["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in ["image", "line", "barcode", "qr_code"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let bold_total = json["elements"].as_array().unwrap().iter().any(|e| {
        e["spans"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["bold"] == true && s["text"].as_str().unwrap_or("").starts_with("TOTAL"))
        })
    });
    assert!(bold_total, "{json:#}");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn python_escpos_sees_faults_come_and_go() {
    if !peers::python_module("escpos", "python_escpos_sees_faults_come_and_go") {
        return;
    }
    let mut p = PrinterProcess::start(
        "pyfaults",
        &[
            "--listen",
            "127.0.0.1:0",
            "--faults",
            "paper-out",
            "--stdin-control",
        ],
    );
    let addr = p.line("listening on");
    assert_eq!(
        python_escpos(&addr, "status"),
        serde_json::json!({"online": false, "paper": 0})
    );
    assert_eq!(p.control("clear paper-out"), "ok clear paper-out");
    assert_eq!(p.control("set paper-near-end"), "ok set paper-near-end");
    assert_eq!(
        python_escpos(&addr, "status"),
        serde_json::json!({"online": true, "paper": 1})
    );
    assert_eq!(p.control("set cover-open"), "ok set cover-open");
    assert_eq!(
        python_escpos(&addr, "status"),
        serde_json::json!({"online": false, "paper": 1})
    );
    let status: serde_json::Value = serde_json::from_str(&p.control("status")).unwrap();
    assert_eq!(status["cover_open"], true);
    assert_eq!(
        status["dle_eot"],
        serde_json::json!([0x1A, 0x16, 0x12, 0x1E])
    );
}

#[test]
fn a_client_on_the_pty_prints_and_the_journal_masks_a_leaked_pan() {
    let dir = scratch("pty");
    let journal = dir.join("journal.jsonl");
    let p = PrinterProcess::start("pty", &["--pty", "--journal", journal.to_str().unwrap()]);
    let path = p.line("pty");
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    // Split in the middle of commands, as a slow serial line would deliver it.
    let stream: &[u8] =
        b"\x1b@\x1ba\x01\x1bE\x01PTY SHOP\n\x1bE\x00\x1ba\x00PAN 4111111111111111\n\x1dV\x41\x03";
    for chunk in stream.chunks(5) {
        tty.write_all(chunk).unwrap();
        tty.flush().unwrap();
    }
    tty.write_all(b"\x10\x04\x01").unwrap();
    let mut answer = [0u8; 1];
    tty.read_exact(&mut answer).unwrap();
    assert_eq!(answer[0], 0x12);

    let (text, json, _) = p.receipt(1);
    assert_eq!(text, "                    PTY SHOP\nPAN 4111111111111111\n");
    assert!(json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["message"] == "clear PAN printed (line 2)"));
    let log = std::fs::read_to_string(&journal).unwrap();
    assert!(log.contains("PAN 411111******1111"), "{log}");
    assert!(
        !log.contains("4111111111111111"),
        "the journal leaks the PAN: {log}"
    );
    assert!(log.contains("\"kind\":\"status\""), "{log}");
}

/// The serial transport, against a pty standing in for the serial line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serial_transport_serves_a_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut line, path) = poslab::pty::Pty::open().unwrap();
    let path = path.display().to_string();
    let p = PrinterProcess::start("serial", &["--serial", &path, "--baud", "115200"]);
    assert_eq!(p.line("serial"), format!("{path} @ 115200"));
    line.write_all(b"\x1b@SERIAL OK\n\x1dV\x01\x10\x04\x01")
        .await
        .unwrap();
    let mut answer = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(20), line.read_exact(&mut answer))
        .await
        .expect("a status answer on the serial line")
        .unwrap();
    assert_eq!(answer[0], 0x12);
    let (text, json, _) = tokio::task::block_in_place(|| p.receipt(1));
    assert_eq!(text, "SERIAL OK\n");
    assert_eq!(json["cut"], "partial");
}
