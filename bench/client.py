#!/usr/bin/env python3
"""Small HTTP/1.1 clients for bench/mem.sh and bench/alloc.sh (standard library only, 127.0.0.0/8).

  client.py hold PORT COUNT [--sources N] [--hold SECONDS] [--path /] [--tls]
      Opens COUNT keep-alive connections to 127.0.0.1:PORT from N source addresses (127.0.0.2 ...),
      sends one GET on each and reads the whole response, then prints "ready COUNT" and holds them
      all open and idle until SIGTERM/SIGINT or --hold seconds (default 300), then closes them.

  client.py requests PORT COUNT [--connections C] [--warmup W] [--path /] [--timeout SECONDS] [--tls]
      Sends exactly COUNT GET requests over C keep-alive connections (one request in flight per
      connection, no pipelining), checks every answer is 200 with a Content-Length body, and prints
      "done COUNT requests in T s (R req/s)". Exits 1 on any error or on --timeout (default 300 s).
      With --warmup W, it first sends W requests on the same connections, prints "warm" and waits
      for a line on standard input before sending the COUNT measured ones, and for another one
      before closing its connections.

Both raise RLIMIT_NOFILE to the hard limit first. With --tls, both speak HTTPS (TLS 1.2 or 1.3,
whatever the server picks, SNI "localhost", the certificate not verified: bench/lib.sh made it), each
connection's handshake done before its first request.
"""

import argparse
import resource
import selectors
import signal
import socket
import ssl
import sys
import time


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < need:
        sys.exit(f"client.py: RLIMIT_NOFILE is {soft}, {need} descriptors needed")


def tls_context(enabled):
    """A client context for --tls (no verification: the benchmark's own certificate), else None."""
    if not enabled:
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wrap(ctx, sock):
    """The socket itself, or a TLS one over it with the handshake done (blocking)."""
    return sock if ctx is None else ctx.wrap_socket(sock, server_hostname="localhost")


def request_bytes(path):
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


class Response:
    """Incremental parser of one response with a Content-Length body."""

    def __init__(self):
        self.buf = b""
        self.need = None  # total bytes of head + body, once the head is complete
        self.status = None

    def feed(self, data):
        """Adds bytes; returns True once the response is complete."""
        self.buf += data
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = self.buf[:end].decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            length = None
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
                elif name.strip().lower() == "transfer-encoding":
                    raise ValueError("chunked responses are not supported here")
            if length is None:
                raise ValueError("response without Content-Length")
            self.need = end + 4 + length
        if len(self.buf) > self.need:
            raise ValueError("more bytes than one response (unexpected)")
        return len(self.buf) == self.need


def read_response(sock):
    r = Response()
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before a whole response")
        if r.feed(data):
            return r.status


def hold(args):
    raise_nofile(args.count + 64)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    req = request_bytes(args.path)
    ctx = tls_context(args.tls)
    socks = []
    started = time.monotonic()
    for i in range(args.count):
        if stop:
            return 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.0.0.{2 + i % args.sources}", 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", args.port))
        s = wrap(ctx, s)
        s.sendall(req)
        status = read_response(s)
        if status != 200:
            sys.exit(f"client.py: connection {i} got status {status}")
        socks.append(s)
    took = time.monotonic() - started
    print(f"ready {len(socks)} (opened in {took:.1f} s)", flush=True)
    deadline = time.monotonic() + args.hold
    while not stop and time.monotonic() < deadline:
        time.sleep(0.1)
    for s in socks:
        s.close()
    return 0


def requests(args):
    raise_nofile(args.connections + 64)
    req = request_bytes(args.path)
    ctx = tls_context(args.tls)
    sel = selectors.DefaultSelector()
    conns = {}
    for _ in range(args.connections):
        s = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = wrap(ctx, s)
        s.setblocking(False)
        conns[s] = Response()
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + args.timeout
    if args.warmup > 0:
        run_requests(sel, conns, req, args.warmup, deadline)
        print("warm", flush=True)
        if not sys.stdin.readline():
            sys.exit("client.py: standard input closed before the measured requests")
    started = time.monotonic()
    run_requests(sel, conns, req, args.count, deadline)
    took = time.monotonic() - started
    print(f"done {args.count} requests in {took:.2f} s ({args.count / took:.0f} req/s)", flush=True)
    if args.warmup > 0:
        sys.stdin.readline()  # closing is a step of its own too (end of input also closes)
    for s in conns:
        s.close()
    return 0


def run_requests(sel, conns, req, count, deadline):
    """Exactly `count` request/response exchanges over the connections, one in flight on each."""
    sent = done = 0
    for s in list(conns)[:count]:
        s.send(req)  # a few dozen bytes always fit in an empty send buffer
        sent += 1
    while done < count:
        if time.monotonic() > deadline:
            sys.exit(f"client.py: timed out after {done} of {count} responses")
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            data = recv_ready(s)
            if data is None:
                continue  # TLS: a partial record, nothing to hand out yet
            if not data:
                sys.exit(f"client.py: connection closed after {done} responses")
            r = conns[s]
            if not r.feed(data):
                continue
            if r.status != 200:
                sys.exit(f"client.py: status {r.status} after {done} responses")
            done += 1
            conns[s] = Response()
            if sent < count:
                s.send(req)
                sent += 1


def recv_ready(s):
    """What a readable socket has: bytes, b"" at end of stream, None when TLS has no whole record
    yet. A TLS socket is drained of the records it already decrypted (select cannot see them)."""
    try:
        data = s.recv(65536)
    except ssl.SSLWantReadError:
        return None
    if isinstance(s, ssl.SSLSocket):
        while data and s.pending():
            data += s.recv(s.pending())
    return data


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("port", type=int)
    h.add_argument("count", type=int)
    h.add_argument("--sources", type=int, default=10)
    h.add_argument("--hold", type=float, default=300)
    h.add_argument("--path", default="/")
    h.add_argument("--tls", action="store_true")
    r = sub.add_parser("requests")
    r.add_argument("port", type=int)
    r.add_argument("count", type=int)
    r.add_argument("--connections", type=int, default=8)
    r.add_argument("--warmup", type=int, default=0)
    r.add_argument("--path", default="/")
    r.add_argument("--timeout", type=float, default=300)
    r.add_argument("--tls", action="store_true")
    args = p.parse_args()
    if args.cmd == "hold" and not 1 <= args.sources <= 250:
        p.error("--sources must be 1..250")
    sys.exit(hold(args) if args.cmd == "hold" else requests(args))


if __name__ == "__main__":
    main()
