"""python-escpos as the client of `poslab printer` (an independent ESC/POS implementation).

usage: printer_escpos.py HOST PORT print|status
  print   prints a receipt (text, bold, double size, a barcode, a native QR code, an image,
          a cut), then queries the status
  status  only queries the status
Prints one JSON line: {"online": bool, "paper": 0|1|2}.
"""
import json
import sys

from escpos.printer import Network
from PIL import Image, ImageDraw


def logo():
    img = Image.new("1", (128, 48), 1)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 127, 47], outline=0, width=2)
    d.ellipse([8, 6, 44, 42], fill=0)
    d.rectangle([60, 10, 116, 38], fill=0)
    return img


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    p = Network(host, port, timeout=10)
    if mode == "print":
        p.hw("INIT")
        p.image(logo())
        p.set(align="center", bold=True, double_height=True, double_width=True)
        p.textln("PYTHON-ESCPOS")
        p.set(align="left", normal_textsize=True, bold=False)
        p.textln("Espresso                    2.40")
        p.set(bold=True)
        p.textln("TOTAL EUR                   2.40")
        p.set(bold=False)
        p.textln("Caf\u00e9 cr\u00e8me")
        p.barcode("{BPOSLAB-7", "CODE128", function_type="B", pos="BELOW")
        p.qr("poslab:receipt:7", native=True, size=4)
        p.cut()
    result = {"online": p.is_online(), "paper": p.paper_status()}
    p.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
