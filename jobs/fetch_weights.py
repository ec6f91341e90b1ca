"""Warm the Hugging Face cache with timm's pretrained weights, on a machine with internet.

The cache folder it fills is the one a firewalled server then reads with HF_HUB_OFFLINE=1
(copy it there and point HF_HOME or HF_HUB_CACHE at it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modeling.models import check_arch
from modeling.pretrained import WeightsOrigin, hub_cache_dir, resolve_hub


@dataclass
class FetchRequest:
    archs: list[str]            # timm architectures, optionally tagged (resnet18.tv_in1k)
    cache: str | None = None    # hub cache folder to fill (default: HF_HUB_CACHE, else HF_HOME/hub)


@dataclass
class FetchResult:
    folder: Path                                  # the hub cache folder that was filled
    fetched: list[tuple[str, WeightsOrigin]]      # each arch and where its file lies

    @property
    def lines(self) -> list[str]:
        """Each file, then how the server reads the cache (HF_HOME when the folder is HF_HOME/hub)."""
        folder = self.folder
        home = f"HF_HOME={folder.parent}" if folder.name == "hub" else f"HF_HUB_CACHE={folder}"
        return [*(f"{arch}: {origin.source} -> {origin.path} (sha256 {origin.sha256})" for arch, origin in self.fetched),
                f"cache: {folder}. On the server: copy {folder.parent if folder.name == 'hub' else folder} there, "
                f"then train with {home} HF_HUB_OFFLINE=1 and model.pretrained=true"]


def fetch_weights(req: FetchRequest) -> FetchResult:
    """Each arch's hub file, in the cache (downloaded when missing); every name is checked before any download."""
    for arch in req.archs:
        check_arch(arch)
    folder = Path(req.cache).expanduser().resolve() if req.cache else hub_cache_dir()
    return FetchResult(folder, [(arch, resolve_hub(arch, cache=folder)) for arch in req.archs])
