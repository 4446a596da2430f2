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
