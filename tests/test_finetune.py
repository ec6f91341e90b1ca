"""Fine-tuning: any local checkpoint layout, the Xavier head, init_from another member, and the
train.* controls (freeze_backbone_epochs, lr_head_multiplier, layer_decay, the logged groups)."""
from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from core.config import load_config
from core.errors import UserError
from core.registry import Registry
from core.settings import load_settings
from jobs.train import TrainRequest, train_command
from members.trainer import describe_groups, make_optimizer, parameter_groups
from modeling.models import build_model, find_head, head_parameter_names
from scripts.fetch_weights import main as fetch_main
from tests.test_pretrained import ARCH, build_hub_cache, offline  # noqa: F401  (the offline fixture)
from tests.training_fixture import member_config, one_thread


def timm_start(num_classes: int = 1000, seed: int = 3) -> dict:
    torch.manual_seed(seed)
    return timm.create_model(ARCH, pretrained=False, num_classes=num_classes).state_dict()


def save(state: dict, path, how: str):
    if how == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        wrapped = {"plain": state, "state_dict": {"state_dict": state, "epoch": 3},
                   "model": {"model": state, "optimizer": {"lr": 0.1}, "epoch": 7},
                   "module": {f"module.{k}": v for k, v in state.items()}}[how]
        torch.save(wrapped, path)
    return path


def backbone_equal(model: nn.Module, state: dict) -> bool:
    head = head_parameter_names(model)
    mine = model.state_dict()
    keys = [k for k in state if k not in head]
    return bool(keys) and all(torch.equal(mine[k], state[k]) for k in keys)


def assert_xavier_head(head: nn.Linear) -> None:
    bound = math.sqrt(6.0 / (head.in_features + head.out_features))
    w = head.weight.detach()
    assert torch.count_nonzero(head.bias) == 0
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound  # uniform on [-bound, bound]
    assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.2 * bound / math.sqrt(3)


@pytest.mark.parametrize("how", ["safetensors", "plain", "state_dict", "model", "module"])
def test_a_timm_checkpoint_in_any_common_layout_loads_with_a_fresh_head(tmp_path, how):
    state = timm_start()
    suffix = ".safetensors" if how == "safetensors" else ".pth"
    built = build_model(ARCH, 4, pretrained_file=str(save(state, tmp_path / f"start{suffix}", how)))
    assert backbone_equal(built.model, state)
    assert built.model.fc.out_features == 4 and built.weights.kind == "file"
    assert_xavier_head(built.model.fc)


@pytest.mark.parametrize("how", ["plain", "module"])
def test_a_torchvision_state_dict_loads_with_a_fresh_xavier_head(tmp_path, how):
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    built = build_model("torchvision:resnet18", 6, pretrained_file=str(save(state, tmp_path / "tv.pth", how)))
    assert backbone_equal(built.model, state)
    _, _, head = find_head(built.model)
    assert head.out_features == 6
    assert_xavier_head(head)


def test_timm_and_torchvision_heads_are_xavier_from_scratch_too():
    assert_xavier_head(build_model(ARCH, 5).model.fc)
    assert_xavier_head(find_head(build_model("torchvision:resnet18", 5).model)[2])


def test_a_right_sized_head_is_replaced_unless_keep_head(tmp_path):
    state = timm_start(num_classes=4)
    path = save(state, tmp_path / "four.safetensors", "safetensors")
    replaced = build_model(ARCH, 4, pretrained_file=str(path)).model
    assert not torch.equal(replaced.fc.weight, state["fc.weight"])
    assert_xavier_head(replaced.fc)
    kept = build_model(ARCH, 4, pretrained_file=str(path), keep_head=True).model
    assert torch.equal(kept.fc.weight, state["fc.weight"]) and torch.equal(kept.fc.bias, state["fc.bias"])
    with pytest.raises(UserError, match="keep_head: true, but the head in .* has 4 outputs and the data has 3"):
        build_model(ARCH, 3, pretrained_file=str(path), keep_head=True)


def test_a_foreign_file_and_a_pickle_are_refused_in_one_line(tmp_path):
    other = save(timm.create_model("regnetx_002").state_dict(), tmp_path / "regnet.safetensors", "safetensors")
    with pytest.raises(UserError, match=f"{other} do not fit {ARCH}"):
        build_model(ARCH, 3, pretrained_file=str(other))
    torch.save({"model": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(UserError, match="does not hold a mapping of tensors"):
        build_model(ARCH, 3, pretrained_file=str(tmp_path / "list.pth"))


# --- the optimizer's parameter groups -----------------------------------------------------------

def train_cfg(**kw):
    base = dict(optimizer="adamw", lr=0.01, weight_decay=0.05, momentum=0.9, layer_decay=None, lr_head_multiplier=1.0)
    return SimpleNamespace(**(base | kw))


def test_lr_head_multiplier_gives_the_head_its_own_group():
    model = build_model(ARCH, 3).model
    opt = make_optimizer(model, train_cfg(lr_head_multiplier=10.0))
    by_name = {g["name"]: g for g in opt.param_groups}
    assert set(by_name) == {"backbone", "head"}
    assert by_name["head"]["lr"] == pytest.approx(0.1) and by_name["backbone"]["lr"] == pytest.approx(0.01)
    assert {id(p) for p in by_name["head"]["params"]} == {id(model.fc.weight), id(model.fc.bias)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    line = describe_groups(opt)
    n_head = model.fc.weight.numel() + model.fc.bias.numel()
    assert line.startswith("optimizer AdamW, 2 parameter groups") and f"head: {n_head:,} params lr 0.1" in line


def test_layer_decay_scales_each_timm_layer_and_is_refused_for_torchvision():
    model = build_model(ARCH, 3).model
    groups = parameter_groups(model, train_cfg(layer_decay=0.5, lr_head_multiplier=2.0))
    lrs = {g["name"]: g["lr"] for g in groups}
    stem = next(g for g in groups if any(p is model.conv1[0].weight for p in g["params"]))
    head = next(g for g in groups if any(p is model.fc.weight for p in g["params"]))
    assert head["name"].endswith("/head") and head["lr"] == pytest.approx(0.02)  # top layer (scale 1) x 2
    assert stem["lr"] < min(g["lr"] for g in groups if g is not stem) + 1e-12 and stem["lr"] < 0.01 / 4
    assert len(set(lrs.values())) > 3
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(UserError, match="train.layer_decay needs a timm model"):
        parameter_groups(build_model("torchvision:resnet18", 3).model, train_cfg(layer_decay=0.7))


@pytest.mark.parametrize("override, key", [("train.layer_decay=1.5", "train.layer_decay"),
                                           ("train.lr_head_multiplier=0", "train.lr_head_multiplier"),
                                           ("train.freeze_backbone_epochs=-1", "train.freeze_backbone_epochs")])
def test_bad_fine_tuning_values_name_their_key(override, key):
    with pytest.raises(UserError, match=key):
        load_config(None, [override])


# --- a member as the start of another, freezing then unfreezing, end to end on digits ------------------

def digits_config(tmp_path, digits_root, name, **train):
    path = member_config(tmp_path / f"{name}.yaml", digits_root, name=name, **train)
    text = path.read_text().replace("source: folder", "source: digits")
    path.write_text(text)
    return path


def test_fine_tune_again_from_a_registered_member_freezing_then_unfreezing(tmp_path, digits_root, monkeypatch,
                                                                          caplog):
    one_thread(monkeypatch)
    caplog.set_level(logging.INFO)
    settings = load_settings()
    first = digits_config(tmp_path, digits_root, "digits-a", epochs=1, batch_size=64)
    assert train_command(TrainRequest(str(first), []), settings).code == 0
    registry = Registry(settings.registry)
    a = registry.get("digits-a")
    a_weights = load_file(str(registry.resolve(a.weights)))

    second = digits_config(tmp_path, digits_root, "digits-b", epochs=2, batch_size=64, freeze_backbone_epochs=1,
                           lr_head_multiplier=5.0)
    stopped = train_command(TrainRequest(str(second), ["model.init_from=digits-a"], stop_after_epoch=1), settings)
    run = stopped.message.split("--resume ")[-1].strip()
    after_frozen = load_file(f"{run}/last.safetensors")
    backbone = [k for k in a_weights if not k.startswith("fc.")]
    assert all(torch.equal(after_frozen[k], a_weights[k]) for k in backbone)  # norms' statistics included
    assert not torch.equal(after_frozen["fc.weight"], a_weights["fc.weight"])  # the fresh head learned

    assert train_command(TrainRequest(None, [], resume=run), settings).code == 0
    b = registry.get("digits-b")
    assert b.weights_origin.to_dict() == {"kind": "member", "source": "digits-a", "file": str(registry.resolve(a.weights)),
                                   "sha256": a.sha256}
    b_weights = load_file(str(registry.resolve(b.weights)))
    assert not all(torch.equal(b_weights[k], a_weights[k]) for k in backbone)  # unfrozen in epoch 2
    log = caplog.text
    assert "weights: pretrained from registered member 'digits-a'" in log and "freezing the backbone" in log
    assert "backbone:" in log and "head: " in log

    with pytest.raises(UserError, match="'digits-a' is a test_resnet and model.arch is resnet18"):
        train_command(TrainRequest(str(second), ["model.init_from=digits-a", "model.arch=resnet18", "name=c"]), settings)
    with pytest.raises(UserError, match="model.pretrained_file and model.init_from are both set"):
        train_command(TrainRequest(str(second), ["model.init_from=digits-a", f"model.pretrained_file={first}",
                                                 "name=c"]), settings)


def test_a_malformed_weights_origin_is_refused_on_read(tmp_path):
    from core.entry import weights_origin_problem

    assert weights_origin_problem({"kind": "hub", "source": "timm/x", "file": "/c/model.safetensors",
                                   "sha256": "a" * 64}) is None
    assert "sha256" in weights_origin_problem({"kind": "file", "source": "x.pth", "sha256": "abc"})
    assert "kind" in weights_origin_problem({"kind": "cloud"})


def test_fetch_weights_reports_the_cached_file_offline_and_names_what_is_missing(offline, capsys):
    _, path = build_hub_cache(offline)
    assert fetch_main([ARCH]) == 0
    out = capsys.readouterr().out
    assert f"{ARCH}: timm/test_resnet.r160_in1k -> {path}" in out and f"HF_HOME={offline}" in out
    assert fetch_main(["resnet18"]) == 2
    err = capsys.readouterr().err
    assert "models--timm--resnet18.a1_in1k" in err and "python -m scripts.fetch_weights resnet18" in err


def test_freezing_under_ddp_keeps_the_loaded_backbone_on_both_ranks(tmp_path, isolated_env, monkeypatch):
    """Two gloo processes: DDP needs every parameter to keep requires_grad, so the frozen backbone's grads are
    dropped after the all-reduce instead; the saved weights show nothing but the head moved."""
    import os
    import subprocess
    import sys

    from tests.helpers import REPO
    from tests.training_fixture import write_shapes

    one_thread(monkeypatch)
    state = timm_start(num_classes=3)
    start = save(state, tmp_path / "start.safetensors", "safetensors")
    cfg = member_config(tmp_path / "m.yaml", write_shapes(tmp_path / "shapes"), name="ddp-frozen", epochs=2,
                        freeze_backbone_epochs=1)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m",
               "scripts.train", "--config", str(cfg), f"model.pretrained_file={start}", "--stop-after-epoch", "1"]
    proc = subprocess.run(command, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = isolated_env.glob("runs/*/*_incomplete")
    after = load_file(str(run / "last.safetensors"))
    assert all(torch.equal(after[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert not torch.equal(after["fc.weight"], state["fc.weight"])
