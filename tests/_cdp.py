"""A small headless-Chromium driver over the DevTools protocol, standard library only.

Used by the browser test and the map benchmark: it starts Debian's ``chromium`` with
``--remote-debugging-pipe`` (DevTools messages on file descriptors 3 and 4, NUL-separated JSON),
so no websocket library, no driver binary and no browser download is needed. It also serves a
folder on 127.0.0.1 for the page to load from.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: switches that keep a test browser quiet and off the network except for the page itself
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``$KQI_CHROMIUM`` first), or ``None``."""
    env = os.environ.get("KQI_CHROMIUM")
    if env:
        return env if Path(env).exists() else shutil.which(env)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    """The browser answered a command with an error, died, or did not answer in time."""


class Browser:
    """One headless Chromium with one page, driven over the DevTools pipe.

    Events the page sends are kept in :attr:`events` (method, params), so a test can read the
    console messages and exceptions afterwards.
    """

    def __init__(self, executable: str, *, width: int = 1280, height: int = 800,
                 timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._profile = tempfile.mkdtemp(prefix="kqi-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        args = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"]
        # the browser reads commands on fd 3 and writes replies on fd 4; bash moves the pipe
        # ends there (dash cannot name fds above 9), so no Python runs between fork and exec
        script = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
        shell = shutil.which("bash") or "/bin/bash"
        self._proc = subprocess.Popen([shell, "-c", script, *args],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, pass_fds=(to_child_r, from_child_w))
        for fd in (to_child_r, from_child_w):
            os.close(fd)
        self._stderr: list[bytes] = []
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next_id = 0
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_reader.start()
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
            attached = self.send("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True}, session=False)
            self._session = attached["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.close()
            raise

    # -- protocol ---------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append((msg.get("method", ""), msg.get("params", {})))
                    self._cond.notify_all()

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            if len(self._stderr) < 200:
                self._stderr.append(line)

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             session: bool = True, timeout: float | None = None) -> dict[str, Any]:
        """Send one DevTools command and wait for its result."""
        with self._cond:
            self._next_id += 1
            msg_id = self._next_id
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while msg_id not in self._replies:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    tail = b"".join(self._stderr[-5:]).decode(errors="replace").strip()
                    why = "browser exited" if self._closed else "no answer in time"
                    raise CdpError(f"{method}: {why}. {tail}")
                self._cond.wait(left)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    # -- page helpers -----------------------------------------------------------------------------
    def evaluate(self, expression: str, *, timeout: float | None = None) -> Any:
        """Value of a JavaScript expression in the page (awaited when it is a promise)."""
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in res:
            raise CdpError(f"evaluate failed: {res['exceptionDetails'].get('text')} "
                           f"{res['exceptionDetails'].get('exception', {}).get('description', '')}")
        return res.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        """Open ``url``; returns once the navigation was committed."""
        res = self.send("Page.navigate", {"url": url})
        if res.get("errorText"):
            raise CdpError(f"navigate {url}: {res['errorText']}")

    def wait_for(self, expression: str, *, timeout: float | None = None,
                 interval: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CdpError(f"timed out waiting for {expression}")
            time.sleep(interval)

    def screenshot(self, path: str | Path) -> Path:
        """Write a PNG of the viewport to ``path``."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out

    def errors(self) -> list[str]:
        """JavaScript exceptions, console errors and failed loads the page reported so far."""
        found = []
        with self._cond:
            events = list(self.events)
        for method, p in events:
            if method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                exc = d.get("exception", {})
                what = exc.get("description", exc.get("value", ""))
                found.append(f"exception: {d.get('text')} {what} "
                             f"(line {d.get('lineNumber')})".strip())
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                found.append(f"log: {e.get('text')} {e.get('url', '')}".strip())
        return found

    def close(self) -> None:
        """Stop the browser and remove its profile."""
        with contextlib.suppress(CdpError, OSError):
            self.send("Browser.close", session=False, timeout=5)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self._to_child)
        self._reader.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._from_child)
        self._err_reader.join(timeout=5)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def serve(folder: str | Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def load_map(browser: Browser, url: str, *, timeout: float = 120.0) -> float:
    """Open a kqi map page and wait until it has drawn; return the page's draw time, ms.

    The time is ``window.kqiDrawnAt`` (set two animation frames after the last layer was added,
    measured from the start of navigation).
    """
    browser.navigate(url)
    return float(browser.wait_for("window.kqiDrawnAt", timeout=timeout))
