"""An HTTP/2 client (h2c, prior knowledge) on the `h2` state machine (PyPI) for
tests/h2_upstream.rs, for what curl cannot send: request trailers.

Usage: python3 tests/h2_upstream/client.py MODE PORT PATH
  trailers   POSTs "hello world" in two DATA frames, then the trailer `x-client-sum: 42`
             (END_STREAM), and prints one JSON object: the response's status, body and trailers
  stall      GETs PATH and never gives any window back (a reader that stopped): reads what the
             initial windows let through for SECONDS (argv[4]), prints {"status", "got"}
  pingpong   POSTs "ping0", waits until "ping0" comes back, then "ping1", "ping2" the same way,
             then ends its stream; prints {"status", "body", "rounds"} (rounds echoed in time;
             each waits at most 5 s)
  reset      GETs PATH, resets the stream (CANCEL) after SECONDS (argv[4]) without an answer,
             then keeps the connection open (answering PINGs) for 3 s more; prints
             {"status"} (null: no response head came before the reset)
"""

import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events


def main():
    mode, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "pingpong":
        return pingpong(port, path)
    if mode == "stall":
        return stall(port, path, float(sys.argv[4]))
    if mode == "reset":
        return reset(port, path, float(sys.argv[4]))
    assert mode == "trailers"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(
        sid,
        [(":method", "POST"), (":scheme", "http"), (":authority", "t"), (":path", path),
         ("te", "trailers")],
    )
    c.send_data(sid, b"hello")
    c.send_data(sid, b" world")
    c.send_headers(sid, [("x-client-sum", "42")], end_stream=True)
    s.sendall(c.data_to_send())
    status, body, trailers, done = None, b"", {}, False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = dict(ev.headers)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    print(json.dumps({"status": status, "body": body.decode(), "trailers": trailers}))


def pingpong(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    c = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(
        sid, [(":method", "POST"), (":scheme", "http"), (":authority", "t"), (":path", path)]
    )
    s.sendall(c.data_to_send())
    status, body, rounds, done = None, b"", 0, False

    def pump(until):
        nonlocal status, body, done
        while not until():
            try:
                data = s.recv(65536)
            except socket.timeout:
                return False
            if not data:
                return False
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = True
            s.sendall(c.data_to_send())
        return True

    for i in range(3):
        ping = f"ping{i}".encode()
        c.send_data(sid, ping)
        s.sendall(c.data_to_send())
        if not pump(lambda: body.endswith(ping)):
            break
        rounds += 1
    c.end_stream(sid)
    s.sendall(c.data_to_send())
    pump(lambda: done)
    print(json.dumps({"status": status, "body": body.decode(), "rounds": rounds}))


def stall(port, path, seconds):
    s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
    c = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(
        sid,
        [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", path)],
        end_stream=True,
    )
    s.sendall(c.data_to_send())
    status, got, end = None, 0, time.time() + seconds
    while time.time() < end:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                got += len(ev.data)
        s.sendall(c.data_to_send())  # SETTINGS and PING acks only: no WINDOW_UPDATE
    print(json.dumps({"status": status, "got": got}))


def reset(port, path, seconds):
    s = socket.create_connection(("127.0.0.1", port), timeout=0.1)
    c = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(
        sid,
        [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", path)],
        end_stream=True,
    )
    s.sendall(c.data_to_send())
    status, sent_reset, t0 = None, False, time.time()
    while time.time() < t0 + seconds + 3:
        if not sent_reset and time.time() >= t0 + seconds:
            if status is None:
                c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            sent_reset = True
            s.sendall(c.data_to_send())
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[":status"])
        s.sendall(c.data_to_send())
    print(json.dumps({"status": status}))


main()
