"""Warm the Hugging Face cache with timm's pretrained weights, on a machine with internet.

The cache folder it fills is the one a firewalled server then reads with HF_HUB_OFFLINE=1
(copy it there and point HF_HOME or HF_HUB_CACHE at it)."""
from __future__ import annotations

from pathlib import Path

from modeling.models import check_arch
from modeling.pretrained import WeightsOrigin, hub_cache_dir, resolve_hub


def fetch_weights(archs: list[str], cache: str | None = None) -> tuple[Path, list[tuple[str, WeightsOrigin]]]:
    """Each arch's hub file, in the cache (downloaded when missing); every name is checked before any download."""
    for arch in archs:
        check_arch(arch)
    folder = Path(cache).expanduser().resolve() if cache else hub_cache_dir()
    return folder, [(arch, resolve_hub(arch, cache=folder)) for arch in archs]
