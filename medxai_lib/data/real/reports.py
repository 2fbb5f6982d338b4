"""Real radiology reports: the Indiana University chest X-ray collection (OpenI, Demner-Fushman et al. 2016).

torchxrayvision's wheel ships ``torchxrayvision/data/NLMCXR_reports.tgz``: 3,955 reports as
``ecgen-radiology/<n>.xml``, each with ``<AbstractText Label="COMPARISON|INDICATION|FINDINGS|IMPRESSION">``
(FINDINGS may be empty) and ``<MeSH>`` terms (``<major>`` such as ``normal``, ``Cardiomegaly/mild``;
``<automatic>``). Licence CC BY-NC-ND 4.0: the archive is read in place, never copied or modified. No images.
"""
from __future__ import annotations

import importlib.util
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ARCHIVE_NAME = "NLMCXR_reports.tgz"
SECTIONS = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")


@dataclass(frozen=True)
class IUReport:
    """One report: ``uid`` (e.g. ``CXR1``), the four sections (empty string when absent), MeSH terms."""
    uid: str
    comparison: str
    indication: str
    findings: str
    impression: str
    mesh_major: tuple[str, ...]
    mesh_automatic: tuple[str, ...]
    images: tuple[str, ...] = ()      # the ``parentImage`` ids, e.g. ``CXR1_1_IM-0001-3001`` (PNG file stems)

    @property
    def text(self) -> str:
        """FINDINGS then IMPRESSION, the part a report generator writes."""
        return " ".join(t for t in (self.findings, self.impression) if t)

    @property
    def normal(self) -> bool:
        """The MeSH major terms say ``normal`` (and nothing else)."""
        return [t.lower() for t in self.mesh_major] == ["normal"]

    def has_finding(self, term: str) -> bool:
        """A MeSH major term starts with ``term`` (case-insensitive; ``Cardiomegaly/mild`` has ``cardiomegaly``)."""
        term = term.lower()
        return any(t.lower().split("/")[0].strip() == term for t in self.mesh_major)


def default_archive() -> Path:
    """Where torchxrayvision's wheel keeps the reports (found without importing torchxrayvision)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"archive: {ARCHIVE_NAME} ships in torchxrayvision's wheel, which is not installed "
                                "(pip install -c requirements.lock torchxrayvision)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / ARCHIVE_NAME


def parse_report_xml(xml: bytes | str) -> IUReport:
    """One ``ecgen-radiology`` XML document -> :class:`IUReport`."""
    root = ET.fromstring(xml)
    uid = root.find("uId")
    sections = {s: "" for s in SECTIONS}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").upper()
        if label in sections:
            sections[label] = " ".join((node.text or "").split())
    mesh = root.find("MeSH")
    major = tuple((m.text or "").strip() for m in mesh.findall("major")) if mesh is not None else ()
    automatic = tuple((m.text or "").strip() for m in mesh.findall("automatic")) if mesh is not None else ()
    images = tuple(node.get("id", "").strip() for node in root.findall("parentImage") if node.get("id", "").strip())
    return IUReport(uid.get("id", "") if uid is not None else "", sections["COMPARISON"], sections["INDICATION"],
                    sections["FINDINGS"], sections["IMPRESSION"], major, automatic, images)


class IUXRayReports:
    """The IU X-ray reports, read from the ``.tgz`` in place: ``len``, indexing -> :class:`IUReport`.

    Args:
        archive: the ``NLMCXR_reports.tgz`` file; default: the copy inside torchxrayvision's wheel.
        require_text: keep only reports with a FINDINGS or IMPRESSION section.
    """

    def __init__(self, archive: str | Path | None = None, require_text: bool = True) -> None:
        path = Path(archive).expanduser() if archive is not None else default_archive()
        if not path.is_file():
            raise FileNotFoundError(f"archive: {path} not found (expected {ARCHIVE_NAME}, as shipped in "
                                    "torchxrayvision's wheel under torchxrayvision/data/)")
        self.archive = path
        reports = []
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".xml"):
                    reports.append(parse_report_xml(tar.extractfile(member).read()))
        if not reports:
            raise ValueError(f"archive: no ecgen-radiology/*.xml report in {path}")
        reports.sort(key=lambda r: (len(r.uid), r.uid))
        self.reports = [r for r in reports if r.text] if require_text else reports

    def __len__(self) -> int:
        return len(self.reports)

    def __getitem__(self, index: int) -> IUReport:
        return self.reports[index]

    def texts(self) -> list[str]:
        return [r.text for r in self.reports]

    def to_frame(self) -> "pandas.DataFrame":
        """One row per report: uid, the sections, MeSH major terms joined by ``; ``, normal."""
        import pandas as pd
        return pd.DataFrame([{"uid": r.uid, "findings": r.findings, "impression": r.impression,
                              "indication": r.indication, "mesh_major": "; ".join(r.mesh_major), "normal": r.normal}
                             for r in self.reports])
