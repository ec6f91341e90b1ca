"""The audit job: fold groups' out-of-fold probabilities → likely label errors, a review sheet and a corrections file.

The units are named as for a vote (`--groups PREFIX`, or quoted patterns in `--members`) and
stitched exactly as the vote stitches them (jobs/fold_groups.py), combined by an unfitted rule,
then handed to confident learning (audit/labels.py). Everything lands in `audits/<name>/`:
suspects.csv, noise.csv, confident_joint.csv, corrections.csv (pre-filled for the top N),
review.png, audit.html/.md and audit.json (what a vote's report reads to show the audit).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from audit.labels import METHOD, Suspects, find_suspects
from core import atomic
from core.config import load_config
from core.errors import UserError
from core.names import path_inside
from core.registry import Registry
from core.settings import Settings
from ensemble.recipe import Recipe, apply
from imagedata.corrections import write_template
from imagedata.sources import DatasetListing
from jobs.choices import AUDIT_RULES as RULES
from jobs.fold_groups import Unit, check_units, expand_units, fold_members, unit_inputs
from jobs.inputs import corrections_of
from predict.run import predict_members
from report.audit import SHEET, TOP_IN_REPORT, audit_sections, write_audit_page, write_review_sheet
from report.lookups import val_image_paths
from report.page import Section

SUMMARY = "audit.json"


@dataclass
class AuditRequest:
    groups: list[str] = field(default_factory=list)   # name prefixes, one fold group each
    members: list[str] = field(default_factory=list)  # quoted glob patterns (fold groups) or names (refused)
    rule: str = "soft"
    name: str = "audit"
    top: int = 50                                     # suspects pre-filled in corrections.csv
    overwrite: bool = False
    tta: str = "none"
    registry: str | None = None


@dataclass
class AuditResult:
    folder: Path
    n_rows: int
    suspects: pd.DataFrame
    noise: pd.DataFrame
    lines: list[str]


def _units(req: AuditRequest, registered: dict[str, dict]) -> list[Unit]:
    if req.rule not in RULES:
        raise UserError(f"--rule {req.rule} is not usable for an audit (use one of {', '.join(RULES)}): a rule "
                        f"fitted on the labels under audit would learn to trust them")
    if not req.groups and not req.members:
        raise UserError("name the fold groups to audit with --groups PREFIX [PREFIX ...]")
    units = expand_units(req.members, req.groups, list(registered))
    for unit in units:
        if not unit.group:
            if unit.name not in registered:
                raise UserError(f"member '{unit.name}' is not registered")
            entry = registered[unit.name]
            split = entry.split
            raise UserError(f"'{unit.name}' is a holdout member: its validation rows (fold {split.fold} of "
                            f"split '{split.name}') are too few to audit the training set; train it on every "
                            f"fold and audit fold groups (--groups PREFIX)")
    return units


def _suspect_frame(s: Suspects, ids, labels, probs_by_unit: dict[str, np.ndarray], classes: list[str],
                   paths: list[str | None], groups) -> pd.DataFrame:
    rows = s.rows
    frame = pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1), "id": np.asarray(ids)[rows].astype(str),
        "path": [paths[i] for i in rows], "given": [classes[labels[i]] for i in rows],
        "suggested": [classes[s.suggested[i]] for i in rows], "self_confidence": s.self_confidence[rows],
        "group": np.asarray(groups)[rows] if groups is not None else np.asarray(ids)[rows].astype(str)})
    for unit, probs in probs_by_unit.items():
        frame[f"vote:{unit}"] = [classes[k] for k in probs[rows].argmax(1)]
    return frame


def _corrections(frame: pd.DataFrame, top: int) -> pd.DataFrame:
    """Suggestions for the top N: relabel to the models' label; a person changes it to keep or drop."""
    head = frame.head(top)
    return pd.DataFrame({"id": head["id"], "action": "relabel", "label": head["suggested"]})


def _write(folder: Path, s: Suspects, frame: pd.DataFrame, classes: list[str], summary: dict, top: int) -> None:
    joint = pd.DataFrame(np.rint(s.confident_joint).astype(int), index=pd.Index(classes, name="given"),
                         columns=[f"true:{c}" for c in classes])
    atomic.write_text(folder / "suspects.csv", frame.to_csv(index=False))
    atomic.write_text(folder / "noise.csv", s.noise.to_csv(index=False))
    atomic.write_text(folder / "confident_joint.csv", joint.to_csv())
    write_template(folder / "corrections.csv", _corrections(frame, top))
    sheet = write_review_sheet(frame, classes, folder / SHEET)
    write_audit_page(folder, f"Label audit: {summary['name']}", summary_lines(summary), s.noise, frame, sheet)
    atomic.write_text(folder / SUMMARY, json.dumps(summary, indent=2) + "\n")


def summary_lines(summary: dict) -> list[str]:
    units = ", ".join(f"{u} ({len(m)} folds)" for u, m in summary["units"].items())
    return [(f"{summary['n_suspects']} likely label errors among {summary['n_rows']} training rows of split "
             f"'{summary['split']}' (estimated noise {summary['estimated_noise']:.2%})."),
            f"Out-of-fold probabilities of {units}, combined by rule `{summary['rule']}`; method: `{summary['method']}`.",
            f"Labels as trained: {summary['corrections']}."]


def audit(req: AuditRequest, settings: Settings) -> AuditResult:
    folder = path_inside(settings.output_root / "audits", req.name, "--name")
    if folder.exists() and not req.overwrite:
        raise UserError(f"audit {folder} already exists; pass --overwrite to replace it")
    if req.top < 0:
        raise UserError(f"--top must be 0 or more, not {req.top}")
    registry = Registry.chosen(req.registry, settings)
    registered = {entry.name: entry for entry in registry.members()}
    units = _units(req, registered)
    members = fold_members(units)
    entries = {m: registered[m] for m in members}
    check_units(units, entries)
    listing = DatasetListing()
    predictions = predict_members(members, registry, settings, parts=("val",), tta=req.tta, entries=entries,
                                  listing=listing)
    inputs, groups = unit_inputs(units, entries, predictions, settings, with_test=False)
    by_unit = inputs.by_name("val")
    _, combined = apply(Recipe(req.rule, dict.fromkeys(inputs.names, 1.0)), by_unit)
    try:
        found = find_suspects(inputs.val_labels, combined, inputs.classes)
    except ValueError as err:
        raise UserError(f"cannot audit these rows: {err}") from None
    first = entries[members[0]]
    config = load_config(registry.resolve(first.config))
    dataset = listing.load(config.data, settings.data_root, settings.output_root)
    frame = _suspect_frame(found, inputs.val_ids, inputs.val_labels, by_unit, inputs.classes,
                           val_image_paths(dataset.train, inputs.val_ids), groups)
    n = len(inputs.val_labels)
    summary = {"name": req.name, "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "units": {u.name: u.members for u in units}, "rule": req.rule, "method": METHOD,
               "split": first.split.name, "corrections": corrections_of(first), "n_rows": n,
               "n_suspects": len(found.rows), "top": min(req.top, len(frame)),
               "estimated_noise": float(found.noise["estimated_errors"].sum() / max(n, 1)),
               "classes": list(inputs.classes)}
    stage = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        _write(stage, found, frame, inputs.classes, summary, req.top)
        if folder.exists():
            shutil.rmtree(folder)
        stage.rename(folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    written = (f"written: {folder} (suspects.csv, review.png, audit.html, corrections.csv with the top "
               f"{summary['top']} pre-filled as relabel)")
    lines = [*summary_lines(summary), written]
    return AuditResult(folder, n, frame, found.noise, lines)


def audit_for(members: list[str], output_root: Path) -> Path | None:
    """The newest audit made over exactly these fold members (a vote's units), or None."""
    wanted, best = sorted(members), None
    for path in sorted((Path(output_root) / "audits").glob(f"*/{SUMMARY}")):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            covered = sorted(m for group in summary["units"].values() for m in group)
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            continue  # a damaged or foreign file is no audit of ours
        if covered == wanted and (best is None or summary.get("created", "") >= best[0]):
            best = (summary.get("created", ""), path.parent)
    return None if best is None else best[1]


def audit_report_sections(members: list[str], output_root: Path) -> list[Section]:
    """The vote report's audit sections (noise per class, top suspects) when its units have an audit."""
    folder = audit_for(members, output_root)
    if folder is None:
        return []
    try:
        summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
        noise = pd.read_csv(folder / "noise.csv", dtype={"class": str})
        suspects = pd.read_csv(folder / "suspects.csv", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise UserError(f"audit {folder} cannot be read for the report: {err}") from None
    suspects["self_confidence"] = pd.to_numeric(suspects["self_confidence"])
    lines = [f"From audit `{folder.name}` ({folder}):", *summary_lines(summary)]
    return audit_sections(lines, noise, suspects, None, limit=TOP_IN_REPORT)
