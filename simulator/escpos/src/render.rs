//! Rendering a receipt: plain text as a person reads it, a PNG of the paper, JSON of the
//! model. Pure functions returning bytes.

use crate::font;
use crate::model::{Align, Element, Hri, Receipt, Span, Style};
use crate::Error;

/// Margin above and below the printed area in the PNG, in dots.
const MARGIN: u32 = 16;
/// Quiet zone around a QR code, in modules (each side).
const QR_QUIET: u32 = 4;

/// The receipt as plain text: one line per printed line, aligned in the paper's columns
/// of font A (48 on 80 mm paper); barcodes, QR codes and images as a bracketed note.
pub fn text(receipt: &Receipt) -> String {
    let cols = (receipt.width / 12).max(1) as usize;
    let mut lines: Vec<String> = Vec::new();
    let place = |align: Align, body: &str, used: usize| -> String {
        let pad = match align {
            Align::Left => 0,
            Align::Center => cols.saturating_sub(used) / 2,
            Align::Right => cols.saturating_sub(used),
        };
        format!("{}{}", " ".repeat(pad), body)
            .trim_end()
            .to_string()
    };
    for e in &receipt.elements {
        match e {
            Element::Line { align, spans, .. } => {
                let body: String = spans.iter().map(|s| s.text.as_str()).collect();
                let dots: u32 = spans
                    .iter()
                    .map(|s| s.style.cell().0 * s.text.chars().count() as u32)
                    .sum();
                lines.push(place(*align, &body, dots.div_ceil(12) as usize));
            }
            Element::Feed { dots } => {
                for _ in 0..dots / crate::device::DEFAULT_LINE_SPACING {
                    lines.push(String::new());
                }
            }
            Element::Barcode {
                align,
                symbology,
                data,
                ..
            } => {
                let body = format!("[{symbology} {data}]");
                let n = body.chars().count();
                lines.push(place(*align, &body, n));
            }
            Element::QrCode { align, data, .. } => {
                let body = format!("[QR {data}]");
                let n = body.chars().count();
                lines.push(place(*align, &body, n));
            }
            Element::Image {
                align,
                width,
                height,
                scale_x,
                scale_y,
                ..
            } => {
                let body = format!(
                    "[image {}x{} dots]",
                    width * u32::from(*scale_x),
                    height * u32::from(*scale_y)
                );
                let n = body.chars().count();
                lines.push(place(*align, &body, n));
            }
        }
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The receipt model as pretty JSON.
pub fn json(receipt: &Receipt) -> Result<Vec<u8>, Error> {
    let mut v = serde_json::to_vec_pretty(receipt).map_err(|e| Error::Render(e.to_string()))?;
    v.push(b'\n');
    Ok(v)
}

/// The QR symbol for `data`: its width in modules and the modules row by row (true = dark).
pub fn qr_modules(data: &str, ec: char) -> Result<(usize, Vec<bool>), String> {
    use qrcode::{Color, EcLevel, QrCode};
    let level = match ec {
        'M' => EcLevel::M,
        'Q' => EcLevel::Q,
        'H' => EcLevel::H,
        _ => EcLevel::L,
    };
    let code =
        QrCode::with_error_correction_level(data.as_bytes(), level).map_err(|e| format!("{e}"))?;
    let colors = code.to_colors();
    Ok((
        code.width(),
        colors.into_iter().map(|c| c == Color::Dark).collect(),
    ))
}

/// A 1-bit canvas, true = black.
struct Canvas {
    width: u32,
    height: u32,
    dots: Vec<bool>,
}

impl Canvas {
    fn set(&mut self, x: u32, y: u32, black: bool) {
        if x < self.width && y < self.height {
            if let Some(d) = self.dots.get_mut((y * self.width + x) as usize) {
                *d = black;
            }
        }
    }

    fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, black: bool) {
        for yy in y..y.saturating_add(h).min(self.height) {
            for xx in x..x.saturating_add(w).min(self.width) {
                self.set(xx, yy, black);
            }
        }
    }
}

fn left(align: Align, paper: u32, width: u32) -> u32 {
    match align {
        Align::Left => 0,
        Align::Center => paper.saturating_sub(width) / 2,
        Align::Right => paper.saturating_sub(width),
    }
}

/// Paper an element takes in the rendering, in dots.
fn element_height(e: &Element) -> u32 {
    match e {
        Element::QrCode {
            data,
            module_size,
            error_correction,
            ..
        } => match qr_modules(data, *error_correction) {
            Ok((w, _)) => (w as u32 + 2 * QR_QUIET) * u32::from(*module_size),
            Err(_) => 0,
        },
        other => other.height(),
    }
}

/// The receipt as a PNG of the paper at true dot resolution (1 bit per dot).
pub fn png(receipt: &Receipt) -> Result<Vec<u8>, Error> {
    let width = receipt.width.clamp(8, 4096);
    let body: u64 = receipt
        .elements
        .iter()
        .map(|e| u64::from(element_height(e)))
        .sum();
    let height = (body + u64::from(2 * MARGIN)).min(200_000) as u32;
    let mut c = Canvas {
        width,
        height,
        dots: vec![false; width as usize * height as usize],
    };
    let mut y = MARGIN;
    for e in &receipt.elements {
        draw(&mut c, e, y);
        y = y.saturating_add(element_height(e));
        if y >= height {
            break;
        }
    }
    // A dashed line where the paper was cut.
    if receipt.cut.is_some() {
        let yy = height.saturating_sub(2);
        for x in (0..width).step_by(8) {
            c.fill(x, yy, 4, 1, true);
        }
    }
    encode_png(&c)
}

fn draw(c: &mut Canvas, e: &Element, y: u32) {
    match e {
        Element::Line {
            align,
            spans,
            height,
        } => {
            let line_w: u32 = spans
                .iter()
                .map(|s| s.style.cell().0 * s.text.chars().count() as u32)
                .sum();
            let tallest = spans.iter().map(|s| s.style.cell().1).max().unwrap_or(0);
            let _ = height;
            let mut x = left(*align, c.width, line_w);
            for span in spans {
                let (cw, ch) = span.style.cell();
                let top = y + tallest.saturating_sub(ch);
                for ch_ in span.text.chars() {
                    draw_char(c, ch_, x, top, &span.style);
                    x += cw;
                }
            }
        }
        Element::Feed { .. } => {}
        Element::Barcode {
            align,
            data,
            hri,
            height,
            module_width,
            modules,
            ..
        } => {
            let bar_w = if modules.is_empty() {
                200
            } else {
                modules.len() as u32 * module_width
            };
            let x0 = left(*align, c.width, bar_w);
            let mut top = y;
            let text_w = data.chars().count() as u32 * 12;
            let tx = left(*align, c.width, bar_w) + bar_w.saturating_sub(text_w) / 2;
            if matches!(hri, Hri::Above | Hri::Both) {
                draw_text(c, data, tx, top);
                top += 24;
            }
            if modules.is_empty() {
                // Not drawn by poslab: a hatched box of the right height.
                for yy in 0..*height {
                    for xx in 0..bar_w {
                        if (xx + yy) % 8 == 0 || yy == 0 || yy + 1 == *height {
                            c.set(x0 + xx, top + yy, true);
                        }
                    }
                }
            } else {
                for (i, &m) in modules.iter().enumerate() {
                    if m == 1 {
                        c.fill(
                            x0 + i as u32 * module_width,
                            top,
                            *module_width,
                            *height,
                            true,
                        );
                    }
                }
            }
            top += height;
            if matches!(hri, Hri::Below | Hri::Both) {
                draw_text(c, data, tx, top);
            }
        }
        Element::QrCode {
            align,
            data,
            module_size,
            error_correction,
        } => {
            if let Ok((w, dots)) = qr_modules(data, *error_correction) {
                let s = u32::from(*module_size);
                let total = (w as u32 + 2 * QR_QUIET) * s;
                let x0 = left(*align, c.width, total) + QR_QUIET * s;
                let y0 = y + QR_QUIET * s;
                for (i, &dark) in dots.iter().enumerate() {
                    if dark {
                        let (mx, my) = ((i % w) as u32, (i / w) as u32);
                        c.fill(x0 + mx * s, y0 + my * s, s, s, true);
                    }
                }
            }
        }
        Element::Image {
            align,
            width,
            height,
            scale_x,
            scale_y,
            bits,
            ..
        } => {
            let (sx, sy) = (u32::from(*scale_x), u32::from(*scale_y));
            let x0 = left(*align, c.width, width * sx);
            let row = (width / 8) as usize;
            for r in 0..*height {
                for col in 0..*width {
                    let byte = bits
                        .get(r as usize * row + (col / 8) as usize)
                        .copied()
                        .unwrap_or(0);
                    if byte & (0x80 >> (col % 8)) != 0 {
                        c.fill(x0 + col * sx, y + r * sy, sx, sy, true);
                    }
                }
            }
        }
    }
}

fn draw_text(c: &mut Canvas, text: &str, x: u32, y: u32) {
    let style = Style::default();
    for (i, ch) in text.chars().enumerate() {
        draw_char(c, ch, x + i as u32 * 12, y, &style);
    }
}

/// Draws one character cell: the 8x8 glyph scaled into the font's glyph area.
fn draw_char(c: &mut Canvas, ch: char, x: u32, y: u32, style: &Style) {
    let (cw, chh) = style.cell();
    let (wm, hm) = (u32::from(style.width), u32::from(style.height));
    // Glyph area inside the cell, and its offset.
    let (gw, gh, ox, oy) = if style.font == 1 {
        (8 * wm, 16 * hm, 0, 0)
    } else {
        (10 * wm, 20 * hm, wm, 2 * hm)
    };
    if style.reverse {
        c.fill(x, y, cw, chh, true);
    }
    let ink = !style.reverse;
    let g = font::glyph(ch);
    let heavy = style.bold || style.double_strike;
    for py in 0..gh {
        for px in 0..gw {
            if font::dot(&g, px * 8 / gw, py * 8 / gh) {
                c.set(x + ox + px, y + oy + py, ink);
                if heavy {
                    c.set(x + ox + px + wm, y + oy + py, ink);
                }
            }
        }
    }
    if style.underline > 0 {
        let thick = u32::from(style.underline.min(2));
        c.fill(x, y + chh - thick, cw, thick, ink);
    }
}

fn encode_png(c: &Canvas) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, c.width, c.height);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::Render(e.to_string()))?;
        let row = c.width.div_ceil(8) as usize;
        let mut data = vec![0xFFu8; row * c.height as usize];
        for y in 0..c.height as usize {
            for x in 0..c.width as usize {
                if c.dots
                    .get(y * c.width as usize + x)
                    .copied()
                    .unwrap_or(false)
                {
                    if let Some(b) = data.get_mut(y * row + x / 8) {
                        *b &= !(0x80 >> (x % 8));
                    }
                }
            }
        }
        w.write_image_data(&data)
            .map_err(|e| Error::Render(e.to_string()))?;
    }
    Ok(out)
}

/// Joins the text of spans (used by tests and the journal).
pub fn spans_text(spans: &[Span]) -> String {
    spans.iter().map(|s| s.text.as_str()).collect()
}
