"""MedMNIST v2/v3 npz files (any 2D set, any size suffix: ``dermamnist.npz``, ``retinamnist_128.npz``)."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medxai_lib.data.transforms import normalize_image

SPLITS = ("train", "val", "test")


class MedMNIST(Dataset):
    """One split of a MedMNIST npz: ``<split>_images`` uint8 (N, S, S[, 3]) and ``<split>_labels`` (N, 1).

    Items: ``image`` (1 or 3, S, S) normalised, ``label`` () long (first label column), ``meta`` (index).
    Labels must be non-negative integers (stored as ints or whole-number floats); -1 or 1.9 are refused.
    """

    def __init__(self, path: str | Path, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"path: missing MedMNIST file {path}")
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an npz archive")
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ValueError(f"cannot read MedMNIST file {path}: {exc}") from exc
        with data:
            wanted = (f"{split}_images", f"{split}_labels")
            missing = [k for k in wanted if k not in data.files]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing} (found {sorted(data.files)})")
            images, labels = data[wanted[0]], data[wanted[1]]
        if images.ndim not in (3, 4) or images.dtype != np.uint8:
            raise ValueError(f"{path}: {split}_images must be uint8 (N, S, S[, 3]), got {images.dtype} {images.shape}")
        if len(images) == 0:
            raise ValueError(f"{path}: {split}_images is empty (0 images)")
        if len(images) != len(labels):
            raise ValueError(f"{path}: {len(images)} {split}_images but {len(labels)} {split}_labels")
        if labels.dtype.kind not in "biuf" or labels.dtype.kind == "b":
            raise ValueError(f"{path}: {split}_labels must be integer class indices, got dtype {labels.dtype}")
        bad = ~np.isfinite(labels) | (labels < 0) | (labels != np.round(labels)) if labels.dtype.kind == "f" \
            else labels < 0
        if bad.any():
            raise ValueError(f"{path}: {split}_labels must be non-negative integers; got {np.unique(labels[bad])[:10]} "
                             f"at row(s) {np.flatnonzero(bad.reshape(len(labels), -1).any(1))[:10].tolist()}")
        self.path, self.split = path, split
        self.images, self._labels = images, labels.reshape(len(labels), -1).astype(np.int64)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> np.ndarray:
        return self._labels[:, 0]

    @property
    def has_masks(self) -> bool:
        return False

    def __getitem__(self, index: int) -> dict[str, Any]:
        array = torch.from_numpy(self.images[index]).float() / 255.0
        image = array[None] if array.ndim == 2 else array.permute(2, 0, 1)
        return {"image": normalize_image(image.contiguous()), "label": torch.tensor(self.labels[index]),
                "meta": {"index": int(index), "file": self.path.name}}
