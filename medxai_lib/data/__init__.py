"""Data: phantoms with ground-truth evidence (default) and loaders for the real datasets."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from medxai_lib.data.phantoms.fundus import DR_GRADES, LESION_TYPES, FundusPhantom, dr_grade
from medxai_lib.data.phantoms.histology import (ATTRIBUTES, HISTOLOGY_CLASSES, HistologyPhantom, Vocabulary,
                                                histology_class, tokenize)
from medxai_lib.data.phantoms.radiograph import ABNORMALITIES, BODY_PARTS, RadiographPhantom
from medxai_lib.data.phantoms.skin import CONCEPTS, HAM_CLASSES, SkinLesionPhantom
from medxai_lib.data.real.common import group_split
from medxai_lib.data.real.medmnist import MedMNIST
from medxai_lib.data.real.mura import MuraDataset
from medxai_lib.data.real.reports import IUXRayReports  # noqa: F401  (real radiology reports, notebook 05)
from medxai_lib.data.real.iuxray import IU_CLASSES, IUXRay, iu_xray_split
from medxai_lib.data.real.retina import DRIVE, STARE, KaggleDR
from medxai_lib.data.real.skin import HAM10000, ISIC2018Task1, ISIC2018Task3

DATA_ENV = "MEDXAI_DATA"


def resolve_data_root(data_root: str | Path | None) -> Path | None:
    """The notebook's ``data_root`` parameter, else ``$MEDXAI_DATA``, else None (= phantom data). Raises
    ``FileNotFoundError`` for a path that does not exist and ``NotADirectoryError`` for one that is not a
    folder, naming the parameter (or the variable) and the path."""
    from_env = data_root in (None, "")
    value = (os.environ.get(DATA_ENV) or None) if from_env else data_root
    if value is None:
        return None
    name = f"${DATA_ENV}" if from_env else "data_root"
    unset = f"unset {DATA_ENV}" if from_env else "set data_root=None"
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path} does not exist ({unset} to use phantom data)")
    if not path.is_dir():
        raise NotADirectoryError(f"{name}: {path} is not a folder; expected the folder that holds the dataset "
                                 f"(e.g. MURA-v1.1/), or {unset} to use phantom data")
    return path


class _LabelledSubset(Subset):
    """A subset that keeps the ``labels`` / ``study_ids`` / ``has_masks`` views of its parent."""

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels[np.asarray(self.indices)]

    @property
    def study_ids(self) -> list[str]:
        ids = self.dataset.study_ids
        return [ids[i] for i in self.indices]

    @property
    def body_parts(self) -> list[str]:
        parts = self.dataset.body_parts
        return [parts[i] for i in self.indices]

    @property
    def has_masks(self) -> bool:
        return self.dataset.has_masks


def example_indices(dataset: Dataset, n: int = 4) -> list[int]:
    """Indices of teaching examples: one image per abnormality kind then a normal one (phantom), or
    the first abnormal and normal images alternately (real data)."""
    if hasattr(dataset, "kinds"):
        kinds = dataset.kinds
        wanted = [k for k in (*ABNORMALITIES, "normal") if k in kinds]
        return [kinds.index(k) for k in wanted][:n]
    labels = np.asarray(dataset.labels)
    positives, negatives = np.flatnonzero(labels == 1).tolist(), np.flatnonzero(labels == 0).tolist()
    mixed = [i for pair in zip(positives, negatives) for i in pair] + positives + negatives
    return list(dict.fromkeys(mixed))[:n]


def first_studies(dataset: Dataset, max_images: int | None, seed: int = 0) -> Dataset:
    """Whole studies, sampled stratified by (body part, label), until ``max_images`` images (None keeps all).

    Studies are shuffled within each stratum (by ``seed``) and taken one at a time from the stratum that has
    the smallest share of its images taken so far, so a capped run sees every body part and both labels in
    proportion to their image counts (MURA's CSVs are ordered by body part: the first studies would all be
    one body part). The last study taken may overshoot ``max_images``; images keep the dataset's order.
    """
    if max_images is None or max_images >= len(dataset):
        return dataset
    if not isinstance(max_images, int) or isinstance(max_images, bool) or max_images < 1:
        raise ValueError(f"max_images: expected None or a positive int, got {max_images!r}")
    studies: dict[str, list[int]] = {}
    for i, sid in enumerate(dataset.study_ids):
        studies.setdefault(sid, []).append(i)
    labels, parts = np.asarray(dataset.labels), dataset.body_parts
    strata: dict[tuple[str, int], list[str]] = {}
    for sid, members in studies.items():
        strata.setdefault((parts[members[0]], int(labels[members[0]])), []).append(sid)
    rng = np.random.default_rng(seed)
    queues = {key: [sids[j] for j in rng.permutation(len(sids))] for key, sids in sorted(strata.items())}
    totals = {key: sum(len(studies[s]) for s in sids) for key, sids in queues.items()}
    taken = dict.fromkeys(queues, 0)
    keep: list[int] = []
    while len(keep) < max_images:
        key = min((k for k in queues if queues[k]), key=lambda k: (taken[k] / totals[k], -totals[k]))
        members = studies[queues[key].pop(0)]
        keep += members
        taken[key] += len(members)
    return _LabelledSubset(dataset, sorted(keep))


def radiograph_splits(data_root: str | Path | None = None, size: int = 96, channels: int = 1, seed: int = 0,
                      n_train_studies: int = 300, n_val_studies: int = 120, marker_correlation: float | None = None,
                      max_images: int | None = None) -> tuple[Dataset, Dataset]:
    """(train, validation) radiographs: MURA-v1.1 when a data root is given, else the phantom."""
    root = resolve_data_root(data_root)
    if root is None:
        train = RadiographPhantom(n_train_studies, size=size, seed=seed, channels=channels,
                                  marker_correlation=marker_correlation)
        val = RadiographPhantom(n_val_studies, size=size, seed=seed + 1000, channels=channels,
                                marker_correlation=marker_correlation)
        return train, val
    return (first_studies(MuraDataset(root, "train", size=size, channels=channels), max_images, seed),
            first_studies(MuraDataset(root, "valid", size=size, channels=channels), max_images, seed))


__all__ = ["ABNORMALITIES", "ATTRIBUTES", "BODY_PARTS", "CONCEPTS", "DATA_ENV", "DRIVE", "DR_GRADES", "FundusPhantom",
           "IU_CLASSES", "IUXRay", "iu_xray_split",
           "HAM10000", "HAM_CLASSES", "HISTOLOGY_CLASSES", "HistologyPhantom", "ISIC2018Task1", "ISIC2018Task3", "KaggleDR",
           "LESION_TYPES", "MedMNIST", "MuraDataset", "RadiographPhantom", "STARE", "SkinLesionPhantom",
           "Vocabulary", "dr_grade", "example_indices", "first_studies", "group_split", "histology_class",
           "radiograph_splits", "resolve_data_root", "tokenize"]
