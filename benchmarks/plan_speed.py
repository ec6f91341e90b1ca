"""Wall time of 4 members trained the README's manual way (one after another) against `scripts.plan run`.

CPU row: 4 members (2 timm test_resnet + 2 test_efficientnet models × 2 folds) on the digits PNGs at
16 px, 1 epoch. The sequential loop runs, per member, `python -m scripts.train` then
`python -m scripts.predict` (the plan does both for every member, so both sides do the same work),
each with 1 thread; a second sequential loop runs `scripts.train --predict` (one process per member,
as the plan's tasks do), so the plan's gain from scheduling shows apart from its gain from one
interpreter per member; the plan runs its members as Ray tasks with 2 slots, each task 1 thread. Both sides start
from the same prepared data (split file, scan and decode cache made first), so what differs is the
schedule. The plan's time includes starting Ray.

GPU row (only when a GPU is present): 4 resnet18 members at 224 px, sequential on one GPU against
packed 2 per GPU (`resources.gpus: 0.5`).

    .venv/bin/python benchmarks/plan_speed.py [--epochs 1]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASE = ROOT / "configs" / "digits" / "resnet18.yaml"


def plan_file(folder: Path, name: str, units: list[dict], size: int, epochs: int, resources: dict) -> Path:
    plan = {"name": name, "base": str(BASE), "split": {"name": f"{name}-2fold", "n_folds": 2}, "units": units,
            "overrides": [f"data.image_size=[{size},{size}]", f"train.epochs={epochs}", "data.duplicates=exact"],
            "resources": resources}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan), encoding="utf-8")
    return path


def env_for(out: Path, data: Path, threads: int) -> dict:
    return os.environ | {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(data), "TQDM_DISABLE": "1",
                         "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "WANDB_MODE": "disabled"}


def run(cmd: list[str], env: dict) -> None:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def prepare(plan: Path, env: dict) -> None:
    """The shared data work, once per output root, outside both timings."""
    code = ("import sys; from core.settings import load_settings; from jobs.plan import shared_data_work;"
            "from launch.plan_file import load_plan; shared_data_work(load_plan(sys.argv[1]).members, load_settings())")
    run([sys.executable, "-c", code, str(plan)], env)


def sequential(plan: Path, out: Path, data: Path, threads: int, one_process: bool = False) -> float:
    """The README's manual loop, member by member: `scripts.train` then `scripts.predict` (two interpreters
    per member), or with `one_process` `scripts.train --predict` (one, as a plan's member task runs)."""
    from launch.plan_file import load_plan

    env = env_for(out, data, threads)
    out.mkdir(parents=True, exist_ok=True)
    prepare(plan, env)
    start = time.perf_counter()
    for member in load_plan(plan).members:
        config = out / f"{member.name}.yaml"
        config.write_text(yaml.safe_dump(member.config), encoding="utf-8")
        if one_process:
            run([sys.executable, "-m", "scripts.train", "--config", str(config), "--predict"], env)
            continue
        run([sys.executable, "-m", "scripts.train", "--config", str(config)], env)
        run([sys.executable, "-m", "scripts.predict", "--members", member.name], env)
    return time.perf_counter() - start


def planned(plan: Path, out: Path, data: Path) -> float:
    env = env_for(out, data, 1)
    prepare(plan, env)
    start = time.perf_counter()
    run([sys.executable, "-m", "scripts.plan", "run", str(plan)], env)
    return time.perf_counter() - start


def row(label: str, folder: Path, data: Path, units: list[dict], size: int, epochs: int, resources: dict,
        threads: int) -> None:
    seq = sequential(plan_file(folder, "seq", units, size, epochs, resources), folder / "seq-out", data, threads)
    one = sequential(plan_file(folder, "one", units, size, epochs, resources), folder / "one-out", data, threads,
                     one_process=True)
    par = planned(plan_file(folder, "plan", units, size, epochs, resources), folder / "plan-out", data)
    print(f"{label:<44} sequential {seq:7.1f} s   sequential --predict {one:7.1f} s   plan {par:7.1f} s   "
          f"speed-up {seq / par:4.2f}x ({one / par:4.2f}x over sequential --predict)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    from imagedata.digits import ensure_digits

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ensure_digits(folder / "data" / "digits")
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        units = [{"prefix": "b-res-f", "arch": "test_resnet"}, {"prefix": "b-eff-f", "arch": "test_efficientnet"}]
        row("CPU: 4 tiny members, 16 px, 2 slots x 1 thread", folder / "cpu", folder / "data", units, 16,
            args.epochs, {"cpus": 1, "gpus": 0, "threads": 1}, threads=1)
        import torch
        if not torch.cuda.is_available():
            print("GPU: 4 resnet18 members, 224 px, packed 2/GPU    not run: no GPU")
        else:
            units = [{"prefix": "g-r18a-f", "arch": "resnet18"}, {"prefix": "g-r18b-f", "arch": "resnet18"}]
            row("GPU: 4 resnet18 members, 224 px, packed 2/GPU", folder / "gpu", folder / "data", units, 224,
                args.epochs, {"cpus": 1, "gpus": 0.5, "threads": 4}, threads=4)
        print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
