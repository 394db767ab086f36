"""A real headless Chromium for tests, driven over its DevTools protocol (aiohttp's websocket client, which Ray
already installs): open a page, wait until a condition holds in it, click, read its text, keep a screenshot.

Chromium comes from the system package manager (`.ci/system-packages` installs it where it is missing). Screenshots
are kept as test artifacts under ``test-artifacts/`` (or ``$HYPERNAS_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from tests.conftest import ROOT
from tests.servers import free_port, stop_group

ARTIFACTS = Path(os.environ.get("HYPERNAS_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


@contextlib.contextmanager
def headless_chromium(profile: Path, timeout_s: float = 60.0) -> Iterator[int]:
    """A headless Chromium in its own process group, listening for DevTools on a free loopback port (yielded)."""
    port = free_port()
    process = subprocess.Popen(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--window-size=1600,1000", f"--remote-debugging-port={port}",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"Chromium did not open its DevTools port (exit code {process.poll()})")
                time.sleep(0.2)
        yield port
    finally:
        stop_group(process)


class Page:
    """One tab, over the DevTools protocol."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.next_id = 0

    async def send(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        while True:  # events arrive in between; the answer carries our id
            message = await self.socket.receive_json()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 60.0) -> Any:
        """Poll ``expression`` until it is truthy (the page renders asynchronously); its value, or TimeoutError
        with the page's text."""
        deadline = time.monotonic() + timeout_s
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"  # mid-navigation
        while True:
            value = await self.evaluate(guarded)
            if value:
                return value
            if time.monotonic() > deadline:
                text = await self.evaluate("document.body ? document.body.innerText : ''")
                raise TimeoutError(f"{expression!r} never held; the page shows: {str(text)[:2000]}")
            await asyncio.sleep(0.25)

    async def text(self) -> str:
        return await self.evaluate("document.body.innerText")

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = await self.send("Page.captureScreenshot", format="png")
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


async def _with_page(port: int, url: str, steps: Any, offline: bool) -> Any:
    import aiohttp

    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    target = json.loads(urllib.request.urlopen(request, timeout=10).read())
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
            page = Page(socket)
            await page.send("Page.enable")
            if offline:  # no request leaves the page: what it shows, it carries
                await page.send("Network.enable")
                await page.send("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=0,
                                uploadThroughput=0)
            await page.send("Page.navigate", url=url)
            return await steps(page)


def on_page(port: int, url: str, steps: Any, offline: bool = False) -> Any:
    """Open ``url`` in a new tab of the browser on ``port`` (``offline``: with the network cut) and run
    ``async steps(page)`` there."""
    return asyncio.run(_with_page(port, url, steps, offline))
