"""Render a report.html to a PNG with headless Chromium, exactly as a browser shows it.

    python -m scripts.screenshot_report reports/NAME/report.html --out docs/report-screenshot.png
                                        [--width 1280] [--height 2000] [--max-kb 500]

Chromium is found on PATH (chromium, chromium-browser, google-chrome) or named by
VOTE_CHROMIUM. On Debian: `apt-get install chromium`.
"""
from __future__ import annotations

import argparse

from core.errors import cli_entry
from jobs.screenshot import ScreenshotRequest, screenshot


@cli_entry
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.screenshot_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", help="a report.html")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--width", type=int, default=1280, help="window width in CSS pixels (default 1280)")
    parser.add_argument("--height", type=int, default=2000, help="window height in CSS pixels (default 2000)")
    parser.add_argument("--max-kb", type=int, default=0, help="re-encode with 256 colours above this size (0: never)")
    args = parser.parse_args(argv)
    result = screenshot(ScreenshotRequest(args.html, args.out, args.width, args.height, args.max_kb))
    print(result.line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
