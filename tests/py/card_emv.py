"""A PC/SC program (pyscard) talking to poslab's card through pcscd and vsmartcard's vpcd.

Waits for a card in the "Virtual PCD" reader, then runs the start of an EMV contact
transaction: SELECT the Visa AID, GET PROCESSING OPTIONS with the PDOL values, READ RECORD
for every AFL entry, GET DATA (ATC) and GENERATE AC asking for an ARQC. Prints one JSON
object with the raw answers (hex) for the Rust test to check; the Rust side verifies the
ARQC with the issuer key. Exit code 2 if no card shows up in time.

usage: card_emv.py [--timeout SECONDS]
"""

import json
import sys
import time

from smartcard.System import readers
from smartcard.Exceptions import CardConnectionException, NoCardException

VISA_AID = bytes.fromhex("A0000000031010")
# PDOL of the fixture: 9F02 (6) amount, 9F37 (4) unpredictable number, 5F2A (2) currency
UN = bytes.fromhex("11223344")
AMOUNT = bytes.fromhex("000000001000")
CURRENCY = bytes.fromhex("0978")
# CDOL1: amount, other amount, terminal country, TVR, currency, date, type, UN
CDOL1 = AMOUNT + bytes(6) + bytes.fromhex("0276") + bytes(5) + CURRENCY + bytes.fromhex("261123") + b"\x00" + UN


def parse_tlv(data):
    """Minimal BER-TLV walk returning {tag_hex: value} for primitive and constructed tags."""
    out = {}
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        t0 = data[i]
        tag = [t0]
        i += 1
        if t0 & 0x1F == 0x1F:
            while True:
                tag.append(data[i])
                i += 1
                if tag[-1] & 0x80 == 0:
                    break
        length = data[i]
        i += 1
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(data[i:i + n], "big")
            i += n
        value = data[i:i + length]
        i += length
        key = bytes(tag).hex().upper()
        out[key] = value
        if t0 & 0x20:
            out.update(parse_tlv(value))
    return out


def main():
    timeout = 20.0
    if "--timeout" in sys.argv:
        timeout = float(sys.argv[sys.argv.index("--timeout") + 1])
    deadline = time.monotonic() + timeout
    conn = None
    reader_name = None
    while time.monotonic() < deadline:
        try:
            found = readers()
        except Exception:  # pcscd not up yet
            found = []
        for r in found:
            if "Virtual PCD" not in str(r):
                continue
            try:
                c = r.createConnection()
                c.connect()
                conn, reader_name = c, str(r)
                break
            except (NoCardException, CardConnectionException):
                pass
        if conn:
            break
        time.sleep(0.2)
    if conn is None:
        try:
            names = [str(r) for r in readers()]
        except Exception as e:  # pcscd not running at all
            names = [f"pcsc error: {e}"]
        print(json.dumps({"error": "no card in a Virtual PCD reader", "readers": names}))
        return 2

    def tx(apdu):
        data, sw1, sw2 = conn.transmit(list(apdu))
        return bytes(data), (sw1 << 8) | sw2

    result = {"reader": reader_name, "atr": bytes(conn.getATR()).hex().upper()}
    fci, sw = tx(b"\x00\xA4\x04\x00" + bytes([len(VISA_AID)]) + VISA_AID + b"\x00")
    result["select_sw"] = f"{sw:04X}"
    pdol_values = AMOUNT + UN + CURRENCY
    gpo, sw = tx(b"\x80\xA8\x00\x00" + bytes([len(pdol_values) + 2, 0x83, len(pdol_values)]) + pdol_values + b"\x00")
    result["gpo_sw"] = f"{sw:04X}"
    result["gpo"] = gpo.hex().upper()
    # format 1: 80 L AIP(2) AFL(4n)
    afl = gpo[4:]
    records = 0
    pan = None
    for k in range(0, len(afl), 4):
        sfi = afl[k] >> 3
        for rec in range(afl[k + 1], afl[k + 2] + 1):
            data, sw = tx(bytes([0x00, 0xB2, rec, (sfi << 3) | 4, 0x00]))
            if sw != 0x9000:
                result[f"record_{sfi}_{rec}_sw"] = f"{sw:04X}"
                continue
            records += 1
            pan = parse_tlv(data).get("5A", pan)
    result["records"] = records
    result["pan_last4"] = pan.hex().upper().rstrip("F")[-4:] if pan else None
    atc, sw = tx(b"\x80\xCA\x9F\x36\x00")
    result["get_data_atc"] = atc.hex().upper()
    gen, sw = tx(b"\x80\xAE\x80\x00" + bytes([len(CDOL1)]) + CDOL1 + b"\x00")
    result["generate_ac_sw"] = f"{sw:04X}"
    result["generate_ac"] = gen.hex().upper()
    result["cdol1"] = CDOL1.hex().upper()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
