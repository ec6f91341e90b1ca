"""Start-up time: `--help` of every script, and a re-vote of cached members, before and after lazy heavy imports.

"before" runs the same command after importing the heavy stacks first (torch, timm, torchvision,
matplotlib, wandb), which is what every one of these commands paid when the import chain loaded
them eagerly; "after" runs the command as it is. Both are wall clock of a fresh `python` process,
best of --repeats.

    .venv/bin/python benchmarks/startup.py [--repeats 3] [--skip-vote]

The re-vote uses the demo's three architectures (digits-resnet18, digits-regnetx002, digits-tv-resnet18)
registered with seeded random weights (as tests/predict_fixture.py does; a vote does not care whether
weights were learned) and their val and test rows predicted once into the cache under a temporary
output root, then times `scripts.vote --members … --compare` (report and submission included).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

SCRIPTS = sorted(p.stem for p in (REPO / "scripts").glob("*.py") if p.stem != "__init__")
HEAVY = "torch, timm, torchvision, matplotlib.pyplot, wandb"
DEMO = [("digits-resnet18", "resnet18", 32), ("digits-regnetx002", "regnetx_002", 32),
        ("digits-tv-resnet18", "torchvision:resnet18", 32)]


def timed(argv: list[str], env: dict, eager: bool, repeats: int) -> float:
    """Best wall seconds of `python -m <argv>`; eager first imports the heavy stacks, as the old chain did."""
    if eager:
        code = (f"import {HEAVY}, runpy, sys; sys.argv = {argv[1:]!r}; sys.argv[0] = {argv[1]!r}; "
                f"runpy.run_module({argv[1]!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, *argv]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        best = min(best, time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return best


def cached_demo(root: Path) -> dict:
    """Register the demo's architectures with random weights and fill their prediction cache."""
    from core.registry import Registry
    from core.settings import Settings
    from imagedata.digits import ensure_digits
    from predict.run import predict_members
    from predict_fixture import register_member

    ensure_digits(root / "data" / "digits")
    settings = Settings(data_root=root / "data", output_root=root / "out")
    for seed, (name, arch, size) in enumerate(DEMO):
        register_member(settings, name, arch, size, seed)
    predict_members([name for name, *_ in DEMO], Registry(settings.registry), settings)
    return {"VOTE_OUTPUT_ROOT": str(root / "out"), "VOTE_DATA_ROOT": str(root / "data"),
            "VOTE_LOCAL_CONFIG": str(root / "no-local.yaml")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-vote", action="store_true", help="only the --help rows")
    parser.add_argument("--skip-help", action="store_true", help="only the cached re-vote row")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", "WANDB_MODE": "disabled",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print(f"{'command':<44} {'before (eager) s':>17} {'after s':>9}")
    for script in [] if args.skip_help else SCRIPTS:
        argv = ["-m", f"scripts.{script}", "--help"]
        before, after = timed(argv, env, True, args.repeats), timed(argv, env, False, args.repeats)
        print(f"{'scripts.' + script + ' --help':<44} {before:>17.2f} {after:>9.2f}")
    if args.skip_vote:
        return
    with tempfile.TemporaryDirectory() as tmp:
        env.update(cached_demo(Path(tmp)))
        argv = ["-m", "scripts.vote", "--members", *[n for n, *_ in DEMO], "--compare", "--name", "startup",
                "--overwrite"]
        before, after = timed(argv, env, True, args.repeats), timed(argv, env, False, args.repeats)
        print(f"{'cached re-vote of the demo members --compare':<44} {before:>17.2f} {after:>9.2f}")
    print(f"load average now: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
