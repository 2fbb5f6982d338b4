"""IU X-ray (Open-i, Demner-Fushman et al. 2016): chest radiographs with their reports, as distributed.

Layout under ``root``::

    NLMCXR_png/CXR1_1_IM-0001-3001.png        (the PNG images; 7,470 of them)
    ecgen-radiology/1.xml                      (the report XMLs; 3,955 of them)

Each report names its images in ``<parentImage id="CXR1_1_IM-0001-3001">`` (the PNG's stem). Without an
``ecgen-radiology/`` folder the reports are read from ``NLMCXR_reports.tgz`` (``reports=``, by default the copy in
torchxrayvision's wheel). One item per report with text and at least one image: its **first** image (a report is
one patient's study, so items are independent units and a split by report is a split by patient). Labels from
the MeSH ``major`` terms: 0 ``normal`` (the only major term), 1 ``abnormal``. Image ids are checked to stay
inside ``NLMCXR_png/``; a report whose image file is missing is an error naming both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from medxai_lib.data.phantoms.histology import Vocabulary
from medxai_lib.data.real.common import MAX_PIXELS, group_split, read_grey, resolve_inside, to_tensor
from medxai_lib.data.real.reports import IUReport, IUXRayReports, default_archive, parse_report_xml
from medxai_lib.data.transforms import normalize_image

IU_IMAGES = "NLMCXR_png"
IU_REPORTS = "ecgen-radiology"
IU_CLASSES = ("normal", "abnormal")

__all__ = ["IU_CLASSES", "IU_IMAGES", "IU_REPORTS", "IUXRay", "iu_xray_split"]


def _read_reports(root: Path, reports: str | Path | None) -> list[IUReport]:
    folder = root / IU_REPORTS
    if not folder.is_dir():                       # the reports as shipped in a .tgz (torchxrayvision's wheel)
        archive = Path(reports).expanduser() if reports is not None else default_archive()
        if not archive.is_file():
            raise FileNotFoundError(f"root: no folder {folder} and no report archive {archive} (expected "
                                    f"{IU_REPORTS}/<n>.xml beside {IU_IMAGES}/ under {root})")
        return IUXRayReports(archive, require_text=False).reports
    found = [parse_report_xml(p.read_bytes()) for p in sorted(folder.glob("*.xml"))]
    if not found:
        raise ValueError(f"root: no report XML in {folder}")
    return sorted(found, key=lambda r: (len(r.uid), r.uid))      # IUXRayReports' order


class IUXRay(Dataset):
    """IU X-ray images with their reports: items ``image`` (3, S, S) (the grey radiograph in three channels,
    ImageNet-normalised), ``label`` (0 normal, 1 abnormal), ``reports`` (a list with the report's FINDINGS and
    IMPRESSION text) and ``meta`` (report uid, image id, MeSH major terms).

    Args:
        root: the folder holding ``NLMCXR_png/`` (and ``ecgen-radiology/``, else ``reports`` is read).
        size: side of the square images (``None`` keeps each image's size).
        limit: keep the first ``limit`` usable reports (sorted by report number).
        reports: the ``NLMCXR_reports.tgz`` to read when ``root`` has no ``ecgen-radiology/`` folder.
    """

    def __init__(self, root: str | Path, size: int | None = 64, limit: int | None = None,
                 reports: str | Path | None = None, max_pixels: int = MAX_PIXELS) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit: expected a positive int or None, got {limit!r}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"size: expected a positive int or None, got {size!r}")
        root = Path(root).expanduser()
        images = root / IU_IMAGES
        if not images.is_dir():
            raise FileNotFoundError(f"root: no folder {images} (expected the IU X-ray layout: {IU_IMAGES}/ and "
                                    f"{IU_REPORTS}/ under {root})")
        self.root, self.size, self.max_pixels = root, size, max_pixels
        self.items: list[tuple[IUReport, Path]] = []
        for report in _read_reports(root, reports):
            if not report.text or not report.images:
                continue                                  # nothing to write, or no image to write it about
            path = resolve_inside(images, f"{report.images[0]}.png", f"report {report.uid} (parentImage)")
            if not path.is_file():
                raise FileNotFoundError(f"IU X-ray: report {report.uid} names image {report.images[0]}, "
                                        f"but {path} is missing")
            self.items.append((report, path))
            if limit is not None and len(self.items) == limit:
                break
        if not self.items:
            raise ValueError(f"root: no report with text and an image under {root}")

    @classmethod
    def _from_items(cls, parent: "IUXRay", items: list[tuple[IUReport, Path]]) -> "IUXRay":
        view = cls.__new__(cls)
        view.root, view.size, view.max_pixels, view.items = parent.root, parent.size, parent.max_pixels, items
        return view

    def subset(self, indices: Sequence[int]) -> "IUXRay":
        """The same dataset restricted to ``indices`` (in that order)."""
        return IUXRay._from_items(self, [self.items[int(i)] for i in indices])

    def __len__(self) -> int:
        return len(self.items)

    @property
    def report_ids(self) -> list[str]:
        return [r.uid for r, _ in self.items]

    @property
    def labels(self) -> np.ndarray:
        return np.array([0 if r.normal else 1 for r, _ in self.items], dtype=np.int64)

    @property
    def reports(self) -> list[list[str]]:
        """Per item, its reports (one: FINDINGS and IMPRESSION)."""
        return [[r.text] for r, _ in self.items]

    grades = None          # no attribute grades: the phantom-only analyses are skipped on real reports

    def vocabulary(self, min_count: int = 1) -> Vocabulary:
        return Vocabulary((r.text for r, _ in self.items), min_count=min_count)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: {index} out of range for a dataset of {len(self)} reports")
        report, path = self.items[index]
        grey = to_tensor((read_grey(path, self.max_pixels) * 255).round().astype(np.uint8), self.size)
        return {"image": normalize_image(grey.expand(3, -1, -1).contiguous()),
                "label": torch.tensor(0 if report.normal else 1, dtype=torch.long), "reports": [report.text],
                "meta": {"uid": report.uid, "image_id": path.stem, "mesh_major": report.mesh_major}}


def iu_xray_split(root: str | Path, size: int | None = 64, n_train: int = 300, n_test: int = 200, seed: int = 0,
                  reports: str | Path | None = None) -> tuple[IUXRay, IUXRay]:
    """The first ``n_train + n_test`` usable reports split by report (= patient) into train and test parts
    of about those sizes (:func:`~medxai_lib.data.real.common.group_split` with ``seed``)."""
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    data = IUXRay(root, size, limit=n_train + n_test, reports=reports)
    total = n_train + n_test
    train, test = group_split(data.report_ids, (n_train / total, n_test / total), seed)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"root: {len(data)} usable reports are too few for a train and a test part")
    return data.subset(train), data.subset(test)
