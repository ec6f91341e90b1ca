"""Which images a member predicts for a part (val, test or train): the test list, or its own validation
(or training) rows of its split file."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from imagedata.prescan import require_readable
from imagedata.sources import DatasetListing
from imagedata.splits import read_split
from predict.loading import MemberInfo


@dataclass
class Rows:
    ids: list[str]
    paths: list[str]
    labels: np.ndarray


def part_rows(registry: Registry, member: MemberInfo, settings: Settings, part: str,
               listing: DatasetListing | None = None) -> Rows:
    dataset = (listing or DatasetListing()).load(member.config.data, settings.data_root)
    if part == "test":
        if dataset.test is None:
            raise UserError(f"member '{member.name}': its data config names no test list (data.test)")
        # Every test file must decode: name them all now rather than fail on the first mid-prediction.
        require_readable(dataset.test["path"].tolist(), f"test list {dataset.test_info or member.config.data.test}",
                         settings.image_cache)
        return Rows(dataset.test["id"].tolist(), dataset.test["path"].tolist(), np.full(len(dataset.test), -1))
    meta = member.entry.split  # the split file and fold it was trained on
    split_file = read_split(settings.splits / f"{meta.name}.csv")
    if split_file.sha256 != meta.sha256:
        raise UserError(f"member '{member.name}': split file {split_file.path} changed since training "
                        f"(sha256 {split_file.sha256[:12]}… vs {meta.sha256[:12]}…)")
    # `train`: the rows the member was trained on (in-sample; what a distillation teacher predicts for its student).
    role = "train" if part == "train" else "val"
    chosen = split_file.rows(meta.fold, role)  # the fold's training or validation rows of the split file
    by_id = dataset.train.set_index("id")
    missing = [i for i in chosen["id"] if i not in by_id.index]
    if missing:
        what = "training" if role == "train" else "validation"
        raise UserError(f"member '{member.name}': {what} image '{missing[0]}' is no longer in the data")
    ids = chosen["id"]
    return Rows(ids.tolist(), by_id.loc[ids, "path"].tolist(), by_id.loc[ids, "label"].to_numpy())
