"""The plan's state on disk: one small JSON per member, written atomically by whoever moves it on.

`<output root>/plan-state/<plan>/` holds `<member>.json` (state, attempt, device, node, times, run folder,
error), `<member>.yaml` (the derived config the task trains), `<member>.log` (the member's output) and
`<member>.lock`. The live table and `scripts.plan status` are both read from these files and from the
run folders (`history.csv`, or `last_state.json` while a run is under way), so status works from any
shell, during a run or after it, and after the driver died.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core import atomic

STATES = ("waiting", "queued", "running", "predicting", "done", "skipped", "failed", "stopped")
FINISHED = ("done", "skipped")


@dataclass(frozen=True)
class PlanFolder:
    root: Path   # <output root>/plan-state/<plan name>

    @classmethod
    def of(cls, output_root: Path, plan_name: str) -> PlanFolder:
        return cls(Path(output_root) / "plan-state" / plan_name)

    def state(self, member: str) -> Path:
        return self.root / f"{member}.json"

    def config(self, member: str) -> Path:
        return self.root / f"{member}.yaml"

    def log(self, member: str) -> Path:
        return self.root / f"{member}.log"

    def lock(self, member: str) -> Path:
        return self.root / f"{member}.lock"

    def nodes(self) -> Path:
        return self.root / "nodes"

    def stop_request(self) -> Path:
        """Written by a driver told to stop; every member task polls it (launch/member_task._child)."""
        return self.root / "stop-requested"


def read_state(folder: PlanFolder, member: str) -> dict:
    path = folder.state(member)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"member": member, "state": "waiting"}


def update_state(folder: PlanFolder, member: str, **fields) -> dict:
    """Merge `fields` into the member's JSON and replace the file atomically (a reader never sees half of it)."""
    state = read_state(folder, member) | fields | {"member": member, "updated": time.time()}
    atomic.write_text(folder.state(member), json.dumps(state, indent=1))
    return state


def run_progress(run: str | None) -> tuple[int | None, float | None]:
    """(epochs done, best val macro F1) of a run folder: history.csv once finished, last_state.json before."""
    if not run:
        return None, None
    folder = Path(run)
    if not folder.exists():  # renamed when it finished: `<...>_incomplete` → `<...>_f1-0.9123`
        stem = folder.name.rsplit("_incomplete", 1)[0]
        found = sorted(folder.parent.glob(f"{stem}_*")) if folder.parent.exists() else []
        if not found:
            return None, None
        folder = found[-1]
    try:
        if (folder / "history.csv").is_file():
            history = pd.read_csv(folder / "history.csv").to_dict("records")
        else:
            history = json.loads((folder / "last_state.json").read_text(encoding="utf-8")).get("history", [])
    except (OSError, ValueError, pd.errors.ParserError):
        return None, None
    if not history:
        return 0, None
    scores = [row.get("val_f1_macro") for row in history if row.get("val_f1_macro") is not None]
    return len(history), (max(scores) if scores else None)


def _elapsed(state: dict) -> str:
    start = state.get("started")
    if start is None:
        return ""
    end = state.get("finished") or (time.time() if state.get("state") in ("running", "predicting") else
                                    state.get("updated", start))
    seconds = int(end - start)
    return f"{seconds // 60}:{seconds % 60:02d}"


def table(folder: PlanFolder, members: list[str]) -> pd.DataFrame:
    """One row per member: member, state, epoch, best val macro F1, device, elapsed (the live and status table)."""
    rows = []
    for member in members:
        state = read_state(folder, member)
        epoch, best = run_progress(state.get("run"))
        shown = state.get("state", "waiting")
        if shown == "failed" and state.get("attempt"):
            shown = f"failed (try {state['attempt']})"
        rows.append({"member": member, "state": shown, "epoch": "" if epoch is None else epoch,
                     "best val F1": "" if best is None else f"{best:.4f}", "device": state.get("device", ""),
                     "elapsed": _elapsed(state)})
    return pd.DataFrame(rows)


def render(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False)
