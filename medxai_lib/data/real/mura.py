"""MURA v1.1 loader (Stanford musculoskeletal radiographs), read exactly as distributed.

Layout::

    MURA-v1.1/{train,valid}_image_paths.csv       no header; "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png"
    MURA-v1.1/{train,valid}_labeled_studies.csv   no header; "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/,1"
    MURA-v1.1/{train,valid}/XR_<PART>/patientNNNNN/studyK_{positive,negative}/imageM.png

Every image inherits its study's label. Items have the phantom's record shape without ``mask``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from medxai_lib.data.real.common import ImageListDataset
from medxai_lib.data.transforms import radiograph_transform

SPLITS = ("train", "valid")


def _mura_dir(root: str | Path) -> Path:
    root = Path(root).expanduser()
    for candidate in (root, root / "MURA-v1.1"):
        if (candidate / "train_image_paths.csv").exists() or (candidate / "valid_image_paths.csv").exists():
            return candidate
    raise FileNotFoundError(f"root: no MURA-v1.1 layout under {root} (expected "
                            f"{root / 'MURA-v1.1' / 'train_image_paths.csv'} or {root / 'train_image_paths.csv'})")


def _read_rows(path: Path) -> list[list[str]]:
    if not path.exists():
        raise FileNotFoundError(f"MURA: missing index file {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        return [row for row in csv.reader(fh) if row and any(cell.strip() for cell in row)]


def _resolve(mura_dir: Path, relative: str) -> Path:
    """CSV paths start with 'MURA-v1.1/'; resolve them against the dataset directory."""
    relative = relative.strip()
    prefix = "MURA-v1.1/"
    return mura_dir / (relative[len(prefix):] if relative.startswith(prefix) else relative)


class MuraDataset(ImageListDataset):
    """Real MURA-v1.1 radiographs with study-level labels.

    Args:
        root: the folder that holds ``MURA-v1.1/`` (or that folder itself).
        split: ``"train"`` or ``"valid"``.
        size: output side after reflect-padding to square and resizing (baseline: 320).
        channels: 1 or 3 (3 repeats the grey image and uses ImageNet normalisation).
        body_parts: keep only these (e.g. ``("XR_WRIST",)`` or ``("WRIST",)``); None keeps all.

    Raises ``FileNotFoundError`` naming the file for a missing CSV, study folder or image, and
    ``ValueError`` naming the file for a corrupt image or a malformed CSV row.
    """

    def __init__(self, root: str | Path, split: str = "valid", size: int = 320, channels: int = 3,
                 body_parts: tuple[str, ...] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels: expected 1 or 3, got {channels!r}")
        if not isinstance(size, int) or size < 16:
            raise ValueError(f"size: expected an int >= 16, got {size!r}")
        self.root, self.split, self.size, self.channels = _mura_dir(root), split, size, channels
        study_labels = self._read_studies()
        wanted = None if body_parts is None else {p if p.startswith("XR_") else f"XR_{p}" for p in body_parts}
        self.paths: list[Path] = []
        self.records: list[dict[str, Any]] = []
        for row in _read_rows(self.root / f"{split}_image_paths.csv"):
            path = _resolve(self.root, row[0])
            parts = Path(row[0].strip()).parts
            if len(parts) < 5:
                raise ValueError(f"{self.root / f'{split}_image_paths.csv'}: malformed image path {row[0]!r}")
            body_part, patient, study = parts[-4], parts[-3], parts[-2]
            if wanted is not None and body_part not in wanted:
                continue
            if not path.is_file():
                raise FileNotFoundError(f"MURA: image listed in {split}_image_paths.csv does not exist: {path}")
            study_key = str(path.parent.resolve())
            if study_key not in study_labels:
                raise ValueError(f"MURA: image {path} belongs to no study in {split}_labeled_studies.csv")
            self.paths.append(path)
            self.records.append({"body_part": body_part.removeprefix("XR_"), "patient": patient,
                                 "study": study, "view": int("".join(ch for ch in path.stem if ch.isdigit()) or 0),
                                 "label": study_labels[study_key]})

    def _read_studies(self) -> dict[str, int]:
        csv_path = self.root / f"{self.split}_labeled_studies.csv"
        labels: dict[str, int] = {}
        for row in _read_rows(csv_path):
            if len(row) != 2 or row[1].strip() not in {"0", "1"}:
                raise ValueError(f"{csv_path}: expected rows 'study_dir/,label' with label 0/1, got {row!r}")
            study_dir = _resolve(self.root, row[0])
            if not study_dir.is_dir():
                raise FileNotFoundError(f"MURA: study listed in {csv_path.name} does not exist: {study_dir}")
            labels[str(study_dir.resolve())] = int(row[1])
        return labels

    @property
    def study_ids(self) -> list[str]:
        return [f"{r['body_part']}/{r['patient']}/{r['study']}" for r in self.records]

    @property
    def body_parts(self) -> list[str]:
        return [r["body_part"] for r in self.records]

    def load_grey(self, index: int) -> torch.Tensor:
        """The raw image as a ``(1, H, W)`` float tensor in [0, 1]."""
        path = self.paths[index]
        try:
            with Image.open(path) as img:
                img.load()
                grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"MURA: cannot read image {path}: {exc}") from exc
        return torch.from_numpy(grey)[None]

    def load_image(self, index: int) -> torch.Tensor:
        """The MURA baseline's preprocessing of item ``index`` (grey, padded square, resized, normalised)."""
        return radiograph_transform(self.load_grey(index), self.size, self.channels)
