"""Distillation: a saved recipe → one student member, through the real scripts, on the digits data."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F

from core.hashing import sha256_file
from core.registry import Registry
from ensemble.recipe import Recipe, apply
from helpers import REPO, run_script
from members.feeding import Pool
from members.losses import DistillationLoss, pack_targets, split_targets
from predict import cache

CFG = str(REPO / "configs" / "digits" / "resnet18.yaml")
TINY = ["model.arch=test_resnet", "data.image_size=[16,16]", "train.epochs=1", "train.batch_size=128"]


# --- the loss -------------------------------------------------------------------------------------

def test_distillation_loss_is_the_hinton_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g) * 2
    labels = torch.randint(0, 5, (16,), generator=g)
    teacher = torch.softmax(torch.randn(16, 5, generator=g) * 3, 1)
    t, alpha = 3.0, 0.7
    loss = DistillationLoss(torch.nn.CrossEntropyLoss(), t, alpha)(logits, torch.from_numpy(
        pack_targets(labels.numpy(), teacher.numpy())))
    q = torch.softmax(teacher.log() / t, 1)
    p = torch.log_softmax(logits / t, 1)
    kl = (q * (q.log() - p)).sum(1).mean()
    expected = alpha * kl * t * t + (1 - alpha) * F.cross_entropy(logits, labels)
    torch.testing.assert_close(loss, expected)
    # alpha = 0 is the plain loss, and unpacked labels are the plain loss whatever alpha is
    plain = F.cross_entropy(logits, labels)
    torch.testing.assert_close(DistillationLoss(torch.nn.CrossEntropyLoss(), t, 0.0)(
        logits, torch.from_numpy(pack_targets(labels.numpy(), teacher.numpy()))), plain)
    torch.testing.assert_close(DistillationLoss(torch.nn.CrossEntropyLoss(), t, alpha)(logits, labels), plain)


def test_a_hard_vote_teacher_with_zero_shares_gives_a_finite_loss():
    logits = torch.randn(4, 3, requires_grad=True)
    shares = torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5], [0, 0, 1], [1, 0, 0]])
    loss = DistillationLoss(torch.nn.CrossEntropyLoss(), 2.0, 1.0)(
        logits, torch.from_numpy(pack_targets(np.array([0, 1, 2, 0]), shares.numpy())))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_teacher_probabilities_travel_with_the_batch_unchanged():
    images = np.random.default_rng(0).integers(0, 255, (6, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    teacher = np.random.default_rng(1).dirichlet(np.ones(3), 6).astype(np.float32)
    pool = Pool(images, pack_targets(labels, teacher), torch.device("cpu"), "host")
    (batch_images, targets), = list(pool.iterate([np.array([4, 1])]))
    hard, soft = split_targets(targets)
    assert batch_images.shape == (2, 3, 4, 4)
    assert hard.dtype == torch.long and hard.tolist() == [1, 1]
    np.testing.assert_array_equal(soft.numpy(), teacher[[4, 1]])


# --- end to end -----------------------------------------------------------------------------------

@contextlib.contextmanager
def project_env(env: dict):
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, digits_root):
    """Two tiny digits members and the recipe of their soft vote (in this process: the box is busy)."""
    import scripts.train
    import scripts.vote

    out = tmp_path_factory.mktemp("distill")
    env = {"VOTE_OUTPUT_ROOT": str(out), "VOTE_DATA_ROOT": str(digits_root.parent), "TQDM_DISABLE": "1",
           "WANDB_MODE": "disabled", "VOTE_LOCAL_CONFIG": str(out / "none.yaml"), "OMP_NUM_THREADS": "1"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with project_env(env), contextlib.redirect_stdout(io.StringIO()):
            assert scripts.train.main(["--config", CFG, "name=a", *TINY]) == 0
            assert scripts.train.main(["--config", CFG, "name=b", "train.seed=3", *TINY]) == 0
            assert scripts.vote.main(["--members", "a", "b", "--weights", "b=2", "--name", "t"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out, env, out / "submissions" / "t.recipe.yaml"


def _run_folders(out):
    return sorted(p.name for p in (out / "runs").glob("*/*") if p.is_dir())


def test_distill_trains_registers_and_votes(teacher, capsys):
    import scripts.train
    import scripts.vote
    from core.settings import load_settings
    from jobs.distill import DistillRequest, teacher_targets
    from jobs.fold_groups import recipe_entries

    out, env, recipe = teacher
    # The real command, the way a user runs it.
    proc = run_script("distill", "--recipe", str(recipe), "--config", CFG, "name=s", *TINY,
                      "distill.alpha=0.8", "distill.temperature=2", env=env)
    assert "registered student s" in proc.stdout
    assert "in-sample" in proc.stderr  # the log says the teacher's training-row targets are in-sample

    entry = Registry(out / "registry.yaml").get("s")
    origin = entry.distilled_from.to_dict()
    assert origin["recipe"] == "submissions/t.recipe.yaml"
    assert origin["sha256"] == sha256_file(recipe) and origin["members"] == ["a", "b"]
    run_dir = out / entry.run
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["distill"]["alpha"] == 0.8
    assert yaml.safe_load((run_dir / "distilled_from.yaml").read_text()) == origin

    # The teacher's train split sits in the prediction cache beside val and test: the members' training rows.
    split = (out / "splits" / "digits-holdout-s42.csv").read_text().splitlines()
    a_train = cache.load(out / "cache" / "predictions" / "a" / "train.npz")
    b_train = cache.load(out / "cache" / "predictions" / "b" / "train.npz")
    val = cache.load(out / "cache" / "predictions" / "a" / "val.npz")
    assert len(a_train.ids) + len(val.ids) == len(split) - 1 and not set(a_train.ids) & set(val.ids)

    with project_env(env):
        # The targets are the recipe applied exactly as the vote applies it (all from the cache now).
        settings, registry, loaded = load_settings(), Registry(out / "registry.yaml"), Recipe.from_yaml(recipe)
        targets = teacher_targets(loaded, str(recipe), recipe_entries(loaded, str(recipe), registry), registry,
                                  settings, DistillRequest(recipe=str(recipe)))
        _, expected = apply(loaded, {"a": a_train.probs, "b": b_train.probs})
        np.testing.assert_allclose(targets.probs[: len(a_train.ids)], expected, rtol=1e-6, atol=1e-7)
        assert targets.in_sample[: len(a_train.ids)].all() and not targets.in_sample[len(a_train.ids):].any()

        # The student votes and reports like any member, marked as a student beside its teacher.
        assert scripts.vote.main(["--members", "a", "b", "s", "--name", "with-student"]) == 0
        assert "student" in capsys.readouterr().out
        report = (out / "reports" / "with-student" / "report.md").read_text()
        assert "`s` is a **student** distilled from recipe `submissions/t.recipe.yaml`" in report

        # scripts.train cannot resume a student without its teacher
        incomplete = run_dir.with_name(run_dir.name + "_incomplete")
        run_dir.rename(incomplete)
        try:
            assert scripts.train.main(["--resume", str(incomplete)]) == 2
        finally:
            incomplete.rename(run_dir)
        assert "scripts.distill" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["bad_recipe", "missing_member", "other_classes"])
def test_mistakes_are_one_line_and_leave_no_run_folder(teacher, tmp_path, capsys, case):
    import scripts.distill

    out, env, recipe = teacher
    extra = []
    if case == "bad_recipe":
        recipe = tmp_path / "bad.recipe.yaml"
        recipe.write_text("rule: sideways\nmembers: {a: 1}\n")
        expect = "recipe"
    elif case == "missing_member":
        recipe = tmp_path / "missing.recipe.yaml"
        Recipe("soft", {"a": 1.0, "zzz": 1.0}).to_yaml(recipe)
        expect = "'zzz'"
    elif case == "other_classes":
        from training_fixture import write_shapes

        extra = ["data.source=folder", f"data.root={write_shapes(tmp_path / 'shapes')}"]
        expect = "classes"
    before = _run_folders(out)
    with project_env(env):
        code = scripts.distill.main(["--recipe", str(recipe), "--config", CFG, f"name=x-{case}", *TINY, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], err
    assert _run_folders(out) == before
    assert not Registry(out / "registry.yaml").exists(f"x-{case}")


def test_an_online_teacher_scores_the_augmented_batch_the_student_sees(teacher, capsys):
    """distill.online: the recipe's members run on each augmented batch, and that is what the loss gets."""
    import members.trainer as trainer_module
    import scripts.distill
    from jobs.fold_groups import recipe_entries
    from predict.loading import load_member
    from predict.resize import resize_batch

    out, env, recipe = teacher
    seen = []
    real = trainer_module.Trainer._gradients

    def spy(self, run, images, labels):
        seen.append((images.detach().clone(), labels.detach().clone()))
        return real(self, run, images, labels)

    with project_env(env), pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module.Trainer, "_gradients", spy)
        code = scripts.distill.main(["--recipe", str(recipe), "--config", CFG, "name=online", *TINY,
                                     "distill.online=true", "train.augment.mode=batched", "train.augment.hflip=0.5"])
        assert code == 0, capsys.readouterr().err
        registry = Registry(out / "registry.yaml")
        assert registry.get("online").distilled_from.targets == "online"
        # The soft part of what the loss saw is the recipe applied to the members' outputs on those very
        # (augmented) images, each member at its own size and normalisation.
        loaded = Recipe.from_yaml(recipe)
        images, labels = seen[0]
        probs = {}
        for entry in recipe_entries(loaded, str(recipe), registry):
            member = load_member(registry, entry)
            x = member.normalize(resize_batch(images, member.size))
            probs[member.name] = torch.softmax(member.model(x).float(), 1).detach().numpy().astype(np.float64)
        _, expected = apply(loaded, probs)
        np.testing.assert_allclose(labels[:, 1:].numpy(), expected / expected.sum(1, keepdims=True), atol=1e-5)
