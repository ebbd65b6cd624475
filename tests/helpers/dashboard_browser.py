"""The operator dashboard as a user meets it: ``iomt-ad dashboard`` in its own process, and a page
of the headless Debian Chromium (Playwright) on it. Shared by the browser tests."""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.streaming import BUNDLE

REPO = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("IOMT_AD_TEST_OUTPUT", REPO / "test-output")) / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def start_dashboard(tables: Path, port: int, log_path: Path, *extra: str, ca_file: Path | None = None,
                    env: dict[str, str] | None = None) -> subprocess.Popen:
    """``iomt-ad dashboard`` (more arguments: ``extra``), once it answers (over https with ``ca_file``)."""
    command = [sys.executable, "-m", "jobs.dashboard", "--tables", str(tables),
               "--model", str(BUNDLE), "--port", str(port), "--refresh-seconds", "5", *extra]
    process = subprocess.Popen(command, cwd=REPO, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True, env=env)
    scheme, context = ("https", ssl.create_default_context(cafile=str(ca_file))) if ca_file else ("http", None)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"iomt-ad dashboard exited: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/_stcore/health", timeout=2,
                                        context=context) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise TimeoutError(f"the dashboard did not answer in 90 s: {log_path.read_text()[-2000:]}")


@contextmanager
def running_dashboard(tables: Path, port: int, log_path: Path, *extra: str, ca_file: Path | None = None,
                      env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """:func:`start_dashboard`, stopped (SIGTERM) on the way out."""
    server = start_dashboard(tables, port, log_path, *extra, ca_file=ca_file, env=env)
    try:
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def browser_page(url: str, width: int = 1500, height: int = 2000,
                 ignore_https_errors: bool = False) -> Iterator[tuple[object, list[str]]]:
    """A Chromium page opened on ``url``, and the list the page's JavaScript errors go to."""
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: run tests/services/install_browser.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=ignore_https_errors,
                                          viewport={"width": width, "height": height})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            yield page, errors
        finally:
            browser.close()
