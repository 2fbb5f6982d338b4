"""MURA v1.1 loader (Stanford musculoskeletal radiographs), read exactly as distributed.

Layout::

    MURA-v1.1/{train,valid}_image_paths.csv       no header; "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/image1.png"
    MURA-v1.1/{train,valid}_labeled_studies.csv   no header; "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/,1"
    MURA-v1.1/{train,valid}/XR_<PART>/patientNNNNN/studyK_{positive,negative}/imageM.png

Every image inherits its study's label. Items have the phantom's record shape without ``mask``.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import torch

from medxai_lib.data.real.common import ImageListDataset, read_grey, resolve_inside
from medxai_lib.data.transforms import radiograph_transform

SPLITS = ("train", "valid")
BODY_PARTS = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")


def _mura_dir(root: str | Path) -> Path:
    root = Path(root).expanduser()
    for candidate in (root, root / "MURA-v1.1"):
        if (candidate / "train_image_paths.csv").exists() or (candidate / "valid_image_paths.csv").exists():
            return candidate
    raise FileNotFoundError(f"root: no MURA-v1.1 layout under {root} (expected "
                            f"{root / 'MURA-v1.1' / 'train_image_paths.csv'} or {root / 'train_image_paths.csv'})")


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, cells)`` of a header-less MURA CSV; blank lines are skipped, and so is a header
    row (a first row whose path cell is a plain word such as ``Path``, e.g. ``Path,Label``); a UTF-8
    BOM is ignored."""
    if not path.exists():
        raise FileNotFoundError(f"MURA: missing index file {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [(n, row) for n, row in enumerate(csv.reader(fh), start=1) if row and any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a readable UTF-8 CSV ({exc})") from exc
    if rows and re.fullmatch(r"[A-Za-z_ ]+", rows[0][1][0].strip()):
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: lists nothing (empty file); the dataset would be empty")
    return rows


def _resolve(mura_dir: Path, relative: str, where: str) -> Path:
    """CSV paths start with 'MURA-v1.1/'; resolve them against the dataset directory, refusing any that
    escapes it (``ValueError`` naming ``where``, the CSV row)."""
    relative = relative.strip()
    prefix = "MURA-v1.1/"
    return resolve_inside(mura_dir, relative[len(prefix):] if relative.startswith(prefix) else relative, where)


def _wanted_parts(body_parts: str | tuple[str, ...] | None) -> set[str] | None:
    if body_parts is None:
        return None
    parts = (body_parts,) if isinstance(body_parts, str) else body_parts
    if not isinstance(parts, (tuple, list, set, frozenset)) or not parts or \
            not all(isinstance(p, str) for p in parts):
        raise TypeError(f"body_parts: expected a body part or a non-empty tuple of them, e.g. ('WRIST',), "
                        f"got {body_parts!r}")
    wanted = {p.strip().upper().removeprefix("XR_") for p in parts}
    unknown = sorted(wanted - set(BODY_PARTS))
    if unknown:
        raise ValueError(f"body_parts: unknown {unknown}; MURA's body parts are {BODY_PARTS} (with or without 'XR_')")
    return {f"XR_{p}" for p in wanted}


class MuraDataset(ImageListDataset):
    """Real MURA-v1.1 radiographs with study-level labels.

    Args:
        root: the folder that holds ``MURA-v1.1/`` (or that folder itself).
        split: ``"train"`` or ``"valid"``.
        size: output side after reflect-padding to square and resizing (baseline: 320).
        channels: 1 or 3 (3 repeats the grey image and uses ImageNet normalisation).
        body_parts: keep only these (e.g. ``("XR_WRIST",)``, ``("WRIST",)`` or ``"WRIST"``); None keeps all.

    Raises ``FileNotFoundError`` naming the file for a missing CSV, study folder or image, and
    ``ValueError`` naming the file for a corrupt or oversized image (above ``max_pixels``, 4096 x 4096),
    a malformed CSV row, a CSV path that escapes the dataset folder, an image listed twice or a study
    listed with two labels (naming the row), or an empty selection. 16-bit radiographs are scaled by their bit depth (see ``medxai_lib.data.real.common``).
    """

    def __init__(self, root: str | Path, split: str = "valid", size: int = 320, channels: int = 3,
                 body_parts: tuple[str, ...] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels: expected 1 or 3, got {channels!r}")
        if not isinstance(size, int) or size < 16:
            raise ValueError(f"size: expected an int >= 16, got {size!r}")
        wanted = _wanted_parts(body_parts)
        self.root, self.split, self.size, self.channels = _mura_dir(root), split, size, channels
        study_labels = self._read_studies()
        self.paths: list[Path] = []
        self.records: list[dict[str, Any]] = []
        csv_path = self.root / f"{split}_image_paths.csv"
        listed: dict[Path, int] = {}
        for line, row in _read_rows(csv_path):
            path = _resolve(self.root, row[0], f"{csv_path} line {line}")
            if path in listed:
                raise ValueError(f"{csv_path} line {line}: image {row[0].strip()!r} is listed twice (first on line "
                                 f"{listed[path]}); it would be counted twice")
            listed[path] = line
            parts = Path(row[0].strip()).parts
            if len(parts) < 5:
                raise ValueError(f"{csv_path} line {line}: malformed image path {row[0]!r}")
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
        if not self.paths:
            raise ValueError(f"{csv_path}: no images{'' if wanted is None else f' of body parts {sorted(wanted)}'}; "
                             "the dataset would be empty")

    def _read_studies(self) -> dict[str, int]:
        csv_path = self.root / f"{self.split}_labeled_studies.csv"
        labels: dict[str, int] = {}
        first_line: dict[str, int] = {}
        for line, row in _read_rows(csv_path):
            if len(row) != 2 or row[1].strip() not in {"0", "1"}:
                raise ValueError(f"{csv_path} line {line}: expected rows 'study_dir/,label' with label 0/1, "
                                 f"got {row!r}")
            study_dir = _resolve(self.root, row[0], f"{csv_path} line {line}")
            if not study_dir.is_dir():
                raise FileNotFoundError(f"MURA: study listed in {csv_path.name} does not exist: {study_dir}")
            key, label = str(study_dir.resolve()), int(row[1])
            if key in labels and labels[key] != label:
                raise ValueError(f"{csv_path} line {line}: study {row[0].strip()!r} is labelled {label} here and "
                                 f"{labels[key]} on line {first_line[key]}")
            labels.setdefault(key, label)
            first_line.setdefault(key, line)
        return labels

    @property
    def study_ids(self) -> list[str]:
        return [f"{r['body_part']}/{r['patient']}/{r['study']}" for r in self.records]

    @property
    def body_parts(self) -> list[str]:
        return [r["body_part"] for r in self.records]

    def load_grey(self, index: int) -> torch.Tensor:
        """The raw image as a ``(1, H, W)`` float tensor in [0, 1] (16-bit images scaled by bit depth)."""
        try:
            grey = read_grey(self.paths[index], self.max_pixels)
        except ValueError as exc:
            raise ValueError(f"MURA: {exc}") from exc
        return torch.from_numpy(grey)[None]

    def load_image(self, index: int) -> torch.Tensor:
        """The MURA baseline's preprocessing of item ``index`` (grey, padded square, resized, normalised)."""
        return radiograph_transform(self.load_grey(index), self.size, self.channels)
