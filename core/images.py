"""Decode any image file a user brings into a plain 8-bit RGB picture.

Phone photos carry their rotation in EXIF, scans arrive as CMYK, screenshots as
RGBA or palette PNGs and lab cameras as 16-bit greyscale; every one of them
comes out of `load_rgb` as upright 8-bit RGB, and a file that cannot be decoded
raises a UserError that names it and says what is wrong with it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
RESIZE_INTERPOLATION = "bilinear"  # what load_resized uses; recorded in registry entries
EXIF_ORIENTATION = 0x0112
TURNED = (5, 6, 7, 8)  # orientations whose upright picture swaps width and height
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def is_image_name(path: Path) -> bool:
    """Images by extension in any letter case; dot-files (e.g. macOS '._x.jpg') are not images."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _orientation(img: Image.Image) -> int:
    # A damaged EXIF block must not cost the user the picture itself: treat it as upright.
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
        return int(value) if value in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on malformed EXIF
        return 1


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    if img.mode in _SIXTEEN_BIT:
        peak = 65535.0
    else:
        # "I" and "F" carry no declared depth; a maximum above 255 can only be 16-bit data.
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
    arr8 = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr8, mode="L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparent areas become white, as on a page."""
    if img.mode in _SIXTEEN_BIT or img.mode in ("I", "F"):
        img = _scale_to_8bit(img)
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


class BadImageError(UserError):
    """A file that cannot be decoded; `reason` is short enough to list many of them on one line."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"image {path} cannot be decoded: {reason}")
        self.path = Path(path)
        self.reason = reason


def explain_failure(path: Path, err: BaseException) -> str:
    """A short, user-facing reason why `path` could not be decoded."""
    if isinstance(err, FileNotFoundError):
        return "file does not exist"
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError:
        pass
    if isinstance(err, UnidentifiedImageError):
        return "not an image Pillow can identify (corrupt or wrong format)"
    text = str(err)
    if "truncated" in text.lower():
        return "truncated file"
    if "broken data stream" in text:
        return "corrupt image data"
    return f"{err.__class__.__name__}: {text}" if text else err.__class__.__name__


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def load_rgb(path: str | Path) -> Image.Image:
    """Open, apply EXIF orientation and convert to RGB; a bad file raises BadImageError naming it."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(_upright(img))
    except _DECODE_ERRORS as err:
        raise BadImageError(path, explain_failure(path, err)) from err


def _upright(img: Image.Image) -> Image.Image:
    """Pillow's own EXIF transposition; a damaged EXIF block must not cost the user the picture itself."""
    if _orientation(img) == 1:
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on malformed EXIF
        return img


def probe(path: str | Path) -> tuple[int, int]:
    """Decode the whole file cheaply and return its upright (width, height); BadImageError if it is bad.

    JPEGs are decoded at 1/8 scale (Pillow's draft mode): the decoder still reads
    every byte, so truncation and corrupt data are caught, at a fraction of the cost.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = _orientation(img)
            if img.format == "JPEG":
                img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
            img.load()
    except _DECODE_ERRORS as err:
        raise BadImageError(path, explain_failure(path, err)) from err
    return (height, width) if orientation in TURNED else (width, height)


def load_resized(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Decode and resize to (height, width); returns uint8 HWC."""
    img = load_rgb(path)
    height, width = size
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)
