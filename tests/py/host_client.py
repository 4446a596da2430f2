#!/usr/bin/env python3
"""An independent terminal, written with pyiso8583 and a plain socket, against `poslab host`.

Usage: host_client.py HOST:PORT [TID]

Signs on, buys, gets declined by the default amount rules, reverses the first purchase
(and repeats the reversal), checks an echo, then settles with totals it computed itself.
Messages are pyiso8583's `default_ascii` spec (= poslab's iso87ascii) behind a 2-byte
big-endian length. Prints one JSON line per exchange; exits 1 on the first surprise.
"""

import json
import socket
import sys

import iso8583
from iso8583.specs import default_ascii as SPEC

MID = "000000000000001"
PAN = "4761739001010010"


class Terminal:
    def __init__(self, addr, tid):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.tid = tid
        self.stan = 0

    def next_stan(self):
        self.stan += 1
        return "%06d" % self.stan

    def exchange(self, doc):
        raw, _ = iso8583.encode(dict(doc), SPEC)
        self.sock.sendall(len(raw).to_bytes(2, "big") + raw)
        head = self._read(2)
        body = self._read(int.from_bytes(head, "big"))
        answer, _ = iso8583.decode(body, SPEC)
        shown = {k: v for k, v in answer.items() if k not in ("p", "2", "35")}
        print(json.dumps({"sent": doc["t"], "stan": doc.get("11"), "got": shown}), flush=True)
        return answer

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise SystemExit("host closed the connection")
            buf += chunk
        return buf

    def network(self, code):
        return self.exchange(
            {"t": "0800", "7": "1123101010", "11": self.next_stan(), "41": self.tid, "70": code}
        )

    def purchase(self, minor):
        return self.exchange(
            {
                "t": "0200",
                "2": PAN,
                "3": "000000",
                "4": "%012d" % minor,
                "7": "1123101010",
                "11": self.next_stan(),
                "12": "101010",
                "13": "1123",
                "22": "051",
                "25": "00",
                "41": self.tid,
                "42": MID,
                "49": "978",
            }
        )

    def reversal(self, mti, original, minor):
        return self.exchange(
            {
                "t": mti,
                "3": "000000",
                "4": "%012d" % minor,
                "7": "1123101011",
                "11": original["11"],
                "41": self.tid,
                "42": MID,
                "49": "978",
                "90": "0200" + original["11"] + original["7"] + "0" * 22,
            }
        )

    def settle(self, debits, debits_amount, reversed_, reversed_amount):
        return self.exchange(
            {
                "t": "0500",
                "3": "920000",
                "7": "1123235959",
                "11": self.next_stan(),
                "41": self.tid,
                "42": MID,
                "74": "%010d" % 0,
                "75": "%010d" % 0,
                "76": "%010d" % debits,
                "77": "%010d" % reversed_,
                "86": "%016d" % 0,
                "87": "%016d" % 0,
                "88": "%016d" % debits_amount,
                "89": "%016d" % reversed_amount,
                "97": "D%016d" % debits_amount,
            }
        )


def expect(answer, field, value, what):
    if answer.get(field) != value:
        print(json.dumps({"failed": what, "field": field, "want": value, "got": answer.get(field)}))
        sys.exit(1)


def main():
    addr = sys.argv[1]
    tid = sys.argv[2] if len(sys.argv) > 2 else "00000002"
    t = Terminal(addr, tid)

    a = t.network("001")
    expect(a, "t", "0810", "sign-on answer MTI")
    expect(a, "39", "00", "sign-on")

    first = t.purchase(1234)
    expect(first, "t", "0210", "purchase answer MTI")
    expect(first, "39", "00", "purchase approved")
    if len(first.get("38", "")) != 6 or len(first.get("37", "")) != 12:
        print(json.dumps({"failed": "approval code and RRN", "got": first}))
        sys.exit(1)

    declined = t.purchase(90551)
    expect(declined, "39", "51", "905.51 declined with 51")
    expect(t.purchase(1_000_001), "39", "61", "10,000.01 declined with 61")

    second = t.purchase(2000)
    expect(second, "39", "00", "second purchase approved")

    rev = t.reversal("0400", first, 1234)
    expect(rev, "t", "0410", "reversal answer MTI")
    expect(rev, "39", "00", "reversal accepted")
    again = t.reversal("0401", first, 1234)
    expect(again, "t", "0410", "repeat reversal answer MTI")
    expect(again, "39", "00", "repeat reversal accepted")

    expect(t.network("301"), "39", "00", "echo")

    # the terminal's own totals: one sale standing, one reversed, declines excluded
    wrong = t.settle(2, 3234, 0, 0)
    expect(wrong, "39", "95", "settlement with wrong totals is out of balance")
    right = t.settle(1, 2000, 1, 1234)
    expect(right, "t", "0510", "settlement answer MTI")
    expect(right, "39", "00", "settlement in balance")
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
