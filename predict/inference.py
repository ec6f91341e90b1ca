"""Batched inference: every member runs on each decoded batch, so an image is decoded once."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from members.data.image_cache import decoded_images
from members.trainer import Normalize, autocast_dtype


def _views(batch: torch.Tensor, tta: bool) -> list[torch.Tensor]:
    return [batch, torch.flip(batch, dims=[3])] if tta else [batch]


@torch.no_grad()
def run_members(models: list[torch.nn.Module], normalizers: list[Normalize], images: np.ndarray,
                device: torch.device, batch_size: int = 256, tta: bool = False,
                desc: str = "predict") -> list[np.ndarray]:
    """Return one float32 [N, C] logit array per member (TTA views merged on probabilities)."""
    dtype = autocast_dtype(device)
    nets = [m.to(device).eval() for m in models]
    norms = [n.to(device) for n in normalizers]
    if device.type == "cuda":
        nets = [m.to(memory_format=torch.channels_last) for m in nets]
    outputs: list[list[np.ndarray]] = [[] for _ in nets]
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        batch = torch.from_numpy(np.array(images[start:start + batch_size])).permute(0, 3, 1, 2)
        batch = batch.to(device, non_blocking=True)
        for i, (net, norm) in enumerate(zip(nets, norms)):
            probs = None
            for view in _views(batch, tta):
                x = norm(view)
                if device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    p = torch.softmax(net(x).float(), dim=1)
                probs = p if probs is None else probs + p
            probs = probs / len(_views(batch, tta))
            # Store log-probabilities as "logits": exact for one view, the natural choice after TTA averaging.
            outputs[i].append(torch.log(probs.clamp_min(1e-12)).cpu().numpy().astype(np.float32))
    return [np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32) for chunks in outputs]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def predict_paths(model, normalize: Normalize, paths: list[str], size: tuple[int, int], device: torch.device,
                  cache_dir: Path, tta: bool = False) -> np.ndarray:
    images = decoded_images(paths, size, cache_dir, desc="decode")
    return softmax(run_members([model], [normalize], images, device, tta=tta)[0])
