"""HTTP/2 clients and a silent upstream for bench/h2mem.sh (memory per idle HTTP/2 connection and
per active stream), on the `h2` library (PyPI).

  python3 bench/h2mem.py idle PORT N          opens N h2c connections (preface + SETTINGS, the
                                              server's SETTINGS read), prints "open", holds them
                                              until stdin closes
  python3 bench/h2mem.py streams PORT C S      opens C connections with S GET /hold streams each
                                              (their requests sent, no answer expected), prints
                                              "open", holds until stdin closes
  python3 bench/h2mem.py silent               a TCP server on a free port that reads and never
                                              answers; prints its port, runs until stdin closes
"""

import selectors
import socket
import sys
import threading

import h2.config
import h2.connection


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    # The server's SETTINGS (its first frame) shows the connection is up.
    c.receive_data(s.recv(65536))
    s.sendall(c.data_to_send())
    return s, c


def hold_until_stdin_closes():
    print("open", flush=True)
    sys.stdin.read()


def idle(port, n):
    conns = [connect(port) for _ in range(n)]
    hold_until_stdin_closes()
    del conns


def streams(port, nconn, per):
    conns = []
    for _ in range(nconn):
        s, c = connect(port)
        for i in range(per):
            sid = c.get_next_available_stream_id()
            c.send_headers(
                sid,
                [(":method", "GET"), (":scheme", "http"),
                 (":authority", f"127.0.0.1:{port}"), (":path", f"/hold/{i}")],
                end_stream=True,
            )
        s.sendall(c.data_to_send())
        conns.append((s, c))
    hold_until_stdin_closes()


def silent():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    print(srv.getsockname()[1], flush=True)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    held = []

    def loop():
        while True:
            for key, _ in sel.select():
                if key.fileobj is srv:
                    conn, _ = srv.accept()
                    conn.setblocking(False)
                    held.append(conn)
                    sel.register(conn, selectors.EVENT_READ)
                else:
                    try:
                        if not key.fileobj.recv(65536):
                            sel.unregister(key.fileobj)
                            key.fileobj.close()
                    except OSError:
                        sel.unregister(key.fileobj)

    threading.Thread(target=loop, daemon=True).start()
    sys.stdin.read()


mode = sys.argv[1]
if mode == "idle":
    idle(int(sys.argv[2]), int(sys.argv[3]))
elif mode == "streams":
    streams(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
elif mode == "silent":
    silent()
else:
    raise SystemExit(f"unknown mode {mode}")
