"""Debian's chromium driven over the Chrome DevTools Protocol (a WebSocket), with the project's
own ``websockets``: no browser download, no driver package. Enough to open pages, wait for
text and take screenshots."""

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Chromium:
    def __init__(self, port: int, profile: Path, width: int = 1600, height: int = 900):
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--hide-scrollbars", f"--remote-debugging-port={port}",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.ids = itertools.count(1)
        self.ws = connect(self._page_socket(port), max_size=64 * 1024 * 1024, open_timeout=30)
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _page_socket(self, port: int, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as resp:
                    pages = [p for p in json.loads(resp.read()) if p.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            time.sleep(0.3)
        raise RuntimeError("chromium's DevTools endpoint did not come up")

    def call(self, method: str, **params):
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        result = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                           returnByValue=True)
        return result.get("result", {}).get("value", "") or ""

    def wait_for_text(self, *needles: str, timeout: float = 60.0) -> str:
        """The page's text once every needle is in it (the UI renders after its queries)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise AssertionError(f"page lacks {missing}; it shows:\n{text[:3000]}")

    def click_text(self, label: str) -> bool:
        """Click the first button/link/tab whose visible text is ``label``."""
        script = ("(() => { const els = [...document.querySelectorAll('button, a, [role=tab], span')];"
                  f" const el = els.find(e => e.innerText && e.innerText.trim() === {json.dumps(label)});"
                  " if (!el) return false; el.click(); return true; })()")
        result = self.call("Runtime.evaluate", expression=script, returnByValue=True)
        return bool(result.get("result", {}).get("value"))

    def scroll_to_text(self, label: str) -> bool:
        """Scroll the first element whose own text is ``label`` to the top of its scroll box."""
        script = ("(() => { const el = [...document.querySelectorAll('body *')].find(e =>"
                  f" e.childElementCount === 0 && e.textContent.trim() === {json.dumps(label)});"
                  " if (!el) return false; el.scrollIntoView({block: 'start'}); return true; })()")
        result = self.call("Runtime.evaluate", expression=script, returnByValue=True)
        time.sleep(1.0)  # let the page paint the scrolled view
        return bool(result.get("result", {}).get("value"))

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
