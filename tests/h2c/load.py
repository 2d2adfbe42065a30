"""A bounded HTTP/2 (h2c, prior knowledge) load client for tests/binary_upgrade.rs, on the raw
frame client of tests/h2c/client.py (an `h2` state machine stops reading at the first GOAWAY,
which a graceful shutdown's final one follows). CONNS threads each keep one connection with up to
STREAMS GET streams open, until the file STOP exists (30 s at most). Each behaves as RFC 9113
§6.8 asks of a client: after a GOAWAY it opens no stream on that connection, lets the streams up
to the last stream id finish, sends again on a new connection the streams above it (and those
refused with REFUSED_STREAM: never processed, so safe), and reconnects once they are done.

Usage: python3 tests/h2c/load.py PORT PATH CONNS STREAMS STOP
Prints {"ready": true} once every connection had a response, then at the end one JSON object:
ok (200 responses), failed (what went wrong: a stream reset, a stream the server said it would
finish but cut, a status not 200, a connect error), retried, goaways, connections.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import Client  # noqa: E402

REFUSED_STREAM = 7


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = []
        self.retried = 0
        self.goaways = 0
        self.connections = 0
        self.ready = threading.Semaphore(0)

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                if k == "failed":
                    self.failed.append(v)
                else:
                    setattr(self, k, getattr(self, k) + v)


def one_connection(port, path, streams, stop, deadline, carry, tally):
    """Serves one connection to its end; returns the streams to send again."""
    try:
        c = Client(port)
    except OSError as e:
        tally.add(failed="connect: %s" % e)
        time.sleep(0.01)
        return carry
    tally.add(connections=1)
    open_ = set()
    seen_goaways = 0
    last_id = None
    while True:
        stopping = os.path.exists(stop) or time.time() >= deadline
        while last_id is None and not c.closed and not c.write_failed and len(open_) < streams and (carry or not stopping):
            carry = max(0, carry - 1)
            sid, frame = c.headers("GET", path, True)
            if not c.send(frame):
                carry += 1
                break
            open_.add(sid)
        if not open_ and (stopping or last_id is not None or c.closed or c.write_failed):
            break
        if time.time() >= deadline + 10:
            for sid in open_:
                tally.add(failed="stream %d: no answer by the deadline" % sid)
            break
        before = len(c.order)
        c.pump(lambda: len(c.order) > before, 5)
        for g in c.goaways[seen_goaways:]:
            tally.add(goaways=1)
            if g["error"] != 0:
                tally.add(failed="GOAWAY error %d" % g["error"])
            last_id = g["last_stream_id"] if last_id is None else min(last_id, g["last_stream_id"])
        seen_goaways = len(c.goaways)
        for sid in sorted(open_):
            st = c.streams.get(sid)
            if st is None:
                if last_id is not None and sid > last_id:
                    open_.discard(sid)
                    carry += 1
                    tally.add(retried=1)
                continue
            if st["reset"] is not None:
                open_.discard(sid)
                if st["reset"] == REFUSED_STREAM:
                    carry += 1
                    tally.add(retried=1)
                else:
                    tally.add(failed="stream %d reset %d" % (sid, st["reset"]))
            elif st["ended"]:
                open_.discard(sid)
                if st["status"] == 200:
                    tally.add(ok=1)
                    if not getattr(threading.current_thread(), "had_one", False):
                        threading.current_thread().had_one = True
                        tally.ready.release()
                else:
                    tally.add(failed="stream %d status %s" % (sid, st["status"]))
                del c.streams[sid]
        if c.closed:
            for sid in open_:
                if last_id is not None and sid > last_id:
                    carry += 1
                    tally.add(retried=1)
                else:
                    tally.add(failed="stream %d cut (last id %s)" % (sid, last_id))
            break
    try:
        c.s.close()
    except OSError:
        pass
    return carry


def run(port, path, streams, stop, tally):
    deadline = time.time() + 30
    carry = 0
    try:
        while time.time() < deadline and (carry or not os.path.exists(stop)):
            carry = one_connection(port, path, streams, stop, deadline, carry, tally)
    except Exception as e:  # noqa: BLE001 -- a client that died is a failure, not a silence
        tally.add(failed="client error: %r" % e)
        tally.ready.release()


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    conns, streams, stop = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    tally = Tally()
    threads = [
        threading.Thread(target=run, args=(port, path, streams, stop, tally))
        for _ in range(conns)
    ]
    for t in threads:
        t.start()
    for _ in threads:
        if not tally.ready.acquire(timeout=20):
            break
    else:
        print(json.dumps({"ready": True}), flush=True)
    for t in threads:
        t.join()
    print(json.dumps({
        "ok": tally.ok, "failed": tally.failed[:20], "failed_count": len(tally.failed),
        "retried": tally.retried, "goaways": tally.goaways, "connections": tally.connections,
    }), flush=True)


if __name__ == "__main__":
    main()
