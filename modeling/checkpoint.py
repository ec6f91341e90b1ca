"""Weights on disk: safetensors only, with a plain JSON sidecar for metadata. Nothing pickled."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from core import atomic
from core.errors import UserError
from core.hashing import sha256_file


def _plain_state(module_or_state) -> dict[str, torch.Tensor]:
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    # Clone so views that share storage (tied or sliced tensors) are saved as independent arrays.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def write_safetensors(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """safetensors' save_file, with its I/O failures as the OSError they are: it wraps them in a
    SafetensorError ("... Os { code: 28, kind: StorageFull ... }"), which core.atomic could not
    turn into its one line (a full disk: free space, then --resume)."""
    try:
        save_file(tensors, str(path), metadata={"format": "pt"})
    except SafetensorError as err:
        code = re.search(r"code: (\d+)", str(err))
        if code is None:
            raise
        number = int(code.group(1))
        raise OSError(number, os.strerror(number)) from err


def save_weights(module_or_state, path: str | Path, meta: dict | None = None) -> str:
    """Write `path` (safetensors) and `path.json` atomically; return the weights' sha256."""
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        write_safetensors(_plain_state(module_or_state), tmp)
    digest = sha256_file(path)
    sidecar = dict(meta or {}, sha256=digest)
    atomic.write_text(sidecar_path(path), json.dumps(sidecar, indent=2, sort_keys=True))
    return digest


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def check_file(path: str | Path, expected_sha256: str | None = None) -> Path:
    """The file exists and, when a hash is given, its bytes are the ones that were registered."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256.lower():
            raise UserError(f"weights file {path} has sha256 {actual[:12]}…, registry says {expected_sha256[:12]}…; "
                            f"refusing to load (the file was changed or replaced after it was registered)")
    return path


def inspect_safetensors(path: str | Path, expected_sha256: str | None = None) -> int:
    """Check hash and header of a safetensors file without loading its tensors; return the tensor count."""
    path = check_file(path, expected_sha256)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return len(list(handle.keys()))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"weights file {path} is not a valid safetensors file") from err


# Where training scripts put the weights inside a checkpoint (timm, Lightning, DeiT/MAE-style, plain torch).
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
# Prefixes added by wrappers: DistributedDataParallel / DataParallel, and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrap_state(state, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: inside {"state_dict": ...} or {"model": ...}, without `module.` prefixes."""
    for _ in range(3):  # a Lightning checkpoint of a DDP model nests more than once
        if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
            inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {path} does not hold a mapping of tensors (nor one under "
                        f"{' or '.join(repr(k) for k in WRAPPER_KEYS)})")
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_state_dict(path: str | Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load safetensors, or a torch file with weights_only=True; a pickle that runs code is refused.

    The hash is checked before a single byte is parsed, so a swapped file never reaches a parser.
    """
    path = check_file(path, expected_sha256)
    if path.suffix == ".safetensors":
        try:
            return unwrap_state(load_file(str(path)), path)
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"weights file {path} is not a valid safetensors file") from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... for unsafe or broken files
        raise UserError(f"weights file {path} was refused: it is not a plain tensor file that loads with weights_only=True") from err
    return unwrap_state(state, path)
