"""The report users read to choose members: written by `scripts.report` and by `scripts.vote`
from really trained members, checked against scikit-learn computed here from the prediction cache.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, classification_report, f1_score

from core.errors import UserError
from core.settings import Settings
from ensemble.composite import CompositeSpec
from ensemble.recipe import Recipe
from helpers import REPO, run_script
from predict.cache import load
from report.builder import build_report, staged_folder
from report_fixture import member_probs

TINY = ["train.epochs=1", "data.image_size=[16,16]", "train.batch_size=128", "ensemble=rep-test"]
FILES = ["report.html", "report.md", "metrics.json", "metrics.csv", "classification_reports.txt", "recipe.yaml",
         "compare.csv", "learning_curves.png", "disagreement.png", "error_correlation.png", "confusion_a.png",
         "confusion_b.png", "confusion_ensemble-soft.png"]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core box run several times faster on one torch thread than on two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"OMP_NUM_THREADS": "1"}
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_root, one_thread):
    """Two members trained for one epoch on 16-pixel digits, registered in their own output root."""
    from core.config import load_config
    from jobs.train import train_member

    out = tmp_path_factory.mktemp("report")
    settings = Settings(data_root=digits_root.parent, output_root=out)
    config = REPO / "configs" / "digits" / "resnet18.yaml"
    # resnet10t twice, seeded apart: regnets train far slower on CPU at this size.
    for name, seed in [("a", 0), ("b", 3)]:
        train_member(load_config(config, [f"name={name}", "model.arch=resnet10t", f"train.seed={seed}", *TINY]),
                     settings)
    env = {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(digits_root.parent), **one_thread}
    return out, env


@pytest.fixture
def in_root(trained, monkeypatch):
    out, env = trained
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return out


def cached_val(out, name):
    pred = load(out / "cache" / "predictions" / name / "val.npz")
    return pred.probs.astype(np.float64), pred.labels, pred.classes


def test_report_command_writes_the_full_report(trained):
    out, env = trained
    proc = run_script("report", "--members", "a", "b", "--weights", "a=2", "--name", "r", "--n-boot", "200",
                      env=env)
    folder = out / "reports" / "r"
    assert proc.stdout.strip().splitlines()[-1] == f"report: {folder / 'report.html'}"
    for name in FILES:
        assert (folder / name).is_file(), name

    pa, y, classes = cached_val(out, "a")
    pb, _, _ = cached_val(out, "b")
    ensemble = ((2 * pa + pb) / 3).argmax(1)
    expected = {"a": pa.argmax(1), "b": pb.argmax(1), "ensemble:soft": ensemble}
    metrics = json.loads((folder / "metrics.json").read_text())
    scores = {row["name"]: row for row in metrics["scores"]["val"]}
    for name, pred in expected.items():
        assert scores[name]["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro", labels=range(10),
                                                                  zero_division=0), abs=1e-12)
        assert scores[name]["acc"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    table = pd.read_csv(folder / "metrics.csv")
    assert table["name"].tolist() == ["a", "b", "ensemble:soft"] and (table["split"] == "val").all()
    assert np.allclose(table["f1_macro"], [scores[n]["f1_macro"] for n in table["name"]])

    text = (folder / "classification_reports.txt").read_text()
    assert classification_report(y, pa.argmax(1), labels=list(range(10)), target_names=classes, digits=4,
                                 zero_division=0) in text
    assert "== ensemble:soft ==" in text

    compare = pd.read_csv(folder / "compare.csv")
    assert {"best_member", "soft", "caruana", "submitted (ensemble:soft)"} <= set(compare["method"])
    ensembles = compare[compare["kind"] != "member"].dropna(subset=["gain"])
    assert (ensembles["ci_low"] <= ensembles["gain"]).all() and (ensembles["gain"] <= ensembles["ci_high"]).all()

    wrong = int((ensemble != y).sum())
    assert metrics["gallery"]["mistakes"] == wrong and (folder / "gallery.png").is_file() == (wrong > 0)
    assert Recipe.from_yaml(folder / "recipe.yaml").members == {"a": 2.0, "b": 1.0}
    md = (folder / "report.md").read_text()
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (folder / png).is_file(), png
    html = (folder / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(list(folder.glob("*.png")))


def test_a_recipe_file_rebuilds_the_report_whole(in_root, capsys):
    from scripts import report

    folder = in_root / "reports" / "from-recipe"
    recipe = Recipe("hard", {"a": 1.0, "b": 3.0}).to_yaml(in_root / "recipe.yaml")
    folder.mkdir(parents=True)
    (folder / "stale.png").write_bytes(b"left over from an older report")
    (folder / ".ensemble-report").write_text("a report this project made")  # only a report folder is ever replaced
    assert report.main(["--members", "a", "b", "--recipe", str(recipe), "--out", str(folder), "--gallery", "0",
                        "--n-boot", "50"]) == 2  # an existing folder is replaced only when asked
    assert (folder / "stale.png").exists()
    assert report.main(["--members", "a", "b", "--recipe", str(recipe), "--report", str(folder), "--gallery", "0",
                        "--n-boot", "50", "--overwrite"]) == 0
    assert not (folder / "stale.png").exists()
    assert not (folder / "gallery.png").exists()
    pa, y, _ = cached_val(in_root, "a")
    pb, _, _ = cached_val(in_root, "b")
    # b outweighs a, so the hard vote is b's argmax wherever they disagree
    metrics = json.loads((folder / "metrics.json").read_text())
    row = next(r for r in metrics["scores"]["val"] if r["name"] == "ensemble:hard")
    assert row["acc"] == pytest.approx(accuracy_score(y, pb.argmax(1)))
    assert metrics["recipe"]["rule"] == "hard"
    assert f"report: {folder / 'report.html'}" in capsys.readouterr().out


def test_vote_writes_the_same_report_with_test_scores(in_root, capsys):
    from scripts import vote

    assert vote.main(["--members", "a", "b", "--name", "v", "--rule", "hard"]) == 0
    printed = capsys.readouterr().out
    assert "Validation (macro F1 is the metric" in printed and "vote:soft" in printed
    folder = in_root / "reports" / "v"
    for name in ["report.html", "report.md", "metrics.json", "compare.csv", "gallery.png", "learning_curves.png"]:
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["primary"] == "vote:hard"
    assert [r["name"] for r in metrics["scores"]["test"]] == ["a", "b", "vote:hard", "vote:soft"]
    html = (folder / "report.html").read_text()
    assert 'id="compare"' in html and "Test rows of the submission" in html


@pytest.mark.parametrize("args, message", [
    (["--members", "a", "b", "--recipe", "R", "--weights", "a=2"], "give either --recipe or --rule/--weights"),
    (["--members", "a", "--recipe", "R"], "the recipe uses member 'b', which is not among --members (a)"),
    (["--members", "a", "zzz"], "member 'zzz' is not in"),
    (["--members", "a", "b", "--rule", "per_task_soft"], "rule per_task_soft votes per task, but member 'a'"),
    (["--members", "a", "b", "--recipe", "BAD"], "BAD.yaml: unknown recipe fields: ['rulez']"),
    (["--members", "a", "b", "--weights", "a=x"], "weight for 'a' is 'x', not a number"),
])
def test_user_mistakes_are_one_line_and_write_nothing(in_root, capsys, args, message):
    from scripts import report

    Recipe("soft", {"a": 1.0, "b": 1.0}).to_yaml(in_root / "R.yaml")
    (in_root / "BAD.yaml").write_text("rulez: soft\nmembers: {a: 1}\n")
    args = [str(in_root / f"{a}.yaml") if a in ("R", "BAD") else a for a in args]
    assert report.main([*args, "--name", "mistake"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (in_root / "reports" / "mistake").exists()


def test_a_failed_build_leaves_the_previous_report_untouched(tmp_path):
    folder = tmp_path / "reports" / "kept"
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("the previous report")
    (folder / ".ensemble-report").write_text("made by this project")
    with pytest.raises(RuntimeError):
        with staged_folder(folder) as stage:
            (stage / "report.md").write_text("half")
            raise RuntimeError("plotting failed")
    assert (folder / "report.md").read_text() == "the previous report"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["kept"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        with staged_folder(tmp_path / "file"):
            pass


def test_composite_labels_get_per_task_scores_and_reports(tmp_path):
    spec = CompositeSpec((("mask", 3), ("gender", 2), ("age", 3)))
    rng = np.random.default_rng(1)
    y = np.tile(np.arange(18), 6)
    members = {"m1": member_probs(y, 18, 0.6, rng), "m2": member_probs(y, 18, 0.5, rng)}
    recipe = Recipe("per_task_soft", {"m1": 1.0, "m2": 1.0}, composite=spec.to_dict())
    from ensemble.recipe import apply
    from report.builder import ReportInputs, VoteOutcome

    labels, table = apply(recipe, members)
    result = build_report(ReportInputs(
        title="mask", classes=[str(c) for c in range(18)], y_val=y, members=members,
        ensembles={"ensemble:per_task_soft": VoteOutcome(labels, table)}, primary="ensemble:per_task_soft",
        recipe=recipe, val_paths=[None] * len(y), composite=spec, n_boot=50), tmp_path / "mask")

    # class = mask * 6 + gender * 3 + age, decoded here from the competition's formula
    tasks = {"mask": lambda c: c // 6, "gender": lambda c: (c // 3) % 2, "age": lambda c: c % 3}
    row = result.val_table.set_index("name").loc["ensemble:per_task_soft"]
    for task, decode in tasks.items():
        assert row[f"{task}_f1_macro"] == pytest.approx(f1_score(decode(y), decode(labels), average="macro"))
        assert row[f"{task}_acc"] == pytest.approx(accuracy_score(decode(y), decode(labels)))
    text = result.file("classification_reports.txt").read_text()
    assert classification_report(y % 3, labels % 3, labels=[0, 1, 2], target_names=["age=0", "age=1", "age=2"],
                                 digits=4, zero_division=0) in text
    assert "== m1 · gender ==" in text
    assert {"per_task_hard", "per_task_soft"} <= set(result.compare_table["method"])
    assert result.metrics["composite"] == spec.to_dict()


def test_vote_reads_the_registry_once_lists_the_dataset_once_and_computes_each_vote_once(in_root, monkeypatch):
    import imagedata.sources as sources
    import jobs.vote as vote_job
    from core.registry import Registry
    from core.settings import load_settings

    listed, reads, applied = [], [], []
    real_list, real_members, real_apply = sources.load_dataset, Registry.members, vote_job.apply
    monkeypatch.setattr(sources, "load_dataset", lambda *a, **k: listed.append(a) or real_list(*a, **k))
    monkeypatch.setattr(Registry, "members", lambda self: reads.append(1) or real_members(self))

    def counted(recipe, probs):
        applied.append((recipe.rule, tuple(sorted(recipe.members.items())), len(probs["a"])))  # rows: val or test
        return real_apply(recipe, probs)

    monkeypatch.setattr(vote_job, "apply", counted)
    result = vote_job.vote(vote_job.VoteRequest(members=["a", "b"], name="once", rule="soft"), load_settings())
    assert len(listed) == 1  # two members x (val, test) and the submission share one listing
    assert len(reads) == 1
    # hard and soft (the submitted vote is the soft row itself), each once on val and once on test
    assert len(applied) == len(set(applied)) == 4
    assert {rule for rule, *_ in applied} == {"hard", "soft"}
    assert result.report.compare_table is not None  # the one comparison reached the report
