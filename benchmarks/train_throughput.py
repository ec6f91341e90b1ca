"""Member training speed: the naive loop, the project's trainer, and the compute-bound rate, in one run.

    .venv/bin/python benchmarks/train_throughput.py [--arch resnet18 [efficientnet_b0 ...]] [--size 64]
        [--batch-size 32] [--images 256] [--epochs 3] [--device auto] [--workers N] [--augment-mode auto]
        [--photos DIR] [--json FILE]

It writes N smooth-but-noisy 384x512 JPEGs (the mask competition's photo size, 18 classes)
into a temp folder, then trains the same model (random init, nothing downloaded) with the
same batch size and reports training images/s of the best of `--epochs` epochs after one warm-up
epoch (the best, because other work on the machine only ever slows an epoch down):
  (a) naive:    a DataLoader that PIL-decodes and resizes every JPEG in every epoch, torchvision
                per-sample RandomResizedCrop + flip, fp32 NCHW, loss.item() every step;
  (b) project:  the member trainer exactly as scripts.train runs it: decode once into the uint8
                memmap cache (its one-time cost is printed separately), then members.feeding +
                members.trainer.Trainer (on a GPU: pool resident on the device, batched
                augmentation there, bf16 autocast, channels_last; on a CPU: the per-sample path);
  (c) compute:  the same Trainer fed one uint8 batch that already sits on the device: the most
                (b) can reach with a free data pipeline.
Each variant runs in its own child process, so the peak memory printed is its own: peak RSS
(main process; the largest DataLoader worker beside it) on CPU, torch.cuda.max_memory_allocated
on GPU. Several `--arch` names are measured one after the other on the same photos (and the same
decode cache); `--photos DIR` reuses JPEGs laid out as DIR/<label>/<n>.jpg instead of writing them;
`--json FILE` writes {arch: {a_ips, b_ips, c_ips, b_over_a, b_over_c, peak_mem_mib}} (benchmarks/gpu_check.py).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script, Python would only see benchmarks/
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm loads: bars would garble the table

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

WIDTH, HEIGHT, CLASSES = 384, 512, 18
VARIANTS = {"naive": "(a) naive: PIL decode+resize every epoch, fp32",
            "project": "(b) project trainer (decode-once cache)",
            "compute": "(c) compute-bound: batch already on device"}


# --- data ----------------------------------------------------------------------------------------

def write_photos(root: Path, n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Photo-like JPEGs: a blurred random colour field, a bright blob and mild noise (about 30-60 KB each)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rows = []
    for i in range(n):
        label = i % CLASSES
        coarse = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), np.int16)
        cy, cx = rng.integers(100, 412), rng.integers(80, 304)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < (40 + 4 * label) ** 2
        field[blob] = field[blob] // 2 + 120
        noisy = np.clip(field + rng.integers(-5, 6, field.shape), 0, 255).astype(np.uint8)
        folder = root / f"{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        rows.append((str(path), label))
    return rows


def read_photos(root: Path, n: int) -> list[tuple[str, int]]:
    """JPEGs already laid out as root/<label>/<n>.jpg (as write_photos does); the first n by file name,
    so every label is represented."""
    found = sorted(((str(p), int(p.parent.name)) for p in root.glob("*/*.jpg")), key=lambda r: Path(r[0]).name)
    if len(found) < n:
        raise SystemExit(f"error: --photos {root} holds {len(found)} JPEGs in <label>/ folders; --images wants {n}")
    return found[:n]


# --- shared helpers --------------------------------------------------------------------------------

def resolve(device: str) -> torch.device:
    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                        "cpu" if device == "auto" else device)


def children_peak_rss_mib() -> float:
    """Summed peak RSS (VmHWM) of this process's live children, i.e. DataLoader workers; Linux only."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():  # fields[1] is the parent pid
                status = (stat.parent / "status").read_text()
                total += int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")))
        except (OSError, ValueError, IndexError, StopIteration):
            continue  # a process that ended while we looked
    return total / 1024


def peak_memory_mib(device: torch.device, workers: float = 0.0) -> dict:
    if device.type == "cuda":
        return {"peak": torch.cuda.max_memory_allocated(device) / 2**20, "kind": "cuda max_memory_allocated"}
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {"peak": own, "workers": workers, "kind": "RSS"}


def member_config(args, device: torch.device):
    from core.config import load_config

    return load_config(None, [
        f"model.arch={args.arch}", f"data.image_size=[{args.size},{args.size}]", f"train.batch_size={args.batch_size}",
        f"train.epochs={args.epochs + 1}", f"train.device={device}", "train.augment.hflip=0.5",
        "train.augment.crop_scale=[0.6,1.0]", f"train.augment.mode={args.augment_mode}",
        "early_stopping.patience=1000", "name=bench"])


def trainer_rates(config, model, feed, val_feed, val_labels, device) -> list[float]:
    """Per-epoch training img/s from the real Trainer (validation is not part of the timing)."""
    from timm.data import resolve_model_data_config

    from members.trainer import Network, RunContext, Trainer
    from modeling.preprocess import Normalize

    data_cfg = resolve_model_data_config(model)
    trainer = Trainer(config, Network(model, Normalize(data_cfg["mean"], data_cfg["std"]), feed.augment),
                      RunContext(device))
    result = trainer.fit(feed.train, val_feed, val_labels)
    return [h["train_img_per_s"] for h in result.history]


# --- the three variants (each runs in its own process) ------------------------------------------------

def run_naive(args, rows, device) -> dict:
    import timm
    from torchvision.transforms import v2

    class DecodeEveryEpoch(torch.utils.data.Dataset):
        def __init__(self):
            self.tf = v2.Compose([v2.PILToTensor(), v2.RandomResizedCrop([args.size, args.size], scale=(0.6, 1.0)),
                                  v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                                  v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            path, label = rows[i]
            with Image.open(path) as img:
                rgb = img.convert("RGB").resize((args.size, args.size), Image.Resampling.BILINEAR)
            return self.tf(rgb), label

    loader = torch.utils.data.DataLoader(DecodeEveryEpoch(), batch_size=args.batch_size, shuffle=True,
                                         drop_last=True, num_workers=args.workers, pin_memory=device.type == "cuda",
                                         persistent_workers=args.workers > 0)
    model = timm.create_model(args.arch, pretrained=False, num_classes=CLASSES).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rates = []
    for _ in range(args.epochs + 1):
        model.train()
        start, seen, running = time.perf_counter(), 0, 0.0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item()
            seen += len(y)
        rates.append(seen / (time.perf_counter() - start))
    return {"rates": rates, "workers_mib": children_peak_rss_mib()}  # persistent workers are still alive


def run_project(args, rows, device) -> dict:
    import timm

    from core.distributed import DistContext
    from imagedata.image_cache import decoded_images
    from members.feeding import build_feeds

    config = member_config(args, device)
    paths, labels = [p for p, _ in rows], np.array([y for _, y in rows])
    started = time.perf_counter()
    images = decoded_images(paths, (args.size, args.size), Path(args.work) / "cache" / "images")
    cache_s = time.perf_counter() - started
    val_idx = np.arange(args.batch_size)  # one batch: validation is not what is measured
    feeds = build_feeds(config, images, labels, np.arange(len(rows)), val_idx, DistContext(device))
    model = timm.create_model(args.arch, pretrained=False, num_classes=CLASSES)
    rates = trainer_rates(config, model, feeds, feeds.val, labels[val_idx], device)
    return {"rates": rates, "cache_s": cache_s, "placement": feeds.placement, "augment": feeds.mode}


class SameBatch:
    """A feed that hands the Trainer one uint8 batch already on the device, as often as an epoch needs."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batches: int):
        self.images, self.labels, self.batches = images, labels, batches

    def __len__(self):
        return self.batches

    def epoch(self, epoch: int, skip: int = 0):
        return ((self.images, self.labels) for _ in range(skip, self.batches))


def run_compute(args, rows, device) -> dict:
    from types import SimpleNamespace

    import timm

    config = member_config(args, device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch_size, 3, args.size, args.size), dtype=torch.uint8,
                           generator=generator).to(device)
    labels = torch.randint(0, CLASSES, (args.batch_size,), generator=generator).to(device)
    feed = SimpleNamespace(train=SameBatch(images, labels, len(rows) // args.batch_size), augment=None)
    val = SameBatch(images, labels, 1)
    model = timm.create_model(args.arch, pretrained=False, num_classes=CLASSES)
    return {"rates": trainer_rates(config, model, feed, val, labels.cpu().numpy(), device)}


RUNNERS = {"naive": run_naive, "project": run_project, "compute": run_compute}


# --- the parent: data once, each variant in a child, one table ------------------------------------

def child(args) -> None:
    device = resolve(args.device)
    rows = json.loads((Path(args.work) / "rows.json").read_text())
    out = RUNNERS[args.variant](args, rows, device)
    # Epoch 1 warms up (workers, allocator, cudnn autotuning); the best later epoch is the least
    # disturbed by whatever else the machine is doing.
    measured = out["rates"][1:]
    out |= {"img_s": float(np.max(measured)), "memory": peak_memory_mib(device, out.get("workers_mib", 0.0)),
            "device": str(device)}
    print("RESULT " + json.dumps(out))


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, no GPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["resnet18"], help="one or more timm architectures")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs after one warm-up; the best is reported")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--augment-mode", default="auto", choices=["auto", "batched", "per_sample"],
                        help="the project path's train.augment.mode (auto: batched on a GPU, per-sample on a CPU)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers of the naive loop (default: the cores, up to 8)")
    parser.add_argument("--photos", type=Path, help="reuse the JPEGs in DIR/<label>/*.jpg instead of writing them")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--variant", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        args.arch = args.arch[-1]  # a child measures one architecture
        child(args)
        return 0
    if args.images < 2 * args.batch_size:
        parser.error("--images must be at least two batches")

    device = resolve(args.device)
    figures, failed = {}, False
    with tempfile.TemporaryDirectory(prefix="train-bench-") as work:
        started = time.perf_counter()
        rows = read_photos(args.photos, args.images) if args.photos else write_photos(Path(work) / "photos",
                                                                                     args.images)
        (Path(work) / "rows.json").write_text(json.dumps(rows))
        jpeg_kb = np.mean([os.path.getsize(p) for p, _ in rows]) / 1024
        print(f"{args.images} JPEGs (mean {jpeg_kb:.0f} KB) {'found' if args.photos else 'written'} in "
              f"{time.perf_counter() - started:.1f} s; {', '.join(args.arch)} at {args.size}px, batch "
              f"{args.batch_size}, best of {args.epochs} epochs after 1 warm-up; {describe_machine(device)}")
        for arch in args.arch:
            results, error = {}, None
            for variant in RUNNERS:
                proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--arch", arch, "--variant", variant,
                                       "--work", work], capture_output=True, text=True, cwd=REPO)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    print(f"{arch} {variant} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                    tail = [ln for ln in proc.stderr.splitlines() if ln.strip()]
                    error = f"{variant}: {tail[-1] if tail else f'exit {proc.returncode}'}"
                    break
                results[variant] = json.loads(line[len("RESULT "):])
            if error:
                figures[arch], failed = {"error": error}, True
                continue
            print(f"\n== {arch} ==")
            report(results, args)
            figures[arch] = summary(results)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if failed else 0


def summary(results: dict) -> dict:
    """The figures gpu_check records: (a), (b), (c) in img/s, the two ratios, (b)'s peak memory."""
    a, b, c = (results[v]["img_s"] for v in ("naive", "project", "compute"))
    return {"a_ips": round(a, 1), "b_ips": round(b, 1), "c_ips": round(c, 1), "b_over_a": round(b / a, 3),
            "b_over_c": round(b / c, 3), "peak_mem_mib": round(results["project"]["memory"]["peak"], 1),
            "memory_kind": results["project"]["memory"]["kind"], "placement": results["project"]["placement"],
            "augment": results["project"]["augment"]}


def report(results: dict, args) -> None:
    print(f"\n{'variant':<46} {'img/s':>8}  {'each measured epoch':<22} peak memory")
    for variant, label in VARIANTS.items():
        r = results[variant]
        mem = r["memory"]
        text = f"{mem['peak']:.0f} MiB {mem['kind']}"
        if mem.get("workers"):
            text += f" + {mem['workers']:.0f} in workers"
        epochs = " ".join(f"{v:.1f}" for v in r["rates"][1:])
        print(f"{label:<46} {r['img_s']:>8.1f}  {epochs:<22} {text}")
    a, b, c = (results[v]["img_s"] for v in ("naive", "project", "compute"))
    p = results["project"]
    print(f"\n(b)/(a) = {b / a:.2f}x    (b)/(c) = {b / c:.2f}x of the compute-bound rate")
    print(f"project path: {p['augment']} augmentation, pool {p['placement']}; the decode-once cache took "
          f"{p['cache_s']:.1f} s ({args.images / p['cache_s']:.0f} img/s), once per image set and size, "
          "shared by every member and epoch")


if __name__ == "__main__":
    raise SystemExit(main())
