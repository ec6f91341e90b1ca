"""Where decoded batches come from: the uint8 memmap cache, or JPEGs decoded on the GPU.

Both hand out uint8 NCHW tensors on the inference device for a row range, so the runner
can fetch the next range while the members work and re-fetch a range after halving.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from core.errors import UserError
from core.images import load_resized
from imagedata.image_cache import decoded_images
from predict.cache import DECODERS
from predict.resize import resize_batch

log = logging.getLogger("predict")
JPEG_MAGIC = b"\xff\xd8\xff"


class MemmapBatches:
    """Rows of a decoded [N, H, W, 3] uint8 array (normally the decode-once memmap)."""

    def __init__(self, images: np.ndarray, device: torch.device):
        self.images = images
        self.device = device

    def __len__(self) -> int:
        return len(self.images)

    def fetch(self, start: int, stop: int) -> torch.Tensor:
        batch = torch.from_numpy(np.array(self.images[start:stop])).permute(0, 3, 1, 2)  # a writable copy
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(self.device, non_blocking=True)


class NvjpegBatches:
    """JPEGs decoded by nvjpeg on the GPU, other formats (or JPEGs it refuses) through PIL.

    Each batch is decoded once, resized on the device to the decode size, and shared by all
    members. `make_batches` offers it only with CUDA. On a CPU device torchvision decodes with
    libjpeg instead, which is how the tests exercise this class; nvjpeg itself runs on GPU
    machines alone.
    """

    def __init__(self, paths: list[str], size: tuple[int, int], device: torch.device, threads: int = 8):
        self.paths = list(paths)
        self.size = tuple(size)
        self.device = device
        self.pool = ThreadPoolExecutor(threads)
        self._warned = False

    def __len__(self) -> int:
        return len(self.paths)

    def _pil(self, path: str) -> torch.Tensor:
        return torch.from_numpy(np.array(load_resized(path, self.size))).permute(2, 0, 1).to(self.device)

    def _gpu(self, data: list[torch.Tensor]) -> list[torch.Tensor] | None:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device, apply_exif_orientation=True)
        except RuntimeError as err:  # CMYK, progressive corner cases, broken files: let PIL decide
            if not self._warned:
                log.warning("nvjpeg refused a batch (%s); decoding it with PIL", str(err).splitlines()[0])
                self._warned = True
            return None
        return [resize_batch(img[None], self.size).to(torch.uint8)[0] for img in images]

    def fetch(self, start: int, stop: int) -> torch.Tensor:
        from torchvision.io import read_file

        paths = self.paths[start:stop]
        raw = list(self.pool.map(lambda p: read_file(str(p)), paths))
        jpeg = [i for i, data in enumerate(raw) if bytes(data[:3].tolist()) == JPEG_MAGIC]
        out = torch.empty((len(paths), 3, *self.size), dtype=torch.uint8, device=self.device)
        decoded = self._gpu([raw[i] for i in jpeg]) if jpeg else None
        done = set()
        if decoded is not None:
            for i, image in zip(jpeg, decoded):
                out[i] = image
                done.add(i)
        rest = [i for i in range(len(paths)) if i not in done]
        for i, image in zip(rest, self.pool.map(lambda i: self._pil(paths[i]), rest)):
            out[i] = image
        return out


def make_batches(paths: list[str], size: tuple[int, int], cache_dir: Path, device: torch.device,
                 decoder: str = "pil", desc: str = "decode"):
    """The decode-once source for one list of rows at one size."""
    if decoder not in DECODERS:
        raise UserError(f"unknown decoder '{decoder}' (known: {', '.join(DECODERS)})")
    if decoder == "nvjpeg":
        if device.type != "cuda":
            raise UserError("--decoder nvjpeg needs a CUDA device; use --decoder pil on this machine")
        return NvjpegBatches(paths, size, device)
    images = decoded_images(paths, size, cache_dir, desc=desc) if paths else np.zeros((0, *size, 3), np.uint8)
    return MemmapBatches(images, device)
