#!/usr/bin/env python3
"""pyiso8583 as an independent peer for poslab's ISO 8583 codec.

    iso8583_peer.py encode SPEC   stdin: one JSON object per line (a pyiso8583 dict:
                                  "t" = MTI, "2".."128" = field values as strings, binary
                                  fields as upper-case hex); stdout: one hex line each
    iso8583_peer.py decode SPEC   stdin: one hex line per message; stdout: one JSON object
                                  per line (the pyiso8583 dict without bitmaps)

SPEC is poslab's name: iso87ascii (pyiso8583 default_ascii) or iso87binary (default).
"""
import json
import sys

import iso8583
from iso8583.specs import default, default_ascii

SPECS = {"iso87ascii": default_ascii, "iso87binary": default}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("encode", "decode") or sys.argv[2] not in SPECS:
        sys.exit(__doc__)
    spec = SPECS[sys.argv[2]]
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if sys.argv[1] == "encode":
            raw, _ = iso8583.encode(json.loads(line), spec)
            print(bytes(raw).hex().upper())
        else:
            doc, _ = iso8583.decode(bytes.fromhex(line), spec)
            doc = {k: v for k, v in doc.items() if k not in ("p", "1", "h")}
            print(json.dumps(doc, sort_keys=True))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
