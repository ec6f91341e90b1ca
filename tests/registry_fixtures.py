"""Registry entries for tests: schema-valid ones, and ones backed by real files on disk."""
from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

SPLIT_SHA = hashlib.sha256(b"split").hexdigest()


def entry(name: str, **changes) -> dict:
    """A schema-valid entry whose files need not exist (for tests of the registry file itself)."""
    base = {
        "name": name,
        "arch": "resnet18",
        "classes": ["0", "1", "2"],
        "weights": f"runs/2026-11-27/000000_{name}_resnet18_f1-0.5000/best.safetensors",
        "sha256": hashlib.sha256(name.encode()).hexdigest(),
        "input": {"size": [16, 16], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"},
        "split": {"name": "holdout-s42", "sha256": SPLIT_SHA, "fold": 0, "n_folds": 5},
        "metrics": {"val_f1_macro": 0.5, "val_acc": 0.5, "val_loss": 1.0, "best_epoch": 1},
        "config": f"runs/2026-11-27/000000_{name}_resnet18_f1-0.5000/config.yaml",
        "created": "2026-11-27T00:00:00Z",
    }
    base.update(changes)
    return base


def write_registry(path: Path, entries: list) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "members": entries}, sort_keys=False), encoding="utf-8")
    return path


def real_member(out: Path, name: str) -> dict:
    """An entry whose weights, config, run folder and split file exist, as training would leave them."""
    import torch

    from core.config import MemberConfig, to_dict
    from core.hashing import sha256_file
    from modeling.checkpoint import save_weights

    run = out / "runs" / "2026-11-27" / f"000000_{name}_resnet18_f1-0.5000"
    run.mkdir(parents=True)
    sha = save_weights(torch.nn.Linear(4, 3), run / "best.safetensors")
    config = MemberConfig(name=name)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
    (run / "val_probs.npz").write_bytes(b"")
    split = out / "splits" / f"{config.data.split.name}.csv"
    if not split.exists():
        split.parent.mkdir(parents=True, exist_ok=True)
        split.write_text("id,group,label,fold\na,a,0,0\nb,b,1,1\n", encoding="utf-8")
    rel = run.relative_to(out).as_posix()
    return entry(name, weights=f"{rel}/best.safetensors", sha256=sha, config=f"{rel}/config.yaml", run=rel,
                 val_probs=f"{rel}/val_probs.npz",
                 split={"name": config.data.split.name, "sha256": sha256_file(split), "fold": 0, "n_folds": 5})
