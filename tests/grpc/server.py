"""A gRPC server on `grpcio` (PyPI) for tests/grpc.rs: generic handlers on raw bytes (no protoc),
insecure (h2c). Service `test.Echo`:
  Unary         the request back; initial metadata `x-echo` = the client's `x-meta`, trailing
                metadata `x-trailer: t`
  Empty         an empty response to an empty request
  ClientStream  the number of messages and their total length, as "N/LEN"
  ServerStream  the request is a count N: N messages "msg0".."msg{N-1}"
  Bidi          each message echoed as it arrives, upper-cased
  Sleepy        server streaming: one message "first", then waits (up to 10 s) until the call is
                cancelled, which it counts
  Cancelled     how many Sleepy calls were cancelled so far, as a decimal string
  Sleep         answers "late" after 30 s, or ends when the call is cancelled (deadlines)
  Fail          aborts with INVALID_ARGUMENT and the message "bad thing: 100% wrong" (percent-
                encoded in grpc-message), trailing metadata `x-why: because`

Usage: python3 tests/grpc/server.py [--tls CERT KEY]  -- binds 127.0.0.1:0, prints "port N",
serves until killed; with --tls over TLS (ALPN h2) with that certificate and key (PEM files).
"""

import sys
import time
from concurrent import futures

import grpc

MAX = 8 * 1024 * 1024


def meta(ctx):
    return dict(ctx.invocation_metadata())


def unary(req, ctx):
    ctx.send_initial_metadata((("x-echo", meta(ctx).get("x-meta", "")),))
    ctx.set_trailing_metadata((("x-trailer", "t"),))
    return req


def empty(req, ctx):
    return b""


def client_stream(it, ctx):
    n = total = 0
    for m in it:
        n += 1
        total += len(m)
    return f"{n}/{total}".encode()


def server_stream(req, ctx):
    for i in range(int(req.decode())):
        yield f"msg{i}".encode()


def bidi(it, ctx):
    for m in it:
        yield m.upper()


CANCELLED = []


def sleepy(req, ctx):
    # Counted when the call ends before the generator does (grpc may never resume a generator
    # whose call was cancelled, so the count cannot wait for it).
    done = []
    ctx.add_callback(lambda: done or CANCELLED.append(1))
    yield b"first"
    deadline = time.time() + 10
    while ctx.is_active() and time.time() < deadline:
        time.sleep(0.02)
    done.append(1)


def cancelled(req, ctx):
    return str(len(CANCELLED)).encode()


def sleep(req, ctx):
    deadline = time.monotonic() + 30
    while ctx.is_active() and time.monotonic() < deadline:
        time.sleep(0.05)
    return b"late"


def fail(req, ctx):
    ctx.set_trailing_metadata((("x-why", "because"),))
    ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad thing: 100% wrong")


def main():
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Empty": grpc.unary_unary_rpc_method_handler(empty),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Sleepy": grpc.unary_stream_rpc_method_handler(sleepy),
        "Cancelled": grpc.unary_unary_rpc_method_handler(cancelled),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
    }
    opts = [("grpc.max_receive_message_length", MAX), ("grpc.max_send_message_length", MAX)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=opts)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        cert, key = (open(f, "rb").read() for f in sys.argv[i + 1:i + 3])
        creds = grpc.ssl_server_credentials([(key, cert)])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("port", port, flush=True)
    server.wait_for_termination()


main()
