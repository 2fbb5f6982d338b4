"""Retinal datasets as distributed: DRIVE and STARE (vessels), Kaggle Diabetic Retinopathy (grades), and
:class:`FundusItems`, which gives any of them the fundus phantom's item format (notebook 06's real-data path).

Items: ``image`` (3, S, S) ImageNet-normalised; DRIVE/STARE add ``vessels`` (1, S, S) and ``fov``
(1, S, S) (STARE has no FOV masks: estimated by thresholding the image); Kaggle DR gives ``label`` 0-4.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from medxai_lib.data.real.common import ImageListDataset, group_split, read_csv, read_image, resize_mask, resolve_inside, to_tensor
from medxai_lib.data.transforms import denormalize_image, normalize_image


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
        fov = estimated_fov(torch.from_numpy(image).permute(2, 0, 1).float())[0].numpy()   # no FOV masks in STARE
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


def estimated_fov(image: torch.Tensor) -> torch.Tensor:
    """``(3, S, S)`` fundus photograph in [0, 1] -> ``(1, S, S)`` float field-of-view mask: pixels whose mean
    brightness exceeds 12% of the image's brightest (a fundus camera's surround is near black). For datasets
    that ship no FOV masks (STARE, Kaggle DR)."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image: expected one (3, S, S) image in [0, 1], got shape {tuple(image.shape)}")
    brightness = image.mean(0)
    return (brightness > 0.12 * brightness.max()).float()[None]


def estimated_disc(image: torch.Tensor, fov: torch.Tensor, radius: float = 0.065) -> torch.Tensor:
    """``(3, S, S)`` fundus photograph in [0, 1] and its ``(1, S, S)`` field of view -> ``(1, S, S)`` float
    optic-disc mask: a disc of ``radius`` (fraction of the side; DRIVE's discs are about 0.07) around the
    brightest spot of the brightness map smoothed at that radius, inside the field of view shrunk by it
    (the disc is the brightest structure of a fundus photograph). For datasets that ship no disc masks."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image: expected one (3, S, S) image in [0, 1], got shape {tuple(image.shape)}")
    if fov.shape != (1, *image.shape[-2:]):
        raise ValueError(f"fov: expected {(1, *image.shape[-2:])}, got {tuple(fov.shape)}")
    if not 0 < radius < 0.5:
        raise ValueError(f"radius: expected a fraction of the image side in (0, 0.5), got {radius!r}")
    size = image.shape[-1]
    r = radius * size
    field = fov[0].numpy() > 0.5
    if not field.any():
        raise ValueError("fov: empty field of view (a black photograph?); no optic disc to find")
    inside = ndimage.binary_erosion(field, iterations=max(1, int(round(r))))
    inside = inside if inside.any() else field        # a field of view narrower than the disc: search all of it
    smooth = ndimage.uniform_filter(image.mean(0).numpy().astype(np.float64), size=max(3, int(round(2 * r)) | 1))
    cy, cx = np.unravel_index(np.argmax(np.where(inside, smooth, -np.inf)), smooth.shape)
    y, x = np.mgrid[:size, :size]
    return torch.from_numpy(((np.hypot(x - cx, y - cy) <= r) & field).astype(np.float32))[None]


class FundusItems(Dataset):
    """A real retina dataset in the fundus phantom's item format (notebook 06): ``image`` (3, S, S)
    ImageNet-normalised, or in [0, 1] with ``normalize=False``; ``fov`` (1, S, S), the dataset's own mask or
    :func:`estimated_fov`; ``disc`` (1, S, S), :func:`estimated_disc` (no dataset here ships disc masks);
    ``vessels`` (1, S, S) where the dataset has them (DRIVE, STARE); ``label`` where it has one (Kaggle DR grade);
    ``meta``. Real photographs carry no lesion masks or lesion counts, so there is no ``mask`` or ``lesions``.

    ``indices`` selects items of ``base`` (default: all). Decoded items are kept in memory while they fit in
    ``cache_mib`` (fundus photographs are slow to decode and the notebook reads them several times)."""

    def __init__(self, base: Dataset, indices: Sequence[int] | None = None, normalize: bool = True,
                 cache_mib: float = 512.0) -> None:
        self.base, self.normalize = base, normalize
        self.indices = np.arange(len(base)) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1 or (len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(base))):
            raise ValueError(f"indices: expected positions 0..{len(base) - 1} of base, got {self.indices.tolist()[:8]}...")
        size = getattr(base, "size", None) or 512
        self._cache: dict[int, dict[str, Any]] | None = \
            {} if len(self.indices) * 3 * size * size * 4 / 2**20 <= cache_mib else None

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        if not hasattr(self.base, "labels"):
            raise AttributeError(f"{type(self.base).__name__} has no labels (grades)")
        return np.asarray(self.base.labels)[self.indices]

    @property
    def patient_ids(self) -> list[str]:
        ids = getattr(self.base, "patient_ids", None)
        return [ids[i] for i in self.indices] if ids is not None else [str(i) for i in self.indices]

    @property
    def has_masks(self) -> bool:
        return False

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: {index} out of range for a dataset of {len(self)} images")
        index = int(index) % len(self)
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        item = self.base[int(self.indices[index])]
        raw = denormalize_image(item["image"])      # the loaders normalise; the FOV and disc rules read raw pixels
        fov = item["fov"] if "fov" in item else estimated_fov(raw)
        out = {"image": item["image"] if self.normalize else raw, "fov": fov, "disc": estimated_disc(raw, fov),
               "meta": item.get("meta", {})}
        for key in ("vessels", "label"):
            if key in item:
                out[key] = item[key]
        if self._cache is not None:
            self._cache[index] = out
        return out


def kaggle_dr_splits(root: str | Path, size: int = 96, n_train: int = 800, n_val: int = 240, n_source: int = 0,
                     seed: int = 0) -> tuple[FundusItems, FundusItems, FundusItems | None]:
    """Kaggle DR (``root`` holds ``trainLabels.csv`` and ``train/``) split by patient into a training part
    (about ``n_train`` eyes), a held-out part (about ``n_val``) and, with ``n_source > 0``, up to ``n_source`` grade
    2-3 eyes of the remaining patients (notebook 06's descriptor sources, raw [0, 1] images): :func:`group_split`
    with those shares, so both eyes of a patient always land in the same part and patients are shuffled by
    ``seed``."""
    for name, value in (("n_train", n_train), ("n_val", n_val)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    base = KaggleDR(root, size=size)
    rest = len(base) - n_train - n_val
    if rest < 0:
        raise ValueError(f"root: {len(base)} Kaggle DR eyes are too few for {n_train} training and {n_val} held-out eyes")
    counts = [n_train, n_val] + ([rest] if rest else [])
    parts = group_split(base.patient_ids, np.array(counts) / len(base), seed=seed) + [np.zeros(0, np.int64)]
    sources = [int(i) for i in parts[2] if base.labels[i] in (2, 3)][:n_source]
    source = FundusItems(base, sources, normalize=False) if n_source > 0 and sources else None
    return FundusItems(base, parts[0]), FundusItems(base, parts[1]), source
