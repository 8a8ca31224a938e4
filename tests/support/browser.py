"""A real browser for the screens' tests: Debian's headless Chromium driven by Playwright (no
browser download: Playwright is pointed at the installed binary), with a fresh profile."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

REPO = Path(__file__).resolve().parents[2]
ARGS = [
    "--no-sandbox",  # root in CI containers
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = (
    "browser tests not run: Chromium is not installed "
    "(install Debian's: `apt-get install -y chromium` as root, or set CHROMIUM=/path/to/chromium)"
)


def chromium() -> str | None:
    """The Chromium binary to drive: $CHROMIUM, else `chromium` on the PATH."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshots_dir() -> Path:
    """Where screenshots go: $COMANDA_SCREENSHOTS (`make screenshots` sets docs/screens),
    else .artifacts/screens (ignored by git)."""
    path = Path(os.environ.get("COMANDA_SCREENSHOTS") or REPO / ".artifacts" / "screens")
    if not path.is_absolute():
        path = REPO / path
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def browser() -> Iterator[BrowserContext]:
    """A browser with a profile of its own, removed afterwards."""
    binary = chromium()
    assert binary is not None, INSTALL_HINT
    profile = tempfile.mkdtemp(prefix="comanda-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=binary,
                headless=True,
                args=ARGS,
                viewport={"width": 1366, "height": 900},
                locale="pt-BR",
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
