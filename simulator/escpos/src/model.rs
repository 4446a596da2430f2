//! The receipt model: what came out of the printer, as data.

use serde::Serialize;

/// Character style of a run of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Style {
    #[serde(skip_serializing_if = "is_false")]
    pub bold: bool,
    /// 0 none, 1 one-dot, 2 two-dot.
    #[serde(skip_serializing_if = "is_zero")]
    pub underline: u8,
    #[serde(skip_serializing_if = "is_false")]
    pub double_strike: bool,
    /// White on black.
    #[serde(skip_serializing_if = "is_false")]
    pub reverse: bool,
    /// 0 font A (12x24), 1 font B (9x17).
    #[serde(skip_serializing_if = "is_zero")]
    pub font: u8,
    /// Width multiplier, 1..=8.
    #[serde(skip_serializing_if = "is_one")]
    pub width: u8,
    /// Height multiplier, 1..=8.
    #[serde(skip_serializing_if = "is_one")]
    pub height: u8,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            bold: false,
            underline: 0,
            double_strike: false,
            reverse: false,
            font: 0,
            width: 1,
            height: 1,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &u8) -> bool {
    *n == 0
}
fn is_one(n: &u8) -> bool {
    *n == 1
}

impl Style {
    /// Cell size in dots of one character in this style.
    pub fn cell(&self) -> (u32, u32) {
        let (w, h) = if self.font == 1 { (9, 17) } else { (12, 24) };
        (w * u32::from(self.width), h * u32::from(self.height))
    }
}

/// A run of text in one style.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    pub text: String,
    #[serde(flatten)]
    pub style: Style,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    #[default]
    Left,
    Center,
    Right,
}

/// Where a barcode's human-readable interpretation goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hri {
    #[default]
    None,
    Above,
    Below,
    Both,
}

/// One thing on the paper, top to bottom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Element {
    /// A printed line of text; `height` is the paper it took, in dots.
    Line {
        align: Align,
        spans: Vec<Span>,
        height: u32,
    },
    /// Paper fed without printing.
    Feed { dots: u32 },
    Barcode {
        align: Align,
        symbology: String,
        /// The human-readable data (CODE128 code-set prefixes removed).
        data: String,
        hri: Hri,
        height: u32,
        module_width: u32,
        /// Bar modules (1 = bar); empty when poslab cannot draw this symbology.
        #[serde(skip)]
        modules: Vec<u8>,
    },
    QrCode {
        align: Align,
        data: String,
        module_size: u8,
        error_correction: char,
    },
    Image {
        align: Align,
        /// In dots, before scaling.
        width: u32,
        height: u32,
        scale_x: u8,
        scale_y: u8,
        /// FNV-1a 64 of the bitmap, to compare images without storing them.
        hash: String,
        /// Rows of `width / 8` bytes, MSB leftmost, 1 = black.
        #[serde(skip)]
        bits: Vec<u8>,
    },
}

impl Element {
    /// Paper this element takes, in dots.
    pub fn height(&self) -> u32 {
        match self {
            Element::Line { height, .. } => *height,
            Element::Feed { dots } => *dots,
            Element::Barcode {
                height, hri, data, ..
            } => {
                let text = if data.is_empty() { 0 } else { 24 };
                height
                    + match hri {
                        Hri::None => 0,
                        Hri::Above | Hri::Below => text,
                        Hri::Both => 2 * text,
                    }
            }
            Element::QrCode { .. } => 0, // computed by the renderer from the symbol
            Element::Image {
                height, scale_y, ..
            } => height * u32::from(*scale_y),
        }
    }
}

/// Something wrong in the stream or on the paper, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Byte offset in the stream (of the connection's printer session).
    pub offset: u64,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    Full,
    Partial,
}

/// One receipt: everything between two cuts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// 1, 2, 3... in the order the printer finished them.
    pub number: u64,
    /// Paper width in dots.
    pub width: u32,
    pub elements: Vec<Element>,
    /// `None` when the receipt ended without a cut (paper out, shutdown).
    pub cut: Option<Cut>,
    /// True when part of the receipt was lost (paper ran out, buffer overflow).
    pub incomplete: bool,
    pub drawer_kicks: u32,
    /// Offsets of the first and last byte that contributed.
    pub first_offset: u64,
    pub last_offset: u64,
    pub diagnostics: Vec<Diagnostic>,
}

impl Receipt {
    /// The text lines, each as one string (spans joined), for quick assertions.
    pub fn text_lines(&self) -> Vec<String> {
        self.elements
            .iter()
            .filter_map(|e| match e {
                Element::Line { spans, .. } => {
                    Some(spans.iter().map(|s| s.text.as_str()).collect())
                }
                _ => None,
            })
            .collect()
    }

    /// Nothing printed and nothing to say: a cut of blank paper.
    pub fn is_blank(&self) -> bool {
        self.diagnostics.is_empty()
            && !self.incomplete
            && self.drawer_kicks == 0
            && self.elements.iter().all(|e| match e {
                Element::Feed { .. } => true,
                Element::Line { spans, .. } => spans.iter().all(|s| s.text.trim().is_empty()),
                _ => false,
            })
    }
}

/// FNV-1a, 64 bits, as 16 hex digits.
pub fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Finds runs of 13 to 19 consecutive digits (a clear PAN on paper).
pub fn has_long_digit_run(text: &str) -> bool {
    let mut run = 0usize;
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            run += 1;
        } else {
            if (13..=19).contains(&run) {
                return true;
            }
            run = 0;
        }
    }
    false
}
