"""The typed registry entry: one place that checks fields, and a lossless way back to the stored mapping."""
from __future__ import annotations

import math

import pytest

from core.entry import RegistryEntry
from core.errors import UserError
from core.limits import MAX_IMAGE_SIDE as MAX_SIDE
from registry_fixtures import entry


def test_an_entry_read_and_written_back_is_unchanged_field_for_field_and_in_order():
    stored = entry("m", git="1a2b3c4", tracking={"wandb_run": None, "group": "demo"},
                   ema={"weights": "runs/x/best_ema.safetensors", "sha256": "e" * 64}, run="runs/x")
    typed = RegistryEntry.from_dict(stored, "test")
    assert typed.to_dict() == stored
    assert list(typed.to_dict()) == list(stored)
    assert typed.input.size == (16, 16) and typed.split.fold == 0 and typed.ema.sha256 == "e" * 64
    assert typed.git == "1a2b3c4" and typed.input.extra["interpolation"] == "bilinear"


@pytest.mark.parametrize("changes, message", [
    ({"sha256": ""}, "field 'sha256' must be 64 lowercase hex"),
    ({"input": {"size": [100000, 100000], "mean": [0.5] * 3, "std": [0.2] * 3}}, f"at most {MAX_SIDE} pixels per side"),
    ({"metrics": {"val_f1_macro": math.nan}}, "field 'metrics' 'val_f1_macro' is nan"),
    ({"metrics": {"val_loss": math.inf}}, "'val_loss' is inf"),
    ({"weights": "../elsewhere/best.safetensors"}, "field 'weights' may not contain '..'"),
    ({"kind": "borrowed"}, "field 'kind' must be one of trained, imported"),
    ({"classes": ["0", "0"]}, "field 'classes' lists a class twice"),
])
def test_a_bad_field_is_one_line_naming_the_entry_and_field(changes, message):
    with pytest.raises(UserError) as err:
        RegistryEntry.from_dict(entry("bad", **changes), "registry.yaml member #3")
    text = str(err.value)
    assert text.startswith("registry.yaml member #3 ('bad')") and message in text and "\n" not in text


def test_an_imported_member_is_its_own_kind_without_weights():
    stored = {k: v for k, v in entry("ext").items() if k not in ("weights", "sha256")}
    stored |= {"kind": "imported", "arch": "imported", "imported": {"reference": "m", "tta": "none"}}
    typed = RegistryEntry.from_dict(stored, "imported member 'ext'")
    assert typed.is_imported and typed.weights is None and typed.sha256 is None
    assert typed.to_dict() == stored
    # ...but a trained entry without a sha256 is still refused, and an import must name its reference
    with pytest.raises(UserError, match="missing field 'sha256'"):
        RegistryEntry.from_dict({k: v for k, v in stored.items() if k != "kind"} | {"weights": "w.safetensors"}, "x")
    with pytest.raises(UserError, match="field 'imported' must name the 'reference'"):
        RegistryEntry.from_dict(stored | {"imported": {}}, "x")
