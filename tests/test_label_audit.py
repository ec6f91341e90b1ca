"""The label audit end to end on digits with planted label flips: 2 architectures x 3 folds, real scripts."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import run_script, train_in_process

FLIP_SHARE = 0.03
TINY = ["data.image_size=[16,16]", "train.epochs=2", "train.batch_size=64", "data.split.n_folds=3",
        "data.duplicates=off", "data.source=csv"]
ARCHS = {"a": "resnet10t", "b": "test_resnet"}
pytestmark = pytest.mark.slow  # nine tiny trainings on a CPU


def plant_flips(digits_root, out, share: float, seed: int = 0) -> tuple[pd.DataFrame, set[str]]:
    """A `path,label` list of the digits pool with `share` of its labels moved to another class (seeded)."""
    rows = sorted((digits_root / "train").rglob("*.png"))
    table = pd.DataFrame({"path": [str(p) for p in rows], "label": [int(p.parent.name) for p in rows]})
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(table), size=round(share * len(table)), replace=False)
    table.loc[flipped, "label"] = (table.loc[flipped, "label"] + rng.integers(1, 10, len(flipped))) % 10
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "noisy.csv", index=False)
    return table, {table["path"][i] for i in flipped}


@pytest.fixture(scope="module")
def audited(tmp_path_factory, digits_root):
    """Six fold members trained in this process on a pool with planted flips; the audit as the user runs it."""
    out = tmp_path_factory.mktemp("audit")
    env = {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(out / "data"), "TQDM_DISABLE": "1",
           "WANDB_MODE": "disabled", "VOTE_LOCAL_CONFIG": str(out / "none.yaml"), "OMP_NUM_THREADS": "1"}
    _, flipped = plant_flips(digits_root, out / "lists", FLIP_SHARE)
    data = [f"data.root={out / 'lists' / 'noisy.csv'}", f"data.test={digits_root / 'test' / 'info.csv'}"]
    cfg = str(__import__("helpers").REPO / "configs" / "digits" / "resnet18.yaml")
    for prefix, arch in ARCHS.items():
        for k in range(3):
            train_in_process("--config", cfg, f"name={prefix}-f{k}", f"model.arch={arch}", f"data.split.fold={k}",
                             "data.split.name=noisy-k3", *TINY, *data, env=env)
    proc = run_script("audit", "--groups", "a-f", "b-f", "--name", "audit-1", "--top", "20", env=env)
    return out, env, flipped, proc, cfg, data


def test_the_audit_finds_the_planted_flips_well_above_chance(audited):
    out, _, flipped, proc, _, _ = audited
    folder = out / "audits" / "audit-1"
    suspects = pd.read_csv(folder / "suspects.csv", dtype={"id": str})
    found = set(suspects["path"])
    hits = len(found & flipped)
    precision, recall = hits / max(len(found), 1), hits / len(flipped)
    print(f"\naudit: {len(found)} suspects, {hits} of {len(flipped)} planted flips found: "
          f"precision {precision:.2f}, recall {recall:.2f} (chance precision {FLIP_SHARE:.2f})")
    # Chance: flagging rows at random gives precision 0.03; recall of k random picks is k / N.
    assert precision >= 5 * FLIP_SHARE and recall >= 0.3
    assert list(suspects["rank"]) == list(range(1, len(suspects) + 1))
    assert suspects["self_confidence"].is_monotonic_increasing   # worst first
    assert {"id", "path", "given", "suggested", "self_confidence", "group", "vote:a-f*", "vote:b-f*"} <= set(suspects)
    noise = pd.read_csv(folder / "noise.csv")
    assert len(noise) == 10 and noise["noise_rate"].between(0, 1).all() and noise["given"].sum() == 1437
    joint = pd.read_csv(folder / "confident_joint.csv", index_col=0)
    assert joint.shape == (10, 10) and abs(joint.to_numpy().sum() - 1437) <= 10
    html = (folder / "audit.html").read_text()
    assert "audit-suspects" in html and "data:image/png;base64" in html and "vote:a-f*" in html
    assert (folder / "review.png").stat().st_size > 1000
    summary = json.loads((folder / "audit.json").read_text())
    assert summary["units"] == {"a-f*": ["a-f0", "a-f1", "a-f2"], "b-f*": ["b-f0", "b-f1", "b-f2"]}
    assert "prune_by_noise_rate" in summary["method"] and "likely label errors" in proc.stdout
    corrections = pd.read_csv(folder / "corrections.csv", dtype=str)
    assert list(corrections.columns) == ["id", "action", "label"] and len(corrections) == min(20, len(suspects))
    assert (corrections["action"] == "relabel").all()


def test_a_holdout_member_alone_is_refused(audited):
    out, env, *_ = audited
    proc = run_script("audit", "--members", "a-f0", "--name", "h", env=env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "holdout" in line and "fold groups" in line and "a-f0" in line
    assert not (out / "audits" / "h").exists()


def test_the_vote_report_shows_the_audit(audited):
    out, env, *_ = audited
    run_script("vote", "--groups", "a-f", "b-f", "--name", "v", env=env)
    md = (out / "reports" / "v" / "report.md").read_text()
    assert "Label audit: estimated noise per class" in md and "Label audit: likely label errors" in md
    assert "audit-1" in md


def test_retraining_on_the_corrections_and_voting_it_against_the_noisy_group_is_refused(audited):
    out, env, _, _, cfg, data = audited
    folder = out / "audits" / "audit-1"
    fixes = pd.read_csv(folder / "corrections.csv", dtype=str)
    fixes.loc[fixes.index[-1], "action"] = "drop"     # a person's edit: one suggestion dropped instead
    fixes.to_csv(folder / "corrections.csv", index=False)
    for k in range(3):
        train_in_process("--config", cfg, f"name=c-f{k}", "model.arch=test_resnet", f"data.split.fold={k}",
                         "data.split.name=fixed-k3", "data.corrections=audits/audit-1/corrections.csv", *TINY, *data,
                         env=env)
    entry = next(e for e in yaml.safe_load((out / "registry.yaml").read_text())["members"] if e["name"] == "c-f0")
    assert entry["corrections"]["relabel"] == len(fixes) - 1 and entry["corrections"]["drop"] == 1
    split = pd.read_csv(out / "splits" / "fixed-k3.csv")
    assert len(split) == 1437 - 1 and split["corrections"].str.contains(entry["corrections"]["sha256"]).all()
    proc = run_script("vote", "--groups", "a-f", "c-f", "--name", "mixed", env=env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "different label corrections" in proc.stderr and not (out / "submissions" / "mixed.csv").exists()
