"""A contact sheet of near-duplicate pairs: one row per pair, side by side, so a person can judge the threshold."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from core import atomic
from core.images import BadImageError, load_rgb

THUMB = 160     # pixels per picture side
CAPTION = 18    # pixels of text under each row


def _thumb(path: str) -> Image.Image:
    try:
        img = load_rgb(path)
    except BadImageError:
        return Image.new("RGB", (THUMB, THUMB), (200, 0, 0))
    img.thumbnail((THUMB, THUMB))
    tile = Image.new("RGB", (THUMB, THUMB), (255, 255, 255))
    tile.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
    return tile


def write_contact_sheet(pairs: list[tuple[str, str, str]], out: Path, title: str) -> Path:
    """pairs: (path a, path b, caption); a PNG with one row per pair, written atomically."""
    width, row = 2 * THUMB + 12, THUMB + CAPTION + 6
    sheet = Image.new("RGB", (width, 24 + row * max(1, len(pairs))), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), title, fill=(0, 0, 0))
    for k, (a, b, caption) in enumerate(pairs):
        top = 24 + k * row
        sheet.paste(_thumb(a), (4, top))
        sheet.paste(_thumb(b), (8 + THUMB, top))
        draw.text((4, top + THUMB + 2), caption[:60], fill=(0, 0, 0))
    with atomic.atomic_path(Path(out)) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(out)
