"""Every submission rule: info.csv's rows in its order, integer labels in range, header ImageID,ans,
nothing overwritten without asking, nothing half-written."""
from __future__ import annotations

import contextlib
import resource
import signal

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from report import submission

N_CLASSES = 18


@pytest.fixture
def info(tmp_path):
    """An info.csv in the competition layout; ids include 'NA', which pandas would read as missing."""
    ids = [f"{i:04x}{'abcdef'[i % 6]}.jpg" for i in range(40)] + ["NA"]
    path = tmp_path / "eval" / "info.csv"
    path.parent.mkdir()
    pd.DataFrame({"ImageID": ids, "ans": 0}).to_csv(path, index=False)
    return path, ids


def labels_for(ids):
    return np.arange(len(ids), dtype=np.int64) % N_CLASSES


def test_build_follows_info_order_whatever_the_prediction_order(info):
    path, ids = info
    order = np.random.default_rng(0).permutation(len(ids))
    shuffled_ids = [ids[i] for i in order]
    frame = submission.build(np.array(shuffled_ids), labels_for(ids)[order], path)
    assert frame["ImageID"].tolist() == ids
    assert frame["ans"].tolist() == labels_for(ids).tolist()


def test_written_file_round_trips(info, tmp_path):
    path, ids = info
    out = tmp_path / "submissions" / "s.csv"
    submission.write(submission.build(np.array(ids), labels_for(ids), path), out, N_CLASSES, path)
    back = pd.read_csv(out, dtype={"ImageID": str}, keep_default_na=False)
    assert list(back.columns) == ["ImageID", "ans"]
    assert back["ImageID"].tolist() == ids
    assert back["ans"].tolist() == labels_for(ids).tolist()
    assert out.read_text().splitlines()[0] == "ImageID,ans"
    assert [p.name for p in out.parent.iterdir()] == ["s.csv"]  # no temporary file left beside it


def test_wrong_order_is_refused(info, tmp_path):
    path, ids = info
    swapped = ids[:]
    swapped[3], swapped[4] = swapped[4], swapped[3]
    frame = pd.DataFrame({"ImageID": swapped, "ans": labels_for(ids)})
    with pytest.raises(UserError, match=rf"line 5 is ImageID '{swapped[3]}'.*line 5 is '{ids[3]}'"):
        submission.write(frame, tmp_path / "s.csv", N_CLASSES, path)
    assert not (tmp_path / "s.csv").exists()


def test_missing_row_is_refused(info, tmp_path):
    path, ids = info
    with pytest.raises(UserError, match=rf"ImageID '{ids[7]}' has no prediction"):
        submission.build(np.array(ids[:7] + ids[8:]), labels_for(ids)[:-1], path)
    frame = pd.DataFrame({"ImageID": ids[:-1], "ans": labels_for(ids)[:-1]})
    with pytest.raises(UserError, match=f"{len(ids) - 1} rows but"):
        submission.write(frame, tmp_path / "s.csv", N_CLASSES, path)
    assert not (tmp_path / "s.csv").exists()


def test_prediction_for_an_unknown_image_is_refused(info):
    path, ids = info
    with pytest.raises(UserError, match="'stray.jpg', which is not in"):
        submission.build(np.array(ids + ["stray.jpg"]), np.zeros(len(ids) + 1, np.int64), path)


@pytest.mark.parametrize("bad", [-1, N_CLASSES])
def test_label_out_of_range_is_refused(info, tmp_path, bad):
    path, ids = info
    labels = labels_for(ids)
    labels[5] = bad
    with pytest.raises(UserError, match=rf"row 7 has label {bad} outside 0..{N_CLASSES - 1}"):
        submission.write(pd.DataFrame({"ImageID": ids, "ans": labels}), tmp_path / "s.csv", N_CLASSES, path)
    assert not (tmp_path / "s.csv").exists()


def test_float_labels_are_refused(info, tmp_path):
    path, ids = info
    floats = labels_for(ids).astype(np.float64)
    with pytest.raises(UserError, match="integers"):
        submission.build(np.array(ids), floats, path)
    with pytest.raises(UserError, match="integers"):
        submission.write(pd.DataFrame({"ImageID": ids, "ans": floats}), tmp_path / "s.csv", N_CLASSES, path)
    assert not (tmp_path / "s.csv").exists()


def test_wrong_header_is_refused(info, tmp_path):
    path, ids = info
    frame = pd.DataFrame({"ImageID": ids, "label": labels_for(ids)})
    with pytest.raises(UserError, match="header must be ImageID,ans"):
        submission.write(frame, tmp_path / "s.csv", N_CLASSES, path)


def test_existing_file_is_kept_without_overwrite(info, tmp_path):
    path, ids = info
    out = tmp_path / "s.csv"
    out.write_text("ImageID,ans\nearlier,1\n")
    frame = submission.build(np.array(ids), labels_for(ids), path)
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        submission.write(frame, out, N_CLASSES, path)
    assert out.read_text() == "ImageID,ans\nearlier,1\n"
    submission.write(frame, out, N_CLASSES, path, overwrite=True)
    assert pd.read_csv(out, keep_default_na=False)["ImageID"].tolist() == ids


@contextlib.contextmanager
def file_size_limit(limit: int):
    """A real write failure: the kernel refuses to grow any file past `limit` bytes (EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write() instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    ids = [f"{i:08d}.jpg" for i in range(4000)]   # about 60 KB of CSV
    info = tmp_path / "info.csv"
    pd.DataFrame({"ImageID": ids, "ans": 0}).to_csv(info, index=False)
    frame = submission.build(np.array(ids), labels_for(ids), info)
    out = tmp_path / "out" / "s.csv"
    with file_size_limit(8192), pytest.raises(UserError, match=r"cannot write .*s\.csv.*nothing was changed"):
        submission.write(frame, out, N_CLASSES, info)
    assert list(out.parent.iterdir()) == []       # neither the submission nor a temporary file

    out.write_text("ImageID,ans\nearlier,1\n")
    with file_size_limit(8192), pytest.raises(UserError, match="nothing was changed"):
        submission.write(frame, out, N_CLASSES, info, overwrite=True)
    assert out.read_text() == "ImageID,ans\nearlier,1\n"
    assert [p.name for p in out.parent.iterdir()] == ["s.csv"]
