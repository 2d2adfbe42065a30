"""A gRPC client on `grpcio` (PyPI) for tests/grpc.rs: runs every case against one target over
h2c and prints one JSON object per case, so that the results straight to the server and through
shardgate can be compared as they are.

Usage: python3 tests/grpc/client.py HOST:PORT [CA]
  with CA (a PEM file): over TLS, the server's certificate checked for `localhost`
Cases: empty unary, large unary (4 MiB), client streaming, server streaming, bidi ping-pong (each
reply read before the next message is sent), status + message in trailers, custom metadata both
ways, an unimplemented method, and cancel after begin (a server stream cancelled after its first
message: the server must see the cancellation within 5 s), and a timeout on a sleeping server
(0.5 s deadline). Each prints {"case", "code", "details", "reply", "initial", "trailing"};
replies are summarised (length and a checksum for the large one).
"""

import json
import queue
import sys
import time

import grpc

MAX = 8 * 1024 * 1024


def pick(md, names):
    return {k: v for k, v in (md or ()) if k in names}


def out(case, code, details, reply, initial=None, trailing=None):
    print(json.dumps({
        "case": case, "code": code, "details": details, "reply": reply,
        "initial": initial or {}, "trailing": trailing or {},
    }), flush=True)


def main():
    opts = [("grpc.max_receive_message_length", MAX), ("grpc.max_send_message_length", MAX)]
    if len(sys.argv) > 2:
        creds = grpc.ssl_channel_credentials(root_certificates=open(sys.argv[2], "rb").read())
        opts.append(("grpc.ssl_target_name_override", "localhost"))
        ch = grpc.secure_channel(sys.argv[1], creds, options=opts)
    else:
        ch = grpc.insecure_channel(sys.argv[1], options=opts)
    call = lambda kind, m: getattr(ch, kind)(f"/test.Echo/{m}")
    t = 20

    r = call("unary_unary", "Empty")(b"", timeout=t)
    out("empty", "OK", "", len(r))

    big = bytes(i * 7 % 251 for i in range(4 * 1024 * 1024))
    r, c = call("unary_unary", "Unary").with_call(big, timeout=t, metadata=(("x-meta", "m1"),))
    out("large", c.code().name, c.details() or "", [len(r), sum(r) % (1 << 32)],
        pick(c.initial_metadata(), {"x-echo"}), pick(c.trailing_metadata(), {"x-trailer"}))

    r = call("stream_unary", "ClientStream")(iter([b"a" * 10, b"b" * 20000, b"c"]), timeout=t)
    out("client_stream", "OK", "", r.decode())

    got = [m.decode() for m in call("unary_stream", "ServerStream")(b"5", timeout=t)]
    out("server_stream", "OK", "", got)

    # Ping-pong: the next message goes only after the reply to the last one came back.
    q = queue.Queue()
    replies = call("stream_stream", "Bidi")(iter(q.get, None), timeout=t)
    got = []
    for w in ["ping", "pong", "done"]:
        q.put(w.encode())
        got.append(next(replies).decode())
    q.put(None)
    rest = list(replies)
    out("bidi", "OK", "", got + [m.decode() for m in rest])

    try:
        call("unary_unary", "Fail")(b"x", timeout=t)
        out("fail", "OK", "", None)
    except grpc.RpcError as e:
        out("fail", e.code().name, e.details(), None, {}, pick(e.trailing_metadata(), {"x-why"}))

    r, c = call("unary_unary", "Unary").with_call(b"hi", timeout=t, metadata=(("x-meta", "m2"),))
    out("metadata", c.code().name, c.details() or "", r.decode(),
        pick(c.initial_metadata(), {"x-echo"}), pick(c.trailing_metadata(), {"x-trailer"}))

    try:
        call("unary_unary", "Nope")(b"", timeout=t)
        out("unimplemented", "OK", "", None)
    except grpc.RpcError as e:
        out("unimplemented", e.code().name, e.details(), None)

    before = int(call("unary_unary", "Cancelled")(b"", timeout=t).decode())
    stream = call("unary_stream", "Sleepy")(b"", timeout=t)
    first = next(stream).decode()
    stream.cancel()
    seen, deadline = False, time.time() + 5
    while not seen and time.time() < deadline:
        seen = int(call("unary_unary", "Cancelled")(b"", timeout=t).decode()) > before
        time.sleep(0.05)
    out("cancel", stream.code().name, "", [first, seen])

    # A server slower than the client's 0.5 s deadline: DEADLINE_EXCEEDED (through shardgate its
    # grpc-timeout caps the upstream timeout; whichever side gives up first, the code is the same).
    start = time.time()
    try:
        call("unary_unary", "Sleep")(b"", timeout=0.5)
        out("timeout", "OK", "", None)
    except grpc.RpcError as e:
        out("timeout", e.code().name, "", time.time() - start < 5)


main()
