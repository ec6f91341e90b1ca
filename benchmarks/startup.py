"""Start-up time: `--help` of every script, the training job's imports (what every member process pays before
it works), and a re-vote of cached members, before and after lazy heavy imports.

"after" runs each command as this checkout has it. "before" is either `--before eager` (default): the same
command after importing every heavy stack first (torch, timm, torchvision, scikit-learn, scipy.optimize,
pandas, matplotlib.pyplot, wandb), the most any old import chain paid; or `--before REF`: the command run
in the repository as it was at the git revision REF (extracted with `git archive`), the real old figure.
Both are wall clock of a fresh `python` process, best of --repeats.

    .venv/bin/python benchmarks/startup.py [--repeats 3] [--before eager|REF] [--skip-vote] [--skip-help] [--skip-member]

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
HEAVY = "torch, timm, torchvision, sklearn, scipy.optimize, pandas, matplotlib.pyplot, wandb"
DEMO = [("digits-resnet18", "resnet18", 32), ("digits-regnetx002", "regnetx_002", 32),
        ("digits-tv-resnet18", "torchvision:resnet18", 32)]


def timed(argv: list[str], env: dict, before: str | Path | None, repeats: int) -> float:
    """Best wall seconds of `python -m <argv>`: as it is (None), after the heavy imports ("eager"), or in an old tree."""
    cwd = REPO
    if before == "eager" and argv[0] == "-c":
        cmd = [sys.executable, "-c", f"import {HEAVY}; {argv[1]}"]
    elif before == "eager":
        code = (f"import {HEAVY}, runpy, sys; sys.argv = {argv[1:]!r}; sys.argv[0] = {argv[1]!r}; "
                f"runpy.run_module({argv[1]!r}, run_name='__main__')")
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, *argv]
    if isinstance(before, Path):
        cwd, env = before, {**env, "PYTHONPATH": str(before)}
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        best = min(best, time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return best


def old_tree(ref: str, folder: Path) -> Path:
    """The repository at git revision `ref`, extracted into `folder`, so its scripts run as they were."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


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
    parser.add_argument("--before", default="eager", help="eager (default) or a git revision to time the old code")
    parser.add_argument("--skip-vote", action="store_true", help="only the --help rows")
    parser.add_argument("--skip-help", action="store_true", help="leave out the --help rows")
    parser.add_argument("--skip-member", action="store_true", help="leave out the training job's import row")
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"  # the in-process prediction of the cached demo, too: one table on stdout
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        before = "eager" if args.before == "eager" else old_tree(args.before, Path(tmp) / "before")
        label = "before (eager) s" if before == "eager" else f"before ({args.before[:10]}) s"
        print(f"load average at start: {os.getloadavg()[0]:.1f}")
        print(f"{'command':<44} {label:>22} {'after s':>9}")
        for script in [] if args.skip_help else SCRIPTS:
            argv = ["-m", f"scripts.{script}", "--help"]
            old, new = timed(argv, env, before, args.repeats), timed(argv, env, None, args.repeats)
            print(f"{'scripts.' + script + ' --help':<44} {old:>22.2f} {new:>9.2f}", flush=True)
        if not args.skip_member:
            # What every member process (scripts.train, a plan's member task, scripts.predict) pays before work.
            argv = ["-c", "import jobs.train, jobs.train_predict"]
            old, new = timed(argv, env, before, args.repeats), timed(argv, env, None, args.repeats)
            print(f"{'training job import (each member process)':<44} {old:>22.2f} {new:>9.2f}", flush=True)
        if not args.skip_vote:
            env.update(cached_demo(Path(tmp) / "demo"))
            argv = ["-m", "scripts.vote", "--members", *[n for n, *_ in DEMO], "--compare", "--name", "startup",
                    "--overwrite"]
            old, new = timed(argv, env, before, args.repeats), timed(argv, env, None, args.repeats)
            print(f"{'cached re-vote of the demo members --compare':<44} {old:>22.2f} {new:>9.2f}")
    print(f"load average now: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
