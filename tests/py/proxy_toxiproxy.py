"""Drive `poslab proxy` with the toxiproxy-python client, unchanged, and check the
effects of toxics on real traffic through the proxy.

usage: proxy_toxiproxy.py API_HOST API_PORT ECHO_ADDR
ECHO_ADDR is an echo server (host:port) the Rust test runs. Prints one line per check and
exits non-zero on the first failure.
"""

import socket
import sys
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def round_trip(listen, payload=b"ping", timeout=10.0):
    """Sends payload, reads the echo; returns (bytes, seconds)."""
    with socket.create_connection(addr(listen), timeout=timeout) as s:
        start = time.monotonic()
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - start


def read_until_closed(s):
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok {name}")


def main():
    api_host, api_port, echo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = Toxiproxy()
    server.update_api_consumer(api_host, api_port)
    check("running", server.running())
    check("version", b"version" in server.version())
    server.destroy_all()

    proxy = server.create(upstream=echo, name="echo", listen="127.0.0.1:0")
    check("ephemeral listen port is reported", not proxy.listen.endswith(":0"), proxy.listen)
    got, _ = round_trip(proxy.listen)
    check("clean proxy echoes", got == b"ping", repr(got))

    try:
        server.create(upstream=echo, name="echo")
        check("duplicate proxy refused", False)
    except ProxyExists:
        check("duplicate proxy refused", True)

    proxy.add_toxic(type="latency", attributes={"latency": 300, "jitter": 0})
    toxics = proxy.toxics()
    check("toxic listed with toxiproxy defaults", "latency_downstream" in toxics
          and toxics["latency_downstream"].stream == "downstream"
          and toxics["latency_downstream"].toxicity == 1.0, repr(toxics.keys()))
    got, took = round_trip(proxy.listen)
    check("latency toxic delays the answer", got == b"ping" and took >= 0.29, f"{took:.3f}s")
    proxy.destroy_toxic("latency_downstream")
    check("toxic removed", proxy.toxics() == {})

    proxy.add_toxic(name="cap", type="limit_data", stream="downstream", attributes={"bytes": 5})
    with socket.create_connection(addr(proxy.listen), timeout=10) as s:
        s.sendall(b"0123456789")
        got = read_until_closed(s)
    check("limit_data passes 5 bytes then closes", got == b"01234", repr(got))
    proxy.destroy_toxic("cap")

    proxy.add_toxic(name="hole", type="timeout", attributes={"timeout": 200})
    with socket.create_connection(addr(proxy.listen), timeout=10) as s:
        start = time.monotonic()
        s.sendall(b"lost")
        got = read_until_closed(s)
        took = time.monotonic() - start
    check("timeout drops data and closes after the timeout", got == b"" and took >= 0.19, f"{got!r} {took:.3f}s")
    proxy.destroy_toxic("hole")

    # poslab's own toxic types through the same client
    proxy.add_toxic(name="rst", type="reset_peer", stream="upstream", attributes={"timeout": 0})
    with socket.create_connection(addr(proxy.listen), timeout=10) as s:
        s.sendall(b"x")
        try:
            got = read_until_closed(s)
            reset = False
        except ConnectionResetError:
            reset = True
    check("reset_peer resets the connection", reset)
    proxy.destroy_toxic("rst")

    proxy.add_toxic(name="dup", type="duplication", stream="upstream", attributes={"probability": 1.0})
    got, _ = round_trip(proxy.listen, b"ab")
    check("duplication sends chunks twice", got.startswith(b"ab"), repr(got))
    proxy.destroy_toxic("dup")

    try:
        proxy.add_toxic(type="teleport")
        check("unknown toxic type refused", False)
    except InvalidToxic:
        check("unknown toxic type refused", True)
    try:
        APIConsumer.get("/proxies/nope")
        check("unknown proxy is 404", False)
    except NotFound:
        check("unknown proxy is 404", True)

    with proxy.down():
        try:
            socket.create_connection(addr(proxy.listen), timeout=5).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        check("disabled proxy refuses connections", refused)
    got, _ = round_trip(proxy.listen)
    check("re-enabled proxy echoes on the same port", got == b"ping", repr(got))

    proxy.add_toxic(type="latency", attributes={"latency": 1})
    server.reset()
    check("reset removes toxics", server.get_proxy("echo").enabled and proxy.toxics() == {})

    created = server.populate([{"name": "second", "upstream": echo, "listen": "127.0.0.1:0"}])
    check("populate creates proxies", len(created) == 1 and "second" in server.proxies())
    got, _ = round_trip(server.get_proxy("second").listen)
    check("populated proxy echoes", got == b"ping", repr(got))

    server.destroy_all()
    check("destroy_all", server.proxies() == {})


if __name__ == "__main__":
    main()
