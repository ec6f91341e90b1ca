"""Photo-like pictures with planted copies: what real scraped collections hold, made in milliseconds.

A scene is a gradient with a dozen random ellipses and polygons, blurred and lightly noised, so it
compresses like a photo and its perceptual hash is as individual as a photo's. Copies are planted
the ways they arrive in real data: the same bytes, re-encoded as JPEG, resized, cropped a little;
a mirrored picture is planted as a control that must NOT count as a copy.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("exact", "jpeg", "resized", "crop", "flipped")


def scene(rng: np.random.Generator, width: int = 128, height: int = 96) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x / width + np.sin(angle) * y / height)[..., None]
    base = ramp * rng.uniform(0, 255, 3) + (1 - ramp) * rng.uniform(0, 255, 3)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0, side = rng.uniform(-0.2 * width, width), rng.uniform(-0.2 * height, height), rng.uniform(0.1, 0.45) * width
        colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + side, y0 + side * rng.uniform(0.4, 1.6)], fill=colour)
        else:
            draw.polygon([(x0 + rng.uniform(0, side), y0 + rng.uniform(0, side)) for _ in range(int(rng.integers(3, 6)))],
                         fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.0))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 5, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def copy_of(original: Path, kind: str, dest: Path) -> Path:
    """Write a copy of `original` as `kind` (see KINDS) to `dest` (its suffix picks the format)."""
    if kind == "exact":
        dest.write_bytes(original.read_bytes())
        return dest
    with Image.open(original) as img:
        img = img.convert("RGB")
    w, h = img.size
    if kind == "jpeg":
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=60)
        img = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    elif kind == "resized":
        img = img.resize((w // 2, h // 2), Image.Resampling.BILINEAR)
    elif kind == "crop":  # 3% off every side
        dx, dy = round(w * 0.03), round(h * 0.03)
        img = img.crop((dx, dy, w - dx, h - dy))
    elif kind == "flipped":
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    else:
        raise ValueError(kind)
    img.save(dest, format="JPEG" if dest.suffix.lower() in (".jpg", ".jpeg") else "PNG", quality=92)
    return dest
