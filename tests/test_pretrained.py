"""model.pretrained=true: timm weights through a real Hugging Face hub cache that the test builds on disk.

The network is never touched: HF_HUB_OFFLINE=1 everywhere, HF_HOME in tmp_path.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file, save_file

from core.hashing import sha256_file
from core.registry import Registry
from modeling.pretrained import hub_file, resolve_hub
from scripts.train import main as train_main
from tests.helpers import run_script
from tests.training_fixture import member_config, write_shapes

ARCH = "test_resnet"  # a real timm model (0.47M parameters) whose pretrained_cfg names timm/test_resnet.r160_in1k
REPO = Path(__file__).resolve().parent.parent
REVISION = "0123456789abcdef0123456789abcdef01234567"


def build_hub_cache(home, arch: str = ARCH, seed: int = 7) -> tuple[dict, object]:
    """The cache layout huggingface_hub reads: hub/models--<org>--<name>/{refs/main, snapshots/<rev>/<file>}."""
    hub = hub_file(arch)
    torch.manual_seed(seed)
    state = timm.create_model(arch, pretrained=False).state_dict()  # 1000-class ImageNet-shaped head
    repo = home / "hub" / ("models--" + hub.repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    path = snapshot / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return state, path


@pytest.fixture
def offline(tmp_path, monkeypatch):
    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return home


def test_no_cache_and_no_network_fails_before_any_data_work_with_the_two_ways_out(offline, tmp_path, capsys):
    code = train_main(["--config", str(REPO / "configs/mask/resnet18.yaml"), "model.pretrained=true"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "resnet18" in err and "models--timm--resnet18.a1_in1k" in err and "model.safetensors" in err
    assert str(offline) in err
    assert "model.pretrained_file=" in err and "python -m scripts.fetch_weights resnet18" in err
    # nothing of the (absent) mask data was looked at and no run folder was made
    assert not (tmp_path / "out" / "runs").exists() and not (tmp_path / "out" / "cache").exists()


def test_a_warm_cache_is_found_offline_with_its_path_and_sha256(offline):
    _, path = build_hub_cache(offline)
    origin = resolve_hub(ARCH)
    assert origin.kind == "hub" and origin.path == path and origin.source == "timm/test_resnet.r160_in1k"
    assert origin.sha256 == sha256_file(path)
    assert str(path) in origin.describe() and origin.sha256 in origin.describe()


def test_hf_hub_cache_wins_over_hf_home(offline, tmp_path, monkeypatch):
    elsewhere = tmp_path / "other-home"
    _, path = build_hub_cache(elsewhere)
    with pytest.raises(Exception, match="not available"):
        resolve_hub(ARCH)
    monkeypatch.setenv("HF_HUB_CACHE", str(elsewhere / "hub"))
    assert resolve_hub(ARCH).path == path


def test_torchvision_and_weightless_names_are_refused_clearly(offline):
    from core.errors import UserError

    with pytest.raises(UserError, match="torchvision model: use its timm twin"):
        resolve_hub("torchvision:resnet18")
    with pytest.raises(UserError, match="no Hugging Face hub weights for tag 'nope' of resnet18"):
        resolve_hub("resnet18.nope")


def test_scripts_train_with_pretrained_true_loads_the_cached_backbone_and_a_fresh_head(offline, tmp_path):
    """The user's command, in a subprocess, offline, against the test-built cache. One frozen epoch keeps the
    backbone (weights and norm statistics) exactly as loaded, so best.safetensors shows what was loaded."""
    saved, cache_file = build_hub_cache(offline)
    data = write_shapes(tmp_path / "shapes")
    config = member_config(tmp_path / "m.yaml", data, name="hub-start", epochs=1, freeze_backbone_epochs=1)
    proc = run_script("train", "--config", str(config), "model.pretrained=true",
                      env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(offline), "OMP_NUM_THREADS": "1"})
    registry = Registry(tmp_path / "out" / "registry.yaml")
    entry = registry.get("hub-start")
    origin = entry.weights_origin.to_dict()
    assert origin == {"kind": "hub", "source": "timm/test_resnet.r160_in1k", "file": str(cache_file),
                      "sha256": sha256_file(cache_file)}
    log = (registry.resolve(entry.run) / "train.log").read_text()
    assert f"weights: pretrained from the Hugging Face cache (timm/test_resnet.r160_in1k): {cache_file}" in log
    assert "parameter groups" in log and "freezing the backbone" in log
    trained = load_file(str(registry.resolve(entry.weights)))
    assert trained["fc.weight"].shape == (3, saved["fc.weight"].shape[1])  # our three classes
    backbone = [k for k in saved if not k.startswith("fc.")]
    assert backbone and all(torch.equal(trained[k], saved[k]) for k in backbone)
    assert "registered hub-start" in proc.stdout
    config_used = yaml.safe_load((registry.resolve(entry.config)).read_text())
    assert config_used["model"]["pretrained"] is True


def test_a_dead_network_without_hf_hub_offline_fails_at_once_with_the_same_line(tmp_path, monkeypatch):
    """A firewalled server that did not set HF_HUB_OFFLINE: the hub's host is refused (a closed local port
    stands in for it, so nothing leaves this machine) and the one line comes without the hub's retries."""
    import socket

    from core.errors import UserError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(UserError, match=rf"could not be reached: 127.0.0.1:{port}.*models--timm--resnet18.a1_in1k"
                                        r".*model.pretrained_file=.*python -m scripts.fetch_weights resnet18"):
        resolve_hub("resnet18")
