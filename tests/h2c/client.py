"""A raw-frame HTTP/2 client for tests/h2c_downstream.rs, on `hyperframe` and `hpack` (PyPI, what
the `h2` library is built on), so that the proxy's frames are seen exactly as sent: its SETTINGS,
each GOAWAY (a graceful shutdown sends two, with a PING between), resets and stream ends. It keeps
reading after a GOAWAY, which a state machine such as `h2`'s refuses to do.

Usage: python3 tests/h2c/client.py MODE PORT [ARGS]  -- prints one JSON object per line:
  settings PORT            the server's first SETTINGS
  streams PORT N PATH      opens up to N GET streams one after another, each read to its end,
                           stopping at the first GOAWAY; then reads until the server closes
  drain PORT PATH          opens one GET stream, prints {"sent": true}, then reads until the
                           server closes (or 10 s), reporting the GOAWAYs and the stream's end
  idle PORT SECONDS        opens no stream; reads until the server closes (or SECONDS),
                           reporting the GOAWAYs and when the connection closed
  post PORT PATH SIZE      POSTs SIZE bytes without content-length in 1000-byte DATA frames,
                           within the server's flow-control windows; reports status and body
  drain2 PORT PATH         as drain, and once the final GOAWAY (a last stream id below 2^31-1)
                           has come, opens one more stream: it must not be served
  rapid PORT N PATH        rapid reset in one burst: N x (HEADERS + RST_STREAM CANCEL) in one
                           write, then one GET; reads until the server closes (or 5 s)
  reset_after PORT N PATH  rapid reset of accepted streams: up to N times HEADERS, then a PING
                           whose ACK shows the server has read them, then RST_STREAM CANCEL;
                           stops at the first GOAWAY; reports how many streams were opened
  mixed PORT OK RESETS OKPATH HANGPATH
                           a client that cancels now and then: OK GETs of OKPATH, each read to
                           its end, then RESETS times a GET of HANGPATH reset (CANCEL) once the
                           server has read it and 100 ms passed, then one more GET of OKPATH;
                           stops at the first GOAWAY; reports the last stream as "last"
  continuation PORT N      one HEADERS without END_HEADERS, then up to N CONTINUATION frames of
                           small headers, never ending the block (CVE-2024-27316)
  empty_data PORT N PATH   a POST stream, then N empty DATA frames without END_STREAM
Every report also says how many PING ACKs came (`pongs`).
"""

import json
import socket
import sys
import time

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def out(obj):
    print(json.dumps(obj), flush=True)


class Client:
    def __init__(self, port):
        self.port = port
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.buf = b""
        self.settings = None
        self.goaways = []
        self.streams = {}
        self.order = []
        self.closed = False
        self.write_failed = False
        self.conn_window = 65535
        self.initial_window = 65535
        self.windows = {}
        self.next_id = 1
        self.started = time.time()
        self.closed_after = None
        self.pongs = 0
        self.s.sendall(PREFACE + SettingsFrame(0).serialize())

    def stream(self, sid):
        return self.streams.setdefault(
            sid, {"status": None, "body": b"", "ended": False, "reset": None}
        )

    def headers(self, method, path, end_stream, end_headers=True):
        """One HEADERS frame opening the next stream: (stream id, its bytes), not sent."""
        sid, self.next_id = self.next_id, self.next_id + 2
        block = self.enc.encode(
            [(":method", method), (":path", path), (":scheme", "http"),
             (":authority", "h2.test:%d" % self.port)]
        )
        f = HeadersFrame(sid, block)
        if end_headers:
            f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        self.windows[sid] = self.initial_window
        return sid, f.serialize()

    def request(self, method, path, end_stream):
        sid, frame = self.headers(method, path, end_stream)
        self.s.sendall(frame)
        return sid

    def send(self, data):
        """Sends bytes; a server that already closed is noted (`write_failed`), not raised: what
        it sent before closing (its GOAWAY) is still to be read, so reading goes on."""
        try:
            self.s.sendall(data)
            return True
        except OSError:
            self.write_failed = True
            return False

    def send_data(self, sid, data, end):
        f = DataFrame(sid, data)
        if end:
            f.flags.add("END_STREAM")
        self.s.sendall(f.serialize())
        self.conn_window -= len(data)
        self.windows[sid] -= len(data)

    def on_frame(self, f):
        if isinstance(f, SettingsFrame):
            if "ACK" not in f.flags:
                if self.settings is None:
                    self.settings = {str(k): v for k, v in f.settings.items()}
                if SettingsFrame.INITIAL_WINDOW_SIZE in f.settings:
                    self.initial_window = f.settings[SettingsFrame.INITIAL_WINDOW_SIZE]
                ack = SettingsFrame(0)
                ack.flags.add("ACK")
                self.send(ack.serialize())
        elif isinstance(f, PingFrame):
            if "ACK" in f.flags:
                self.pongs += 1
            else:
                ack = PingFrame(0, f.opaque_data)
                ack.flags.add("ACK")
                self.send(ack.serialize())
        elif isinstance(f, HeadersFrame):
            st = self.stream(f.stream_id)
            for k, v in self.dec.decode(f.data):
                if k == ":status":
                    st["status"] = int(v)
            if "END_STREAM" in f.flags:
                st["ended"] = True
                self.order.append("end:%d" % f.stream_id)
        elif isinstance(f, DataFrame):
            st = self.stream(f.stream_id)
            st["body"] += f.data
            if f.flow_controlled_length:
                n = f.flow_controlled_length
                self.send(WindowUpdateFrame(0, n).serialize())
                if "END_STREAM" not in f.flags:
                    self.send(WindowUpdateFrame(f.stream_id, n).serialize())
            if "END_STREAM" in f.flags:
                st["ended"] = True
                self.order.append("end:%d" % f.stream_id)
        elif isinstance(f, RstStreamFrame):
            self.stream(f.stream_id)["reset"] = f.error_code
            self.order.append("reset:%d" % f.stream_id)
        elif isinstance(f, GoAwayFrame):
            self.goaways.append({"error": f.error_code, "last_stream_id": f.last_stream_id})
            self.order.append("goaway:%d" % f.last_stream_id)
        elif isinstance(f, WindowUpdateFrame):
            if f.stream_id == 0:
                self.conn_window += f.window_increment
            elif f.stream_id in self.windows:
                self.windows[f.stream_id] += f.window_increment

    def pump(self, done, seconds):
        deadline = time.time() + seconds
        while not done() and not self.closed and time.time() < deadline:
            while len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                self.on_frame(f)
            if done():
                break
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                break
            except ConnectionError:
                self.closed = True
                break
            if not data:
                self.closed = True
                self.closed_after = time.time() - self.started
            self.buf += data

    def report(self):
        return {
            "settings": self.settings,
            "goaways": self.goaways,
            "closed": self.closed,
            "closed_after": self.closed_after,
            "order": self.order,
            "pongs": self.pongs,
            "streams": {
                str(k): {"status": v["status"], "len": len(v["body"]), "ended": v["ended"],
                         "reset": v["reset"], "body": v["body"][:200].decode("latin-1")}
                for k, v in self.streams.items()
            },
        }


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    c = Client(port)
    if mode == "settings":
        c.pump(lambda: c.settings is not None, 5)
        out(c.report())
    elif mode == "streams":
        n, path = int(sys.argv[3]), sys.argv[4]
        for _ in range(n):
            if c.goaways or c.closed or c.write_failed:
                break
            sid = c.request("GET", path, True)
            c.pump(lambda: c.stream(sid)["ended"] or c.stream(sid)["reset"] is not None, 10)
        c.pump(lambda: False, 3)
        out(c.report())
    elif mode == "drain":
        sid = c.request("GET", sys.argv[3], True)
        out({"sent": True})
        c.pump(lambda: False, 10)
        out(c.report())
    elif mode == "idle":
        c.pump(lambda: False, float(sys.argv[3]))
        out(c.report())
    elif mode == "post":
        path, size = sys.argv[3], int(sys.argv[4])
        c.pump(lambda: c.settings is not None, 5)
        sid = c.request("POST", path, False)
        body = bytes((i * 7) % 251 for i in range(size))
        sent = 0
        while sent < size:
            room = min(c.conn_window, c.windows[sid])
            if room <= 0:
                c.pump(lambda: min(c.conn_window, c.windows[sid]) > 0, 10)
                if min(c.conn_window, c.windows[sid]) <= 0:
                    break
                continue
            n = min(1000, size - sent, room)
            c.send_data(sid, body[sent:sent + n], sent + n == size)
            sent += n
        c.pump(lambda: c.stream(sid)["ended"] or c.stream(sid)["reset"] is not None, 10)
        rep = c.report()
        rep["sent"] = sent
        rep["body_matches"] = c.stream(sid)["body"] == body
        out(rep)
    elif mode == "drain2":
        first = c.request("GET", sys.argv[3], True)
        out({"sent": True})
        final = lambda: any(g["last_stream_id"] < 2**31 - 1 for g in c.goaways)
        c.pump(final, 10)
        late = c.request("GET", sys.argv[3], True) if final() and not c.closed else None
        c.pump(lambda: False, 10)
        rep = c.report()
        rep["first"], rep["late"] = first, late
        out(rep)
    elif mode == "rapid":
        n, path = int(sys.argv[3]), sys.argv[4]
        c.pump(lambda: c.settings is not None, 5)
        burst = b""
        for _ in range(n):
            sid, frame = c.headers("GET", path, True)
            burst += frame + RstStreamFrame(sid, 8).serialize()
        c.send(burst)
        sid, frame = c.headers("GET", path, True)
        last = sid if c.send(frame) else None
        c.pump(lambda: last is not None and c.stream(last)["ended"], 5)
        rep = c.report()
        rep["last"] = last
        out(rep)
    elif mode == "reset_after":
        n, path = int(sys.argv[3]), sys.argv[4]
        c.pump(lambda: c.settings is not None, 5)
        opened = 0
        for i in range(n):
            if c.goaways or c.closed or c.write_failed:
                break
            sid, frame = c.headers("GET", path, True)
            pongs = c.pongs
            if not c.send(frame + PingFrame(0, b"%08d" % i).serialize()):
                break
            opened += 1
            c.pump(lambda: c.pongs > pongs or bool(c.goaways), 5)
            c.send(RstStreamFrame(sid, 8).serialize())
        c.pump(lambda: False, 3)
        rep = c.report()
        rep["opened"] = opened
        out(rep)
    elif mode == "mixed":
        ok, resets, ok_path, hang_path = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
        c.pump(lambda: c.settings is not None, 5)
        for _ in range(ok):
            sid = c.request("GET", ok_path, True)
            c.pump(lambda: c.stream(sid)["ended"] or c.stream(sid)["reset"] is not None, 10)
        for i in range(resets):
            if c.goaways or c.closed or c.write_failed:
                break
            sid, frame = c.headers("GET", hang_path, True)
            pongs = c.pongs
            if not c.send(frame + PingFrame(0, b"%08d" % i).serialize()):
                break
            c.pump(lambda: c.pongs > pongs or bool(c.goaways), 5)
            c.pump(lambda: bool(c.goaways), 0.1)
            c.send(RstStreamFrame(sid, 8).serialize())
        last = None
        if not (c.goaways or c.closed or c.write_failed):
            last = c.request("GET", ok_path, True)
            c.pump(lambda: c.stream(last)["ended"] or c.stream(last)["reset"] is not None, 10)
        rep = c.report()
        rep["last"] = last
        out(rep)
    elif mode == "continuation":
        n = int(sys.argv[3])
        c.pump(lambda: c.settings is not None, 5)
        sid, frame = c.headers("GET", "/", True, end_headers=False)
        c.send(frame)
        sent = 0
        for i in range(n):
            if c.goaways or c.closed or c.write_failed:
                break
            block = c.enc.encode([("x-flood-%d" % i, "v" * 32)])
            if not c.send(ContinuationFrame(sid, block).serialize()):
                break
            sent += 1
            c.pump(lambda: bool(c.goaways), 0.001)
        c.pump(lambda: False, 3)
        rep = c.report()
        rep["sent"] = sent
        out(rep)
    elif mode == "empty_data":
        n, path = int(sys.argv[3]), sys.argv[4]
        c.pump(lambda: c.settings is not None, 5)
        sid = c.request("POST", path, False)
        c.send(b"".join(DataFrame(sid, b"").serialize() for _ in range(n)))
        c.pump(lambda: False, 3)
        out(c.report())
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
