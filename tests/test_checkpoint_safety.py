"""Shared checkpoint files never run code, and a swapped file never loads."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import UserError
from core.hashing import sha256_file
from core.registry import Registry
from core.settings import Settings
from helpers import run_script
from modeling.checkpoint import load_state_dict, save_weights
from predict_fixture import register_member
from registry_fixtures import entry


class Payload:
    """What an attacker pickles: unpickling it writes the marker file (a stand-in for any code at all)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"import pathlib; pathlib.Path({self.marker!r}).write_text('code ran')",)


def plant(path: Path, marker: Path, how: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "torch.save":
        torch.save({"fc.weight": torch.zeros(3, 4), "fc.bias": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"fc.weight": Payload(marker)}))
    return path


KINDS = [(how, suffix) for how in ("torch.save", "pickle") for suffix in (".pt", ".safetensors")]


@pytest.mark.parametrize("how, suffix", KINDS)
def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, how, suffix):
    evil = plant(tmp_path / "shared" / f"best{suffix}", tmp_path / "marker", how)
    with pytest.raises(UserError, match=f"weights file {evil} "):
        load_state_dict(evil, expected_sha256=sha256_file(evil))
    assert not (tmp_path / "marker").exists()


def test_the_planted_files_really_run_code_when_loaded_carelessly(tmp_path):
    # Without this, "no marker appeared" above could mean a harmless payload. A careless loader, in a
    # throwaway process, runs each of them. Bytes, not paths: torch sends '.safetensors' names elsewhere.
    files = [plant(tmp_path / f"{i}" / f"best{suffix}", tmp_path / f"marker{i}", how)
             for i, (how, suffix) in enumerate(KINDS)]
    code = ("import io, sys, torch\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n"
            "        torch.load(io.BytesIO(open(name, 'rb').read()), weights_only=False)\n"
            "    except Exception:\n"
            "        pass  # the payload has run by the time the loader notices the data is not tensors\n")
    subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, timeout=120, check=True)
    assert all((tmp_path / f"marker{i}").exists() for i in range(len(KINDS)))


def _register(out: Path, name: str, weights: Path, sha256: str) -> Registry:
    registry = Registry(out / "registry.yaml")
    registry.add(entry(name, weights=registry.relative(weights), sha256=sha256,
                       config=registry.relative(weights.parent / "config.yaml")))
    return registry


def test_a_registered_member_whose_weights_are_a_pickle_is_refused(isolated_env, tmp_path):
    marker = tmp_path / "marker"
    # A real member (config, split, digits data), then its weights swapped for a pickle whose hash the entry records:
    # only the format is wrong, so the refusal must come from loading the weights.
    settings = Settings(data_root=isolated_env.parent / "data", output_root=isolated_env)
    made = register_member(settings, "shared-member", "test_resnet", 16, 0)
    evil = plant(isolated_env / "runs" / "shared" / "best.pt", marker, "torch.save")
    registry = Registry(settings.registry)
    registry.remove("shared-member")
    registry.add({**made, "weights": registry.relative(evil), "sha256": sha256_file(evil)})
    # A user who sets torch's escape hatch still gets no pickles: the explicit weights_only=True wins.
    proc = run_script("predict", "--members", "shared-member", check=False,
                      env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(evil) in last and "Traceback" not in proc.stderr
    assert not marker.exists()
    assert not (isolated_env / "cache" / "predictions" / "shared-member").exists()


def test_a_member_whose_weights_were_swapped_after_registration_is_refused(isolated_env, tmp_path):
    from predict.loading import load_member

    weights = isolated_env / "runs" / "m" / "best.safetensors"
    weights.parent.mkdir(parents=True)
    registered = save_weights(torch.nn.Linear(4, 3), weights)
    registry = _register(isolated_env, "m", weights, registered)

    # Someone replaces the shared file with a payload: the hash check stops it before any parser sees a byte.
    marker = tmp_path / "marker"
    plant(weights, marker, "pickle")
    with pytest.raises(UserError) as caught:
        load_member(registry, registry.get("m"))
    message = str(caught.value)
    assert f"weights file {weights} has sha256 {sha256_file(weights)[:12]}" in message
    assert f"registry says {registered[:12]}" in message
    assert not marker.exists()

    # Even a single flipped bit in a genuine safetensors file is caught.
    save_weights(torch.nn.Linear(4, 3), weights)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="refusing to load"):
        load_state_dict(weights, expected_sha256=registered)


def test_a_plain_tensor_file_still_loads(tmp_path):
    # weights_only=True is a filter, not a ban: a state dict of tensors saved with torch.save is fine.
    path = tmp_path / "plain.pt"
    state = torch.nn.Linear(4, 3).state_dict()
    torch.save(state, path)
    loaded = load_state_dict(path, expected_sha256=sha256_file(path))
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_a_pickled_pretrained_file_is_refused_by_the_model_factory(tmp_path):
    from modeling.models import build_model

    marker = tmp_path / "marker"
    evil = plant(tmp_path / "imagenet.pth", marker, "torch.save")
    for arch in ("test_resnet", "torchvision:resnet18"):
        with pytest.raises(UserError, match=f"{evil}"):
            build_model(arch, 3, pretrained_file=str(evil))
    assert not marker.exists()
