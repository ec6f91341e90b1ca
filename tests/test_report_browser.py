"""report.html opened in a real browser (headless Chromium): it renders, it is not blank, and
every section a user navigates to is in the DOM the browser builds.

Without Chromium the tests are skipped with the reason; CI sets VOTE_REQUIRE_BROWSER=1
(and installs Chromium in .ci/run), which turns a missing browser into a failure.
"""
from __future__ import annotations

import io
import os
import re

import pytest
from PIL import Image

from helpers import run_script
from jobs.screenshot import dump_dom, find_chromium, screenshot_png
from report.builder import build_report
from report_fixture import synthetic_inputs

SECTIONS = ["scores", "compare", "frontier", "diversity", "confusion", "learning-curves", "gallery", "classification-reports"]


@pytest.fixture(scope="module")
def chromium():
    found = find_chromium()
    if found is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium); the browser test cannot run"
        if os.environ.get("VOTE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory, digits_root):
    work = tmp_path_factory.mktemp("browser")
    return build_report(synthetic_inputs(digits_root, work), work / "reports" / "synthetic")


def test_report_renders_as_a_picture_not_a_blank_page(chromium, report):
    png = screenshot_png(report.html, 1280, 2000)
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (1280, 2000)
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        # A blank or failed page is one or two flat colours; text, tables and plots make thousands.
        assert colours is not None and len(colours) > 500
        most_common = max(count for count, _ in colours)
        assert most_common < 0.9 * rgb.width * rgb.height
        # The dark header band is drawn: the page's CSS was applied.
        assert sum(rgb.getpixel((640, 20))) < 200


def test_browser_dom_has_every_section_and_only_embedded_images(chromium, report):
    dom = dump_dom(report.html)
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert "Members versus ensembles (honest)" in dom and "Misclassified validation images" in dom
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', dom)
    n_png = len(list(report.folder.glob("*.png")))
    assert len(sources) == n_png >= 6
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    # Nothing is fetched from anywhere: the file works offline.
    assert not re.search(r'(src|href)="(https?:)?//', dom)


def test_screenshot_command_writes_a_png_under_the_size_limit(chromium, report, tmp_path):
    out = tmp_path / "shot.png"
    proc = run_script("screenshot_report", str(report.html), "--out", str(out), "--height", "1200", "--max-kb", "300")
    assert str(out) in proc.stdout
    assert out.stat().st_size <= 300 * 1024
    with Image.open(out) as img:
        assert img.size == (1280, 1200)


def test_screenshot_of_a_missing_page_is_one_line(tmp_path):
    proc = run_script("screenshot_report", str(tmp_path / "nope.html"), "--out", str(tmp_path / "x.png"), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: report page {tmp_path / 'nope.html'} does not exist"]
    assert not (tmp_path / "x.png").exists()


def test_a_window_under_200_pixels_is_refused_before_any_browser_starts(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html></html>")
    proc = run_script("screenshot_report", str(page), "--out", str(tmp_path / "x.png"), "--width", "100", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --width and --height must be at least 200 pixels"]
    assert not (tmp_path / "x.png").exists()
