"""The screenshot job: a report.html rendered to a PNG with headless Chromium, exactly as a browser shows it.

Chromium is found on PATH (chromium, chromium-browser, google-chrome) or named by VOTE_CHROMIUM.
See scripts/screenshot_report.py.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from core import atomic
from core.errors import UserError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Headless, offline and quiet: no first-run UI, no background fetches, a throwaway profile.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


@dataclass
class ScreenshotRequest:
    html: str
    out: str
    width: int = 1280        # window size in CSS pixels
    height: int = 2000
    max_kb: int = 0          # re-encode with 256 colours above this size (0: never)


@dataclass
class ScreenshotResult:
    out: Path
    size_bytes: int
    width: int
    height: int

    @property
    def line(self) -> str:
        return f"screenshot: {self.out} ({self.size_bytes // 1024} KB, {self.width}x{self.height})"


def find_chromium() -> str | None:
    named = os.environ.get("VOTE_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((found for name in NAMES if (found := shutil.which(name))), None)


def _chromium() -> str:
    found = find_chromium()
    if found is None:
        raise UserError("Chromium was not found on PATH; install it (Debian: apt-get install chromium) "
                        "or point VOTE_CHROMIUM at the browser")
    return found


def _run(args: list[str], what: str, timeout: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="vote-chromium-") as profile:
        try:
            proc = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise UserError(f"Chromium did not finish {what} within {timeout} s") from err
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"Chromium failed {what} (exit {proc.returncode}): {last}")
    return proc


def _page(html: Path) -> str:
    html = Path(html)
    if not html.is_file():
        raise UserError(f"report page {html} does not exist")
    return html.resolve().as_uri()


def screenshot_png(html: Path, width: int = 1280, height: int = 2000, timeout: int = 120) -> bytes:
    """The page rendered at width x height CSS pixels, as PNG bytes."""
    url = _page(html)
    with tempfile.TemporaryDirectory(prefix="vote-shot-") as tmp:
        png = Path(tmp) / "page.png"
        _run([f"--screenshot={png}", f"--window-size={width},{height}", url], f"rendering {html}", timeout)
        if not png.is_file():
            raise UserError(f"Chromium wrote no screenshot of {html}")
        return png.read_bytes()


def dump_dom(html: Path, timeout: int = 120) -> str:
    """The page's DOM after Chromium parsed it: what a reader's browser actually builds."""
    return _run(["--dump-dom", _page(html)], f"loading {html}", timeout).stdout


def fit_size(png: bytes, max_kb: int) -> bytes:
    """Re-encode a PNG with a 256-colour palette when it is over max_kb (tables and plots survive it)."""
    if len(png) <= max_kb * 1024:
        return png
    with Image.open(io.BytesIO(png)) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    if out.tell() > max_kb * 1024:
        raise UserError(f"the screenshot is {out.tell() // 1024} KB even with 256 colours, over --max-kb {max_kb}; "
                        f"lower --height")
    return out.getvalue()


def screenshot(req: ScreenshotRequest) -> ScreenshotResult:
    """Render the page, shrink it under --max-kb when asked, and write it atomically."""
    if req.width < 200 or req.height < 200:
        raise UserError("--width and --height must be at least 200 pixels")
    png = screenshot_png(Path(req.html), req.width, req.height)
    if req.max_kb > 0:
        png = fit_size(png, req.max_kb)
    out = atomic.write_bytes(Path(req.out), png)
    return ScreenshotResult(out, len(png), req.width, req.height)
