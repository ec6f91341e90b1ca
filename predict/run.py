"""Predict validation and test rows for named members, reusing cached results.

Members that share a data config and input size are grouped, their images decoded
once into the shared image cache, and every member of the group runs on each batch.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from members.data.image_cache import data_fingerprint, decoded_images
from members.data.sources import load_dataset
from members.data.splits import read_split
from predict import cache
from predict.inference import run_members, softmax
from predict.loading import LoadedMember, best_device, load_member

log = logging.getLogger("predict")
SPLITS = ("val", "test")


@dataclass
class Rows:
    ids: list[str]
    paths: list[str]
    labels: np.ndarray


def split_rows(registry: Registry, member: LoadedMember, settings: Settings, split: str) -> Rows:
    dataset = load_dataset(member.config.data, settings.data_root)
    if split == "test":
        if dataset.test is None:
            raise UserError(f"member '{member.name}': its data config names no test list (data.test)")
        return Rows(dataset.test["id"].tolist(), dataset.test["path"].tolist(), np.full(len(dataset.test), -1))
    meta = member.entry["split"]
    split_file = read_split(settings.splits / f"{meta['name']}.csv")
    if split_file.sha256 != meta["sha256"]:
        raise UserError(f"member '{member.name}': split file {split_file.path} changed since training "
                        f"(sha256 {split_file.sha256[:12]}… vs {meta['sha256'][:12]}…)")
    val = split_file.rows(meta["fold"], "val")
    by_id = dataset.train.set_index("id")
    missing = [i for i in val["id"] if i not in by_id.index]
    if missing:
        raise UserError(f"member '{member.name}': validation image '{missing[0]}' is no longer in the data")
    return Rows(val["id"].tolist(), by_id.loc[val["id"], "path"].tolist(), by_id.loc[val["id"], "label"].to_numpy())


def predict_members(names: list[str], registry: Registry, settings: Settings, splits=SPLITS, tta: bool = False,
                    force: bool = False, device: str = "auto", batch_size: int = 256) -> dict[str, dict[str, cache.Prediction]]:
    entries = [registry.get(name) for name in names]
    members = [load_member(registry, entry) for entry in entries]
    dev = best_device(device)
    results: dict[str, dict[str, cache.Prediction]] = defaultdict(dict)
    for split in splits:
        groups: dict[tuple, list[tuple[LoadedMember, Rows]]] = defaultdict(list)
        for member in members:
            rows = split_rows(registry, member, settings, split)
            groups[(tuple(rows.paths), member.size)].append((member, rows))
        for (paths, size), group in groups.items():
            fingerprint = data_fingerprint(list(paths))
            todo = []
            for member, rows in group:
                key = cache.cache_key(member.entry["sha256"], fingerprint, tta, split)
                path = cache.cache_path(settings.predictions, member.name, split)
                hit = None if force else cache.load_if_fresh(path, key)
                if hit is not None:
                    log.info("%s/%s: cached (%s)", member.name, split, path)
                    results[member.name][split] = hit
                else:
                    todo.append((member, rows, key, path))
            if not todo:
                continue
            images = decoded_images(list(paths), size, settings.image_cache, desc=f"decode {split}")
            logits = run_members([m.model for m, *_ in todo], [m.normalize for m, *_ in todo], images, dev,
                                 batch_size=batch_size, tta=tta,
                                 desc=f"{split}: {', '.join(m.name for m, *_ in todo)}")
            for (member, rows, key, path), member_logits in zip(todo, logits):
                pred = cache.Prediction(np.asarray(rows.ids), softmax(member_logits), member_logits,
                                        np.asarray(rows.labels), member.classes, key)
                cache.save(path, pred)
                log.info("%s/%s: %d rows predicted → %s", member.name, split, len(rows.ids), path)
                results[member.name][split] = pred
    return dict(results)
