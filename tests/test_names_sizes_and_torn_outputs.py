"""Hostile inputs, round two: names that would leave their folder, unbounded sizes, torn outputs,
and the user mistakes that still ended in a traceback.

Each case gets its own copy of the tiny trained project of test_bad_inputs.py, breaks one thing,
and calls the script's main(argv) in-process (it returns the exit code; cli_entry turns a
UserError into one `error:` line). Only the killed vote runs as a real process, because a
process must die mid-write. Every failing case must exit non-zero with one line naming the
culprit, show no traceback, and leave the project's outputs exactly as they were.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from core.errors import UserError
from core.registry import Registry
from helpers import REPO
from test_bad_inputs import Trained, base_env, noise_png, outputs, trained  # noqa: F401  (trained: a fixture)


class Project:
    """One case's own copy of the trained project, with the environment the scripts read."""

    def __init__(self, trained: Trained, root: Path, monkeypatch):
        self.trained, self.root = trained, root
        shutil.copytree(trained.out, self.out)
        self.env = base_env(root, self.out)
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def registry(self) -> Registry:
        return Registry(self.out / "registry.yaml")

    def cached(self, split: str) -> Path:
        return self.out / "cache" / "predictions" / "good" / f"{split}.npz"

    def data(self) -> Path:
        copy = self.root / "data"
        if not copy.exists():
            shutil.copytree(self.trained.data, copy)
        return copy

    def train_args(self, *overrides: str) -> list[str]:
        return ["--config", str(self.trained.config), "name=newcomer", "data.split.name=case", *overrides]


@pytest.fixture
def project(trained, tmp_path, monkeypatch) -> Project:  # noqa: F811  (the imported fixture)
    return Project(trained, tmp_path / "project", monkeypatch)


def main_of(script: str):
    module = __import__(f"scripts.{script}", fromlist=["main"])
    return module.main


def fails(capsys, project: Project, script: str, argv: list[str], *culprits: str,
          watched: tuple[Path, ...] = ()) -> str:
    """Run one script in-process; it must refuse in one line naming every culprit and change nothing."""
    roots = (project.out, *watched)
    before = outputs(*roots)
    capsys.readouterr()
    code = main_of(script)(argv)
    err = capsys.readouterr().err
    assert code != 0, f"scripts.{script} {argv} should fail"
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    for culprit in culprits:
        assert culprit in last, f"the message should name {culprit!r}: {last}"
    assert outputs(*roots) == before, "a failed command changed or left behind output files"
    return last


def succeeds(capsys, script: str, argv: list[str]) -> str:
    capsys.readouterr()
    code = main_of(script)(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


# ---------------------------------------------------------------- 1. names never leave their folder

@pytest.mark.parametrize("name", ["../runs", "../splits", "ABSOLUTE", ".hidden", "a/b"])
def test_a_vote_name_that_is_a_path_is_refused_and_the_project_folders_survive(capsys, project, name):
    target = project.out / "runs" if name == "ABSOLUTE" else None
    name = str(target) if target else name
    fails(capsys, project, "vote", ["--members", "good", "--name", name], "--name", repr(name))
    assert project.registry.get("good") and (project.out / "splits" / "tiny.csv").is_file()


def test_a_report_name_that_is_a_path_is_refused(capsys, project):
    fails(capsys, project, "report", ["--members", "good", "--name", "../splits"], "--name", "'../splits'")
    assert (project.out / "splits" / "tiny.csv").is_file()


@pytest.mark.parametrize("script", ["vote", "report"])
def test_a_folder_that_is_not_a_report_is_never_replaced(capsys, project, script):
    runs = project.out / "runs"
    flag = "--report" if script == "vote" else "--out"
    fails(capsys, project, script, ["--members", "good", flag, str(runs)], str(runs), "not a report folder")


def test_a_report_folder_the_project_made_is_replaced(capsys, project):
    succeeds(capsys, "report", ["--members", "good", "--name", "again", "--n-boot", "20"])
    folder = project.out / "reports" / "again"
    (folder / "stale.txt").write_text("from the first build")
    succeeds(capsys, "report", ["--members", "good", "--name", "again", "--n-boot", "20", "--overwrite"])
    assert (folder / "report.html").is_file() and not (folder / "stale.txt").exists()


def test_an_imported_member_name_cannot_write_outside_the_cache(capsys, project):
    npz = project.root / "foreign.npz"
    with np.load(project.cached("val"), allow_pickle=False) as z:
        np.savez(npz, ids=z["ids"], probs=z["probs"], classes=z["classes"])
    escape = project.root / "x"
    fails(capsys, project, "predict", ["import", "--member", "../../../x", "--split", "val", "--npz", str(npz),
                                       "--like", "good"], "--member", "'../../../x'", watched=(escape,))
    assert not escape.exists()


def test_a_registry_split_name_that_is_a_path_is_refused(capsys, project):
    path = project.registry.path
    path.write_text(path.read_text(encoding="utf-8").replace("name: tiny", "name: ../../etc/passwd"),
                    encoding="utf-8")
    fails(capsys, project, "registry", ["list"], str(path), "'split'", "'../../etc/passwd'")


def test_a_config_split_name_that_is_a_path_is_refused(capsys, project):
    fails(capsys, project, "train", project.train_args("data.split.name=../registry"), "data.split.name",
          "'../registry'")


def test_an_image_id_that_leaves_the_images_folder_is_refused(capsys, project):
    info = project.data() / "test" / "info.csv"
    (project.data() / "test" / "outside.png").write_bytes((project.data() / "test" / "images" / "t0.png").read_bytes())
    table = pd.read_csv(info, dtype=str)
    table.loc[0, "ImageID"] = "../outside.png"
    table.to_csv(info, index=False)
    fails(capsys, project, "check_data", ["--source", "folder", "--root", str(project.data() / "train"),
                                          "--test", str(info)], str(info), "row 2", "'../outside.png'")


# ---------------------------------------------------------------- 2. sizes are bounded

def test_a_registry_input_size_beyond_the_bound_is_refused(capsys, project):
    path = project.registry.path
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries["members"][0]["input"]["size"] = [100000, 100000]
    path.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    # Validation on read is what every command goes through (predict grew to 22 GB on this entry before).
    fails(capsys, project, "registry", ["list"], str(path), "'size'", "4096")


def test_a_config_image_size_beyond_the_bound_is_refused(capsys, project):
    # check_data, not train: train on a version without the bound would claim the memory the bound saves.
    fails(capsys, project, "check_data", ["--config", str(project.trained.config), "data.image_size=[100000,100000]"],
          "data.image_size", "4096")


def test_the_image_cache_refuses_what_the_disk_cannot_hold_with_the_figure(tmp_path):
    from imagedata.image_cache import decoded_images

    # An undecodable file, repeated: should the check ever go, nothing decodes, so the sparse file stays empty
    # instead of filling the disk.
    image = tmp_path / "one.png"
    image.write_bytes(b"not an image")
    cache = tmp_path / "cache"
    free = shutil.disk_usage(tmp_path).free
    n = free // (4096 * 4096 * 3) + 10  # more rows than the disk holds at 4096 x 4096
    with pytest.raises(UserError, match=r"image cache for \d+ images at 4096x4096 needs [\d.]+ [GT]B") as err:
        decoded_images([str(image)] * int(n), (4096, 4096), cache)
    assert "free" in str(err.value)
    assert not [p for p in cache.iterdir() if not p.name.endswith(".lock")]  # nothing allocated


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_the_image_cache_are_swept(tmp_path):
    from imagedata.image_cache import decoded_images

    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / ".0123456789abcdef01234567_99x99.u8.k3j2h1.tmp"
    stale.write_bytes(b"\0" * 1000)  # left by a predict the kernel killed
    image = noise_png(tmp_path / "one.png", (10, 20, 30), seed=0)
    images = decoded_images([str(image)], (8, 8), cache)
    assert images.shape == (1, 8, 8, 3)
    assert not stale.exists()


def test_stale_staging_folders_of_reports_are_swept(capsys, project):
    from core import leftovers

    reports = project.out / "reports"
    reports.mkdir(exist_ok=True)
    tag = leftovers.owner_tag().rsplit("-", 1)[0] + f"-{dead_pid()}"
    stale = reports / f".swept.{tag}-abc123.tmp"
    (stale / "half").mkdir(parents=True)
    live = reports / f".swept.{leftovers.owner_tag()}-def456.tmp"  # this process is alive: left alone
    live.mkdir()
    succeeds(capsys, "report", ["--members", "good", "--name", "swept", "--n-boot", "20"])
    assert not stale.exists() and live.exists()


# ---------------------------------------------------------------- 4. ImageIDs NA, nan, None are names

def test_image_ids_that_pandas_reads_as_missing_are_kept(project):
    from core.config import load_config
    from imagedata.sources import load_dataset

    test = project.data() / "test"
    ids = ["NA", "nan", "None", "null"]
    for name in ids:
        shutil.copy(test / "images" / "t0.png", test / "images" / name)
    pd.DataFrame({"ImageID": ids, "ans": 0}).to_csv(test / "info.csv", index=False)
    config = load_config(project.trained.config, [f"data.test={test / 'info.csv'}"])
    dataset = load_dataset(config.data, project.root)
    assert dataset.test["id"].tolist() == ids


# ---------------------------------------------------------------- 5. a vote's outputs appear together

def test_a_vote_killed_while_writing_its_report_leaves_no_output_and_a_rerun_needs_no_overwrite(capsys, project):
    submission = project.out / "submissions" / "killed.csv"
    recipe = submission.with_name("killed.recipe.yaml")
    report = project.out / "reports" / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO), **project.env)
    proc = subprocess.Popen([sys.executable, "-m", "scripts.vote", "--members", "good", "--name", "killed"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    staging = []
    while proc.poll() is None and time.monotonic() < deadline and not staging:
        staging = list((project.out / "reports").glob(".killed.*.tmp")) if (project.out / "reports").is_dir() else []
        time.sleep(0.002)
    assert staging, f"the vote never staged its report: {proc.stderr.read() if proc.poll() is not None else ''}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not submission.exists() and not recipe.exists() and not report.exists(), \
        "a killed vote left part of its outputs"
    # The rerun sweeps the dead vote's temporaries and needs no --overwrite.
    succeeds(capsys, "vote", ["--members", "good", "--name", "killed"])
    assert submission.is_file() and recipe.is_file() and (report / "report.html").is_file()
    left = [p.name for folder in (submission.parent, report.parent) for p in folder.iterdir()
            if p.name.endswith(".tmp")]
    assert left == []


def test_a_vote_whose_report_fails_writes_no_submission(capsys, project):
    blocker = project.root / "blocker"
    blocker.write_text("a file where the report folder should be\n")
    fails(capsys, project, "vote", ["--members", "good", "--name", "torn", "--report", str(blocker)],
          str(blocker), "is a file", watched=(blocker,))
    assert not (project.out / "submissions" / "torn.csv").exists()


# ---------------------------------------------------------------- 6. tracebacks for user mistakes

def test_a_header_only_info_csv_is_refused_by_check_data_and_train(capsys, project):
    info = project.data() / "test" / "info.csv"
    info.write_text("ImageID,ans\n", encoding="utf-8")
    fails(capsys, project, "check_data", ["--source", "folder", "--root", str(project.data() / "train"),
                                          "--test", str(info)], str(info), "no rows")
    fails(capsys, project, "train", project.train_args(f"data.root={project.data() / 'train'}", f"data.test={info}"),
          str(info), "no rows")


@pytest.mark.parametrize("weight", ["nan", "inf", "-inf"])
def test_a_weight_that_is_not_finite_is_refused(capsys, project, weight):
    fails(capsys, project, "vote", ["--members", "good", "--weights", f"good={weight}"], "'good'", weight)


def test_a_weight_given_twice_is_refused(capsys, project):
    fails(capsys, project, "vote", ["--members", "good", "--weights", "good=2", "good=5"], "'good'", "twice")


def foreign(project: Project, **changes) -> Path:
    with np.load(project.cached("val"), allow_pickle=False) as z:
        fields = {"ids": z["ids"], "probs": z["probs"], "classes": z["classes"]}
    fields.update(changes)
    path = project.root / "foreign.npz"
    np.savez(path, **fields)
    return path


def import_args(npz: Path) -> list[str]:
    return ["import", "--member", "outsider", "--split", "val", "--npz", str(npz), "--like", "good"]


@pytest.mark.parametrize("field, make, culprit", [
    ("classes", lambda p: np.asarray("a"), "classes"),
    ("labels", lambda p: np.zeros(2, dtype=np.int64), "labels"),
    ("labels", lambda p: np.asarray(["x"] * len(p)), "labels"),
    ("logits", lambda p: np.full(p.shape, "big"), "logits"),
])
def test_a_malformed_foreign_field_is_refused_in_one_line(capsys, project, field, make, culprit):
    with np.load(project.cached("val"), allow_pickle=False) as z:
        probs = z["probs"]
    npz = foreign(project, **{field: make(probs)})
    fails(capsys, project, "predict", import_args(npz), str(npz), culprit)
    assert not (project.out / "cache" / "predictions" / "outsider").exists()


def test_a_text_file_given_to_import_is_not_called_pickled_data(capsys, project):
    text = project.root / "notes.npz"
    text.write_text("ids,probs\nt0.png,0.5\n", encoding="utf-8")
    last = fails(capsys, project, "predict", import_args(text), str(text), "not an .npz file")
    assert "pickle" not in last


def test_a_cached_prediction_with_nan_probabilities_is_refused_on_read_and_recomputed(capsys, project):
    from predict import cache

    path = project.cached("test")
    with np.load(path, allow_pickle=False) as z:
        fields = {name: z[name] for name in z.files}
    fields["probs"] = np.full_like(fields["probs"], np.nan)  # the key is kept: only a read check can tell
    np.savez(path, **fields)
    with pytest.raises(UserError, match=r"probs row 0 .* is not finite"):
        cache.load(path)
    succeeds(capsys, "vote", ["--members", "good", "--name", "after-nan"])
    assert np.isfinite(cache.load(path).probs).all()  # predicted again, not voted as NaN


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_predict_on_cuda_without_cuda_is_one_line(capsys, project):
    fails(capsys, project, "predict", ["--members", "good", "--force", "--device", "cuda"], "--device", "'cuda'",
          "no CUDA")


def test_predict_on_a_device_that_does_not_exist_is_one_line(capsys, project):
    fails(capsys, project, "predict", ["--members", "good", "--force", "--device", "gpu7"], "--device", "'gpu7'")


# ---------------------------------------------------------------- 7. smaller

@pytest.mark.parametrize("value", [".nan"])
def test_metrics_that_are_not_finite_are_refused_by_registry_validation(capsys, project, value):
    path = project.registry.path
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries["members"][0]["metrics"]["val_loss"] = float(value.replace(".", ""))
    path.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    fails(capsys, project, "registry", ["list"], str(path), "'metrics'", "'val_loss'")


def test_the_resume_refusal_before_the_first_checkpoint_does_not_blame_the_version(project):
    from members.resume import load_state

    run = project.out / "runs" / "120000_newcomer_test_resnet_incomplete"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: newcomer\n", encoding="utf-8")
    with pytest.raises(UserError, match="no resumable state") as err:
        load_state(run)
    assert "version" not in str(err.value) and "first checkpoint" in str(err.value)
