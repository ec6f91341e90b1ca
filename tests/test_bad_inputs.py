"""Bad inputs a user brings, through the commands a user runs.

Every bad case must exit non-zero with ONE line on stderr ("error: ...") that names
the file, row, member or key at fault, show no traceback (unless --debug), and
leave no partial output: no submission, no report, no registry change, no run folder.
Odd but valid images (CMYK, RGBA, 16-bit, EXIF-rotated) must be accepted and converted.

One tiny member is trained once (in-process) on a few generated images; each case
gets its own copy of that project, breaks one thing, and runs one command. The
commands run two at a time (most of each is a new interpreter importing its stack,
which leaves a core idle while files are read).
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from core.hashing import sha256_file
from core.registry import Registry
from helpers import run_script

IMG = 20
CLASSES = {"a": (220, 40, 40), "b": (40, 200, 40), "c": (40, 40, 220)}
SIZE = [16, 16]


# ---------------------------------------------------------------- images: odd but valid, and broken

def noise_png(path: Path, rgb: tuple[int, int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(rgb) + rng.integers(-25, 26, (IMG, IMG, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def cmyk_jpeg(path: Path) -> Path:
    Image.new("CMYK", (IMG, IMG), (255, 0, 0, 0)).save(path, "JPEG", quality=95)  # pure cyan ink
    return path


def rgba_png(path: Path) -> Path:
    Image.new("RGBA", (IMG, IMG), (255, 0, 0, 128)).save(path)  # half-transparent red
    return path


def gray16_png(path: Path) -> Path:
    arr = np.full((IMG, IMG), 60000, dtype=np.uint16)
    arr[:, : IMG // 2] = 10000
    Image.fromarray(arr).save(path)  # mode I;16: a lab camera's 16-bit greyscale
    return path


def exif_rotated_jpeg(path: Path) -> Path:
    # Stored 30 wide x 20 high, left half red; EXIF 6 says "turn 90 degrees clockwise to view".
    arr = np.zeros((20, 30, 3), dtype=np.uint8)
    arr[:, :15] = (255, 0, 0)
    arr[:, 15:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(path, "JPEG", quality=95, exif=exif)
    return path


def truncated_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, "JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


ODD_TRAIN = {"a/cmyk.jpg": cmyk_jpeg, "b/rgba.png": rgba_png, "c/gray16.png": gray16_png,
             "c/exif.jpg": exif_rotated_jpeg}
ODD_TEST = {"cmyk.jpg": cmyk_jpeg, "exif.jpg": exif_rotated_jpeg}


def write_tiny_data(root: Path) -> Path:
    """An image folder (train/<class>/...) and an info.csv test list, in the layouts users bring."""
    for k, (name, rgb) in enumerate(CLASSES.items()):
        (root / "train" / name).mkdir(parents=True)
        for i in range(6):
            noise_png(root / "train" / name / f"{i}.png", rgb, seed=10 * k + i)
    for rel, make in ODD_TRAIN.items():
        make(root / "train" / rel)
    images = root / "test" / "images"
    images.mkdir(parents=True)
    ids = [noise_png(images / f"t{i}.png", rgb, seed=100 + i).name for i, rgb in enumerate(CLASSES.values())]
    ids += [make(images / name).name for name, make in ODD_TEST.items()]
    pd.DataFrame({"ImageID": ids, "ans": 0}).to_csv(root / "test" / "info.csv", index=False)
    return root


def write_config(path: Path, data: Path) -> Path:
    config = {"name": "good", "data": {"source": "folder", "root": str(data / "train"),
                                       "test": str(data / "test" / "info.csv"), "image_size": SIZE,
                                       "split": {"name": "tiny", "n_folds": 3, "fold": 0, "seed": 0}},
              "model": {"arch": "test_resnet"}, "train": {"epochs": 1, "batch_size": 32},
              "tracking": {"wandb": {"mode": "disabled"}}}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def base_env(root: Path, out: Path) -> dict[str, str]:
    return {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(root / "data-root"),
            "VOTE_LOCAL_CONFIG": str(root / "no-local.yaml"), "WANDB_MODE": "disabled",
            "WANDB_DIR": str(root / "wandb"), "TQDM_DISABLE": "1"}


@dataclass
class Trained:
    root: Path
    data: Path
    config: Path
    out: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """One tiny member, trained and predicted in-process (the functions behind the scripts)."""
    from core.config import load_config
    from core.settings import load_settings
    from jobs.train import train_member
    from predict.run import predict_members

    root = tmp_path_factory.mktemp("bad-inputs")
    data = write_tiny_data(root / "data")
    config = write_config(root / "tiny.yaml", data)
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in base_env(root, out).items():
            mp.setenv(key, value)
        settings = load_settings()
        train_member(load_config(config), settings)
        predict_members(["good"], Registry(settings.registry), settings)
    return Trained(root, data, config, out)


# ---------------------------------------------------------------- the cases

@dataclass
class Project:
    """One case's own copy of the trained project: break something in it, then run one command."""
    root: Path
    trained: Trained
    env: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def registry(self) -> Registry:
        return Registry(self.out / "registry.yaml")

    def data(self) -> Path:
        """A private copy of the images, for cases that break one of them."""
        copy = self.root / "data"
        if not copy.exists():
            shutil.copytree(self.trained.data, copy)
        return copy

    def train(self, *overrides: str) -> tuple[str, list[str]]:
        return "train", ["--config", str(self.trained.config), "name=newcomer", "data.split.name=case", *overrides]

    def train_on_copy(self, *overrides: str) -> tuple[str, list[str]]:
        data = self.data()
        return self.train(f"data.root={data / 'train'}", f"data.test={data / 'test' / 'info.csv'}", *overrides)

    def register_variant(self, name: str, **changes) -> None:
        self.registry.add(dict(self.registry.get("good").to_dict(), name=name, **changes))

    def weights(self) -> Path:
        return self.registry.resolve(self.registry.get("good").weights)


@dataclass
class Run:
    module: str
    args: list[str]
    names: list[str]  # what the last stderr line must name
    details: list[str] = field(default_factory=list)  # what the report above it (stdout) must name


CASES: dict[str, Callable[[Project], Run]] = {}


def case(fn: Callable[[Project], Run]) -> Callable[[Project], Run]:
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


@case
def case_corrupt_empty_and_truncated_images(p: Project) -> Run:
    # One run with all three: the pre-scan must name every bad file at once, before training starts.
    train = p.data() / "train"
    corrupt = train / "b" / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 700, dtype=np.uint8).tobytes())
    empty = train / "c" / "empty.jpg"
    empty.write_bytes(b"")
    truncated = truncated_jpeg(train / "a" / "cut.jpg")
    return Run(*p.train_on_copy(), [str(corrupt), str(empty), str(truncated)])


@case
def case_info_csv_lists_a_missing_image(p: Project) -> Run:
    info = p.data() / "test" / "info.csv"
    table = pd.read_csv(info)
    pd.concat([table, pd.DataFrame({"ImageID": ["ghost.png"], "ans": [0]})]).to_csv(info, index=False)
    return Run(*p.train_on_copy(), [str(info), "ghost.png"])


@case
def case_info_csv_without_header(p: Project) -> Run:
    info = p.data() / "test" / "info.csv"
    rows = info.read_text(encoding="utf-8").splitlines()[1:]
    info.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Run(*p.train_on_copy(), [str(info), "ImageID"])


@case
def case_csv_label_out_of_range(p: Project) -> Run:
    train = p.data() / "train"
    listing = train / "train.csv"
    rows = [{"path": f"{c}/{i}.png", "label": k} for k, c in enumerate(CLASSES) for i in range(6)]
    rows[4]["label"] = 7  # the fifth data row: line 6 of the file
    pd.DataFrame(rows).to_csv(listing, index=False)
    (train / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    return Run(*p.train("data.source=csv", f"data.root={listing}"), [str(listing), "row 6", "label 7"])


@case
def case_unknown_architecture(p: Project) -> Run:
    return Run(*p.train("model.arch=resnet_999"), ["resnet_999"])


@case
def case_unknown_config_key(p: Project) -> Run:
    return Run(*p.train("train.epoch=1"), ["train.epoch", "epochs"])


@case
def case_output_folder_cannot_be_written(p: Project) -> Run:
    # Root ignores permission bits, so the unwritable folder is one whose parent is a regular file.
    blocker = p.root / "blocker"
    blocker.write_text("a file where the output folder should be\n")
    p.env["VOTE_OUTPUT_ROOT"] = str(blocker / "out")
    return Run(*p.train(), [f"{blocker} is a file, not a folder"])


@case
def case_submission_folder_cannot_be_written(p: Project) -> Run:
    blocker = p.root / "blocker"
    blocker.write_text("a file where the submissions folder should be\n")
    target = blocker / "final.csv"
    return Run("vote", ["--members", "good", "--out", str(target)], [f"{target}: {blocker} is a file, not a folder"])


@case
def case_member_not_in_registry(p: Project) -> Run:
    return Run("vote", ["--members", "good", "ghost"], ["member 'ghost'", "registered: good"])


@case
def case_members_with_different_classes(p: Project) -> Run:
    p.register_variant("relabeled", classes=list(reversed(p.registry.get("good").classes)))
    return Run("vote", ["--members", "good", "relabeled"], ["'good'", "'relabeled'", "class"])


@case
def case_members_on_different_splits(p: Project) -> Run:
    p.register_variant("other-fold", split=dict(p.registry.get("good").split.to_dict(), fold=1))
    return Run("vote", ["--members", "good", "other-fold"], ["'good'", "'other-fold'", "split"])


@case
def case_weights_missing(p: Project) -> Run:
    weights = p.weights()
    weights.unlink()
    return Run("vote", ["--members", "good"], ["'good'", str(weights)])


@case
def case_weights_hash_mismatch(p: Project) -> Run:
    # `verify` is how a user finds this before voting; predict refusing it is in test_checkpoint_safety.py.
    weights = p.weights()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    return Run("registry", ["verify"], ["1 of 1 member(s)", "good"], [f"weights file {weights} has sha256"])


@case
def case_split_file_missing(p: Project) -> Run:
    # A registry copied to another machine without its splits/ folder.
    split = p.out / "splits" / "tiny.csv"
    split.unlink()
    return Run("vote", ["--members", "good"], [str(split), "does not exist"])


@case
def case_malformed_registry(p: Project) -> Run:
    path = p.registry.path
    path.write_text(path.read_text(encoding="utf-8").replace("  arch:", "    arch:", 1), encoding="utf-8")
    return Run("registry", ["list"], [str(path), "not valid YAML at line"])


@case
def case_empty_registry(p: Project) -> Run:
    p.registry.path.write_bytes(b"")
    return Run("registry", ["list"], [str(p.registry.path), "is empty"])


@case
def case_registry_entry_breaks_the_schema(p: Project) -> Run:
    path = p.registry.path
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(p.registry.get("good").sha256, "abc123"), encoding="utf-8")
    return Run("registry", ["list"], [str(path), "member #1 ('good')", "'sha256'"])


# ---------------------------------------------------------------- running them, and what "nothing written" means

def outputs(*roots: Path) -> dict[str, str]:
    """Every output path with its content hash, except caches and lock files, which may change freely."""
    found = {}
    for root in roots:
        if root.is_file():
            found[str(root)] = sha256_file(root)
            continue
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            rel = path.relative_to(root)
            if rel.parts[0] in ("cache", "wandb") or path.suffix == ".lock":
                continue
            found[str(path)] = sha256_file(path) if path.is_file() else "folder"
    return found


@dataclass
class Outcome:
    run: Run
    proc: object
    before: dict
    after: dict


@pytest.fixture(scope="module")
def outcomes(trained, tmp_path_factory) -> dict[str, Outcome]:
    prepared = []
    for name, make in CASES.items():
        project = Project(tmp_path_factory.mktemp(name), trained)
        shutil.copytree(trained.out, project.out)
        project.env = base_env(project.root, project.out)
        run = make(project)
        watched = (project.out, project.root / "blocker")
        prepared.append((name, project, run, watched, outputs(*watched)))

    def execute(item):
        name, project, run, watched, before = item
        proc = run_script(run.module, *run.args, env=project.env, check=False, timeout=300)
        return name, Outcome(run, proc, before, outputs(*watched))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(execute, prepared))


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_fails_in_one_line_naming_the_culprit_and_writes_nothing(outcomes, name):
    outcome = outcomes[name]
    proc = outcome.proc
    assert proc.returncode != 0, f"{name} should fail:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr
    for culprit in outcome.run.names:
        assert culprit in last, f"the message should name {culprit!r}: {last}"
    for detail in outcome.run.details:
        assert detail in proc.stdout, proc.stdout
    assert outcome.after == outcome.before, "a failed command changed or left behind output files"


def test_debug_shows_the_traceback(trained, isolated_env):
    shutil.copytree(trained.out, isolated_env, dirs_exist_ok=True)
    (isolated_env / "registry.yaml").write_text("version: 1\nmembers: [\n", encoding="utf-8")
    plain = run_script("registry", "list", check=False)
    debug = run_script("registry", "list", "--debug", check=False)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "UserError" in debug.stderr


def test_there_are_enough_cases():
    assert len(CASES) >= 15


def test_a_message_that_spans_lines_is_printed_as_one(capsys):
    from core.errors import UserError, cli_entry

    @cli_entry
    def main(argv):
        raise UserError("weights file x.pt was refused:\n  Unsupported global: builtins.exec\n")

    assert main([]) == 2
    assert capsys.readouterr().err == "error: weights file x.pt was refused: Unsupported global: builtins.exec\n"


# ---------------------------------------------------------------- odd but valid images are accepted and converted

def _pool_ids(trained: Trained) -> set[str]:
    return set(pd.read_csv(trained.out / "splits" / "tiny.csv", dtype=str)["id"])


def _test_ids(trained: Trained) -> set[str]:
    with np.load(trained.out / "cache" / "predictions" / "good" / "test.npz", allow_pickle=False) as cached:
        return set(cached["ids"].tolist())


def test_odd_images_were_trained_on_and_predicted(trained):
    # The member registered, its pool holds every odd file, and the test rows include the odd test images.
    assert Registry(trained.out / "registry.yaml").exists("good")
    assert set(ODD_TRAIN) <= _pool_ids(trained)
    assert set(ODD_TEST) <= _test_ids(trained)


def _rgb(path: Path) -> np.ndarray:
    from core.images import load_rgb

    img = load_rgb(path)
    assert img.mode == "RGB"
    return np.asarray(img, dtype=np.int16)


def test_cmyk_becomes_the_same_colour_in_rgb(trained):
    pixels = _rgb(trained.data / "train" / "a" / "cmyk.jpg")
    assert np.abs(pixels - np.array([0, 255, 255])).max() <= 8  # cyan ink is RGB (0, 255, 255)


def test_rgba_is_composited_onto_white(trained):
    pixels = _rgb(trained.data / "train" / "b" / "rgba.png")
    assert np.abs(pixels - np.array([255, 127, 127])).max() <= 2  # half-transparent red over white


def test_16_bit_greyscale_is_scaled_not_clipped(trained):
    pixels = _rgb(trained.data / "train" / "c" / "gray16.png")
    expected_left, expected_right = round(10000 / 65535 * 255), round(60000 / 65535 * 255)
    assert np.abs(pixels[:, : IMG // 2] - expected_left).max() <= 1
    assert np.abs(pixels[:, IMG // 2:] - expected_right).max() <= 1


def test_exif_rotation_is_applied(trained):
    from core.images import load_resized

    pixels = _rgb(trained.data / "train" / "c" / "exif.jpg")
    assert pixels.shape == (30, 20, 3)  # upright: 20 wide, 30 high
    top, bottom = pixels[:12].mean(axis=(0, 1)), pixels[-12:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60, "the stored left half (red) must end up on top"
    assert bottom[2] > 200 and bottom[0] < 60
    resized = load_resized(trained.data / "train" / "c" / "exif.jpg", tuple(SIZE)).astype(np.int16)
    assert resized[0].mean(axis=0)[0] > 200 and resized[-1].mean(axis=0)[2] > 200
