"""Upper bounds on sizes a user or a hand-edited file can ask for.

An input of 100000 x 100000 pixels is a typo, not a model: decoding one image at that size
takes 30 GB, and the image cache for a test list would be terabytes. Bounding it where the
size is read (the config, the registry) stops it before any memory or disk is claimed.
"""
from __future__ import annotations

MAX_IMAGE_SIDE = 4096  # pixels per side of a model input; large vision models use <= 1024
# Differing bits of two 64-bit perceptual hashes (imagedata/duplicates.py): above this a phash joins unrelated
# pictures, and the search's chunks would get too short.
MAX_NEAR_DUPLICATE_DISTANCE = 16


def image_size_problem(size: object) -> str | None:
    """Why `size` is not [height, width] of positive integers within the bound, or None."""
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        return "must be two positive integers [height, width]"
    if max(size) > MAX_IMAGE_SIDE:
        return f"is {size}: at most {MAX_IMAGE_SIDE} pixels per side"
    return None
