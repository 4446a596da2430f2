//! Receipts printed from sample streams (fixtures/escpos/, built with python-escpos):
//! text renderings are golden files, models and images are checked for what matters.

use poslab_escpos::model::{Cut, Element};
use poslab_escpos::{print_stream, render, Config, Receipt};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fixtures/escpos/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn receipts(name: &str) -> Vec<Receipt> {
    print_stream(Config::default(), &fixture(name))
}

/// Writes the PNGs where a person can look at them (POSLAB_RENDER_DIR), when asked.
fn keep_png(name: &str, r: &Receipt) {
    let png = render::png(r).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    if let Ok(dir) = std::env::var("POSLAB_RENDER_DIR") {
        std::fs::write(format!("{dir}/{name}-{}.png", r.number), png).unwrap();
    }
}

#[test]
fn sale_receipt_text() {
    let rs = receipts("sale.bin");
    assert_eq!(rs.len(), 1, "{rs:#?}");
    let r = &rs[0];
    assert_eq!(r.cut, Some(Cut::Full));
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    keep_png("sale", r);
    insta::assert_snapshot!("sale_txt", render::text(r));
}

#[test]
fn sale_receipt_model() {
    let r = &receipts("sale.bin")[0];
    let bold_total = r.elements.iter().any(|e| match e {
        Element::Line { spans, .. } => spans
            .iter()
            .any(|s| s.style.bold && s.text.starts_with("TOTAL EUR")),
        _ => false,
    });
    assert!(bold_total);
    let title = r
        .elements
        .iter()
        .find_map(|e| match e {
            Element::Line { spans, align, .. } if spans.iter().any(|s| s.text == "POSLAB CAFE") => {
                Some((spans[0].style, *align))
            }
            _ => None,
        })
        .expect("title line");
    assert_eq!((title.0.width, title.0.height, title.0.bold), (2, 2, true));
    assert_eq!(title.1, poslab_escpos::model::Align::Center);
    assert!(r.elements.iter().any(|e| matches!(e,
        Element::Barcode { symbology, data, .. } if symbology == "EAN13" && data == "4006381333931")));
    assert!(
        r.elements.iter().any(|e| matches!(e,
        Element::QrCode { data, module_size: 4, .. } if data == "https://poslab.invalid/r/000042"))
    );
    assert!(r.elements.iter().any(|e| matches!(
        e,
        Element::Image {
            width: 192,
            height: 64,
            ..
        }
    )));
    let json: serde_json::Value = serde_json::from_slice(&render::json(r).unwrap()).unwrap();
    assert_eq!(json["cut"], "full");
    assert_eq!(json["elements"][0]["kind"], "image");
}

#[test]
fn code_pages_decode_to_unicode() {
    let r = &receipts("codepages.bin")[0];
    keep_png("codepages", r);
    insta::assert_snapshot!("codepages_txt", render::text(r));
    let lines = r.text_lines();
    assert!(
        lines.contains(&"Grüße, café, naïve, £ 5".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"Price: 5 €".to_string()), "{lines:?}");
    assert!(lines.contains(&"╔══╗ box".to_string()), "{lines:?}");
}

#[test]
fn a_clear_pan_is_kept_as_evidence_and_flagged() {
    let rs = receipts("two_receipts.bin");
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].cut, Some(Cut::Partial));
    assert!(rs[0]
        .text_lines()
        .contains(&"PAN 4111111111111111".to_string()));
    assert!(rs[0]
        .diagnostics
        .iter()
        .any(|d| d.message == "clear PAN printed (line 2)"));
    assert!(
        !rs[1].diagnostics.iter().any(|d| d.message.contains("PAN")),
        "{:?}",
        rs[1].diagnostics
    );
    keep_png("two", &rs[1]);
    insta::assert_snapshot!(
        "two_receipts_txt",
        format!("{}\n{}", render::text(&rs[0]), render::text(&rs[1]))
    );
}

/// The PNG decoded: (width, height, dark dots row by row).
fn dots(png_bytes: &[u8]) -> (u32, u32, Vec<bool>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a frame size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let dark = buf
        .get(..info.buffer_size())
        .unwrap()
        .iter()
        .map(|&b| b < 0x80)
        .collect();
    (info.width, info.height, dark)
}

/// The dots of the dashed line where the paper was cut.
fn cut_dots(width: u32) -> usize {
    (0..width)
        .step_by(8)
        .map(|x| 4.min(width - x) as usize)
        .sum()
}

fn one(bytes: &[u8]) -> Receipt {
    let rs = print_stream(Config::default(), &[b"\x1b@".as_slice(), bytes].concat());
    assert_eq!(rs.len(), 1, "{rs:#?}");
    rs.into_iter().next().unwrap()
}

#[test]
fn the_png_is_the_paper_dot_for_dot() {
    const CUT: &[u8] = b"\x1dV\x00";
    // a QR code: exactly its dark modules, module size squared each
    let data = b"https://example.test/r/0001";
    let mut qr = Vec::new();
    qr.extend_from_slice(b"\x1d(k\x03\x001C\x05"); // module size 5
    qr.extend_from_slice(b"\x1d(k\x03\x001E\x31"); // error correction M
    let n = data.len() + 3;
    qr.extend_from_slice(&[
        0x1d,
        b'(',
        b'k',
        (n & 0xff) as u8,
        (n >> 8) as u8,
        b'1',
        b'P',
        b'0',
    ]);
    qr.extend_from_slice(data);
    qr.extend_from_slice(b"\x1d(k\x03\x001Q0");
    qr.extend_from_slice(CUT);
    let r = one(&qr);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(r.cut, Some(Cut::Full));
    let (side, modules) = render::qr_modules("https://example.test/r/0001", 'M').unwrap();
    assert!(side >= 21);
    let (w, h, d) = dots(&render::png(&r).unwrap());
    assert_eq!((w as usize) * (h as usize), d.len());
    assert_eq!(w, r.width, "the paper's width in dots");
    let dark_modules = modules.iter().filter(|&&m| m).count();
    assert_eq!(
        d.iter().filter(|&&x| x).count(),
        dark_modules * 25 + cut_dots(w),
        "every dark module is a 5x5 square of dots, nothing else is drawn"
    );

    // a raster image (GS v 0): its set bits, and where they are
    let (xb, yd) = (4usize, 3usize);
    let bitmap: Vec<u8> = vec![
        0xF0, 0x0F, 0xAA, 0x01, 0x80, 0x00, 0xFF, 0x00, 0x12, 0x34, 0x56, 0x78,
    ];
    let mut raster = vec![0x1d, b'v', b'0', 0, xb as u8, 0, yd as u8, 0];
    raster.extend_from_slice(&bitmap);
    raster.extend_from_slice(CUT);
    let r = one(&raster);
    let (w, _, d) = dots(&render::png(&r).unwrap());
    let set: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
    assert_eq!(d.iter().filter(|&&x| x).count(), set + cut_dots(w));
    // the image's first row sits on one row of the paper, its bits in order
    let row = (0..d.len() / w as usize)
        .find(|y| d[y * w as usize..(y + 1) * w as usize].iter().any(|&x| x))
        .unwrap();
    let line = &d[row * w as usize..(row + 1) * w as usize];
    let x0 = line.iter().position(|&x| x).unwrap();
    let want: Vec<bool> = bitmap[..xb]
        .iter()
        .flat_map(|b| (0..8).map(move |i| b & (0x80 >> i) != 0))
        .collect();
    let first_set = want.iter().position(|&x| x).unwrap();
    let start = x0 - first_set;
    assert_eq!(&line[start..start + want.len()], want.as_slice());
}
