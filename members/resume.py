"""Everything a run needs to continue where it stopped, saved beside `last.safetensors`.

`last_state.safetensors` holds the tensors (optimizer moments, RNG states, the best
epoch's validation logits); `last_state.json` holds the rest (epoch and step,
scheduler, GradScaler, early stopping, history, Python/NumPy RNG) and the sha256
of the weights files it belongs with. The JSON is written last, so it is the
commit point: a run killed while saving keeps the previous consistent state.
Nothing is pickled.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from core import atomic
from core.config import MemberConfig, load_config, parse_overrides
from core.errors import UserError
from core.hashing import sha256_file
from members.run_folder import INCOMPLETE
from modeling.checkpoint import load_state_dict, write_safetensors

FORMAT = 1
STATE_JSON = "last_state.json"
STATE_TENSORS = "last_state.safetensors"
# Keys that define what the saved weights and optimizer state are; changing them on resume breaks the run.
FROZEN = ("name", "ensemble", "data.", "model.", "train.batch_size", "train.seed", "train.optimizer", "train.ema")


@dataclass
class TrainingState:
    epochs_done: int                    # whole epochs finished
    step_in_epoch: int = 0              # batches already trained in epoch epochs_done + 1
    global_step: int = 0
    partial_loss: list[float] = field(default_factory=lambda: [0.0, 0.0])  # loss sum and rows so far this epoch
    optimizer: dict = field(default_factory=dict)
    scheduler: dict = field(default_factory=dict)
    scaler: dict = field(default_factory=dict)
    stopper: dict = field(default_factory=dict)
    ema_stopper: dict | None = None
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    best_epoch: int | None = None
    best_loss: float | None = None
    best_logits: torch.Tensor | None = None
    ema_best: dict = field(default_factory=dict)
    ema_best_epoch: int | None = None
    rng: dict = field(default_factory=dict)
    wandb_run: str | None = None
    weights: dict = field(default_factory=dict)  # file name -> sha256 of the weights saved with this state
    model_state: dict | None = None     # read from last.safetensors on load; never written to the JSON
    ema_state: dict | None = None       # read from last_ema.safetensors on load


# --- optimizer and RNG state as tensors + plain values ------------------------------------------

def split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{pid}/{key}"] = value
            else:
                plain.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "state": plain}


def join_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, pid, key = name.split("/", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, entries in plain["state"].items():
        state.setdefault(int(pid), {}).update(entries)
    # JSON has no tuples; optimizers compare and unpack betas as a tuple.
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in plain["param_groups"]]
    return {"state": state, "param_groups": groups}


def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    plain = {"python": [version, list(internal), gauss],
             "numpy": {**np_state, "state": {"key": np_state["state"]["key"].tolist(),
                                             "pos": int(np_state["state"]["pos"])}}}
    return tensors, plain


def restore_rng(tensors: dict[str, torch.Tensor], plain: dict) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda/"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(plain["numpy"])
    np_state["state"] = {"key": np.asarray(np_state["state"]["key"], dtype=np.uint32),
                         "pos": np_state["state"]["pos"]}
    np.random.set_state(np_state)


# --- files ---------------------------------------------------------------------------------------

def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_state(run_dir: Path, state: TrainingState) -> None:
    opt_tensors, opt_plain = split_optimizer(state.optimizer)
    rng_tensors, rng_plain = capture_rng() if not state.rng else (state.rng["tensors"], state.rng["plain"])
    tensors = {**opt_tensors, **rng_tensors}
    if state.best_logits is not None:
        tensors["best/logits"] = state.best_logits
    with atomic.atomic_path(run_dir / STATE_TENSORS) as tmp:
        write_safetensors(_cpu(tensors), tmp)
    # Not dataclasses.asdict: it would deep-copy every optimizer tensor just to drop it.
    plain = {f.name: getattr(state, f.name) for f in fields(state)}
    plain |= {"format": FORMAT, "optimizer": opt_plain, "rng": rng_plain, "best_logits": None,
              "model_state": None, "ema_state": None,
              "tensors_sha256": sha256_file(run_dir / STATE_TENSORS)}
    atomic.write_text(run_dir / STATE_JSON, json.dumps(plain, indent=1))


def load_state(run_dir: Path) -> TrainingState:
    json_path, tensor_path = run_dir / STATE_JSON, run_dir / STATE_TENSORS
    if not json_path.is_file() and not tensor_path.is_file():
        # The usual cause is a run stopped during its first epoch, before anything was saved: say so,
        # rather than suggesting the run came from another version.
        raise UserError(f"run folder {run_dir} has no resumable state yet: it stopped before its first checkpoint "
                        f"({STATE_JSON} is saved after each epoch and on a clean stop); start the member again "
                        f"without --resume")
    if not json_path.is_file() or not tensor_path.is_file():
        missing = json_path if not json_path.is_file() else tensor_path
        raise UserError(f"run folder {run_dir} has no resumable state: {missing.name} is missing (the run was "
                        f"stopped while its first checkpoint was being saved); start the member again without --resume")
    try:
        plain = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{json_path} is not valid JSON (line {err.lineno})") from err
    if plain.get("format") != FORMAT:
        raise UserError(f"{json_path} has format {plain.get('format')!r}; this version reads format {FORMAT}")
    _check_sha(tensor_path, plain["tensors_sha256"])
    for name, digest in plain["weights"].items():
        _check_sha(run_dir / name, digest)
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{tensor_path} is not a valid safetensors file") from err
    fields = {k: v for k, v in plain.items() if k in TrainingState.__dataclass_fields__}
    state = TrainingState(**fields)
    state.optimizer = join_optimizer(tensors, plain["optimizer"])
    state.rng = {"tensors": {k: v for k, v in tensors.items() if k.startswith("rng/")}, "plain": plain["rng"]}
    state.best_logits = tensors.get("best/logits")
    state.model_state = load_state_dict(run_dir / "last.safetensors")
    if (run_dir / "last_ema.safetensors").is_file():
        state.ema_state = load_state_dict(run_dir / "last_ema.safetensors")
    return state


def _check_sha(path: Path, expected: str) -> None:
    if not path.is_file():
        raise UserError(f"cannot resume: {path} is missing")
    if sha256_file(path) != expected:
        raise UserError(f"cannot resume: {path} does not match {STATE_JSON} (it was changed or only partly "
                        "saved); the run cannot continue exactly")


def _changed_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        full = f"{prefix}{key}"
        keys += _changed_keys(value, f"{full}.") if isinstance(value, dict) else [full]
    return keys


def resume_config(run_dir: str | Path, overrides: list[str] | None) -> tuple[Path, MemberConfig]:
    """The run's own merged config plus the overrides that are safe mid-run (e.g. train.epochs)."""
    run_dir = Path(run_dir).expanduser().resolve()
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"--resume {run_dir}: not a run folder (no config.yaml)")
    if not run_dir.name.endswith(INCOMPLETE):
        raise UserError(f"--resume {run_dir}: this run already finished; train a new member instead")
    for key in _changed_keys(parse_overrides(overrides or [])):
        if any(key == f or (f.endswith(".") and key.startswith(f)) for f in FROZEN):
            raise UserError(f"--resume: '{key}' cannot change in the middle of a run (it shapes the saved "
                            "weights or optimizer state); start a new run instead")
    return run_dir, load_config(run_dir / "config.yaml", overrides)
