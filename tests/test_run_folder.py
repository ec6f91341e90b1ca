"""Run-folder naming: dated, never colliding, renamed with the metric only on success."""
from __future__ import annotations

from datetime import datetime, timezone

from members.run_folder import create_run_folder, finish_run_folder

NOW = datetime(2026, 11, 27, 14, 12, 3, tzinfo=timezone.utc)


def test_layout_and_final_name(tmp_path):
    folder = create_run_folder(tmp_path, "r18-s0", "resnet18", NOW)
    assert folder.parent == tmp_path / "2026-11-27"
    assert folder.name == "141203_r18-s0_resnet18_incomplete"
    done = finish_run_folder(folder, "val_f1_macro", 0.98123)
    assert done.name == "141203_r18-s0_resnet18_f1-0.9812"
    assert done.is_dir() and not folder.exists()


def test_same_second_never_collides(tmp_path):
    folders = [create_run_folder(tmp_path, "m", "resnet18", NOW) for _ in range(3)]
    assert len({f.name for f in folders}) == 3
    finished = [finish_run_folder(f, "val_f1_macro", 0.5) for f in folders]
    assert len({f.name for f in finished}) == 3


def test_unsafe_characters_are_replaced(tmp_path):
    folder = create_run_folder(tmp_path, "m", "torchvision:resnet18", NOW)
    assert ":" not in folder.name and "torchvision-resnet18" in folder.name


def test_metric_name_in_min_mode(tmp_path):
    folder = create_run_folder(tmp_path, "m", "a", NOW)
    assert finish_run_folder(folder, "val_loss", 0.07123).name.endswith("_loss-0.0712")
