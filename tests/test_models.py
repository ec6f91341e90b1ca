"""Model factory: timm and torchvision names, head replacement, local-only pretrained weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core.errors import UserError
from modeling.checkpoint import save_weights
from modeling.models import build_model, find_head, replace_head


def test_timm_model_has_requested_classes():
    built = build_model("regnetx_002", 7)
    out = built.model.eval()(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert "from scratch" in built.origin


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x0_5", "regnet_x_400mf"])
def test_torchvision_head_is_found_and_replaced(name):
    built = build_model(f"torchvision:{name}", 5)
    _, _, head = find_head(built.model)
    assert isinstance(head, nn.Linear) and head.out_features == 5
    assert torch.count_nonzero(head.bias) == 0  # freshly initialised, not the 1000-class head


def test_replace_head_on_a_nested_custom_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1000)))
    replace_head(model, 3)
    assert model[2][2].out_features == 3 and model[2][0].out_features == 8


@pytest.mark.parametrize("arch", ["resnet1800", "torchvision:resnet1800"])
def test_unknown_architecture_is_named(arch):
    with pytest.raises(UserError, match=f"unknown architecture '{arch}'"):
        build_model(arch, 3)


def test_pretrained_weights_come_from_a_local_file(tmp_path):
    source = build_model("regnetx_002", 10).model
    path = tmp_path / "start.safetensors"
    save_weights(source, path)
    built = build_model("regnetx_002", 4, pretrained_file=str(path))
    assert str(path) in built.origin
    # the backbone came from the file, the 4-class head did not
    stem = "stem.conv.weight"
    assert torch.equal(built.model.state_dict()[stem], source.state_dict()[stem])
    assert built.model.state_dict()["head.fc.weight"].shape[0] == 4


def test_missing_pretrained_file_is_an_error(tmp_path):
    with pytest.raises(UserError, match="pretrained_file .*missing.safetensors does not exist"):
        build_model("regnetx_002", 3, pretrained_file=str(tmp_path / "missing.safetensors"))
