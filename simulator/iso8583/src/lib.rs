//! ISO 8583 engine: dialects as data (YAML specs), field codecs, bitmaps, framing. Sans-IO.
