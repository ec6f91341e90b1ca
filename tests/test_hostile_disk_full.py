"""A full disk while a checkpoint is written: one line saying what to do, the old file intact."""
from __future__ import annotations

import errno
import os

import pytest
import torch
from safetensors import SafetensorError

from core.errors import UserError
from modeling import checkpoint

# The one allowed substitution: no small full file system can be made here, so safetensors' writer is
# made to fail exactly as it does on a full disk (its Rust I/O error wrapped in a SafetensorError, as the
# issue saw it, or the plain OSError(ENOSPC)). Everything around it (atomic write, message) is real.
FULL_DISK = [
    SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                    'message: "No space left on device" })'),
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
]


@pytest.mark.parametrize("failure", FULL_DISK, ids=["SafetensorError", "OSError"])
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, failure):
    (tmp_path / "ckpt").mkdir()
    path = tmp_path / "ckpt" / "best.safetensors"
    checkpoint.save_weights({"w": torch.ones(3)}, path)
    before = path.read_bytes()

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")          # a full disk stops a write part-way
        raise failure

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(UserError) as err:
        checkpoint.save_weights({"w": torch.zeros(3)}, path)
    message = str(err.value)
    assert "\n" not in message and f"cannot write {path}" in message
    assert "disk is full; free space" in message and "--resume" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.safetensors", "best.safetensors.json"]
