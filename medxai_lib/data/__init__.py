"""Data: phantoms with ground-truth evidence (default) and loaders for the real datasets."""
from __future__ import annotations

import os
from dataclasses import dataclass
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
from medxai_lib.data.real.retina import (DRIVE, STARE, FundusItems, KaggleDR, estimated_disc, estimated_fov,
                                        kaggle_dr_splits)
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


KOCH_FOLDERS = ("DRIVE", "KaggleDR")   # notebook 06's real setting, as in the paper


def koch_folders(data_root: str | Path | None) -> dict[str, Path] | None:
    """``{"DRIVE": path, "KaggleDR": path}`` under notebook 06's data root, or None for the phantom. A data root
    without both folders is an error naming the missing ones."""
    root = resolve_data_root(data_root)
    if root is None:
        return None
    missing = [name for name in KOCH_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"data_root: {root} has no {', '.join(f'{m}/' for m in missing)}; notebook 06 reads "
                                "DRIVE/ (vessel maps of healthy eyes) and KaggleDR/ (graded eyes) side by side, "
                                "as distributed (data/README.md)")
    return {name: root / name for name in KOCH_FOLDERS}


@dataclass
class FundusSets:
    """Notebook 06's eyes besides the detector's: ``source`` (diseased eyes the descriptors come from),
    ``healthy`` (the generator's training eyes), ``test`` (held-out vessel maps to inoculate) and ``realism``
    (eyes for the real-vs-synthetic test); images in [0, 1]. ``real``: DRIVE + Kaggle DR rather than the phantom."""
    source: Dataset
    healthy: Dataset
    test: Dataset
    realism: Dataset
    real: bool


def fundus_sets(data_root: str | Path | None = None, size: int = 96, seed: int = 0, n_source: int = 80,
                n_healthy: int = 160, n_test: int = 36, n_realism: int = 40, n_detector_train: int = 800,
                n_detector_val: int = 240) -> FundusSets:
    """The phantom's eyes (each set its own seed), or with a data root holding ``DRIVE/`` and ``KaggleDR/``:
    Kaggle DR grade 2-3 eyes of patients the detector never saw (:func:`kaggle_dr_splits` with the detector's
    ``n_detector_train`` / ``n_detector_val``) as sources, DRIVE's training images as healthy eyes and its test
    images (vessel maps and FOV masks as distributed) for inoculation and realism (at most ``n_test`` /
    ``n_realism`` of them; DRIVE has 20 per split)."""
    folders = koch_folders(data_root)
    if folders is None:
        phantom = lambda n, offset, **kw: FundusPhantom(n, size=size, seed=seed + offset, normalize=False, **kw)  # noqa: E731
        return FundusSets(phantom(n_source, 2000, grade_probs=(0, 0, 0.5, 0.5, 0)), phantom(n_healthy, 3000, healthy=True),
                          phantom(n_test, 4000, healthy=True), phantom(n_realism, 5000, healthy=True), False)
    source = kaggle_dr_splits(folders["KaggleDR"], size, n_detector_train, n_detector_val, n_source, seed)[2]
    if source is None:
        raise ValueError(f"data_root: {folders['KaggleDR']} has no grade 2-3 eye outside the detector's "
                         f"{n_detector_train} training and {n_detector_val} held-out eyes to take descriptors from")
    drive = {split: DRIVE(folders["DRIVE"], split, size=size) for split in ("training", "test")}
    pick = lambda split, n: FundusItems(drive[split], np.arange(min(n, len(drive[split]))), normalize=False)  # noqa: E731
    return FundusSets(source, pick("training", n_healthy), pick("test", n_test), pick("test", n_realism), True)


__all__ = ["ABNORMALITIES", "ATTRIBUTES", "BODY_PARTS", "CONCEPTS", "DATA_ENV", "DRIVE", "DR_GRADES", "FundusItems", "FundusPhantom", "FundusSets", "KOCH_FOLDERS",
           "IU_CLASSES", "IUXRay", "iu_xray_split",
           "HAM10000", "HAM_CLASSES", "HISTOLOGY_CLASSES", "HistologyPhantom", "ISIC2018Task1", "ISIC2018Task3", "KaggleDR",
           "LESION_TYPES", "MedMNIST", "MuraDataset", "RadiographPhantom", "STARE", "SkinLesionPhantom",
           "Vocabulary", "dr_grade", "example_indices", "first_studies", "group_split", "histology_class",
           "estimated_disc", "estimated_fov", "fundus_sets", "kaggle_dr_splits", "koch_folders", "radiograph_splits", "resolve_data_root", "tokenize"]
