"""Debian's chromium, headless, for the UI tests: `--dump-dom` for a static page (`chromium()`),
and `Browser`, a page driven over the Chrome DevTools protocol (a websocket) for an app that needs
a login and JavaScript: navigate, type into fields, click, wait for text, take a screenshot."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ports import free_port


def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing and running as root."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=900)
        found = shutil.which("chromium")
    if not found:
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium (see `make test-deps`)")
    return found


class Browser:
    """One headless chromium page under DevTools-protocol control (bounded waits throughout)."""

    def __init__(self, profile: Path, width: int = 1500, height: int = 1000):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.log = profile / "chromium.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
                 "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}",
                 f"--window-size={width},{height}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._id = 0
        try:
            target = self._page_target(port)
            self.ws = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _page_target(self, port: int, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
                    pages = [t for t in json.loads(reply.read()) if t.get("type") == "page"]
                if pages:
                    return pages[0]
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium's DevTools did not answer on port {port}; "
                                     f"{self.log}:\n{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict:
        """One DevTools command; its result (events that arrive meanwhile are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self._id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", f"{url} to load")

    def wait_for(self, condition: str, what: str, timeout: float = 60) -> Any:
        """Until the JavaScript `condition` is truthy in the page; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(condition)
            except AssertionError:  # the page is navigating: no context to evaluate in yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; "
                                     f"the page ({self.evaluate('location.href')}) shows:\n{self.text()[:3000]}")
            time.sleep(0.3)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the field and type, as a keyboard would (React sees real input events)."""
        self.wait_for(f"!!document.querySelector({json.dumps(selector)})", selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def links(self) -> list[dict]:
        """Every link of the page: its text and absolute href."""
        return self.evaluate("Array.from(document.querySelectorAll('a')).map(a => "
                             "({text: a.innerText.trim(), href: a.href}))") or []

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
