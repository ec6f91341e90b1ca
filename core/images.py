"""Decode any image file a user brings into a plain 8-bit RGB picture."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from core.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
RESIZE_INTERPOLATION = "bilinear"  # what load_resized uses; recorded in registry entries


def is_image_name(path: Path) -> bool:
    """Images by extension in any letter case; dot-files (e.g. macOS '._x.jpg') are not images."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale the full range to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        arr8 = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    return img.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Open, apply EXIF orientation and convert to RGB; a bad file raises UserError naming it."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
            return _to_rgb(img)
    except FileNotFoundError as err:
        raise UserError(f"image {path} does not exist") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"image {path} cannot be decoded ({err.__class__.__name__}: {err})") from err


def load_resized(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Decode and resize to (height, width); returns uint8 HWC."""
    img = load_rgb(path)
    height, width = size
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)
