#!/usr/bin/env python3
"""The admin status page (GET /) checked in a real browser: headless Chromium driven over the
Chrome DevTools protocol.

Starts two upstreams and shardgate (2 shards) under a small load, loads the page, waits until the
shard table and the route charts have data, kills one upstream and checks that its breaker shows as
open within a few seconds, saves a screenshot, then stops shardgate and checks that the page says
"admin API unreachable"; last, against a shardgate with an admin token (admin_token_file), checks
that the page asks for the token once and then shows the data.

Needs: Debian's `chromium` and PyPI's `websocket-client` (scripts/test.sh installs both), and a
built binary (SHARDGATE=path, default target/release/shardgate, else target/debug/shardgate).
Usage: scripts/status-page-check.py [SCREENSHOT.png]   (default docs/status-page.png; a
phone-sized one beside it, NAME-phone.png). WARMUP=SECONDS lets the load run that long before the
upstream is killed (fuller charts in the screenshot; default 0).
Exit 0 when every check passed, 1 (with the reason) otherwise.
"""

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websocket  # websocket-client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(why):
    print(f"status-page-check: FAILED: {why}", file=sys.stderr)
    sys.exit(1)


def binary():
    if os.environ.get("SHARDGATE"):
        return os.environ["SHARDGATE"]
    for kind in ("release", "debug"):
        p = os.path.join(ROOT, "target", kind, "shardgate")
        if os.path.exists(p):
            return p
    fail("no shardgate binary: cargo build first (or set SHARDGATE)")


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    fail("no chromium: apt-get install chromium")


class Upstream:
    """A tiny HTTP/1.1 upstream on 127.0.0.1 answering 200 after a short, varying delay."""

    def __init__(self, name):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                time.sleep((hash(self.path) % 7) / 1000)
                body = f"{name}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                # One request a connection, so a killed upstream refuses the very next one.
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.addr = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self):
        self.server.shutdown()
        self.server.server_close()


class Cdp:
    """One page target of a Chromium started with --remote-debugging-port."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        self.next_id = 0
        self.prompt_answer = None  # what a prompt() of the page is answered (None: dismissed)
        self.dialogs = []          # the messages of the dialogs the page opened

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Page.javascriptDialogOpening":
                # The page waits in prompt() until this is answered (ids apart from calls').
                self.dialogs.append(msg["params"].get("message", ""))
                answer = {"accept": self.prompt_answer is not None,
                          "promptText": self.prompt_answer or ""}
                self.ws.send(json.dumps({"id": 10**6 + len(self.dialogs),
                                         "method": "Page.handleJavaScriptDialog",
                                         "params": answer}))
                continue
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    fail(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            fail(f"page script {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def until(self, expr, within, what):
        deadline = time.time() + within
        while time.time() < deadline:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.2)
        fail(f"{what} not seen within {within}s (page text: {self.eval('document.body.innerText')[:800]!r})")


def start(args):
    """Starts shardgate with `args`; returns (process, listen address, admin address)."""
    proxy = subprocess.Popen([binary()] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    listen = admin = None
    for line in proxy.stdout:
        if line.startswith("listening on "):
            listen = line.split()[-1]
        elif line.startswith("admin listening on "):
            admin = line.split()[-1]
        elif line.startswith("ready:"):
            break
    if not (listen and admin):
        fail("shardgate did not start")
    threading.Thread(target=lambda: [None for _ in proxy.stdout], daemon=True).start()
    return proxy, listen, admin


def token_check(cdp, tmp, upstream):
    """With an admin token (from a file): the page asks for it once, then shows the data."""
    token = "page-T0ken-%d" % os.getpid()
    token_file = os.path.join(tmp, "admin-token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    config = os.path.join(tmp, "token.toml")
    with open(config, "w") as f:
        f.write(f'listen = ["127.0.0.1:0"]\nupstreams = ["{upstream}"]\n'
                f'admin_token_file = "{token_file}"\n')
    proxy, _, admin = start(["--config", config, "--admin", "127.0.0.1:0", "--shards", "1"])
    try:
        cdp.dialogs.clear()
        cdp.prompt_answer = token
        cdp.call("Page.navigate", url=f"http://{admin}/")
        cdp.until("document.querySelectorAll('#shards tbody tr').length === 1", 10,
                  "the shard row once the page was given the token")
        cdp.until("!document.getElementById('banner').classList.contains('show')", 5,
                  "the banner gone once the token was given")
        time.sleep(2)  # more polls: none may ask again
        if len(cdp.dialogs) != 1 or "admin token" not in cdp.dialogs[0]:
            fail(f"the page should ask for the token once, asked: {cdp.dialogs!r}")
        print("status-page-check: with an admin token, the page asked for it once and shows data")
    finally:
        proxy.terminate()
        proxy.wait(timeout=35)


def main():
    shot = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "status-page.png")
    tmp = tempfile.mkdtemp(prefix="status-page-")
    good, bad = Upstream("good"), Upstream("bad")
    config = os.path.join(tmp, "shardgate.toml")
    with open(config, "w") as f:
        f.write(
            f'listen = ["127.0.0.1:0"]\n\n'
            f'[[clusters]]\nname = "web"\nendpoints = ["{good.addr}", "{bad.addr}"]\n'
            f'[clusters.breaker]\nfailures = 3\nopen_timeout = "60s"\n\n'
            f'[[clusters]]\nname = "static"\nendpoints = ["{good.addr}"]\n\n'
            f'[[routes]]\nname = "static"\npath_prefix = "/static/"\ncluster = "static"\n'
            f'rate_limit = {{ rate = "20/s", burst = 5 }}\n\n'
            f'[[routes]]\nname = "api"\npath_prefix = "/"\ncluster = "web"\n'
        )
    proxy, listen, admin = start(["--config", config, "--admin", "127.0.0.1:0", "--shards", "2"])

    stop = threading.Event()

    def load(path_prefix, per_second):
        i = 0
        while not stop.is_set():
            i += 1
            try:
                urllib.request.urlopen(f"http://{listen}{path_prefix}{i}", timeout=2).read()
            except Exception:
                pass  # 429s, and 502/503s once an upstream is gone
            time.sleep(1 / per_second)

    for prefix, rate in (("/api/", 40), ("/api/", 25), ("/static/", 30)):
        threading.Thread(target=load, args=(prefix, rate), daemon=True).start()

    profile = os.path.join(tmp, "profile")
    browser = subprocess.Popen(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1280,800",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.time() > deadline or browser.poll() is not None:
                fail("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Page.navigate", url=f"http://{admin}/")

        cdp.until("document.querySelectorAll('#shards tbody tr').length === 2", 10, "two shard rows")
        cdp.until("[...document.querySelectorAll('#shards tbody td:nth-child(8)')]"
                  ".some(td => parseFloat(td.textContent) > 0)", 10, "a shard with requests/s")
        cdp.until("[...document.querySelectorAll('.card[data-route]')]"
                  ".filter(c => +c.dataset.points >= 5 && c.querySelector('polyline')).length >= 2",
                  20, "both route charts with 5 points")
        if cdp.eval("document.getElementById('banner').classList.contains('show')"):
            fail("the unreachable banner shows while the admin API answers")
        print("status-page-check: shard table and route charts have data")
        time.sleep(float(os.environ.get("WARMUP", "0")))

        bad.kill()
        t0 = time.time()
        sel = f'tr[data-endpoint="web/{bad.addr}"]'
        cdp.until(f"document.querySelector('{sel}')?.dataset.breaker === 'open'", 8,
                  f"the breaker of {bad.addr} shown open")
        print(f"status-page-check: breaker of the killed upstream shown open after "
              f"{time.time() - t0:.1f}s")
        time.sleep(2)  # a few more chart points after the failure
        png = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png["data"]))
        print(f"status-page-check: screenshot saved to {shot}")
        # The same page on a phone-sized screen (CSS only: tables scroll, cards stack).
        cdp.call("Emulation.setDeviceMetricsOverride", width=390, height=844,
                 deviceScaleFactor=1, mobile=True)
        time.sleep(1.5)
        if cdp.eval("document.documentElement.scrollWidth > window.innerWidth + 1"):
            fail("the page is wider than a phone screen (only the tables may scroll)")
        png = cdp.call("Page.captureScreenshot", format="png")
        phone = shot[:-4] + "-phone.png" if shot.endswith(".png") else shot + "-phone.png"
        with open(phone, "wb") as f:
            f.write(base64.b64decode(png["data"]))
        print(f"status-page-check: phone-sized screenshot saved to {phone}")
        cdp.call("Emulation.clearDeviceMetricsOverride")

        stop.set()
        proxy.terminate()
        proxy.wait(timeout=35)
        cdp.until("document.getElementById('banner').classList.contains('show') && "
                  "document.getElementById('banner').textContent.includes('admin API unreachable')",
                  8, "the 'admin API unreachable' banner after shardgate stopped")
        print("status-page-check: 'admin API unreachable' banner shown once shardgate stopped")
        token_check(cdp, tmp, good.addr)
        print("status-page-check: ok")
    finally:
        stop.set()
        browser.kill()
        if proxy.poll() is None:
            proxy.kill()
        good.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
