"""What a run folder records beside its weights and resumable state (members/checkpoints.py).

Before training: `config.yaml` (the merged config), `skipped_images.csv` (data.on_bad_image=skip),
`distilled_from.yaml` (a student's teacher) and `pseudo.yaml` (a pseudo-labelled run's set).
After training: `val_probs.npz`, `history.csv`, `curves.png` and `confusion.png` of the best epoch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core import atomic, files
from core.config import MemberConfig, to_dict
from core.errors import UserError
from members import artifacts
from members.run_state import TrainResult

DISTILLED_FROM = "distilled_from.yaml"  # in a student's run folder: its registry entry's `distilled_from`
PSEUDO = "pseudo.yaml"  # in a pseudo-labelled run's folder: its registry entry's `pseudo` (checked on resume)


def write_config(config: MemberConfig, run_dir: Path | None, skipped: pd.DataFrame | None,
                 distilled_from: dict | None) -> dict:
    """The merged config (and a student's provenance) in the run folder, before training starts."""
    config_dict = to_dict(config)
    if run_dir is not None:
        if config.data.on_bad_image == "skip":
            atomic.write_text(run_dir / "skipped_images.csv", skipped.to_csv(index=False))
        atomic.write_text(run_dir / "config.yaml", files.dump_yaml(config_dict, sort_keys=False))
        if distilled_from is not None:  # marks the run as a student: the report and --resume read it
            atomic.write_text(run_dir / DISTILLED_FROM, files.dump_yaml(distilled_from, sort_keys=False))
    return config_dict


def record_pseudo(run_dir: Path, provenance: dict, resumed: bool) -> None:
    """The run's pseudo-label set, recorded; a resumed run must find exactly the set it started with."""
    path = run_dir / PSEUDO
    if resumed and path.is_file():
        before = files.read_yaml(path, "pseudo-label record") or {}
        if before.get("sha256") != provenance["sha256"] or before.get("rows") != provenance["rows"]:
            raise UserError(f"--resume {run_dir}: pseudo-label set '{provenance['name']}' changed since this run "
                            f"started (sha256 {str(before.get('sha256'))[:12]}… vs {provenance['sha256'][:12]}…); "
                            f"start a new run")
    atomic.write_text(path, files.dump_yaml(provenance, sort_keys=False))


def write_results(config: MemberConfig, run_dir: Path, val_ids: list[str], val_labels: np.ndarray,
                  classes: list[str], result: TrainResult) -> None:
    """The best epoch's validation probabilities, pictures of the run, and its history."""
    best = result.best_outputs
    val_labels = val_labels[: len(best.probs)]
    artifacts.save_probs(run_dir / "val_probs.npz", val_ids[: len(best.probs)], val_labels, best.probs, best.logits)
    artifacts.plot_curves(result.history, run_dir / "curves.png", f"{config.name} ({config.model.arch})")
    artifacts.plot_confusion(val_labels, best.probs.argmax(1), classes, run_dir / "confusion.png",
                             f"{config.name}: validation, best epoch {result.best_epoch}")
    atomic.write_text(run_dir / "history.csv", pd.DataFrame(result.history).to_csv(index=False))
