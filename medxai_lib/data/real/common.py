"""Shared pieces of the real-data loaders: image reading with clear errors, CSV reading, group splits.

Decisions (tested in tests/test_reliability.py, listed in docs/reliability.md):

* Paths read from a CSV must stay inside the dataset root (:func:`resolve_inside`): absolute paths and
  ``..`` that climb out are refused with a ``ValueError`` naming the CSV row, before the file system is
  touched, so the error does not reveal whether a file outside the root exists. Symbolic links inside the
  root are the dataset owner's and are followed.
* Images larger than a per-dataset pixel cap (``max_pixels``; 4096 x 4096 by default) are refused before
  they are decoded, naming the file (a 100-byte PNG can declare 92 megapixels); gzipped files may not
  decompress past the same budget.
* 16-bit (and 32-bit integer) grey images are scaled by their bit depth, never clipped: ``v / (2**b - 1)``
  with ``b`` the smallest depth from 8 to 16 bits that holds the image's maximum (a 12-bit radiograph
  stored in 16 bits is divided by 4095); values outside 0..65535 and float images are min-max scaled.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import struct
import warnings
import zlib
from pathlib import Path, PurePath
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from medxai_lib.data.transforms import normalize_image

MAX_PIXELS = 4096 * 4096          # default cap per image (radiographs, dermoscopy, fundus vessel sets)
_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error,
                  IndexError, Image.DecompressionBombError)


def resolve_inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative`` when it stays inside ``root``; else ``ValueError`` naming ``where`` (the CSV row).

    Checked on the text alone (absolute paths, ``..`` climbing above the root, NUL bytes), before any
    file is looked at, so the message is the same whether or not the target exists."""
    text = str(relative).strip()
    if not text or "\x00" in text:
        raise ValueError(f"{where}: empty or invalid path {text!r}")
    normal = os.path.normpath(text)
    if PurePath(text).is_absolute() or normal == ".." or normal.startswith(".." + os.sep):
        raise ValueError(f"{where}: path {text!r} escapes the dataset root {root} (paths must be relative "
                         "to the root, without '..' leading out of it)")
    return Path(root) / normal


def _check_max_pixels(max_pixels: int) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels: expected a positive int, got {max_pixels!r}")


class _OverCap(ValueError):
    """An image refused by the size cap (raised as is, not re-wrapped as unreadable)."""


def _read_gzip(path: Path, limit: int) -> bytes:
    with gzip.open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _OverCap(f"image {path}: decompresses to more than {limit} bytes, beyond the size cap")
    return data


def _with_image(path: Path, max_pixels: int, use: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """Open ``path`` (``.gz`` transparently), refuse it above ``max_pixels`` before decoding, decode it
    and return ``use(image)``; every decoding failure becomes a ``ValueError`` naming the file."""
    _check_max_pixels(max_pixels)
    if not path.is_file():
        raise FileNotFoundError(f"missing image file {path}")
    too_big: tuple[int, int] | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own cap decides
            source = io.BytesIO(_read_gzip(path, 8 * max_pixels + 65536)) if path.suffix == ".gz" else path
            with Image.open(source) as img:
                width, height = img.size
                if width * height > max_pixels or width * height == 0:
                    too_big = (width, height)
                else:
                    img.load()
                    return use(img)
    except _OverCap:
        raise
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image {path}: larger than the {max_pixels}-pixel cap ({exc})") from exc
    except _DECODE_ERRORS as exc:
        raise ValueError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
    width, height = too_big
    if width * height == 0:
        raise ValueError(f"cannot read image {path}: it declares an empty {width}x{height} image")
    raise ValueError(f"image {path}: {width}x{height} = {width * height} pixels exceeds the cap of {max_pixels} "
                     "pixels for this dataset (a decompression bomb or the wrong file); pass a larger "
                     "max_pixels if the image is genuine")


def _grey_unit(img: Image.Image) -> np.ndarray:
    """``(H, W)`` float32 in [0, 1] from a grey image of any depth (the bit-depth rule above)."""
    if img.mode in _HIGH_BIT_MODES or img.mode == "F":
        values = np.asarray(img).astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("image has NaN or infinite pixel values")
        low, high = float(values.min()), float(values.max())
        if img.mode != "F" and low >= 0 and high <= 65535:
            bits = min(16, max(8, int(high).bit_length()))
            return (values / (2 ** bits - 1)).astype(np.float32)
        span = high - low
        return ((values - low) / span if span > 0 else np.zeros_like(values)).astype(np.float32)
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def _as_uint8(img: Image.Image, mode: str) -> np.ndarray:
    if img.mode not in _HIGH_BIT_MODES and img.mode != "F":
        return np.asarray(img.convert(mode))
    grey = np.round(_grey_unit(img) * 255).astype(np.uint8)
    if mode == "L":
        return grey
    if mode == "RGB":
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(Image.fromarray(grey, "L").convert(mode))


def read_image(path: Path, mode: str = "RGB", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image (``.gz`` transparently) as an ``(H, W[, C])`` uint8 array; errors name the file.

    8-bit images are converted with Pillow exactly as before; 16-bit grey images are scaled by their
    bit depth first (see the module docstring), never clipped. Images above ``max_pixels`` are refused
    before decoding."""
    return _with_image(Path(path), max_pixels, lambda img: _as_uint8(img, mode))


def read_grey(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a grey image as ``(H, W)`` float32 in [0, 1] at its full depth (16-bit radiographs keep their
    precision); colour images are converted with Pillow's ``"L"``."""
    return _with_image(Path(path), max_pixels, _grey_unit)


def to_tensor(array: np.ndarray, size: int | None) -> torch.Tensor:
    """uint8 ``(H, W[, C])`` -> float ``(C, S, S)`` in [0, 1], resized (bilinear, antialiased) when ``size``."""
    tensor = torch.from_numpy(np.array(array)).float() / 255.0   # a writable copy: PIL arrays are read-only
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
    """Rows of a CSV with a header; checks the expected columns are present and that no row is short
    (errors name the file and line). A UTF-8 byte-order mark and spaces around column names are
    ignored; a CSV without data rows is an error."""
    if not path.is_file():
        raise FileNotFoundError(f"missing CSV file {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            missing = [c for c in (expected_header or []) if c not in header]
            if missing:
                raise ValueError(f"{path}: missing columns {missing} (found {header})")
            rows = []
            for row in reader:
                if any(value is None for value in row.values()):
                    raise ValueError(f"{path} line {reader.line_num}: expected {len(header)} fields "
                                     f"({', '.join(header)}), got a short row")
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a readable UTF-8 CSV ({exc})") from exc
    if not rows:
        raise ValueError(f"{path}: no data rows (only a header, or an empty file)")
    return rows


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
    subclass; items are ``image`` (3, S, S) ImageNet-normalised, ``label`` and ``meta``.

    ``max_pixels``: images above it are refused before decoding (per dataset; 4096 x 4096 by default)."""

    paths: list[Path]
    records: list[dict[str, Any]]
    size: int | None
    max_pixels: int = MAX_PIXELS

    def __len__(self) -> int:
        return len(self.paths)

    def _require_items(self, source: Path | str) -> None:
        """A loader that found no image is an error, not an empty dataset."""
        if not self.paths:
            raise ValueError(f"{source}: lists no images; the dataset would be empty")

    @property
    def labels(self) -> np.ndarray:
        return np.array([r["label"] for r in self.records], dtype=np.int64)

    @property
    def has_masks(self) -> bool:
        return False

    def load_image(self, index: int) -> torch.Tensor:
        """The model-ready image of item ``index``: RGB, resized to ``size``, ImageNet-normalised."""
        return normalize_image(to_tensor(read_image(self.paths[index], "RGB", self.max_pixels), self.size))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: {index} out of range for a dataset of {len(self)} images")
        rec = self.records[index]
        return {"image": self.load_image(index), "label": torch.tensor(rec["label"], dtype=torch.long),
                "meta": {k: v for k, v in rec.items() if k != "label"}}
