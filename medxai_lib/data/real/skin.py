"""HAM10000 and ISIC 2018 Task 3 loaders (dermoscopy), read as distributed.

HAM10000: ``HAM10000_metadata.csv`` (lesion_id, image_id, dx, dx_type, age, sex, localization[, dataset]) and
``HAM10000_images_part_1/``, ``HAM10000_images_part_2/`` holding ``<image_id>.jpg``. Several images share a
lesion: split with :func:`medxai_lib.data.real.common.group_split` on ``lesion_ids``.
ISIC 2018 Task 3: ``ISIC2018_Task3_Training_Input/<image>.jpg`` and
``ISIC2018_Task3_Training_GroundTruth.csv`` (image, MEL, NV, BCC, AKIEC, BKL, DF, VASC; one-hot floats).
Items: ``image`` (3, S, S) ImageNet-normalised, ``label`` () index into :data:`HAM_CLASSES`, ``meta``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medxai_lib.data.phantoms.skin import HAM_CLASSES
from medxai_lib.data.real.common import ImageListDataset, read_csv, resolve_inside

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
