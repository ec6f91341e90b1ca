"""The ensemble logged to wandb in offline mode: one run (job_type "ensemble") in the members'
group, with the tables, the confusion matrix and an artifact holding the submission and recipe.

The offline run file is read back record by record (LevelDB log framing, wandb's own
protobuf records), so the test checks what `wandb sync` would upload, not just that
some folder appeared.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from core.config import MemberConfig
from core.entry import RegistryEntry
from registry_fixtures import entry as registry_entry
from report.builder import build_report
from report.lookups import ensemble_log, log_to_wandb
from report_fixture import synthetic_inputs

BLOCK = 32768
HEADER = 7  # ":W&B" + magic + version at the start; 7-byte record headers after


def wandb_records(path: Path) -> list:
    """The protobuf records of an offline run file."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    pos, pending, records = HEADER, b"", []
    while pos + HEADER <= len(raw):
        if BLOCK - pos % BLOCK < HEADER:   # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + HEADER])
        data, pos = raw[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        if kind in (1, 2):                  # full record, or the first piece of one
            pending = data
        elif kind in (3, 4):                # middle or last piece
            pending += data
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb's folders in tmp_path and no login anywhere, so 'online' must fall back to offline."""
    for var, sub in [("WANDB_DIR", "wandb"), ("WANDB_DATA_DIR", "wandb-data"), ("WANDB_CACHE_DIR", "wandb-cache"),
                     ("WANDB_CONFIG_DIR", "wandb-config"), ("HOME", "home")]:
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return tmp_path / "wandb"


def logged(tmp_path: Path, digits_root: Path, mode: str):
    inputs = synthetic_inputs(digits_root, tmp_path / "work")
    result = build_report(inputs, tmp_path / "report")
    submission = tmp_path / "submission.csv"
    submission.write_text("ImageID,ans\na.png,3\nb.png,7\n", encoding="utf-8")
    entries = [RegistryEntry.new(registry_entry(name, tracking={"wandb_run": None, "group": "synthetic-group"}))
               for name in inputs.members]
    record = ensemble_log("synthetic ensemble", entries, MemberConfig(), None, result, inputs.y_val,
                          inputs.ensembles[inputs.primary].labels, inputs.classes, submission)
    return result, submission, log_to_wandb(mode, tmp_path, record)


def test_offline_run_holds_the_table_the_confusion_matrix_and_the_artifact(offline_wandb, tmp_path, digits_root):
    result, submission, folder = logged(tmp_path, digits_root, "online")   # no login: falls back to offline
    assert folder.parent == offline_wandb / "wandb" and folder.name.startswith("offline-run-")
    records = wandb_records(next(folder.glob("run-*.wandb")))
    by_kind: dict[str, list] = {}
    for record in records:
        by_kind.setdefault(record.WhichOneof("record_type"), []).append(record)

    assert "run" in by_kind, f"no run record in {folder}: {sorted(by_kind)}"
    run = by_kind["run"][0].run
    assert (run.job_type, run.run_group, run.display_name) == ("ensemble", "synthetic-group", "synthetic ensemble")

    artifacts = {r.artifact.type: r.artifact for r in by_kind["artifact"] if r.artifact.type == "ensemble"}
    contents = {c.path: Path(c.local_path) for c in artifacts["ensemble"].manifest.contents}
    assert set(contents) == {"submission.csv", "recipe.yaml", "metrics.json"}
    for name, original in [("submission.csv", submission), ("recipe.yaml", result.file("recipe.yaml"))]:
        staged = contents[name]
        assert staged.is_relative_to(tmp_path) and staged.read_bytes() == original.read_bytes(), name

    tables = {c.path for r in by_kind["artifact"] if r.artifact.type == "run_table"
              for c in r.artifact.manifest.contents}
    assert {"scores/val.table.json", "compare.table.json", "confusion_matrix_table.table.json"} <= tables
    compare = json.loads(next((folder / "files" / "media" / "table").glob("compare_*.table.json")).read_text())
    assert compare["columns"] == list(result.compare_table.columns)
    assert [row[0] for row in compare["data"]] == result.compare_table["method"].tolist()


def test_disabled_logs_nothing(offline_wandb, tmp_path, digits_root):
    _, _, folder = logged(tmp_path, digits_root, "disabled")
    assert folder is None
    assert not any(offline_wandb.iterdir())
