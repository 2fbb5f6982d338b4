"""The IU X-ray report loader on a tiny fixture archive in the wheel's layout (ecgen-radiology/<n>.xml in a .tgz)."""
import io
import tarfile

import pytest

from medxai_lib.data.real.reports import IUXRayReports, default_archive

XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation><uId id="CXR{n}"/><MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="INDICATION">{indication}</AbstractText>
<AbstractText Label="FINDINGS">{findings}</AbstractText>
<AbstractText Label="IMPRESSION">{impression}</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH>{mesh}</MeSH></eCitation>"""

FIXTURE = [
    dict(n=2, indication="Cough", findings="The heart is normal in size.  The lungs are clear.",
         impression="No acute disease.", mesh="<major>normal</major>"),
    dict(n=10, indication="Dyspnea", findings="", impression="Mild cardiomegaly. Small left pleural effusion.",
         mesh="<major>Cardiomegaly/mild</major><major>Pleural Effusion/left/small</major><automatic>effusion</automatic>"),
    dict(n=1, indication="", findings="", impression="", mesh="<major>normal</major>"),     # no text at all
]


def _archive(path, records):
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("ecgen-radiology")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for rec in records:
            data = XML.format(**rec).encode()
            info = tarfile.TarInfo(f"ecgen-radiology/{rec['n']}.xml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_reads_sections_mesh_terms_and_skips_empty_reports(tmp_path):
    ds = IUXRayReports(_archive(tmp_path / "NLMCXR_reports.tgz", FIXTURE))
    assert len(ds) == 2 and [r.uid for r in ds.reports] == ["CXR2", "CXR10"]     # sorted by number, empty dropped
    first, second = ds[0], ds[1]
    assert first.findings == "The heart is normal in size. The lungs are clear."     # whitespace normalised
    assert first.text == "The heart is normal in size. The lungs are clear. No acute disease."
    assert first.normal and not second.normal
    assert second.findings == "" and second.text.startswith("Mild cardiomegaly")
    assert second.mesh_major == ("Cardiomegaly/mild", "Pleural Effusion/left/small")
    assert second.mesh_automatic == ("effusion",)
    assert second.has_finding("cardiomegaly") and second.has_finding("Pleural Effusion") and not first.has_finding("cardiomegaly")
    assert len(IUXRayReports(tmp_path / "NLMCXR_reports.tgz", require_text=False)) == 3
    frame = ds.to_frame()
    assert list(frame["uid"]) == ["CXR2", "CXR10"] and frame["normal"].tolist() == [True, False]


def test_missing_archive_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="NLMCXR_reports.tgz"):
        IUXRayReports(tmp_path / "NLMCXR_reports.tgz")


def test_an_archive_without_reports_is_an_error(tmp_path):
    with tarfile.open(tmp_path / "empty.tgz", "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("readme.txt"), io.BytesIO(b""))
    with pytest.raises(ValueError, match="no ecgen-radiology"):
        IUXRayReports(tmp_path / "empty.tgz")


def test_the_wheel_archive_when_installed():
    try:
        path = default_archive()
    except FileNotFoundError:
        pytest.skip("torchxrayvision is not installed")
    ds = IUXRayReports(path)
    assert len(ds) > 3800 and sum(r.normal for r in ds) > 1000
