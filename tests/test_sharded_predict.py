"""Sharded inference under torchrun (gloo on CPU): the merged cache equals a single-process run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.errors import UserError
from core.registry import Registry
from helpers import REPO
from predict import cache, shards
from predict.run import predict_members
from predict_fixture import MEMBERS, members_template, project_copy

NAMES = [name for name, *_ in MEMBERS]


def test_torchrun_two_processes_merge_to_the_single_process_result(tmp_path, tmp_path_factory, digits_root):
    settings, env = project_copy(members_template(tmp_path_factory.getbasetemp(), digits_root), tmp_path / "proj",
                                 digits_root)
    single = predict_members(NAMES, Registry(settings.registry), settings, batch_size=64)

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "scripts.predict", "--members", *NAMES, "--force", "--batch-size", "64"]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO), **env), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("m-resnet:") == 1          # only rank 0 reports

    for name in NAMES:
        for split, ref in single[name].items():
            path = cache.cache_path(settings.predictions, name, split)
            merged = cache.load(path)
            assert merged.ids.tolist() == ref.ids.tolist()
            assert merged.key == ref.key
            # rows differ from each other, so a row-order slip could not pass the comparison below
            assert np.abs(np.diff(ref.probs, axis=0)).max() > 1e-2
            np.testing.assert_allclose(merged.probs, ref.probs, rtol=0, atol=1e-5)
            assert not list(path.parent.glob("*.shard-*"))   # shards removed after the merge

    # each process decoded only its own block of rows: test rows 0-179 and 180-359
    decoded = sorted(json.loads(p.read_text())["n"] for p in (settings.image_cache).glob("*.json"))
    n_val, n_test = len(single[NAMES[0]]["val"].ids), len(single[NAMES[0]]["test"].ids)
    for n in (n_val, n_test):
        assert n // 2 in decoded and n - n // 2 in decoded


def test_blocks_tile_the_rows():
    for n in (0, 1, 7, 360):
        for size in (1, 2, 3, 8):
            blocks = [shards.World(rank, size).block(n) for rank in range(size)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            assert max(hi - lo for lo, hi in blocks) - min(hi - lo for lo, hi in blocks) <= 1


def test_merge_refuses_missing_or_foreign_shards(tmp_path):
    final = tmp_path / "m" / "val.npz"
    logits = np.zeros((10, 3), np.float32)
    shards.save_shard(final, shards.World(0, 2), 0, 5, 10, "k", logits[:5])
    with pytest.raises(UserError, match="shard .*shard-1-of-2.npz is missing"):
        shards.merge_shards(final, 2, 10, "k")
    shards.save_shard(final, shards.World(1, 2), 5, 10, 10, "another-run", logits[5:])
    with pytest.raises(UserError, match="belongs to another run"):
        shards.merge_shards(final, 2, 10, "k")
    shards.save_shard(final, shards.World(1, 2), 6, 10, 10, "k", logits[6:])
    with pytest.raises(UserError, match="do not tile"):
        shards.merge_shards(final, 2, 10, "k")
