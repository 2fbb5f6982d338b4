"""Retinal datasets as distributed: DRIVE and STARE (vessels), Kaggle Diabetic Retinopathy (grades).

Items: ``image`` (3, S, S) ImageNet-normalised; DRIVE/STARE add ``vessels`` (1, S, S) and ``fov``
(1, S, S) (STARE has no FOV masks: estimated by thresholding the image); Kaggle DR gives ``label`` 0-4.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from medxai_lib.data.real.common import ImageListDataset, read_csv, read_image, resize_mask, resolve_inside, to_tensor
from medxai_lib.data.transforms import normalize_image


class DRIVE(Dataset):
    """DRIVE: ``{training,test}/images/NN_{training,test}.tif``, ``1st_manual/NN_manual1.gif``,
    ``mask/NN_{training,test}_mask.gif`` (``2nd_manual`` for the test set, ``observer=2``)."""

    def __init__(self, root: str | Path, split: str = "training", size: int | None = 128, observer: int = 1) -> None:
        if split not in ("training", "test"):
            raise ValueError(f"split: expected 'training' or 'test', got {split!r}")
        if observer not in (1, 2) or (observer == 2 and split == "training"):
            raise ValueError(f"observer: expected 1 (or 2 for the test split), got {observer!r}")
        base = Path(root).expanduser() / split
        images = sorted((base / "images").glob(f"*_{split}.tif"))
        if not images:
            raise FileNotFoundError(f"root: no DRIVE images {base / 'images'}/NN_{split}.tif")
        self.size, self.items = size, []
        for path in images:
            number = path.name.split("_")[0]
            manual = base / f"{'1st' if observer == 1 else '2nd'}_manual" / f"{number}_manual{observer}.gif"
            fov = base / "mask" / f"{number}_{split}_mask.gif"
            for needed in (manual, fov):
                if not needed.is_file():
                    raise FileNotFoundError(f"DRIVE: image {path.name} has no {needed}")
            self.items.append((path, manual, fov))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_masks(self) -> bool:
        return True

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, manual, fov = self.items[index]
        image = read_image(path, "RGB")
        vessels, mask = read_image(manual, "L"), read_image(fov, "L")
        if vessels.shape != image.shape[:2] or mask.shape != image.shape[:2]:
            raise ValueError(f"DRIVE: {manual.name} / {fov.name} size differs from {path.name}")
        return {"image": normalize_image(to_tensor(image, self.size)), "vessels": resize_mask(vessels, self.size),
                "fov": resize_mask(mask, self.size), "meta": {"image_id": path.stem}}


class STARE(Dataset):
    """STARE: ``imNNNN.ppm`` (or ``.ppm.gz``) with ``labels-ah/imNNNN.ah.ppm`` (Hoover) or
    ``labels-vk/imNNNN.vk.ppm`` (Kouznetsova), gzipped or not."""

    def __init__(self, root: str | Path, labels: str = "ah", size: int | None = 128) -> None:
        if labels not in ("ah", "vk"):
            raise ValueError(f"labels: expected 'ah' or 'vk', got {labels!r}")
        root = Path(root).expanduser()
        images = sorted(p for p in root.iterdir() if re.fullmatch(r"im\d{4}\.ppm(\.gz)?", p.name)) if root.is_dir() else []
        if not images:
            raise FileNotFoundError(f"root: no STARE images imNNNN.ppm[.gz] in {root}")
        self.size, self.items = size, []
        for path in images:
            stem = path.name.split(".")[0]
            candidates = [root / f"labels-{labels}" / f"{stem}.{labels}.ppm{gz}" for gz in ("", ".gz")]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise FileNotFoundError(f"STARE: image {path.name} has no label {candidates[0]}[.gz]")
            self.items.append((path, found[0]))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_masks(self) -> bool:
        return True

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self.items[index]
        image, vessels = read_image(path, "RGB"), read_image(label, "L")
        if vessels.shape != image.shape[:2]:
            raise ValueError(f"STARE: {label.name} size {vessels.shape} differs from {path.name} {image.shape[:2]}")
        fov = image.mean(2) > 0.12 * image.mean(2).max()      # no FOV masks in STARE: estimated
        return {"image": normalize_image(to_tensor(image, self.size)), "vessels": resize_mask(vessels, self.size),
                "fov": resize_mask(fov, self.size), "meta": {"image_id": path.name.split(".")[0]}}


class KaggleDR(ImageListDataset):
    """Kaggle Diabetic Retinopathy Detection (2015): ``trainLabels.csv`` (image, level) and
    ``train/<image>.jpeg``. Every row must have its image; grades 0-4. An image name that would lead
    out of ``image_dir`` is refused naming the CSV line. Fundus photographs are large (up to about
    5184 x 3456): the pixel cap is 8192 x 8192."""

    max_pixels = 8192 * 8192

    def __init__(self, root: str | Path, size: int | None = 128, image_dir: str = "train") -> None:
        root = Path(root).expanduser()
        csv_path = root / "trainLabels.csv"
        rows = read_csv(csv_path, ("image", "level"))
        self.size, self.paths, self.records = size, [], []
        for line, row in enumerate(rows, start=2):
            if row["level"].strip() not in {"0", "1", "2", "3", "4"}:
                raise ValueError(f"{csv_path} line {line}: level must be 0-4, got {row['level']!r}")
            path = resolve_inside(root / image_dir, f"{row['image'].strip()}.jpeg", f"{csv_path} line {line}")
            if not path.is_file():
                raise FileNotFoundError(f"{csv_path} line {line}: missing image {path}")
            self.paths.append(path)
            patient, _, eye = row["image"].partition("_")
            self.records.append({"label": int(row["level"]), "image_id": row["image"], "patient": patient, "eye": eye})
        self._require_items(csv_path)

    @property
    def patient_ids(self) -> list[str]:
        return [r["patient"] for r in self.records]
