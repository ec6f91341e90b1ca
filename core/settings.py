"""Machine-local settings: where data and outputs live, and the wandb entity.

They come from environment variables or an untracked `local.yaml` at the repo
root, so one tracked config works on every machine and OS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core import files
from core.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV = {"data_root": "VOTE_DATA_ROOT", "output_root": "VOTE_OUTPUT_ROOT", "wandb_entity": "VOTE_WANDB_ENTITY"}


@dataclass(frozen=True)
class Settings:
    data_root: Path
    output_root: Path
    wandb_entity: str | None = None

    @property
    def registry(self) -> Path:
        return self.output_root / "registry.yaml"

    @property
    def runs(self) -> Path:
        return self.output_root / "runs"

    @property
    def predictions(self) -> Path:
        return self.output_root / "cache" / "predictions"

    @property
    def image_cache(self) -> Path:
        return self.output_root / "cache" / "images"

    @property
    def splits(self) -> Path:
        return self.output_root / "splits"


def _local_file() -> dict:
    path = Path(os.environ.get("VOTE_LOCAL_CONFIG", REPO_ROOT / "local.yaml"))
    if not path.exists():
        return {}
    data = files.read_yaml(path, "local settings file", files.MiB) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a mapping of settings")
    unknown = sorted(set(data) - set(ENV))
    if unknown:
        raise UserError(f"{path}: unknown setting '{unknown[0]}' (known: {', '.join(ENV)})")
    return data


def _folder(value: object, key: str) -> Path | None:
    """A folder setting as a Path, or one line naming the setting: `output_root: 12345` is a number, not a
    path, and a root that is an existing file would fail later, deep inside the first write."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UserError(f"setting {key} ({ENV[key]} or local.yaml) must be a folder path, not "
                        f"{type(value).__name__} {value!r}")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"setting {key} ({ENV[key]} or local.yaml) is {path}, which is a file, not a folder")
    return path


def load_settings() -> Settings:
    local = _local_file()
    values = {key: os.environ.get(var) or local.get(key) for key, var in ENV.items()}
    output_root = _folder(values["output_root"], "output_root") or Path.cwd()
    data_root = _folder(values["data_root"], "data_root") or output_root / "data"
    return Settings(data_root=data_root, output_root=output_root, wandb_entity=values["wandb_entity"])
