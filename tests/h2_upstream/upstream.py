"""A scripted HTTP/2 (h2c, prior knowledge) upstream for tests/h2_upstream.rs, on the `h2` state
machine (PyPI) over asyncio, for what nginx cannot be told to do.

Usage: python3 tests/h2_upstream/upstream.py [--max-streams N] [--status N] [--tls CERT KEY]
  binds 127.0.0.1:0, prints "port N" on stdout, serves until killed. SETTINGS_MAX_CONCURRENT_STREAMS
  is N (default 100). With --tls: h2 over TLS (ALPN h2) with that certificate and key. Paths:
    /info              200, JSON: the request's pseudo-headers and headers, the body's length and
                       checksum (sum of bytes), its trailers; with the response trailer
                       `x-upstream-trailer: yes` when the request had trailers or `te: trailers`
    /echo              200, the request body back (no content-length), then the request's
                       trailers as response trailers plus `x-upstream-trailer: yes`
    /sleep/MS          200 "slept" after MS milliseconds
    /big/N             200, N bytes (byte i is i * 7 % 251), sent within the client's windows
    /goaway            sends GOAWAY (NO_ERROR, last stream id = this stream), then 200 "bye"; the
                       connection's streams at or below it finish, then it closes
    /refuse-once/KEY   the first stream for KEY is reset with REFUSED_STREAM, later ones get 200
                       with the body's length
    /refuse-head/KEY   the first stream for KEY is reset with REFUSED_STREAM as soon as its
                       HEADERS arrive (its body unread), later ones get 200 "LENGTH SUM" (the
                       body's length and the sum of its bytes)
    /goaway-above/KEY  the first stream for KEY gets a GOAWAY (NO_ERROR) whose last stream id is
                       below it as soon as its HEADERS arrive (not processed; the proxy closes
                       the connection), later ones get 200 "LENGTH SUM"
    /frames            200, JSON: the request body's DATA frames as received ("data_frames": how
                       many, "empty_end": an empty DATA frame carried END_STREAM), "length", "sum"
    /goaway-refuse/KEY the first stream for KEY is refused by a GOAWAY (NO_ERROR) whose last stream
                       id is below it, and the connection closes; later ones get 200 with the
                       body's length
    /pingpong          200 at once, then each DATA chunk echoed as it arrives (bidirectional
                       streaming); the response ends when the request does
    /early             413 at once on the request's HEADERS, then RST_STREAM NO_ERROR: the body
                       is not read
    /status            answers --status N (default 200) with the body "status N"
    /die               the connection is cut at once (no response, no GOAWAY)
    /stats             JSON: connections accepted, most streams open at once on one connection,
                       requests per path, PINGs received, for each connection that ended
                       the path of its first request ("" if none), DATA frames received
                       empty (`empty_data`: an END_STREAM that could have ridden on the last one),
                       response body bytes sent so far (`data_sent`), and the paths of the
                       streams the proxy reset before they were answered ("reset")
Responses are sent within the client's flow-control windows; received DATA is acknowledged as it
is read.
"""

import asyncio
import json
import ssl
import sys

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
from hyperframe.frame import GoAwayFrame

STATS = {"connections": 0, "max_open": 0, "paths": {}, "pings": 0, "closed": [], "empty_data": 0, "data_sent": 0, "reset": []}
REFUSED = set()
PERIOD = bytes(i * 7 % 251 for i in range(251))
STATUS = int(sys.argv[sys.argv.index("--status") + 1]) if "--status" in sys.argv else 200


class Conn:
    def __init__(self, reader, writer, max_streams):
        self.reader, self.writer = reader, writer
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams},
        )
        self.streams = {}  # id -> {"headers", "body" (bytearray), "trailers"}
        self.windows = {}  # id -> asyncio.Event set on WINDOW_UPDATE
        self.open = 0
        self.goaway_at = None
        self.first = None

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)

    async def run(self):
        self.h2.initiate_connection()
        self.flush()
        while True:
            data = await self.reader.read(65536)
            if not data:
                break
            try:
                events = self.h2.receive_data(data)
            except Exception:
                break
            for ev in events:
                self.on(ev)
            self.flush()
            await self.writer.drain()
            if self.goaway_at is not None and self.open == 0:
                break
        STATS["closed"].append(self.first or "")
        self.writer.close()

    def on(self, ev):
        if isinstance(ev, h2.events.PingReceived):
            STATS["pings"] += 1
        if isinstance(ev, h2.events.RequestReceived):
            if self.first is None:
                self.first = dict(ev.headers).get(":path", "")
            self.open += 1
            STATS["max_open"] = max(STATS["max_open"], self.open)
            self.streams[ev.stream_id] = {
                "headers": ev.headers,
                "body": bytearray(),
                "trailers": None,
            }
            if dict(ev.headers).get(":path") == "/early" and not ev.stream_ended:
                STATS["paths"]["/early"] = STATS["paths"].get("/early", 0) + 1
                self.h2.send_headers(
                    ev.stream_id, [(":status", "413"), ("content-length", "0")], end_stream=True
                )
                self.h2.reset_stream(ev.stream_id, h2.errors.ErrorCodes.NO_ERROR)
                self.done(ev.stream_id)
                return
            path = dict(ev.headers).get(":path", "")
            if path.startswith(("/refuse-head/", "/goaway-above/")) and path not in REFUSED:
                REFUSED.add(path)
                STATS["paths"][path] = STATS["paths"].get(path, 0) + 1
                if path.startswith("/refuse-head/"):
                    self.h2.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                else:
                    # The proxy closes the connection (closing here could cut the GOAWAY
                    # with a reset while its DATA still arrives).
                    self.flush()
                    frame = GoAwayFrame(0, last_stream_id=max(ev.stream_id - 2, 0), error_code=0)
                    self.writer.write(frame.serialize())
                self.done(ev.stream_id)
                return
            if dict(ev.headers).get(":path") == "/pingpong":
                self.streams[ev.stream_id]["pingpong"] = True
                self.h2.send_headers(ev.stream_id, [(":status", "200")])
            if ev.stream_ended:
                self.start(ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived):
            if ev.stream_id not in self.streams:
                return
            if not ev.data:
                STATS["empty_data"] += 1
            s = self.streams.get(ev.stream_id)
            if s is not None and s.get("pingpong"):
                self.h2.send_data(ev.stream_id, ev.data)
            elif s is not None:
                s["body"] += ev.data
                s["frames"] = s.get("frames", 0) + 1
                if ev.stream_ended and not ev.data:
                    s["empty_end"] = True
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_ended:
                self.start(ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            s = self.streams.get(ev.stream_id)
            if s is not None:
                s["trailers"] = ev.headers
            if ev.stream_ended:
                self.start(ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            pass
        elif isinstance(ev, h2.events.WindowUpdated):
            for e in self.windows.values():
                e.set()
        elif isinstance(ev, h2.events.StreamReset):
            s = self.streams.get(ev.stream_id)
            if s is not None and ev.remote_reset:
                STATS["reset"].append(dict(s["headers"]).get(":path", ""))
            self.done(ev.stream_id)

    def done(self, sid):
        if self.streams.pop(sid, None) is not None:
            self.open -= 1
        ev = self.windows.pop(sid, None)
        if ev:
            ev.set()

    def start(self, sid):
        if sid in self.streams and not self.streams[sid].get("started"):
            self.streams[sid]["started"] = True
            asyncio.ensure_future(self.answer(sid))

    async def answer(self, sid):
        s = self.streams[sid]
        h = dict(s["headers"])
        path = h.get(":path", "/")
        key = path.split("?")[0]
        STATS["paths"][key] = STATS["paths"].get(key, 0) + 1
        try:
            await self.route(sid, s, h, path)
        except Exception as e:  # a reset stream or a closed connection
            print(f"stream {sid}: {e!r}", file=sys.stderr)
        self.done(sid)
        self.flush()
        if self.goaway_at is not None and self.open == 0:
            await self.writer.drain()
            self.writer.close()

    async def route(self, sid, s, h, path):
        if s.get("pingpong"):
            self.h2.end_stream(sid)
        elif path == "/status":
            await self.send(sid, STATUS, f"status {STATUS}".encode())
        elif path == "/die":
            self.writer.transport.abort()
        elif path.startswith("/refuse-once/"):
            if path not in REFUSED:
                REFUSED.add(path)
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            await self.send(sid, 200, str(len(s["body"])).encode())
        elif path.startswith(("/refuse-head/", "/goaway-above/")):
            body = f"{len(s['body'])} {sum(s['body'])}".encode()
            await self.send(sid, 200, body)
        elif path == "/frames":
            info = {
                "data_frames": s.get("frames", 0),
                "empty_end": s.get("empty_end", False),
                "length": len(s["body"]),
                "sum": sum(s["body"]),
            }
            await self.send(sid, 200, json.dumps(info).encode())
        elif path.startswith("/goaway-refuse/"):
            if path not in REFUSED:
                REFUSED.add(path)
                self.goaway_at = max(sid - 2, 0)
                self.flush()
                frame = GoAwayFrame(0, last_stream_id=self.goaway_at, error_code=0)
                self.writer.write(frame.serialize())
                return
            await self.send(sid, 200, str(len(s["body"])).encode())
        elif path.startswith("/big/"):
            n = int(path.split("/")[2])
            await self.send(sid, 200, (PERIOD * (n // 251 + 1))[:n])
        elif path.startswith("/sleep/"):
            await asyncio.sleep(int(path.split("/")[2]) / 1000)
            await self.send(sid, 200, b"slept")
        elif path == "/goaway":
            # Written as a raw frame: `h2`'s close_connection would refuse to send anything more,
            # and the streams at or below `sid` are still to be answered.
            self.goaway_at = sid
            self.flush()
            self.writer.write(GoAwayFrame(0, last_stream_id=sid, error_code=0).serialize())
            await self.send(sid, 200, b"bye")
        elif path == "/stats":
            await self.send(sid, 200, json.dumps(STATS).encode())
        elif path.startswith("/echo"):
            trailers = list(s["trailers"] or []) + [("x-upstream-trailer", "yes")]
            await self.send(sid, 200, bytes(s["body"]), length=False, trailers=trailers)
        else:
            info = {
                "headers": [[k, v] for k, v in s["headers"]],
                "length": len(s["body"]),
                "sum": sum(s["body"]) % (1 << 32),
                "trailers": [[k, v] for k, v in (s["trailers"] or [])],
            }
            te = h.get("te") == "trailers" or s["trailers"]
            trailers = [("x-upstream-trailer", "yes")] if te else None
            await self.send(sid, 200, json.dumps(info).encode(), trailers=trailers)

    async def send(self, sid, status, body, length=True, trailers=None):
        headers = [(":status", str(status))]
        if length:
            headers.append(("content-length", str(len(body))))
        end = not body and not trailers
        self.h2.send_headers(sid, headers, end_stream=end)
        self.flush()
        view = memoryview(body)
        while view:
            window = min(
                self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size
            )
            if window <= 0:
                ev = self.windows.setdefault(sid, asyncio.Event())
                ev.clear()
                await ev.wait()
                if sid not in self.streams:
                    return
                continue
            n = min(window, len(view))
            last = n == len(view) and not trailers
            self.h2.send_data(sid, bytes(view[:n]), end_stream=last)
            STATS["data_sent"] += n
            view = view[n:]
            self.flush()
            await self.writer.drain()
        if trailers:
            self.h2.send_headers(sid, trailers, end_stream=True)
        elif not body and not end:
            self.h2.end_stream(sid)
        self.flush()
        await self.writer.drain()


async def main():
    max_streams = 100
    if "--max-streams" in sys.argv:
        max_streams = int(sys.argv[sys.argv.index("--max-streams") + 1])

    async def serve(reader, writer):
        STATS["connections"] += 1
        await Conn(reader, writer, max_streams).run()

    tls = None
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])
        tls.set_alpn_protocols(["h2"])

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
