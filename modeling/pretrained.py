"""Where a member's starting weights come from: the Hugging Face hub cache (timm's pretrained
weights), a local file, or another registered member; and the file's sha256 for the registry.

The hub file is found through timm's own `pretrained_cfg` (its `hf_hub_id`, revision and file
name) in the cache that `huggingface_hub` reads (`HF_HUB_CACHE`, else `HF_HOME/hub`). It is
resolved, and downloaded when the network is allowed, before any data work, so a firewalled
server fails in seconds with the two ways out instead of after decoding a dataset.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

from core.errors import UserError
from core.hashing import sha256_file
from core.registry import Registry
from modeling.checkpoint import check_file
from modeling.families import family_of
from modeling.timm_lib import get_pretrained_cfg, split_model_name_tag

SAFE_NAME = "model.safetensors"
TORCH_NAME = "pytorch_model.bin"
# A firewall that drops packets would otherwise hold each metadata request for 10 s (the hub's default).
ETAG_TIMEOUT_S = 4.0
FETCH_HINT = "python -m scripts.fetch_weights"


@dataclass(frozen=True)
class WeightsOrigin:
    """The starting point of a member, as the log line and the registry entry state it."""
    kind: str                   # scratch | hub | file | member
    path: Path | None = None    # the file the weights are read from
    sha256: str | None = None   # of that file
    source: str | None = None   # hub repo id, or the member's name

    def describe(self) -> str:
        if self.kind == "scratch":
            return "built from scratch (no pretrained weights asked for)"
        where = {"hub": f"the Hugging Face cache ({self.source})", "file": "a local file",
                 "member": f"registered member '{self.source}'"}[self.kind]
        return f"pretrained from {where}: {self.path} (sha256 {self.sha256})"

    def to_entry(self) -> dict:
        """The registry's `weights_origin` field (the path is informational: it is this machine's)."""
        return {"kind": self.kind, "source": self.source, "file": str(self.path) if self.path else None,
                "sha256": self.sha256}


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub resolves it, read now (tests and jobs may set the variables late)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        home = str(Path(xdg) / "huggingface")
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    values = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(v.strip().upper() in ("1", "ON", "YES", "TRUE") for v in values)


@dataclass(frozen=True)
class HubFile:
    arch: str        # as the user wrote it
    repo_id: str     # e.g. timm/resnet18.a1_in1k
    revision: str | None
    filenames: tuple[str, ...]  # in the order timm tries them: the safetensors alternative first

    def cache_pattern(self, cache: Path) -> Path:
        folder = "models--" + self.repo_id.replace("/", "--")
        return cache / folder / "snapshots" / (self.revision or "<main>") / self.filenames[0]


def hub_file(arch: str) -> HubFile:
    """timm's pretrained_cfg for `arch` (its default tag when none is given) -> the hub repo and file."""
    family, _ = family_of(arch)
    if not family.hub_weights:
        raise UserError(f"model.pretrained=true takes timm weights from the Hugging Face hub; {arch} is a {family.name} "
                        f"model: use its timm twin (e.g. resnet18.tv_in1k) or model.pretrained_file=<local file>")
    try:
        cfg = get_pretrained_cfg(arch, allow_unregistered=False)
    except RuntimeError:  # timm knows the architecture but not this tag
        cfg = None
    if cfg is None or not cfg.hf_hub_id:
        name, tag = split_model_name_tag(arch)
        what = f"tag '{tag}' of {name}" if tag else arch
        raise UserError(f"timm has no Hugging Face hub weights for {what}; pick a tagged name that has them "
                        f"(timm.list_models('{name}*', pretrained=True)) or set model.pretrained_file=<local file>")
    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    if cfg.hf_hub_filename:
        name = cfg.hf_hub_filename
        safe = name.replace("pytorch_model.bin", SAFE_NAME).replace(".bin", ".safetensors")
        filenames = (name,) if name.endswith(".safetensors") else (safe, name)
    else:
        filenames = (SAFE_NAME, TORCH_NAME)
    return HubFile(arch, repo_id, revision or None, filenames)


def cached_hub_file(hub: HubFile, cache: Path | None = None) -> Path | None:
    """The cached weights file, without touching the network; None when it is not in the cache."""
    cache = cache or hub_cache_dir()
    for filename in hub.filenames:
        found = try_to_load_from_cache(hub.repo_id, filename, cache_dir=str(cache), revision=hub.revision)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _not_available(hub: HubFile, cache: Path, why: str) -> UserError:
    return UserError(
        f"pretrained weights for {hub.arch} are not available {why}: looked for {hub.cache_pattern(cache)} "
        f"({hub.repo_id}). Either set model.pretrained_file=<a local .safetensors/.pth>, or warm the cache on a "
        f"machine with internet with `{FETCH_HINT} {hub.arch}` and copy its HF_HOME here (or point HF_HOME at it)")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def unreachable(endpoint: str, timeout: float = ETAG_TIMEOUT_S) -> str | None:
    """Why the hub's host does not answer a TCP connect, or None. huggingface_hub itself retries a dead
    network five times with backoff (~25 s) before giving up; this answers in one attempt. Behind a proxy
    a direct connect proves nothing, so it is skipped there."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        return f"{url.hostname}:{port}: {err.strerror or err.__class__.__name__}"
    return None


def download_hub_file(hub: HubFile, cache: Path) -> Path:
    """Fetch into the cache the first of timm's file choices that the repo has."""
    endpoint = hub_endpoint()
    why = None if hub_offline() else unreachable(endpoint)
    if why:
        raise _not_available(hub, cache, f"(the hub could not be reached: {why}) and not in the cache")
    for filename in hub.filenames:
        try:
            return Path(hf_hub_download(hub.repo_id, filename, revision=hub.revision, cache_dir=str(cache),
                                        etag_timeout=ETAG_TIMEOUT_S, local_files_only=hub_offline(),
                                        endpoint=endpoint))
        except LocalEntryNotFoundError as err:  # the hub could not be reached and the cache has nothing
            raise _not_available(hub, cache, "(the hub could not be reached and the cache has no copy)") from err
        except EntryNotFoundError:  # the repo has no such file: try timm's next choice
            continue
        except Exception as err:  # network, proxy, auth: every way the hub can refuse ends in one line
            raise _not_available(hub, cache, f"(the hub could not be reached: {err.__class__.__name__})") from err
    raise _not_available(hub, cache, f"on the hub under {', '.join(hub.filenames)}")


def resolve_hub(arch: str, allow_download: bool = True, cache: Path | None = None) -> WeightsOrigin:
    """The weights file timm would load for `arch`: from the cache, or downloaded into it when allowed."""
    hub = hub_file(arch)
    cache = cache or hub_cache_dir()
    path = cached_hub_file(hub, cache)
    if path is None:
        if hub_offline() or not allow_download:
            raise _not_available(hub, cache, "offline (HF_HUB_OFFLINE=1) and not in the cache")
        path = download_hub_file(hub, cache)
    return WeightsOrigin("hub", path, sha256_file(path), hub.repo_id)


def resolve_file(path: str) -> WeightsOrigin:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"model.pretrained_file {file} does not exist")
    return WeightsOrigin("file", file.resolve(), sha256_file(file), str(file))


def resolve_member(registry: Registry, name: str, arch: str) -> WeightsOrigin:
    """A registered member's best weights as the start of another (same architecture, hash checked)."""
    entry = registry.get(name)
    if entry.is_imported or entry.weights is None:
        raise UserError(f"model.init_from '{name}' is an imported member (predictions only, no weights to start from)")
    if entry.arch != arch:
        raise UserError(f"model.init_from '{name}' is a {entry.arch} and model.arch is {arch}; "
                        f"set model.arch={entry.arch} to start from it")
    path = check_file(registry.resolve(entry.weights), entry.sha256)
    return WeightsOrigin("member", path, entry.sha256, name)


def plan_start(model_cfg, registry: Registry) -> WeightsOrigin:
    """Resolve the one starting point a member config asks for, before any data is read."""
    asked = model_cfg.starts_asked()
    if len(asked) > 1:
        raise UserError(f"{' and '.join(asked)} are both set; a member starts from one place only")
    if model_cfg.init_from:
        return resolve_member(registry, model_cfg.init_from, model_cfg.arch)
    if model_cfg.pretrained_file:
        return resolve_file(model_cfg.pretrained_file)
    if model_cfg.pretrained:
        return resolve_hub(model_cfg.arch)
    return WeightsOrigin("scratch")
