"""Shared pieces of the real-data loaders: image reading with clear errors, CSV reading, group splits."""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Sequence

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from medxai_lib.data.transforms import normalize_image


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Read an image (``.gz`` transparently) as an ``(H, W[, C])`` uint8 array; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"missing image file {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = io.BytesIO(fh.read())
            img = Image.open(data)
        else:
            img = Image.open(path)
        with img:
            img.load()
            return np.asarray(img.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc


def to_tensor(array: np.ndarray, size: int | None) -> torch.Tensor:
    """uint8 ``(H, W[, C])`` -> float ``(C, S, S)`` in [0, 1], resized (bilinear, antialiased) when ``size``."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    if size is not None and tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(tensor[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return tensor


def resize_mask(mask: np.ndarray, size: int | None) -> torch.Tensor:
    """Binary ``(H, W)`` array -> ``(1, S, S)`` float {0, 1} (nearest neighbour)."""
    tensor = torch.from_numpy(np.ascontiguousarray(mask > 0)).float()[None]
    if size is not None and tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(tensor[None], size=(size, size), mode="nearest")[0]
    return tensor


def read_csv(path: Path, expected_header: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Rows of a CSV with a header; checks the expected columns are present (errors name the file)."""
    if not path.is_file():
        raise FileNotFoundError(f"missing CSV file {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in (expected_header or []) if c not in header]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (found {header})")
        return [row for row in reader]


def group_split(groups: Sequence[str], fractions: Sequence[float] = (0.8, 0.2), seed: int = 0) -> list[np.ndarray]:
    """Split item indices so that every group (patient, lesion) lands in exactly one part.

    Returns one index array per fraction; groups are shuffled with ``seed`` and assigned greedily so the
    parts' image counts approach the fractions.
    """
    fractions = np.asarray(fractions, dtype=float)
    if (fractions <= 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions: expected positive values summing to 1, got {tuple(fractions)}")
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(str(g), []).append(i)
    order = list(by_group)
    np.random.default_rng(seed).shuffle(order)
    targets = fractions * len(groups)
    parts: list[list[int]] = [[] for _ in fractions]
    for g in order:
        k = int(np.argmax(targets - np.array([len(p) for p in parts])))
        parts[k] += by_group[g]
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


class ImageListDataset(Dataset):
    """Base of the classification loaders: ``paths`` and ``records`` (dicts with ``label``) filled by the
    subclass; items are ``image`` (3, S, S) ImageNet-normalised, ``label`` and ``meta``."""

    paths: list[Path]
    records: list[dict[str, Any]]
    size: int | None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r["label"] for r in self.records], dtype=np.int64)

    @property
    def has_masks(self) -> bool:
        return False

    def load_image(self, index: int) -> torch.Tensor:
        """The model-ready image of item ``index``: RGB, resized to ``size``, ImageNet-normalised."""
        return normalize_image(to_tensor(read_image(self.paths[index], "RGB"), self.size))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: {index} out of range for a dataset of {len(self)} images")
        rec = self.records[index]
        return {"image": self.load_image(index), "label": torch.tensor(rec["label"], dtype=torch.long),
                "meta": {k: v for k, v in rec.items() if k != "label"}}
