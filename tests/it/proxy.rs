//! Integration tests: the `poslab proxy` binary, its toxiproxy API and its effect on real
//! loopback traffic.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// A running `poslab proxy`, killed (by its own handle) when dropped.
struct ProxyProcess {
    child: Child,
    api: String,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(extra: &[&str]) -> ProxyProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .args(["proxy", "--api", "127.0.0.1:0", "--log", "warn"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start poslab proxy");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("poslab proxy prints its API address");
    // keep draining stdout so the proxy never writes into a closed pipe
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let api = line
        .trim()
        .strip_prefix("api: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    ProxyProcess { child, api }
}

/// An echo server on 127.0.0.1:0; serves at most `max` connections, each on its thread.
fn echo_server(max: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("echo addr").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// One HTTP/1.1 request; returns (status, body).
fn http(api: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    crate::http::request(api, method, path, body.map(Value::to_string).as_deref())
}

fn json_of(body: &str) -> Value {
    crate::http::json(body)
}

#[test]
fn api_speaks_toxiproxy_status_codes_and_error_bodies() {
    let proxy = start_proxy(&["--seed", "1"]);
    let api = proxy.api.as_str();
    let echo = echo_server(8);

    let (status, body) = http(api, "GET", "/version", None);
    assert_eq!(status, 200);
    assert!(json_of(&body)["version"].is_string());

    let (status, body) = http(
        api,
        "POST",
        "/proxies",
        Some(&json!({"name": "e", "upstream": echo})),
    );
    assert_eq!(status, 201, "{body}");
    let created = json_of(&body);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["toxics"], json!([]));
    assert!(
        created["listen"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{created}"
    );

    let (status, body) = http(
        api,
        "POST",
        "/proxies",
        Some(&json!({"name": "e", "upstream": echo})),
    );
    assert_eq!(
        (status, json_of(&body)),
        (409, json!({"error": "proxy already exists", "status": 409}))
    );
    let (status, body) = http(api, "POST", "/proxies", Some(&json!({"name": "x"})));
    assert_eq!(
        (status, json_of(&body)),
        (
            400,
            json!({"error": "missing required field: upstream", "status": 400})
        )
    );
    let (status, body) = http(api, "GET", "/proxies/none", None);
    assert_eq!(
        (status, json_of(&body)),
        (404, json!({"error": "proxy not found", "status": 404}))
    );
    let (status, body) = http(api, "GET", "/proxies/e/toxics/none", None);
    assert_eq!(
        (status, json_of(&body)),
        (404, json!({"error": "toxic not found", "status": 404}))
    );
    let (status, body) = http(
        api,
        "POST",
        "/proxies/e/toxics",
        Some(&json!({"type": "latency", "stream": "sideways"})),
    );
    assert_eq!(
        (status, json_of(&body)),
        (
            400,
            json!({"error": "stream was invalid, can be either upstream or downstream", "status": 400})
        )
    );

    let (status, body) = http(
        api,
        "POST",
        "/proxies/e/toxics",
        Some(&json!({"type": "latency", "attributes": {"latency": 5}})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_of(&body),
        json!({"attributes": {"latency": 5, "jitter": 0}, "name": "latency_downstream",
               "type": "latency", "stream": "downstream", "toxicity": 1.0})
    );
    let (status, body) = http(api, "GET", "/proxies", None);
    assert_eq!(status, 200);
    assert_eq!(
        json_of(&body)["e"]["toxics"][0]["name"],
        "latency_downstream"
    );
    let (status, _) = http(api, "DELETE", "/proxies/e/toxics/latency_downstream", None);
    assert_eq!(status, 204);
    let (status, _) = http(api, "POST", "/reset", None);
    assert_eq!(status, 204);
    let (status, _) = http(api, "DELETE", "/proxies/e", None);
    assert_eq!(status, 204);

    // browsers are refused, as toxiproxy does
    let mut s = TcpStream::connect(api).unwrap();
    write!(
        s,
        "GET /proxies HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
}

/// Toxics in the config file are applied (toxiproxy drops them) and every fault decision
/// is journaled with its RNG stream.
#[test]
fn config_file_toxics_apply_and_are_journaled() {
    let echo = echo_server(4);
    let dir = std::env::temp_dir().join(format!("poslab-proxy-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.yaml");
    let journal = dir.join("journal.jsonl");
    let _ = std::fs::remove_file(&journal);
    std::fs::write(
        &config,
        format!(
            "seed: 99\nproxies:\n  - name: host\n    upstream: {echo}\n    toxics:\n      - {{name: cap, type: limit_data, stream: downstream, attributes: {{bytes: 3}}}}\n"
        ),
    )
    .unwrap();
    let proxy = start_proxy(&[
        "--config",
        config.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let (_, body) = http(&proxy.api, "GET", "/proxies/host", None);
    let shown = json_of(&body);
    assert_eq!(shown["toxics"][0]["name"], "cap");
    let listen = shown["listen"].as_str().unwrap().to_owned();

    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"abcdef").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"abc");

    // the journal is flushed per event; the close may land a moment after the client sees it
    let mut entries = Vec::new();
    for _ in 0..100 {
        entries = poslab::journal::read(&journal).unwrap();
        if entries.iter().any(|e| e["event"] == "closed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "run" && e["seed"] == 99),
        "the seed is journaled"
    );
    let cut = entries
        .iter()
        .find(|e| e["kind"] == "fault" && e["type"] == "limit_data")
        .expect("limit_data decision journaled");
    assert_eq!(cut["link"], "proxy/host#1/downstream");
    assert_eq!(cut["rng"], "host#1/downstream/cap");
    assert_eq!(cut["decision"]["action"], "close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// toxiproxy-python, unchanged, drives poslab: proxies, toxics, enable/disable, reset,
/// populate, and the toxics' effects on real traffic.
#[test]
fn toxiproxy_python_client_drives_the_proxy() {
    if !crate::peers::python_module("toxiproxy", "toxiproxy_python_client_drives_the_proxy") {
        return;
    }
    let proxy = start_proxy(&["--seed", "3"]);
    let echo = echo_server(64);
    let (host, port) = proxy.api.rsplit_once(':').unwrap();
    let out = Command::new(crate::peers::python())
        .arg(crate::peers::script("proxy_toxiproxy.py"))
        .args([host, port, &echo])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("ok latency toxic delays the answer"),
        "{stdout}"
    );
    assert!(stdout.contains("ok destroy_all"), "{stdout}");
}

/// Protocol toxics through the REST API: an `iso8583` toxic drops the first 0210 coming
/// back, an `apdu` toxic answers GENERATE AC with 6A82 (its observer reads the command on
/// the way up), and each decision is journaled with the rule's seed stream.
#[test]
fn protocol_toxics_through_the_rest_api() {
    let echo = echo_server(4);
    let dir = std::env::temp_dir().join(format!("poslab-proxy-proto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("journal.jsonl");
    let proxy = start_proxy(&["--journal", journal.to_str().unwrap()]);
    let (code, body) = http(
        &proxy.api,
        "POST",
        "/proxies",
        Some(&json!({"name": "iso", "listen": "127.0.0.1:0", "upstream": echo})),
    );
    assert_eq!(code, 201, "{body}");
    let listen = json_of(&body)["listen"].as_str().unwrap().to_owned();
    let (code, body) = http(
        &proxy.api,
        "POST",
        "/proxies/iso/toxics",
        Some(
            &json!({"name": "lose_0210", "type": "iso8583", "stream": "downstream",
                     "attributes": {"mti": "0210", "action": "drop"}}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    let shown = json_of(&body);
    assert_eq!(
        shown["attributes"]["count"], 1,
        "defaults are shown: {shown}"
    );

    let spec = poslab_iso8583::Spec::builtin("iso87ascii").unwrap();
    let frame = |mti: &str, stan: &str| {
        let mut m = poslab_iso8583::Message::new(poslab_iso8583::Mti::new(mti).unwrap());
        m.set(11, stan).set(39, "00");
        let payload = spec.pack(&m).unwrap();
        spec.framing().encode(&[], &payload, &[]).unwrap()
    };
    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (first, second) = (frame("0210", "000001"), frame("0210", "000002"));
    s.write_all(&first).unwrap();
    s.write_all(&second).unwrap();
    let mut got = vec![0u8; second.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, second, "the first 0210 was dropped, the second passed");
    drop(s);

    // APDUs over vpcd: the echo "card" answers with the command itself
    let (code, body) = http(
        &proxy.api,
        "POST",
        "/proxies/iso/toxics",
        Some(
            &json!({"name": "sw", "type": "apdu", "stream": "downstream",
                     "attributes": {"ins": "AE", "action": "status_word", "sw": "6A82"}}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    let vpcd = |p: &[u8]| {
        let mut v = (p.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(p);
        v
    };
    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let select = vpcd(&[0x00, 0xA4, 0x04, 0x00, 0x00]);
    s.write_all(&select).unwrap();
    let mut got = vec![0u8; select.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, select, "SELECT is answered as the card answers");
    s.write_all(&vpcd(&[0x80, 0xAE, 0x80, 0x00, 0x00])).unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, [0, 2, 0x6A, 0x82], "GENERATE AC answered with 6A82");
    drop(s);

    let mut entries = Vec::new();
    for _ in 0..100 {
        entries = poslab::journal::read(&journal).unwrap();
        if entries
            .iter()
            .any(|e| e["kind"] == "fault" && e["type"] == "apdu")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drop_0210 = entries
        .iter()
        .find(|e| e["kind"] == "fault" && e["type"] == "iso8583")
        .expect("the iso8583 decision is journaled");
    assert_eq!(drop_0210["decision"]["decision"], "drop");
    assert_eq!(drop_0210["decision"]["stan"], "000001");
    assert_eq!(drop_0210["rng"], "iso#1/downstream/lose_0210");
    let sw = entries
        .iter()
        .find(|e| e["kind"] == "fault" && e["type"] == "apdu")
        .expect("the apdu decision is journaled");
    assert_eq!(sw["decision"]["ins"], "AE");
    assert_eq!(sw["decision"]["sw"], "6A82");
    let _ = std::fs::remove_dir_all(&dir);
}
