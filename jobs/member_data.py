"""A member's data, ready to train: the dataset, its split and fold, the decoded image pool, pseudo-labelled rows."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.config import MemberConfig
from core.settings import Settings
from imagedata.corrections import NONE
from imagedata.image_cache import cache_bytes, decoded_images
from imagedata.prescan import apply_policy
from imagedata.sources import Dataset, load_dataset
from imagedata.splits import Split, ensure_split
from imagedata.tasks import split_table
from jobs.pseudo_set import PseudoRows, screen, student_rows
from members.losses import balanced_class_weights
from members.pseudo_loss import pack_pseudo_targets

log = logging.getLogger("members")


@dataclass
class MemberData:
    dataset: Dataset
    split: Split
    images: np.ndarray      # decoded pool, every train and val row
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_ids: list[str]
    labels: np.ndarray
    skipped: pd.DataFrame | None = None  # id, path, reason of images dropped by data.on_bad_image=skip
    pseudo: PseudoRows | None = None     # pseudo-labelled test rows, appended to the pool and to train_idx only

    def targets(self) -> np.ndarray | None:
        """Packed targets when pseudo rows train (label, pseudo flag, teacher probabilities), else None."""
        if self.pseudo is None:
            return None
        n_real, n_classes = len(self.labels) - len(self.pseudo.ids), len(self.dataset.classes)
        teacher = np.zeros((len(self.labels), n_classes), np.float32)
        teacher[n_real:] = self.pseudo.probs
        return pack_pseudo_targets(self.labels, np.arange(len(self.labels)) >= n_real, teacher)

    def class_weights(self, config: MemberConfig) -> np.ndarray | None:
        """train.class_balance=weights: each class weighted by its rarity among the training rows, else None."""
        if config.train.class_balance != "weights":
            return None
        return balanced_class_weights(self.labels[self.train_idx], self.dataset.num_classes, self.dataset.classes)


def prepare_data(config: MemberConfig, settings: Settings) -> MemberData:
    dataset = load_dataset(config.data, settings.data_root, settings.output_root)
    # Every bad file is found before any work starts; skipped rows leave before the split is made or checked.
    # The duplicate hashes are taken in the scan's own visit of each file, and cached for the split.
    dataset.train, skipped = apply_policy(dataset.train, config.data.on_bad_image, settings.image_cache,
                                          f"the {dataset.name} data at {dataset.root}",
                                          with_hashes=config.data.duplicates != "off")
    s = config.data.split
    split = ensure_split(split_table(dataset.train), s.name, s.n_folds, s.seed, settings.splits,
                         config.data.duplicates, config.data.near_duplicate_distance, settings.image_cache,
                         dataset.corrections.setting() if dataset.corrections else NONE)
    pool = dataset.train.reset_index(drop=True)
    position = pd.Series(np.arange(len(pool)), index=pool["id"])
    train_idx = position[split.rows(s.fold, "train")["id"]].to_numpy()
    val_ids = split.rows(s.fold, "val")["id"].tolist()
    val_idx = position[val_ids].to_numpy()
    labels, paths = pool["label"].to_numpy(), pool["path"].tolist()
    pseudo = student_rows(config, settings, dataset, split.sha256)
    if pseudo is not None:  # appended after the pool: training rows only, never validation or the split file
        pseudo = screen(pseudo, config, settings, pool, val_ids)
        train_idx = np.r_[train_idx, len(pool) + np.arange(len(pseudo.ids))]
        labels, paths = np.r_[labels, pseudo.labels], paths + pseudo.paths
        log.info("pseudo-labels: %d test image(s) of set '%s' join the %d training rows (%s targets, weight %g, "
                 "fold %d's teacher)", len(pseudo.ids), pseudo.provenance["name"], len(train_idx) - len(pseudo.ids),
                 pseudo.mode, config.pseudo.weight, s.fold)
    images = decoded_images(paths, tuple(config.data.image_size), settings.image_cache,
                            desc=f"decode {dataset.name}")
    log.info("image cache: %d images at %dx%d, %.1f MiB on disk (memmap)", len(paths), *config.data.image_size,
             cache_bytes(images) / 2**20)
    return MemberData(dataset, split, images, train_idx, val_idx, val_ids, labels, skipped, pseudo)
