"""Builds the sample ESC/POS streams in fixtures/escpos/ with python-escpos' Dummy printer.

Run from the repository root: python3 tests/py/printer_make_fixtures.py
The streams are committed; the Rust tests and the fuzz corpus use them.
"""
import os
import sys

from escpos.printer import Dummy
from PIL import Image, ImageDraw

OUT = sys.argv[1] if len(sys.argv) > 1 else "fixtures/escpos"


def logo():
    img = Image.new("1", (192, 64), 1)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 191, 63], outline=0, width=3)
    d.ellipse([12, 8, 60, 56], fill=0)
    d.polygon([(80, 56), (110, 8), (140, 56)], fill=0)
    d.rectangle([150, 16, 180, 48], fill=0)
    return img


def save(name, p):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(p.output)


def sale():
    p = Dummy()
    p.hw("INIT")
    p.image(logo(), center=True)
    p.set(align="center", bold=True, double_height=True, double_width=True)
    p.textln("POSLAB CAFE")
    p.set(align="center", normal_textsize=True)
    p.textln("1 Test Street, Testville")
    p.textln("Tel 0123 456789")
    p.set(align="left")
    p.textln("-" * 48)
    p.textln("Flat white                          2 x 3.20")
    p.textln("Croissant                           1 x 2.10")
    p.set(bold=True)
    p.textln("TOTAL EUR                               8.50")
    p.set(bold=False, underline=1)
    p.textln("Card: VISA ************1234")
    p.set(underline=0)
    p.textln("Approved  AUTH 123456  STAN 000042")
    p.set(align="center")
    p.barcode("400638133393", "EAN13", height=64, width=2, pos="BELOW")
    p.qr("https://poslab.invalid/r/000042", native=True, size=4)
    p.textln("Thank you!")
    p.cut()
    save("sale.bin", p)


def code_pages():
    p = Dummy()
    p.hw("INIT")
    p.textln("Code pages:")
    p.text("Gr\u00fc\u00dfe, caf\u00e9, na\u00efve, \u00a3 5\n")
    p.text("Price: 5 \u20ac\n")
    p.text("\u2554\u2550\u2550\u2557 box\n")
    p.cut()
    save("codepages.bin", p)


def two_receipts_and_leak():
    p = Dummy()
    p.hw("INIT")
    p.textln("MERCHANT COPY")
    p.textln("PAN 4111111111111111")
    p.cut(mode="PART")
    p.textln("CUSTOMER COPY")
    p.textln("PAN ************1111")
    p.barcode("{BPOSLAB-42", "CODE128", function_type="B", pos="OFF")
    p.cut()
    save("two_receipts.bin", p)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    sale()
    code_pages()
    two_receipts_and_leak()
