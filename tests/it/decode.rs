//! Integration tests: decode. `poslab decode` run as a binary on framed streams.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use poslab_iso8583::samples::purchase_0200_for;
use poslab_iso8583::{Framing, LengthPrefix, Message, Spec};

struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn decode(args: &[&str], input: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start poslab decode");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write input");
    let out = child.wait_with_output().expect("poslab decode finishes");
    Run {
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
        code: out.status.code(),
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/iso8583")
        .join(name)
}

/// Hex of a fixture file (comment lines dropped).
fn fixture_hex(name: &str) -> String {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect()
}

/// A purchase and its approval in the TPDU dialect, framed: 2-byte length, TPDU, message.
fn tpdu_stream() -> Vec<u8> {
    let spec = Spec::builtin("iso87binary-tpdu").unwrap();
    let framing = spec.framing().clone();
    let request = purchase_0200_for(&spec);
    let mut answer = Message::new(request.mti.response());
    for de in [2, 3, 4, 11, 12, 13, 37, 41, 42, 49] {
        answer.set(de, request.get(de).unwrap().clone());
    }
    answer.set(38, "A1B2C3").set(39, "00").set(
        55,
        hex::decode("910A1122334455667788303072169F180430313233860D8424000008A1B2C3D4E5F60708")
            .unwrap(),
    );
    let tpdu = [0x60, 0x00, 0x01, 0x80, 0x02];
    let mut out = Vec::new();
    framing
        .encode_into(&tpdu, &spec.pack(&request).unwrap(), &[], &mut out)
        .unwrap();
    framing
        .encode_into(
            &spec.answer_header(&tpdu),
            &spec.pack(&answer).unwrap(),
            &[],
            &mut out,
        )
        .unwrap();
    out
}

#[test]
fn json_lines_of_a_tpdu_stream() {
    let run = decode(&["--spec", "iso87binary-tpdu"], &tpdu_stream());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stdout.contains("4761739001010010"), "PAN in clear");
    assert!(
        !run.stdout.contains("8B9E2C3A4D5E6F70"),
        "cryptogram in clear"
    );
    for line in run.stdout.lines() {
        let _: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
    }
    insta::assert_snapshot!("decode_json_tpdu", run.stdout);
}

#[test]
fn table_of_a_tpdu_stream() {
    let run = decode(
        &["--spec", "iso87binary-tpdu", "--format", "table"],
        &tpdu_stream(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stdout.contains("4761739001010010"), "PAN in clear");
    insta::assert_snapshot!("decode_table_tpdu", run.stdout);
}

#[test]
fn unmasked_only_with_the_flag() {
    let run = decode(
        &["--spec", "iso87binary-tpdu", "--unmasked"],
        &tpdu_stream(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let first: serde_json::Value =
        serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["2"], "4761739001010010");
    assert_eq!(first["55"]["9F26"], "8B9E2C3A4D5E6F70");
    assert_eq!(first["header"], "6000018002");
    let second: serde_json::Value =
        serde_json::from_str(run.stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        second["header"], "6080020001",
        "the answer's TPDU is swapped"
    );
}

#[test]
fn a_corrupt_frame_in_the_middle_is_reported_and_the_next_one_decodes() {
    // binary stream: three frames, the middle one with a broken DE 55 (9F26 claims 8 bytes,
    // has 4); the framing stays intact, so decoding goes on
    let spec = Spec::builtin("iso87binary").unwrap();
    let framing = Framing::new(LengthPrefix::Binary2);
    let good = hex::decode(fixture_hex("iso87binary.signon_0800.hex")).unwrap();
    let mut bad_msg = poslab_iso8583::Message::new(poslab_iso8583::Mti::new("0200").unwrap());
    bad_msg
        .set(3, "000000")
        .set(55, vec![0x9F, 0x26, 0x08, 1, 2, 3, 4]);
    let bad = spec.pack(&bad_msg).unwrap();
    let mut stream = Vec::new();
    for payload in [&good, &bad, &good] {
        framing.encode_into(&[], payload, &[], &mut stream).unwrap();
    }
    let run = decode(&["--spec", "iso87binary"], &stream);
    assert_eq!(run.code, Some(1));
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["mti"], "0800");
    assert_eq!(lines[1]["index"], 1);
    assert_eq!(lines[1]["offset"], 2 + good.len());
    assert_eq!(
        lines[1]["error"],
        "DE 55 → 9F26 at byte 21: length 8 runs past the end (4 bytes left)"
    );
    assert_eq!(lines[2]["index"], 2);
    assert_eq!(lines[2]["mti"], "0800");
    assert!(
        run.stderr.contains("1 of 3 frames failed"),
        "{}",
        run.stderr
    );

    // hex lines: a line that is not a message at all, between two good ones
    let text = format!(
        "# two good frames around a bad one\n{}\n0200ZZ\n\n{}\n",
        fixture_hex("iso87ascii.approval_0210.hex"),
        fixture_hex("iso87ascii.signon_0800.hex")
    );
    let run = decode(&["--hex", "--framing", "none"], text.as_bytes());
    assert_eq!(run.code, Some(1));
    insta::assert_snapshot!("decode_hex_lines_with_a_bad_line", run.stdout);
}

#[test]
fn a_broken_length_prefix_stops_the_stream_with_its_offset() {
    let framing = Framing::new(LengthPrefix::Ascii4);
    let good = hex::decode(fixture_hex("iso87ascii.signon_0800.hex")).unwrap();
    let mut stream = framing.encode(&[], &good, &[]).unwrap();
    let first_len = stream.len();
    stream.extend_from_slice(b"00X1garbage");
    stream.extend_from_slice(&framing.encode(&[], &good, &[]).unwrap());
    let run = decode(&["--framing", "ascii4"], &stream);
    assert_eq!(run.code, Some(1));
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert_eq!(lines[1]["offset"], first_len);
    assert_eq!(
        lines[1]["error"],
        format!(
            "frame at byte {first_len}: expected a length prefix of 4 ASCII digits, found 30305831; cannot find the next frame, decoding stops"
        )
    );
    // a stream that ends inside a frame
    let run = decode(
        &["--framing", "ascii4"],
        &framing.encode(&[], &good, &[]).unwrap()[..30],
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("incomplete frame"), "{}", run.stdout);
}

#[test]
fn bytes_written_by_pyiso8583_decode() {
    // fixtures/iso8583/iso87*.hex were written by pyiso8583 4.0.1 (default / default_ascii)
    for (spec, file) in [
        ("iso87binary", "iso87binary.purchase_0200.hex"),
        ("iso87ascii", "iso87ascii.purchase_0200.hex"),
        ("iso87binary", "iso87binary.reversal_0400.hex"),
    ] {
        let run = decode(
            &["--spec", spec, "--hex", "--framing", "none", "--unmasked"],
            fixture_hex(file).as_bytes(),
        );
        assert_eq!(run.code, Some(0), "{file}: {}", run.stdout);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(v["line"], 1);
        if file.contains("purchase") {
            assert_eq!(v["mti"], "0200");
            assert_eq!(v["4"], "000000012500");
            assert_eq!(v["35"], "4761739001010010=27122011143804400000");
            assert_eq!(v["55"]["9F27"], "80");
            assert_eq!(v["128"], "A1B2C3D400000000");
        } else {
            assert_eq!(v["mti"], "0400");
            assert_eq!(v["2"], "5413330089010434");
        }
    }
}

#[test]
fn a_spec_file_can_be_given_and_its_errors_name_the_line() {
    let dir = std::env::temp_dir().join(format!("poslab-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mine.yaml");
    std::fs::write(
        &path,
        "name: mine\nmti: ascii\nbitmap: hex\nfields:\n  3: {encoding: ascii, max: 6}\n  39: {encoding: ascii, max: 2}\n",
    )
    .unwrap();
    let run = decode(
        &[
            "--spec",
            path.to_str().unwrap(),
            "--hex",
            "--framing",
            "none",
        ],
        format!("{}\n", hex::encode(b"0210200000000200000011111105")).as_bytes(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        r#"{"index":0,"line":1,"mti":"0210","3":"111111","39":"05"}"#
    );
    std::fs::write(
        &path,
        "name: mine\nfields:\n  3: {encoding: asci, max: 6}\n",
    )
    .unwrap();
    let run = decode(&["--spec", path.to_str().unwrap()], b"");
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains(&format!("{}:3:", path.display())),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
}
