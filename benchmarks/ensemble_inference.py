"""K members over the same N photos: a per-member loop that re-decodes every image, next to the
project's decode-once path, next to the compute-bound rate.

    .venv/bin/python benchmarks/ensemble_inference.py [--n 200] [--size 112] [--batch-size 48] [--repeats 2]
        [--members resnet18 mobilenetv3_small_100 convnext_atto] [--device auto] [--nvjpeg]
        [--photos DIR] [--json FILE]

It writes N random-but-smooth 384x512 JPEGs (the competition's photo size) into a temp
folder and times, in one run:
  (a) naive:    for each member, for each batch: PIL-decode and resize every image again,
                then normalise and forward (fp32, NCHW) — a peer-style per-member loop;
  (b) project:  decode once into the uint8 memmap cache (threads), then every member on each
                batch (predict.inference.EnsembleRunner: channels_last, autocast on GPU);
  (b') project with the decode cache already warm (a re-vote, or a second split pass);
  (c) compute:  the runner alone, the batch already decoded and on the device.
It prints images/s (ensemble rows per second) and member-images/s, the ratio (b)/(a), and
where the time goes. Models are built with random weights (nothing is downloaded); speed
does not depend on the weights. Targets: (b) >= 5x (a) on a GPU, >= 2x on a small CPU box.
`--photos DIR` reuses the JPEGs under DIR (the first N by file name) instead of writing them;
`--json FILE` writes {a_ips, b_ips, c_ips, b_over_a, b_over_c, ...} (benchmarks/gpu_check.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script, Python puts benchmarks/ (not the repo root) on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would garble the table; set before tqdm loads

import timm  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from timm.data import resolve_model_data_config  # noqa: E402

from predict.batches import MemmapBatches, make_batches  # noqa: E402
from predict.inference import EnsembleRunner  # noqa: E402
from predict.resize import Preprocess  # noqa: E402

WIDTH, HEIGHT = 384, 512
MEMBERS = ["resnet18", "mobilenetv3_small_100", "convnext_atto"]


def write_photos(folder: Path, n: int, seed: int = 0) -> list[str]:
    """Smooth colour fields with mild noise: JPEG sizes and decode cost close to real photos."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        low = rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(low).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), dtype=np.int16)
        noisy = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(str(path))
    return paths


def read_photos(folder: Path, n: int) -> list[str]:
    found = sorted(folder.rglob("*.jpg"), key=lambda p: p.name)
    if len(found) < n:
        raise SystemExit(f"error: --photos {folder} holds {len(found)} JPEGs; --n wants {n}")
    return [str(p) for p in found[:n]]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive(models, preps, paths, device, batch_size) -> tuple[float, float]:
    """Per member: PIL-decode and resize each image again, then normalise the batch and forward.

    Returns (decode_s, total_s). Only the decode is per image; conversion and normalisation are
    batched, so the baseline is not slowed by per-image tensor ops (torchvision's per-image
    ToTensor/Normalize would make it slower still, most of all on a busy CPU).
    """
    decode_s = 0.0
    start = time.perf_counter()
    with torch.no_grad():
        for model, prep in zip(models, preps):
            mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1) * 255
            std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1) * 255
            for lo in range(0, len(paths), batch_size):
                t = time.perf_counter()
                arrays = []
                for path in paths[lo:lo + batch_size]:
                    with Image.open(path) as img:
                        arrays.append(np.asarray(img.convert("RGB").resize(prep.size[::-1], Image.Resampling.BILINEAR)))
                batch = torch.from_numpy(np.stack(arrays)).to(device).permute(0, 3, 1, 2).float()
                decode_s += time.perf_counter() - t
                model((batch - mean) / std).softmax(1).cpu()
    sync(device)
    return decode_s, time.perf_counter() - start


def project(models, preps, paths, device, batch_size, cache_dir: Path, decoder: str = "pil") -> tuple[float, float]:
    """Decode once, then every member on each batch. Returns (decode_s, total_s).

    With the nvjpeg decoder, decoding happens batch by batch inside the run, so decode_s is 0.
    """
    start = time.perf_counter()
    source = make_batches(paths, preps[0].size, cache_dir, device, decoder)
    decode_s = time.perf_counter() - start
    EnsembleRunner(models, preps, device).run(source, batch_size)
    sync(device)
    return decode_s, time.perf_counter() - start


def compute_bound(models, preps, images: np.ndarray, device, batch_size) -> float:
    """The runner over batches already decoded and resident on the device."""
    runner = EnsembleRunner(models, preps, device)
    resident = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).contiguous().to(device)

    class Resident:
        def __len__(self):
            return len(resident)

        def fetch(self, lo, hi):
            return resident[lo:hi]

    sync(device)
    start = time.perf_counter()
    runner.run(Resident(), batch_size)
    sync(device)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="number of 384x512 JPEGs")
    parser.add_argument("--size", type=int, default=112, help="square input size of every member")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--members", nargs="+", default=MEMBERS, help="timm architectures (random weights)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best of each is shown")
    parser.add_argument("--nvjpeg", action="store_true", help="on a GPU, also time JPEG decoding on the GPU")
    parser.add_argument("--photos", type=Path, help="reuse the JPEGs under DIR instead of writing N new ones")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.nvjpeg and device.type != "cuda":
        parser.error("--nvjpeg needs a CUDA device")

    models, preps = [], []
    for arch in args.members:
        model = timm.create_model(arch, pretrained=False, num_classes=18).eval().to(device)
        cfg = resolve_model_data_config(model)
        models.append(model)
        preps.append(Preprocess((args.size, args.size), tuple(cfg["mean"]), tuple(cfg["std"])))
    k, n = len(models), args.n
    cores = os.cpu_count()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {cores} cores, {torch.get_num_threads()} torch threads"
    print(f"device: {where}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"K={k} members ({', '.join(args.members)}) at {args.size}x{args.size}, N={n} JPEGs {WIDTH}x{HEIGHT}, "
          f"batch {args.batch_size}, best of {args.repeats}")

    with tempfile.TemporaryDirectory(prefix="ensemble-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "photos").mkdir()
        paths = read_photos(args.photos, n) if args.photos else write_photos(tmp / "photos", n)
        # Warm-up: first-call kernel selection and allocator growth are not what we measure.
        EnsembleRunner(models, preps, device).run(MemmapBatches(np.zeros((args.batch_size, args.size, args.size, 3),
                                                                        np.uint8), device), args.batch_size)
        # Interleaved repeats, best of each: a busy shared machine slows whichever ran at a bad moment.
        naive_runs, cold_runs, warm_runs, compute_runs, gpu_runs = [], [], [], [], []
        for repeat in range(args.repeats):
            naive_runs.append(naive(models, preps, paths, device, args.batch_size))
            cache_dir = tmp / f"cache{repeat}"
            cold_runs.append(project(models, preps, paths, device, args.batch_size, cache_dir))
            warm_runs.append(project(models, preps, paths, device, args.batch_size, cache_dir))
            images = make_batches(paths, preps[0].size, cache_dir, device).images
            compute_runs.append(compute_bound(models, preps, images, device, args.batch_size))
            if args.nvjpeg:
                gpu_runs.append(project(models, preps, paths, device, args.batch_size, cache_dir, "nvjpeg")[1])
        naive_decode, naive_total = min(naive_runs, key=lambda r: r[1])
        cold_decode, cold_total = min(cold_runs, key=lambda r: r[1])
        warm_total = min(r[1] for r in warm_runs)
        compute_total = min(compute_runs)

    rows = [("(a) naive per-member loop, PIL re-decode", naive_total),
            ("(b) project: decode once (cold cache)", cold_total),
            ("(b') project: decode cache warm", warm_total),
            ("(c) compute-bound (decoded, on device)", compute_total)]
    if gpu_runs:
        rows.insert(3, ("(b'') project: nvjpeg decode on the GPU", min(gpu_runs)))
    print(f"\n{'path':44s} {'seconds':>8s} {'images/s':>9s} {'member-img/s':>13s}")
    for label, seconds in rows:
        print(f"{label:44s} {seconds:8.2f} {n / seconds:9.1f} {k * n / seconds:13.1f}")
    print(f"\nratio (b)/(a): {naive_total / cold_total:.2f}x   (b')/(a): {naive_total / warm_total:.2f}x   "
          f"(c)/(b): {cold_total / compute_total:.2f}x slower than compute-bound")
    print(f"where the time goes: naive spends {naive_decode:.1f} s decoding ({100 * naive_decode / naive_total:.0f}%, "
          f"{k}x per image); the project spends {cold_decode:.1f} s decoding once "
          f"({100 * cold_decode / cold_total:.0f}%)")
    print(f"members' compute: naive {naive_total - naive_decode:.1f} s (fp32, NCHW), project "
          f"{cold_total - cold_decode:.1f} s ({'autocast, ' if device.type == 'cuda' else 'fp32, '}channels_last)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        figures = {"a_ips": n / naive_total, "b_ips": n / cold_total, "c_ips": n / compute_total,
                   "b_over_a": naive_total / cold_total, "b_over_c": compute_total / cold_total,
                   "b_warm_ips": n / warm_total, "b_nvjpeg_ips": n / min(gpu_runs) if gpu_runs else None}
        figures = {k: None if v is None else round(v, 3) for k, v in figures.items()}
        args.json.write_text(json.dumps(figures | {"members": args.members, "n": n, "size": args.size,
                                                   "batch_size": args.batch_size}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
