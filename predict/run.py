"""Predict validation and test rows for named members, reusing cached results.

Members that predict the same rows are grouped: their images are decoded once, at the
largest input size any of them needs, into the shared image cache, and every member
runs on each batch (smaller inputs are resized on the device, see predict.resize).
Under torchrun each process predicts one block of rows and rank 0 merges the shards.
"""
from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

from core.entry import RegistryEntry
from core.errors import UserError
from core.registry import Registry
from core.settings import Settings
from imagedata.image_cache import data_fingerprint
from imagedata.sources import DatasetListing
from predict import cache, imports, shards
from predict.loading import MemberInfo, member_info
from predict.rows import Rows, part_rows
from predict.tta import TTA, parse_tta

log = logging.getLogger("predict")

def predict_members(names: list[str], registry: Registry, settings: Settings, parts=cache.PARTS,
                    tta: TTA | str | bool | None = None, force: bool = False, device: str = "auto",
                    batch_size: int = 256, decoder: str = "pil", entries: dict[str, RegistryEntry] | None = None,
                    listing: DatasetListing | None = None) -> dict[str, dict[str, cache.Prediction]]:
    """Cached or fresh predictions per member and part (`parts`: val, test, train); imported
    members come from the cache as stored.

    `entries` (registry entries by name) and `listing` let a job that already resolved its members and
    listed their data hand them over, so neither the registry nor the data folder is read again.
    """
    tta = parse_tta(tta)
    entries = entries or {}
    listing = listing or DatasetListing()
    results: dict[str, dict[str, cache.Prediction]] = defaultdict(dict)
    registered = []
    for name in names:
        if name in entries and not entries[name].is_imported or name not in entries and registry.exists(name):
            registered.append(name)
            continue
        found = imports.imported(settings, name, parts)
        if not found:
            registry.get(name)  # raises the standard "not registered" message
        missing = [s for s in parts if s not in found]
        if missing:
            raise UserError(f"imported member '{name}' has no {missing[0]} predictions; "
                            f"import them with python -m scripts.predict import --member {name} --part {missing[0]} …")
        results[name].update(found)
    world = shards.current()
    # A device the user named is checked before any weights are read; `auto` waits until a member must run.
    dev = world.device(device) if device != "auto" else device
    members = [member_info(registry, entries.get(name) or registry.get(name)) for name in registered]
    for part in parts:
        groups: dict[tuple, list[tuple[MemberInfo, Rows]]] = defaultdict(list)
        for member in members:
            rows = part_rows(registry, member, settings, part, listing)
            groups[tuple(rows.paths)].append((member, rows))
        for paths, group in groups.items():
            results_for = _predict_group(list(paths), group, part, settings, world, dev, tta, force, batch_size,
                                         decoder, registry)
            for name, pred in results_for.items():
                results[name][part] = pred
    if world.is_main:
        _record_costs(registry, members, results)
    return dict(results)


def _record_costs(registry: Registry, members: list[MemberInfo], results: dict) -> None:
    """Each member's latest measured cost goes into its registry entry (`inference`), beside the cache's copy.
    The split with the most rows gives the steadiest figure."""
    costs = {}
    for member in members:
        measured = [p for p in results[member.name].values() if np.isfinite(p.ms_per_image) and p.cost_batch]
        if not measured:
            continue
        pred = max(measured, key=lambda p: len(p.ids))
        cost = {"ms_per_image": float(pred.ms_per_image), "device": pred.cost_device,
                "batch_size": int(pred.cost_batch)}
        known = member.entry.inference
        if known is None or known.to_dict() != cost:  # cached predictions carry the figure already recorded
            costs[member.name] = cost
    if costs:
        registry.set_inference(costs)


def _predict_group(paths: list[str], group: list[tuple[MemberInfo, Rows]], part: str, settings: Settings,
                   world: shards.World, dev, tta: TTA, force: bool, batch_size: int,
                   decoder: str, registry: Registry) -> dict[str, cache.Prediction]:
    """Members that predict the same rows: fresh cache entries are reused, the rest run together."""
    fingerprint = data_fingerprint(paths)
    plans = []
    for member, rows in group:
        key = cache.cache_key(member.entry.sha256, fingerprint, tta, part, decoder)
        path = cache.cache_path(settings.predictions, member.name, part)
        plans.append((member, rows, key, path, None if force else cache.load_if_fresh(path, key)))
    # Every process must take the same decision, or the barriers below would never meet.
    needed = world.any([hit is None for *_, hit in plans])
    out = {}
    for (member, _, _, path, hit), need in zip(plans, needed):
        if not need:
            log.info("%s/%s: cached (%s)", member.name, part, path)
            out[member.name] = hit
    todo = [plan[:4] for plan, need in zip(plans, needed) if need]
    if not todo:
        return out
    lo, hi = world.block(len(paths))
    # lazy: the model runner loads torch, timm and torchvision, which a vote over cached members never needs
    from predict.compute import run_uncached

    shard = f" rows {lo}-{hi - 1} of {len(paths)} (rank {world.rank})" if world.distributed else ""
    logits, costs = run_uncached([m.entry for m, *_ in todo], registry, paths[lo:hi], part, settings, world, dev, tta,
                                 batch_size, decoder, shard)
    if world.distributed:
        for (_, _, key, path), member_logits in zip(todo, logits):
            shards.save_shard(path, world, lo, hi, len(paths), key, member_logits)
        world.barrier()
    for i, ((member, rows, key, path), member_logits) in enumerate(zip(todo, logits)):
        if world.is_main:
            full = shards.merge_shards(path, world.size, len(paths), key) if world.distributed else member_logits
            pred = cache.Prediction(np.asarray(rows.ids), cache.softmax(full), full, np.asarray(rows.labels),
                                    member.classes, key, tta.spec, ms_per_image=costs[i].ms_per_image,
                                    cost_device=costs[i].device, cost_batch=costs[i].batch_size)
            cache.save(path, pred)
            log.info("%s/%s: %d rows predicted (TTA %s) → %s", member.name, part, len(rows.ids), tta.spec, path)
            out[member.name] = pred
    world.barrier()
    if not world.is_main:
        out.update({member.name: cache.load(path) for member, _, _, path in todo})
    return out
