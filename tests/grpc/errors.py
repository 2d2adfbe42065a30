"""gRPC clients for tests/grpc_errors.rs: what a real gRPC client sees of the errors the proxy
generates itself, and the exact frames of such an answer.

Usage: python3 tests/grpc/errors.py MODE PORT PATH [ARG]  -- prints one JSON object:
  call PORT PATH [SECONDS]   a unary call with grpcio (PyPI) on raw bytes, over h2c (no protoc
                             step: generic method path); reports its status code (the number) and
                             details; SECONDS is the client's own deadline (default 20)
  raw PORT PATH [TIMEOUT]    a gRPC-shaped POST with the Python `h2` library, `grpc-timeout:
                             TIMEOUT` when given (e.g. 300m) and no client-side deadline; reports
                             the response header block, whether it ended the stream
                             (trailers-only), any DATA, and the seconds it took
"""

import json
import socket
import sys
import time


def call(port, path, seconds):
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        rpc = ch.unary_unary(path, request_serializer=None, response_deserializer=None)
        try:
            body = rpc(b"ping", timeout=seconds)
            return {"code": 0, "details": "", "len": len(body)}
        except grpc.RpcError as e:
            return {"code": e.code().value[0], "details": e.details() or ""}


def raw(port, path, grpc_timeout):
    import h2.config
    import h2.connection
    import h2.events

    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", path),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    if grpc_timeout:
        headers.append(("grpc-timeout", grpc_timeout))
    start = time.monotonic()
    conn.send_headers(1, headers)
    conn.send_data(1, b"\x00\x00\x00\x00\x04ping", end_stream=True)
    s.sendall(conn.data_to_send())
    rep = {"headers": None, "trailers_only": False, "data": 0, "reset": None}
    done = False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                rep["headers"] = {k.decode(): v.decode() for k, v in ev.headers}
                rep["trailers_only"] = ev.stream_ended is not None
                done = done or ev.stream_ended is not None
            elif isinstance(ev, h2.events.DataReceived):
                rep["data"] += len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, 1)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.TrailersReceived)):
                done = True
            elif isinstance(ev, h2.events.StreamReset):
                rep["reset"] = int(ev.error_code)
                done = True
        s.sendall(conn.data_to_send())
    rep["seconds"] = time.monotonic() - start
    s.close()
    return rep


def main():
    mode, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    if mode == "call":
        rep = call(port, path, float(arg or 20))
    elif mode == "raw":
        rep = raw(port, path, arg)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(rep), flush=True)


main()
