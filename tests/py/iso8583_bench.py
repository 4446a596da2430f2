#!/usr/bin/env python3
"""Times pyiso8583 4.0.1 on the benchmark message of poslab's criterion bench
(simulator/iso8583/benches/codec.rs): the 23-field 0200 with DE 35, 52, 55, 90, 128.

    python3 tests/py/iso8583_bench.py [ITERATIONS]

Prints µs per encode and per decode for pyiso8583's default_ascii (poslab iso87ascii) and
default (poslab iso87binary), best of 5 timeit repeats.
"""
import sys
import timeit

import iso8583
from iso8583.specs import default, default_ascii

TLV = [("9F26", "8B9E2C3A4D5E6F70"), ("9F27", "80"), ("9F10", "06010A03A0B800"),
       ("9F37", "1A2B3C4D"), ("9F36", "0042"), ("95", "0000008000"), ("9A", "261123"),
       ("9C", "00"), ("9F02", "000000012500"), ("5F2A", "0978"), ("82", "3900"),
       ("9F1A", "0250"), ("9F03", "000000000000"), ("9F33", "E0F8C8"), ("9F34", "420300"),
       ("84", "A0000000031010")]
DE55 = "".join(t + "%02X" % (len(v) // 2) + v for t, v in TLV)
MESSAGE = {
    "t": "0200", "2": "4761739001010010", "3": "000000", "4": "000000012500",
    "7": "1123104512", "11": "004211", "12": "104512", "13": "1123", "14": "2712",
    "18": "5411", "22": "051", "23": "001", "25": "00", "32": "12345678",
    "35": "4761739001010010=27122011143804400000", "37": "632710004211", "41": "TERM0001",
    "42": "MERCHANT0000001", "49": "978", "52": "3F1A9C550E7D21B4", "55": DE55,
    "62": "INV000042", "90": "020000421111231045120000123456780000000000",
    "128": "A1B2C3D400000000",
}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    for name, spec in (("iso87ascii (default_ascii)", default_ascii), ("iso87binary (default)", default)):
        raw, _ = iso8583.encode(dict(MESSAGE), spec)
        raw = bytes(raw)
        enc = min(timeit.repeat(lambda: iso8583.encode(dict(MESSAGE), spec), number=n, repeat=5)) / n
        dec = min(timeit.repeat(lambda: iso8583.decode(raw, spec), number=n, repeat=5)) / n
        print(f"{name}: {len(raw)} bytes, encode {enc * 1e6:.1f} µs, decode {dec * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
