"""The whole GPU proof in one command: every GPU path of the project, run for real, with the figures.

    python benchmarks/gpu_check.py [--out benchmarks/results] [--work DIR] [--budget 480] [--dry-run]

No network and no pretrained weights. It builds its own data (generated 384x512 JPEGs: the mask
competition's layout and an image folder, a few thousand of each), then runs, each as its own
process and each recorded as "pass" or "fail: <one line>" (a failing path does not stop the rest):
  - scripts.train on the mask data with the GPU choices asked for explicitly (resident pool, batched
    augmentation, bf16, channels_last), again with train.feed=stream, and again with train.compile=true;
  - scripts.predict for that member with --decoder pil and --decoder nvjpeg; both must give the same
    label on at least 99.5% of the rows;
  - benchmarks/train_throughput.py for resnet18, efficientnet_b0 and convnext_nano at 224 px and
    benchmarks/ensemble_inference.py for 3 members: (a) naive, (b) project, (c) compute-bound;
  - a 2-process torchrun training: nccl when there is a GPU per process, else gloo on the host's CPUs
    (core.distributed gives each rank its own GPU, so one GPU cannot hold two nccl ranks); it says which.
It writes <out>/<date>-<gpu-name>.json (device, torch, cuda, train, inference, paths, ...) and prints a
one-screen summary with the targets: training (b) >= 85% of (c), ensemble inference (b) >= 5x (a).

`--dry-run` runs the same script at tiny sizes on the CPU (tiny models and images; the CUDA-only paths
are recorded as "skipped: no CUDA"), so CI keeps it working. Its commands, the same command lines, run
inside the check's own process (torchrun's two ranks excepted): a process per path would import torch
again each time and cost CI most of the dry run.
"""
from __future__ import annotations

import argparse
import colorsys
import contextlib
import io
import json
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 384, 512     # the mask competition's photo size
CLASSES = 18
STEMS = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1, "normal": 2}
AGES = (22, 45, 65)          # one per age band: < 30, 30-59, >= 60
AGREEMENT = 0.995            # nvjpeg and PIL: same label on at least this share of rows
TRAIN_TARGET, INFERENCE_TARGET = 0.85, 5.0
NO_CUDA = "skipped: no CUDA"
# The GPU defaults, asked for explicitly so the check fails loudly if one of them is not honoured.
GPU_STYLE = ["train.feed=resident", "train.augment.mode=batched", "train.amp=bf16", "train.channels_last=true"]


@dataclass
class Profile:
    """Sizes of one run: the real one for a GPU, a tiny one for --dry-run on a CPU."""
    width: int
    height: int
    people: int                 # mask layout: 7 photos each
    eval_images: int
    folder_images: int          # image folder for the two benchmarks
    member_arch: str
    member_size: int
    member_epochs: int
    member_batch: int
    bench_archs: list[str]
    bench_size: int
    bench_images: int
    bench_batch: int
    bench_epochs: int
    infer_members: list[str]
    infer_n: int
    infer_size: int
    infer_batch: int
    infer_repeats: int
    ddp_arch: str
    ddp_size: int
    timeouts: dict = field(default_factory=dict)
    # The dry run's commands run inside this process (same argv, same code; no interpreter importing torch
    # again per path) except torchrun, whose two ranks are the point; the GPU run starts a process per path.
    in_process: bool = False


GPU = Profile(width=WIDTH, height=HEIGHT, people=400, eval_images=1000, folder_images=4096,
              member_arch="resnet18", member_size=128, member_epochs=3, member_batch=128,
              bench_archs=["resnet18", "efficientnet_b0", "convnext_nano"], bench_size=224, bench_images=4096,
              bench_batch=256, bench_epochs=2,
              infer_members=["resnet18", "efficientnet_b0", "convnext_nano"], infer_n=1024, infer_size=224,
              infer_batch=256, infer_repeats=2, ddp_arch="test_resnet", ddp_size=32,
              timeouts={"train": 180, "compile": 240, "predict": 150, "throughput": 300, "inference": 180,
                        "ddp": 180})
DRY = Profile(width=48, height=64, people=12, eval_images=24, folder_images=64,
              member_arch="test_resnet", member_size=16, member_epochs=1, member_batch=16,
              bench_archs=["test_resnet"], bench_size=32, bench_images=64, bench_batch=16, bench_epochs=1,
              infer_members=["test_resnet", "test_efficientnet", "test_convnext"], infer_n=32, infer_size=32,
              infer_batch=16, infer_repeats=1, ddp_arch="test_resnet", ddp_size=16,
              timeouts={"train": 300, "compile": 300, "predict": 300, "throughput": 300, "inference": 300,
                        "ddp": 300}, in_process=True)


# --- data ----------------------------------------------------------------------------------------------

PALETTE = [tuple(int(255 * v) for v in colorsys.hsv_to_rgb(i / CLASSES, 0.75, 0.55 + 0.4 * (i % 2)))
           for i in range(CLASSES)]


def photo(job: tuple[str, int, int, int, int]) -> None:
    """One photo-like JPEG whose class is plain to see (a hue per class under texture, a blob and noise):
    a trained member is confident, so decoders that differ by a grey level must agree on its label."""
    path, label, seed, width, height = job
    rng = np.random.default_rng(seed)
    texture = Image.fromarray(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)).resize((width, height),
                                                                                      Image.Resampling.BICUBIC)
    field_ = np.asarray(PALETTE[label], np.float32) + (np.asarray(texture, np.float32) - 128) * 0.35
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.integers(height // 5, 4 * height // 5), rng.integers(width // 5, 4 * width // 5)
    blob = (yy - cy) ** 2 + (xx - cx) ** 2 < (width * (0.08 + 0.01 * (label % 6))) ** 2
    field_[blob] = field_[blob] * 0.5 + 110
    noisy = np.clip(field_ + rng.integers(-5, 6, field_.shape), 0, 255).astype(np.uint8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noisy).save(path, quality=90)


def write_data(root: Path, p: Profile) -> dict:
    """root/mask (train/train.csv, train/images/<person>/<stem>.jpg, eval/info.csv + eval/images) and
    root/folder/<label>/<n>.jpg; JPEGs written by every core at once."""
    jobs, people, seed = [], [], 0
    for i in range(p.people):
        gender, band = i % 2, (i // 2) % 3
        person = f"{i:06d}_{('male', 'female')[gender]}_Asian_{AGES[band]}"
        people.append({"id": f"{i:06d}", "gender": ("male", "female")[gender], "race": "Asian",
                       "age": AGES[band], "path": person})
        for stem, mask in STEMS.items():
            seed += 1
            label = mask * 6 + gender * 3 + band
            jobs.append((str(root / "mask" / "train" / "images" / person / f"{stem}.jpg"), label, seed,
                         p.width, p.height))
    eval_ids = [f"{i:06d}.jpg" for i in range(p.eval_images)]
    for i, image_id in enumerate(eval_ids):
        jobs.append((str(root / "mask" / "eval" / "images" / image_id), (i * 7) % CLASSES, 10**6 + i,
                     p.width, p.height))
    for i in range(p.folder_images):
        label = i % CLASSES
        jobs.append((str(root / "folder" / f"{label:02d}" / f"{i:05d}.jpg"), label, 2 * 10**6 + i,
                     p.width, p.height))
    if p.in_process:
        list(map(photo, jobs))  # a few hundred tiny JPEGs: less time than starting a pool
    else:
        with ProcessPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as pool:
            list(pool.map(photo, jobs, chunksize=32))
    (root / "mask" / "train" / "train.csv").write_text(
        "id,gender,race,age,path\n" + "".join(f"{r['id']},{r['gender']},{r['race']},{r['age']},{r['path']}\n"
                                              for r in people))
    (root / "mask" / "eval" / "info.csv").write_text("ImageID,ans\n" + "".join(f"{i},0\n" for i in eval_ids))
    return {"mask_train": 7 * p.people, "mask_eval": p.eval_images, "folder": p.folder_images,
            "jpeg_size": f"{p.width}x{p.height}"}


# --- running the project's commands --------------------------------------------------------------------

class PathFailed(Exception):
    """A path's one-line reason for failing."""


def one_line(text: str, limit: int = 200) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # The project's own errors are one line starting with "error:"; otherwise the last line of a traceback.
    line = next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else "no output")
    return line[:limit]


def run_here(argv: list[str], env: dict) -> tuple[int, str, str]:
    """`python ARGV` (`-m module ...` or `script.py ...`) inside this process, with `env` as its environment and
    the repo as its folder: (exit code, stdout, stderr). No timeout can stop it; the dry run's paths are tiny."""
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, Path.cwd()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    code = 0
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(REPO)
        sys.argv = list(argv[1:]) if argv[0] == "-m" else list(argv)  # run_module puts the module's file first
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if argv[0] == "-m":
                    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (exit_.code is not None)
                if isinstance(exit_.code, str):
                    print(exit_.code, file=sys.stderr)  # as the interpreter does with a message
            except Exception:  # noqa: BLE001 - what an uncaught error does to a process: a traceback, exit 1
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        root.handlers[:], root.level = handlers, level  # a script's logging set-up stays with its run
    return int(code), out.getvalue(), err.getvalue()


class Runner:
    def __init__(self, work: Path, profile: Profile, device: str, log_dir: Path, deadline: float):
        self.work, self.p, self.device, self.log_dir, self.deadline = work, profile, device, log_dir, deadline
        # The repo first, then whatever PYTHONPATH already holds (wheels carried to a GPU machine).
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        self.env = dict(os.environ, PYTHONPATH=path, VOTE_OUTPUT_ROOT=str(work / "out"),
                        VOTE_DATA_ROOT=str(work / "data"), VOTE_LOCAL_CONFIG=str(work / "no-local.yaml"),
                        WANDB_MODE="disabled", WANDB_DIR=str(work / "wandb"), HF_HUB_OFFLINE="1",
                        TQDM_DISABLE="1", PYTHONUNBUFFERED="1")

    def run(self, name: str, command: list[str], timeout: int) -> str:
        """Run one command; its output goes to <log_dir>/<name>.log; a failure raises PathFailed."""
        log = self.log_dir / f"{name}.log"
        # Never past --budget: the JSON must be written before an outer `timeout` ends the whole check.
        timeout = max(1, min(timeout, int(self.deadline - time.monotonic())))
        if self.p.in_process and command[1:3] != ["-m", "torch.distributed.run"]:
            code, stdout, stderr = run_here(command[1:], self.env)
        else:
            try:
                proc = subprocess.run(command, cwd=REPO, env=self.env, capture_output=True, text=True,
                                      timeout=timeout)
            except subprocess.TimeoutExpired as err:
                log.write_text(f"$ {' '.join(command)}\n{err.stdout or ''}\n{err.stderr or ''}")
                raise PathFailed(f"timed out after {timeout} s") from None
            code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        log.write_text(f"$ {' '.join(command)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
        if code != 0:
            raise PathFailed(f"exit {code}: {one_line(stderr or stdout)}")
        return stdout

    def member_config(self) -> Path:
        p = self.p
        config = {
            "ensemble": "gpu-check",
            "data": {"source": "mask", "root": str(self.work / "data" / "mask"),
                     "image_size": [p.member_size, p.member_size],
                     "split": {"name": "gpu-check-s0", "n_folds": 5, "fold": 0, "seed": 0}},
            "model": {"arch": p.member_arch},
            "train": {"epochs": p.member_epochs, "batch_size": p.member_batch, "lr": 0.003, "seed": 0,
                      "device": self.device, "augment": {"hflip": 0.5, "crop_scale": [0.6, 1.0]}},
            "early_stopping": {"patience": 100},
            "tracking": {"wandb": {"mode": "disabled"}},
        }
        path = self.work / "member.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def train(self, name: str, overrides: list[str], timeout: int) -> dict:
        out = self.run(name, [sys.executable, "-m", "scripts.train", "--config", str(self.member_config()),
                              f"name={name}", *overrides], timeout)
        if f"registered {name}" not in out:
            raise PathFailed(f"scripts.train finished without registering {name}")
        return self.member_figures(name)

    def member_figures(self, name: str) -> dict:
        from core.registry import Registry

        entry = Registry(self.work / "out" / "registry.yaml").get(name)
        history = (self.work / "out" / entry.run / "history.csv").read_text().splitlines()
        header, rows = history[0].split(","), [r.split(",") for r in history[1:]]
        rates = [float(r[header.index("train_img_per_s")]) for r in rows]
        return {"val_f1_macro": entry.metrics["val_f1_macro"], "train_img_per_s_best": round(max(rates), 1),
                "epochs": len(rows)}

    def predict(self, member: str, decoder: str) -> np.ndarray:
        """Labels of the member's val and test rows, through scripts.predict with this decoder."""
        self.run(f"predict_{decoder}", [sys.executable, "-m", "scripts.predict", "run", "--members", member,
                                        "--parts", "val", "test", "--decoder", decoder, "--device", self.device,
                                        "--batch-size", "256", "--force"], self.p.timeouts["predict"])
        labels = []
        for part in ("val", "test"):
            with np.load(self.work / "out" / "cache" / "predictions" / member / f"{part}.npz",
                         allow_pickle=False) as z:
                labels.append(z["probs"].argmax(1))
        return np.concatenate(labels)


# --- the check -----------------------------------------------------------------------------------------

def device_facts() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda if cuda else None, "cuda_devices": torch.cuda.device_count() if cuda else 0,
            "host_cpus": os.cpu_count()}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


class Check:
    def __init__(self, args):
        self.args = args
        self.p = DRY if args.dry_run else GPU
        self.facts = device_facts()
        self.deadline = time.monotonic() + args.budget
        self.cuda = self.facts["cuda"] is not None and not args.dry_run
        self.result = {"date": date.today().isoformat(), "dry_run": bool(args.dry_run), **self.facts,
                       "train": {}, "inference": {}, "paths": {}, "seconds": {}, "members": {}}

    def path(self, name: str, fn, *, cuda_only: bool = False, skip: str | None = None):
        """Run one path; record pass / fail: <one line> / skipped: <why>, and its seconds."""
        if cuda_only and not self.cuda:
            skip = NO_CUDA
        if not skip and time.monotonic() > self.deadline:
            skip = f"skipped: out of time (--budget {self.args.budget} s)"
        if skip:
            self.result["paths"][name] = skip
            print(f"  {name:<34} {skip}", flush=True)
            return None
        started = time.perf_counter()
        try:
            value = fn()
            status = "pass"
        except PathFailed as err:
            value, status = None, f"fail: {err}"
        except Exception as err:  # noqa: BLE001 - one path's bug must not hide the other paths' results
            value, status = None, f"fail: {type(err).__name__}: {one_line(str(err))}"
        seconds = time.perf_counter() - started
        self.result["paths"][name] = status
        self.result["seconds"][name] = round(seconds, 1)
        print(f"  {name:<34} {status}  ({seconds:.0f} s)", flush=True)
        return value

    def run(self, work: Path) -> dict:
        p, device = self.p, "cuda" if self.cuda else "cpu"
        logs = work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        runner = Runner(work, p, device, logs, self.deadline)
        print(f"gpu_check{' --dry-run' if self.args.dry_run else ''}: {self.facts['device']}, torch "
              f"{self.facts['torch']}, CUDA {self.facts['cuda']}; work folder {work}", flush=True)
        data = self.path("data", lambda: write_data(work / "data", p))
        if data is None:
            return self.result
        self.result["data"] = data
        members = self.result["members"]

        def train(name, overrides, timeout):
            members[name] = runner.train(name, overrides, timeout)

        resident = "gc-resident"
        self.path("train_resident_bf16_channels_last", lambda: train(resident, GPU_STYLE, p.timeouts["train"]))
        self.path("train_stream", lambda: train("gc-stream", ["train.feed=stream", *GPU_STYLE[1:]],
                                                p.timeouts["train"]), cuda_only=True)
        have_member = self.result["paths"]["train_resident_bf16_channels_last"] == "pass"
        no_member = None if have_member else "skipped: no trained member"
        pil = self.path("predict_pil", lambda: runner.predict(resident, "pil"), skip=no_member)
        gpu = self.path("predict_nvjpeg", lambda: runner.predict(resident, "nvjpeg"), cuda_only=True,
                        skip=no_member)
        self.path("decoder_agreement", lambda: self.agreement(pil, gpu), cuda_only=True,
                  skip=None if pil is not None and gpu is not None else "skipped: a prediction is missing")
        self.path("train_throughput", lambda: self.throughput(runner, work))
        self.path("ensemble_inference", lambda: self.inference(runner, work))
        self.path("ddp_2_processes", lambda: self.ddp(runner))
        # Last: the slowest single path (inductor compiles for a minute or more), so it cannot starve the others.
        self.path("train_compile", lambda: train("gc-compile", [*GPU_STYLE, "train.compile=true"],
                                                 p.timeouts["compile"]),
                  skip="skipped: dry run (a CPU compile takes minutes; tests/test_device_paths.py compiles one)"
                  if self.args.dry_run else None)
        self.result["targets"] = self.targets()
        return self.result

    def agreement(self, pil: np.ndarray, gpu: np.ndarray) -> float:
        share = float(np.mean(pil == gpu))
        self.result["decoder_agreement"] = round(share, 5)
        if share < AGREEMENT:
            raise PathFailed(f"nvjpeg and PIL give the same label on {share:.2%} of {len(pil)} rows "
                             f"(need {AGREEMENT:.1%})")
        return share

    def throughput(self, runner: Runner, work: Path) -> None:
        p, out = self.p, work / "throughput.json"
        workers = str(max(1, min(16, os.cpu_count() or 1)))
        runner.run("train_throughput", [
            sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--arch", *p.bench_archs,
            "--size", str(p.bench_size), "--batch-size", str(p.bench_batch), "--images", str(p.bench_images),
            "--epochs", str(p.bench_epochs), "--workers", workers, "--device", runner.device,
            "--photos", str(work / "data" / "folder"), "--json", str(out)], p.timeouts["throughput"])
        self.result["train"] = json.loads(out.read_text())

    def inference(self, runner: Runner, work: Path) -> None:
        p, out = self.p, work / "inference.json"
        runner.run("ensemble_inference", [
            sys.executable, str(REPO / "benchmarks" / "ensemble_inference.py"), "--members", *p.infer_members,
            "--n", str(p.infer_n), "--size", str(p.infer_size), "--batch-size", str(p.infer_batch),
            "--repeats", str(p.infer_repeats), "--device", runner.device, "--photos", str(work / "data" / "folder"),
            "--json", str(out), *(["--nvjpeg"] if self.cuda else [])], p.timeouts["inference"])
        self.result["inference"] = json.loads(out.read_text())

    def ddp(self, runner: Runner) -> None:
        p = self.p
        gpus = self.facts["cuda_devices"] if self.cuda else 0
        if gpus >= 2:
            backend, device, arch, size = "nccl", "cuda", p.member_arch, p.member_size
        else:
            why = "no CUDA" if not self.cuda else (f"{gpus} GPU visible and nccl needs one GPU per process "
                                                   "(core.distributed maps rank N to cuda:N)")
            backend, device, arch, size = f"gloo on the host's CPUs ({why})", "cpu", p.ddp_arch, p.ddp_size
        self.result["ddp_backend"] = backend
        name = "gc-ddp"
        out = runner.run("ddp_2_processes", [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
            "-m", "scripts.train", "--config", str(runner.member_config()), f"name={name}",
            f"train.device={device}", f"model.arch={arch}", f"data.image_size=[{size},{size}]", "train.epochs=1",
            "train.augment.mode=batched"], p.timeouts["ddp"])
        if out.count(f"registered {name}") != 1:
            raise PathFailed(f"expected one 'registered {name}' line from 2 ranks, got {out.count('registered')}")
        self.result["members"][name] = runner.member_figures(name)

    def targets(self) -> dict:
        train = {arch: f["b_over_c"] >= TRAIN_TARGET for arch, f in self.result["train"].items() if "b_over_c" in f}
        inference = self.result["inference"].get("b_over_a")
        return {f"train_b_over_c_at_least_{TRAIN_TARGET}": train,
                f"inference_b_over_a_at_least_{INFERENCE_TARGET:g}": None if inference is None
                else inference >= INFERENCE_TARGET,
                "measured_on_gpu": self.cuda}


def summary(result: dict) -> str:
    lines = [f"\n== gpu_check {result['date']}: {result['device']} (torch {result['torch']}, CUDA {result['cuda']})"
             f"{'  DRY RUN on CPU' if result['dry_run'] else ''}"]
    for name, status in result["paths"].items():
        lines.append(f"  {name:<34} {status}")
    if result.get("ddp_backend"):
        lines.append(f"  ddp backend: {result['ddp_backend']}")
    if "decoder_agreement" in result:
        lines.append(f"  nvjpeg vs PIL: same label on {result['decoder_agreement']:.2%} of rows")
    lines.append(f"\n  {'training img/s':<18} {'(a) naive':>10} {'(b) project':>12} {'(c) compute':>12} "
                 f"{'b/a':>6} {'b/c':>6} {'peak MiB':>9}")
    for arch, f in result["train"].items():
        if "error" in f:
            lines.append(f"  {arch:<18} failed: {f['error']}")
            continue
        ok = "" if result["dry_run"] else ("  ok" if f["b_over_c"] >= TRAIN_TARGET else "  below 85% of (c)")
        lines.append(f"  {arch:<18} {f['a_ips']:>10.0f} {f['b_ips']:>12.0f} {f['c_ips']:>12.0f} "
                     f"{f['b_over_a']:>6.2f} {f['b_over_c']:>6.2f} {f['peak_mem_mib']:>9.0f}{ok}")
    inf = result["inference"]
    if inf:
        ok = "" if result["dry_run"] else ("  ok" if inf["b_over_a"] >= INFERENCE_TARGET else "  below 5x (a)")
        lines.append(f"  {'inference, 3 members':<18} {inf['a_ips']:>10.0f} {inf['b_ips']:>12.0f} "
                     f"{inf['c_ips']:>12.0f} {inf['b_over_a']:>6.2f} {inf['b_over_c']:>6.2f}{'':>9}{ok}")
    statuses = list(result["paths"].values())
    failed = [n for n, s in result["paths"].items() if s.startswith("fail")]
    lines.append(f"\n  paths: {statuses.count('pass')} passed, {sum(s.startswith('skipped') for s in statuses)} "
                 f"skipped, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                        help="folder for <date>-<gpu-name>.json (default benchmarks/results)")
    parser.add_argument("--work", type=Path, help="keep the data, runs and logs here (default: a temp folder)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU; CUDA-only paths skipped")
    parser.add_argument("--budget", type=int,
                        help="seconds for all paths; later paths are skipped and the JSON is still written "
                             "(default 480, 1500 with --dry-run)")
    args = parser.parse_args()
    args.budget = args.budget or (1500 if args.dry_run else 480)
    check = Check(args)
    if not check.cuda and not args.dry_run:
        parser.error("no CUDA GPU is visible; use --dry-run to exercise the script on a CPU")
    started = time.perf_counter()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        result = check.run(args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            result = check.run(Path(tmp))
            keep = args.out / "logs"
            if any(s.startswith("fail") for s in result["paths"].values()) and (Path(tmp) / "logs").is_dir():
                shutil.copytree(Path(tmp) / "logs", keep, dirs_exist_ok=True)  # the failures' full output
                print(f"logs of the run: {keep}")
    result["seconds"]["total"] = round(time.perf_counter() - started, 1)
    name = f"{result['date']}-{slug(result['device'])}{'-dry-run' if args.dry_run else ''}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    print(f"\n  {result['seconds']['total']:.0f} s in all; figures in {args.out / name}")
    return 1 if any(s.startswith("fail") for s in result["paths"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
