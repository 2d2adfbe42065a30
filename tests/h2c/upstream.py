"""An h2c-capable upstream for tests/h2c.rs: hypercorn serving a tiny ASGI app that answers every
request with JSON naming the protocol it arrived on and the headers it carried.

Usage: python3 tests/h2c/upstream.py  -- binds 127.0.0.1:0, prints "port N" on stdout, serves
until killed. hypercorn answers `Upgrade: h2c` with 101 and speaks HTTP/2 afterwards, which is
what a proxy must never let a client reach (shardgate forwards no h2c upgrade).
"""

import asyncio
import json
import socket
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        msg = await receive()
        more = msg.get("more_body", False)
    body = json.dumps(
        {
            "http_version": scope["http_version"],
            "method": scope["method"],
            "path": scope["path"],
            "headers": [[k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in scope["headers"]],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = "-"
    print(f"port {sock.getsockname()[1]}", flush=True)
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    sys.exit(main())
