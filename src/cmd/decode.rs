//! `poslab decode`: a stream of framed ISO 8583 messages to JSON lines or a table.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use poslab_iso8583::tlv::{Tlv, Value as TlvValue};
use poslab_iso8583::{Field, Framing, LengthPrefix, Message, Sensitivity, Spec};
use serde::ser::{SerializeMap, Serializer};

/// Decode a stream of framed ISO 8583 messages to JSON lines or a table (see AFTER_HELP).
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// Input file of frames; "-" reads stdin
    #[arg(default_value = "-", value_name = "FILE")]
    pub input: String,

    /// ISO 8583 dialect: a built-in spec (iso87ascii, iso87binary, iso93ascii,
    /// iso87binary-tpdu) or a spec file (YAML)
    #[arg(long, default_value = "iso87ascii", value_name = "SPEC")]
    pub spec: String,

    /// Length prefix of each frame: binary2, ascii4, bcd2 or none (default: the spec's;
    /// with none, a frame is the whole input, or one line with --hex)
    #[arg(long, value_name = "PREFIX")]
    pub framing: Option<LengthPrefix>,

    /// Bytes before the MTI in each frame, e.g. 5 for a TPDU (default: the spec's)
    #[arg(long, value_name = "N")]
    pub header_len: Option<usize>,

    /// Input is hex text, one frame per line (spaces allowed; blank lines and lines
    /// starting with # are skipped)
    #[arg(long)]
    pub hex: bool,

    /// Output: json (one object per line) or table (readable, with field names)
    #[arg(long, value_enum, default_value = "json", value_name = "FORMAT")]
    pub format: OutputFormat,

    /// Show card data in clear (PAN, tracks, PIN blocks, keys, cryptograms). Test data only
    #[arg(long)]
    pub unmasked: bool,
}

const AFTER_HELP: &str = "\
Each message is one JSON object per line: \"index\" (0-based), \"offset\" (byte of the frame in \
the stream) or \"line\" (with --hex), \"header\" (hex, when the framing has one), \"mti\", then \
each field number with its value. Card data is masked unless --unmasked is given.

A frame that does not decode is reported in its place with its index, offset and the error \
(byte offsets inside a message count from the MTI); decoding goes on with the next frame. A \
broken length prefix in a binary stream cannot be resynchronised: decoding stops there. With \
--hex each line is one frame, so decoding always goes on. Exit code 1 when any frame failed.

Examples:
  poslab decode --spec iso87binary-tpdu capture.bin
  poslab decode --hex --framing none --format table messages.hex
  poslab decode --spec my-acquirer.yaml --framing ascii4 - < stream.bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Table,
}

/// Where a frame came from: a byte offset in a binary stream or a line of hex text.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Offset(usize),
    Line(usize),
}

struct Decoder<'a, W: Write> {
    spec: &'a Spec,
    args: &'a Args,
    out: W,
    index: usize,
    errors: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = Spec::load(&args.spec)?;
    let mut framing = spec.framing().clone();
    if let Some(length) = args.framing {
        framing.length = length;
    }
    if let Some(n) = args.header_len {
        framing.header_len = n;
    }
    let mut input = Vec::new();
    if args.input == "-" {
        std::io::stdin()
            .read_to_end(&mut input)
            .context("cannot read stdin")?;
    } else {
        input =
            std::fs::read(&args.input).with_context(|| format!("cannot read {}", args.input))?;
    }
    let stdout = std::io::stdout();
    let mut d = Decoder {
        spec: &spec,
        args: &args,
        out: std::io::BufWriter::new(stdout.lock()),
        index: 0,
        errors: 0,
    };
    if args.hex {
        d.hex_lines(&framing, &input)?;
    } else {
        d.binary_stream(&framing, &input)?;
    }
    d.out.flush()?;
    if d.errors > 0 {
        eprintln!("poslab decode: {} of {} frames failed", d.errors, d.index);
        Ok(ExitCode::from(1))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

impl<W: Write> Decoder<'_, W> {
    fn binary_stream(&mut self, framing: &Framing, input: &[u8]) -> anyhow::Result<()> {
        let mut offset = 0;
        while offset < input.len() {
            let rest = input.get(offset..).unwrap_or(&[]);
            match framing.decode(rest) {
                Ok(Some((frame, used))) => {
                    self.message(Origin::Offset(offset), &frame.header, &frame.payload)?;
                    offset += used;
                }
                Ok(None) => {
                    self.error(
                        Origin::Offset(offset),
                        &format!(
                            "incomplete frame: the stream ends {} bytes into it",
                            rest.len()
                        ),
                    )?;
                    break;
                }
                Err(e) => {
                    self.error(
                        Origin::Offset(offset),
                        &format!(
                            "{}; cannot find the next frame, decoding stops",
                            poslab_iso8583::FrameError {
                                offset: offset + e.offset,
                                kind: e.kind,
                            }
                        ),
                    )?;
                    break;
                }
            }
        }
        Ok(())
    }

    fn hex_lines(&mut self, framing: &Framing, input: &[u8]) -> anyhow::Result<()> {
        let text = String::from_utf8_lossy(input);
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let compact: String = trimmed.split_whitespace().collect();
            let bytes = match hex::decode(&compact) {
                Ok(b) => b,
                Err(e) => {
                    self.error(Origin::Line(line_no), &format!("not hex: {e}"))?;
                    continue;
                }
            };
            match framing.decode(&bytes) {
                Ok(Some((frame, used))) if used == bytes.len() => {
                    self.message(Origin::Line(line_no), &frame.header, &frame.payload)?;
                }
                Ok(Some((_, used))) => self.error(
                    Origin::Line(line_no),
                    &format!(
                        "the length prefix says {used} bytes but the line holds {}",
                        bytes.len()
                    ),
                )?,
                Ok(None) => self.error(
                    Origin::Line(line_no),
                    &format!(
                        "incomplete frame: the line holds {} bytes, fewer than its length prefix says",
                        bytes.len()
                    ),
                )?,
                Err(e) => self.error(Origin::Line(line_no), &e.to_string())?,
            }
        }
        Ok(())
    }

    fn message(&mut self, origin: Origin, header: &[u8], payload: &[u8]) -> anyhow::Result<()> {
        match self.spec.unpack(payload) {
            Ok(msg) => {
                match self.args.format {
                    OutputFormat::Json => {
                        let line = JsonLine {
                            index: self.index,
                            origin,
                            header,
                            msg: &msg,
                            spec: self.spec,
                            unmasked: self.args.unmasked,
                        };
                        serde_json::to_writer(&mut self.out, &line)?;
                        writeln!(self.out)?;
                    }
                    OutputFormat::Table => self.table(origin, header, &msg)?,
                }
                self.index += 1;
                Ok(())
            }
            Err(e) => self.error(origin, &e.to_string()),
        }
    }

    fn error(&mut self, origin: Origin, text: &str) -> anyhow::Result<()> {
        match self.args.format {
            OutputFormat::Json => {
                // keys in a fixed, readable order
                writeln!(
                    self.out,
                    "{{\"index\":{},{},\"error\":{}}}",
                    self.index,
                    match origin {
                        Origin::Offset(o) => format!("\"offset\":{o}"),
                        Origin::Line(l) => format!("\"line\":{l}"),
                    },
                    serde_json::Value::from(text)
                )?;
            }
            OutputFormat::Table => {
                writeln!(
                    self.out,
                    "#{} {}: error: {text}",
                    self.index,
                    where_(origin)
                )?;
                writeln!(self.out)?;
            }
        }
        self.index += 1;
        self.errors += 1;
        Ok(())
    }

    fn table(&mut self, origin: Origin, header: &[u8], msg: &Message) -> anyhow::Result<()> {
        let mut head = format!("#{} {}", self.index, where_(origin));
        if !header.is_empty() {
            head.push_str(&format!("  header {}", hex::encode_upper(header)));
        }
        writeln!(self.out, "{head}  MTI {}", msg.mti)?;
        for (de, field) in msg.fields() {
            let sens = if self.args.unmasked {
                Sensitivity::None
            } else {
                self.spec.field_sensitivity(de)
            };
            let name = self.spec.field_name(de).unwrap_or("");
            let label = format!("DE {de:>3}  {}", truncate(name, 34));
            match field {
                Field::Tlv(list) => {
                    let mut lines = Vec::new();
                    tlv_lines(&list.items(), 0, !self.args.unmasked, &mut lines);
                    if lines.is_empty() {
                        writeln!(self.out, "  {label:<42} (empty)")?;
                    }
                    for (i, l) in lines.iter().enumerate() {
                        let left = if i == 0 { label.as_str() } else { "" };
                        writeln!(self.out, "  {left:<42} {l}")?;
                    }
                }
                Field::Composite(subs) => {
                    writeln!(self.out, "  {label}")?;
                    for (n, sub) in subs {
                        let sub_label = format!("  {de}.{n}");
                        writeln!(self.out, "  {sub_label:<42} {}", sub.display(sens))?;
                    }
                }
                other => writeln!(self.out, "  {label:<42} {}", other.display(sens))?,
            }
        }
        writeln!(self.out)?;
        Ok(())
    }
}

fn where_(origin: Origin) -> String {
    match origin {
        Origin::Offset(o) => format!("at byte {o}"),
        Origin::Line(l) => format!("line {l}"),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// One line per TLV object: "9F26 (8) <cryptogram: 8 bytes>", children indented.
fn tlv_lines(items: &[Tlv], depth: usize, masked: bool, out: &mut Vec<String>) {
    for t in items {
        let indent = "  ".repeat(depth);
        match &t.value {
            TlvValue::Constructed(children)
                if !(masked
                    && poslab_iso8583::EMV_MASKED_TAGS
                        .iter()
                        .any(|(x, _)| *x == t.tag.0)) =>
            {
                out.push(format!("{indent}{} ({})", t.tag, t.value_len()));
                tlv_lines(children, depth + 1, masked, out);
            }
            _ => {
                let one = Field::from(vec![t.clone()]);
                let shown = if masked {
                    one.display(Sensitivity::Emv)
                } else {
                    one.display(Sensitivity::None)
                };
                // "[9F26 value]" → "value"
                let value = shown
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split_once(' ')
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default();
                out.push(format!("{indent}{} ({}) {value}", t.tag, t.value_len()));
            }
        }
    }
}

/// One JSON line: index, origin, header, then the message's fields in numeric order.
struct JsonLine<'a> {
    index: usize,
    origin: Origin,
    header: &'a [u8],
    msg: &'a Message,
    spec: &'a Spec,
    unmasked: bool,
}

impl serde::Serialize for JsonLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("index", &self.index)?;
        match self.origin {
            Origin::Offset(o) => map.serialize_entry("offset", &o)?,
            Origin::Line(l) => map.serialize_entry("line", &l)?,
        }
        if !self.header.is_empty() {
            map.serialize_entry("header", &hex::encode_upper(self.header))?;
        }
        map.serialize_entry("mti", &self.msg.mti)?;
        let view = if self.unmasked {
            self.msg.json_view_unmasked()
        } else {
            self.msg.json_view(self.spec)
        };
        view.serialize_fields(&mut map)?;
        map.end()
    }
}
