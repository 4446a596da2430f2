"""Peer for tests/it/crypto_peer.rs: recomputes EMV cryptography with pyemv.

Reads one JSON object per line on stdin ({"op": ..., hex arguments}), writes one JSON
object per line on stdout ({"out": hex}). Test keys only; nothing here is secret.
"""
import json
import sys
import warnings

warnings.simplefilter("ignore")

from pyemv import ac, kd, mac, tools  # noqa: E402


def run(c):
    h = bytes.fromhex
    op = c["op"]
    if op == "icc_mk_a":
        return kd.derive_icc_mk_a(h(c["imk"]), c["pan"], c["psn"])
    if op == "common_sk":
        return kd.derive_common_sk(h(c["mk"]), h(c["r"]))
    if op == "ac":
        pad = ac.PaddingType.EMV if c["padding"] == 2 else ac.PaddingType.VISA
        return ac.generate_ac(h(c["sk"]), h(c["data"]), pad)
    if op == "arpc1":
        return ac.generate_arpc_1(h(c["sk"]), h(c["arqc"]), h(c["arc"]))
    if op == "arpc2":
        return ac.generate_arpc_2(h(c["sk"]), h(c["arqc"]), h(c["csu"]), h(c["prop"]))
    if op == "mac3":
        k = h(c["key"])
        return mac.mac_iso9797_3(k[:8], k[8:], h(c["data"]), c["padding"])
    if op == "kcv":
        return tools.key_check_digits(h(c["key"]), 3)
    raise ValueError(f"unknown op {op}")


for line in sys.stdin:
    if not line.strip():
        continue
    print(json.dumps({"out": run(json.loads(line)).hex().upper()}), flush=True)
