"""Peer for tests/it/crypto_peer.rs: ISO 9564 PIN blocks, ISO 9797-1 MACs and KCVs with
psec (same protocol as crypto_pyemv.py: JSON lines in, JSON lines out)."""
import json
import sys
import warnings

warnings.simplefilter("ignore")

from psec import aes, des, mac, pinblock  # noqa: E402


def run(c):
    h = bytes.fromhex
    op = c["op"]
    if op == "pin0_encode":
        return pinblock.encode_pinblock_iso_0(c["pin"], c["pan"]).hex().upper()
    if op == "pin0_decode":
        return pinblock.decode_pinblock_iso_0(h(c["block"]), c["pan"])
    if op == "pin2_encode":
        return pinblock.encode_pinblock_iso_2(c["pin"]).hex().upper()
    if op == "pin3_decode":
        return pinblock.decode_pinblock_iso_3(h(c["block"]), c["pan"])
    if op == "pin3_encode":
        return pinblock.encode_pinblock_iso_3(c["pin"], c["pan"]).hex().upper()
    if op == "pin4_decipher":
        return pinblock.decipher_pinblock_iso_4(h(c["key"]), h(c["block"]), c["pan"])
    if op == "pin4_encipher":
        return pinblock.encipher_pinblock_iso_4(h(c["key"]), c["pin"], c["pan"]).hex().upper()
    if op == "retail_mac":
        k = h(c["key"])
        return mac.generate_retail_mac(k[:8], k[8:], h(c["data"]), c["padding"]).hex().upper()
    if op == "cbc_mac":
        alg = mac.Algorithm.AES if c["aes"] else mac.Algorithm.DES
        return mac.generate_cbc_mac(h(c["key"]), h(c["data"]), c["padding"], None, alg).hex().upper()
    if op == "kcv":
        return des.generate_kcv(h(c["key"]), 3).hex().upper()
    if op == "aes_ecb":
        return aes.encrypt_aes_ecb(h(c["key"]), h(c["data"])).hex().upper()
    raise ValueError(f"unknown op {op}")


for line in sys.stdin:
    if not line.strip():
        continue
    print(json.dumps({"out": run(json.loads(line))}), flush=True)
