"""A gRPC server with the standard health service (grpc.health.v1.Health/Check), on grpcio
(PyPI) with generic handlers on raw bytes (no protoc step), for tests/grpc_health.rs.

Usage: python3 tests/grpc/health_server.py SERVICE=STATUS ...
  Serves on 127.0.0.1 (a free port) and prints {"port": N}. Each SERVICE (`-` for the server as
  a whole, "") answers HealthCheckResponse{status = STATUS} (1 SERVING, 2 NOT_SERVING); a service
  not listed gets the gRPC status NOT_FOUND, as the standard servicer does. Each call prints
  {"asked": SERVICE}. Lines on stdin `SERVICE STATUS` change a status (STATUS `gone` removes the
  service); each prints {"set": SERVICE}. Ends when stdin closes.
"""

import json
import sys
import threading
from concurrent import futures

import grpc

statuses = {}
lock = threading.Lock()


def out(obj):
    print(json.dumps(obj), flush=True)


def service_of(req):
    # HealthCheckRequest: field 1 (string), tag 0x0a, then a varint length; names here are short.
    if len(req) >= 2 and req[0] == 0x0A and req[1] < 0x80:
        return req[2 : 2 + req[1]].decode()
    return ""


def check(req, ctx):
    name = service_of(req)
    out({"asked": name})
    with lock:
        st = statuses.get(name)
    if st is None:
        ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
    return bytes([0x08, st])


def main():
    for arg in sys.argv[1:]:
        name, st = arg.split("=")
        statuses["" if name == "-" else name] = int(st)
    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    out({"port": port})
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2:
            continue
        name = "" if parts[0] == "-" else parts[0]
        with lock:
            if parts[1] == "gone":
                statuses.pop(name, None)
            else:
                statuses[name] = int(parts[1])
        out({"set": name})
    server.stop(0)


main()
