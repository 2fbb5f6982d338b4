"""HAM10000 and ISIC 2018 Task 3 loaders (dermoscopy), read as distributed.

HAM10000: ``HAM10000_metadata.csv`` (lesion_id, image_id, dx, dx_type, age, sex, localization[, dataset]) and
``HAM10000_images_part_1/``, ``HAM10000_images_part_2/`` holding ``<image_id>.jpg``. Several images share a
lesion: split with :func:`medxai_lib.data.real.common.group_split` on ``lesion_ids``.
ISIC 2018 Task 3: ``ISIC2018_Task3_Training_Input/<image>.jpg`` and
``ISIC2018_Task3_Training_GroundTruth.csv`` (image, MEL, NV, BCC, AKIEC, BKL, DF, VASC; one-hot floats).
Items: ``image`` (3, S, S) ImageNet-normalised, ``label`` () index into :data:`HAM_CLASSES`, ``meta``.
ISIC 2018 Task 1 (lesion segmentation): ``ISIC2018_Task1-2_Training_Input/ISIC_xxxxxxx.jpg`` and
``ISIC2018_Task1_Training_GroundTruth/ISIC_xxxxxxx_segmentation.png`` (0 = skin, 255 = lesion); items
``image`` (3, S, S) ImageNet-normalised, ``mask`` (1, S, S) in {0, 1}, ``meta`` (no diagnosis label).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from medxai_lib.data.phantoms.skin import HAM_CLASSES
from medxai_lib.data.real.common import (MAX_PIXELS, ImageListDataset, read_csv, read_image, resize_mask,
                                        resolve_inside, to_tensor)
from medxai_lib.data.transforms import normalize_image

ISIC_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


class HAM10000(ImageListDataset):
    """HAM10000 from its metadata CSV and its two image folders (every row must have its image).
    An ``image_id`` that would lead out of the image folders is refused naming the CSV line."""

    def __init__(self, root: str | Path, size: int | None = 224) -> None:
        root = Path(root).expanduser()
        rows = read_csv(root / "HAM10000_metadata.csv", ("lesion_id", "image_id", "dx"))
        folders = [root / "HAM10000_images_part_1", root / "HAM10000_images_part_2"]
        if not any(f.is_dir() for f in folders):
            raise FileNotFoundError(f"root: neither {folders[0]} nor {folders[1]} exists")
        self.size, self.paths, self.records = size, [], []
        for line, row in enumerate(rows, start=2):
            where = f"{root / 'HAM10000_metadata.csv'} line {line}"
            if row["dx"].strip() not in HAM_CLASSES:
                raise ValueError(f"{where}: unknown dx {row['dx']!r}; expected one of {HAM_CLASSES}")
            candidates = [resolve_inside(f, f"{row['image_id'].strip()}.jpg", where) for f in folders]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise FileNotFoundError(f"{root / 'HAM10000_metadata.csv'} line {line}: no image "
                                        f"{row['image_id']}.jpg in {folders[0].name} or {folders[1].name}")
            self.paths.append(found[0])
            self.records.append({"label": HAM_CLASSES.index(row["dx"].strip()), "lesion_id": row["lesion_id"],
                                 "image_id": row["image_id"], "diagnosis": row["dx"].strip()})
        self._require_items(root / "HAM10000_metadata.csv")

    @property
    def lesion_ids(self) -> list[str]:
        return [r["lesion_id"] for r in self.records]


class ISIC2018Task3(ImageListDataset):
    """ISIC 2018 Task 3 training set from its one-hot ground-truth CSV."""

    def __init__(self, root: str | Path, size: int | None = 224) -> None:
        root = Path(root).expanduser()
        csv_path = root / "ISIC2018_Task3_Training_GroundTruth.csv"
        rows = read_csv(csv_path, ("image", *ISIC_COLUMNS))
        folder = root / "ISIC2018_Task3_Training_Input"
        self.size, self.paths, self.records = size, [], []
        for line, row in enumerate(rows, start=2):
            try:
                onehot = np.array([float(row[c]) for c in ISIC_COLUMNS])
            except ValueError as exc:
                raise ValueError(f"{csv_path} line {line}: non-numeric label ({exc})") from exc
            if not np.isfinite(onehot).all():
                raise ValueError(f"{csv_path} line {line}: non-finite label {onehot.tolist()}")
            if not np.isclose(onehot.sum(), 1.0) or not np.isin(onehot, (0.0, 1.0)).all():
                raise ValueError(f"{csv_path} line {line}: expected a one-hot row, got {onehot.tolist()}")
            path = resolve_inside(folder, f"{row['image'].strip()}.jpg", f"{csv_path} line {line}")
            if not path.is_file():
                raise FileNotFoundError(f"{csv_path} line {line}: missing image {path}")
            diagnosis = ISIC_COLUMNS[int(onehot.argmax())].lower()
            self.paths.append(path)
            self.records.append({"label": HAM_CLASSES.index(diagnosis), "image_id": row["image"],
                                 "diagnosis": diagnosis})
        self._require_items(csv_path)


ISIC_TASK1_INPUT = "ISIC2018_Task1-2_Training_Input"
ISIC_TASK1_MASKS = "ISIC2018_Task1_Training_GroundTruth"
_ISIC_ID = re.compile(r"ISIC_\d{7}")


class ISIC2018Task1(Dataset):
    """ISIC 2018 Task 1 (lesion boundary segmentation), training set as distributed: every
    ``ISIC_xxxxxxx.jpg`` of the input folder (its ``LICENSE.txt`` / ``ATTRIBUTION.txt`` are ignored) with its
    ``ISIC_xxxxxxx_segmentation.png``. Sorted by image id; ``limit`` keeps the first ones. An image without
    its mask is an error naming both paths; a mask whose size differs from its image's is an error when
    read. ``root`` is the folder holding the two folders."""

    def __init__(self, root: str | Path, size: int | None = 224, limit: int | None = None,
                 max_pixels: int = MAX_PIXELS) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit: expected a positive int or None, got {limit!r}")
        root = Path(root).expanduser()
        inputs, masks = root / ISIC_TASK1_INPUT, root / ISIC_TASK1_MASKS
        for folder in (inputs, masks):
            if not folder.is_dir():
                raise FileNotFoundError(f"root: no folder {folder} (expected the ISIC 2018 Task 1 layout: "
                                        f"{ISIC_TASK1_INPUT}/ and {ISIC_TASK1_MASKS}/ under {root})")
        ids = sorted(p.stem for p in inputs.iterdir() if p.suffix.lower() == ".jpg" and _ISIC_ID.fullmatch(p.stem))
        if not ids:
            raise ValueError(f"root: {inputs} holds no ISIC_xxxxxxx.jpg image")
        self.size, self.max_pixels, self.items = size, max_pixels, []
        for image_id in ids[:limit]:
            image, mask = inputs / f"{image_id}.jpg", masks / f"{image_id}_segmentation.png"   # ids are ISIC_ + 7 digits
            if not mask.is_file():
                raise FileNotFoundError(f"ISIC 2018 Task 1: image {image} has no mask {mask}")
            self.items.append((image_id, image, mask))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_masks(self) -> bool:
        return True

    @property
    def image_ids(self) -> list[str]:
        return [image_id for image_id, _, _ in self.items]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: {index} out of range for a dataset of {len(self)} images")
        image_id, image_path, mask_path = self.items[index]
        image, mask = read_image(image_path, "RGB", self.max_pixels), read_image(mask_path, "L", self.max_pixels)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"ISIC 2018 Task 1: mask {mask_path.name} is {mask.shape[1]} x {mask.shape[0]} px, "
                             f"its image {image_path.name} {image.shape[1]} x {image.shape[0]} px")
        return {"image": normalize_image(to_tensor(image, self.size)),
                "mask": resize_mask(mask > 127, self.size), "meta": {"image_id": image_id}}

