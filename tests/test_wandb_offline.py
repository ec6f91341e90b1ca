"""Real wandb, offline, in a temporary folder: one run per member, two step axes, best value in the summary."""
from __future__ import annotations

import json
import struct

import pandas as pd
import pytest
from wandb.proto import wandb_internal_pb2

from core.registry import Registry
from helpers import run_script
from training_fixture import member_config, one_thread, write_shapes

BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of CRC-framed chunks
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path) -> list:
    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        chunk, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk)
            records.append(record)
            pending = b""
        elif kind in (FIRST, MIDDLE):
            pending += chunk
    return records


@pytest.fixture(autouse=True)
def quiet_cpu(monkeypatch):
    one_thread(monkeypatch)


def test_offline_run_files_step_axes_summary_and_registry_id(tmp_path, isolated_env, monkeypatch):
    wandb_dir = tmp_path / "wandb-files"
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    data = write_shapes(tmp_path / "shapes")
    cfg = member_config(tmp_path / "member.yaml", data, name="tracked", epochs=3)
    run_script("train", "--config", str(cfg), "tracking.wandb.mode=offline", "tracking.wandb.log_every=1",
               "train.class_balance=weights", "train.loss=soft_f1")

    entry = Registry(isolated_env / "registry.yaml").get("tracked")
    run_id = entry.tracking.wandb_run
    assert run_id and entry.group == "tests"
    (run_file,) = wandb_dir.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")

    records = read_records(run_file)
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.run_id, run.run_group, run.job_type, run.display_name) == (run_id, "tests", "train", "tracked")
    axes = {m.metric.glob_name or m.metric.name: m.metric.step_metric for m in records
            if m.WhichOneof("record_type") == "metric" and not m.metric.expanded_from_glob}
    assert axes["batch/*"] == "batch/step"
    assert axes["train/*"] == axes["val/*"] == "epoch"

    rows = [{item.nested_key[0] if item.nested_key else item.key: json.loads(item.value_json)
             for item in r.history.item} for r in records if r.WhichOneof("record_type") == "history"]
    batch_rows = [r for r in rows if "batch/loss" in r]
    epoch_rows = [r for r in rows if "val/f1_macro" in r]
    assert [r["batch/step"] for r in batch_rows] == list(range(1, len(batch_rows) + 1))  # log_every=1
    assert [r["epoch"] for r in epoch_rows] == [1, 2, 3]
    assert all("epoch" not in r for r in batch_rows)

    summaries = [item for r in records if r.WhichOneof("record_type") == "summary" for item in r.summary.update]
    best = [json.loads(u.value_json) for u in summaries if list(u.nested_key) == ["val/f1_macro"]][-1]
    history = pd.read_csv(isolated_env / entry.run / "history.csv")
    assert best == {"max": pytest.approx(history["val_f1_macro"].max())}
    assert entry.metrics["val_f1_macro"] == pytest.approx(history["val_f1_macro"].max(), abs=1e-6)
