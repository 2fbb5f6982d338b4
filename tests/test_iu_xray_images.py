"""The IU X-ray image + report loader on fixture trees in the distributed layout (NLMCXR_png/ + ecgen-radiology/)."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medxai_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from medxai_lib.data.real.iuxray import IU_CLASSES, IUXRay, iu_xray_split
from medxai_lib.data.real.reports import parse_report_xml

NORMAL = ("The heart is normal in size. The lungs are clear. There is no pleural effusion.", "No acute disease.")
ABNORMAL = ("The heart is enlarged. There is a small right pleural effusion.", "Cardiomegaly with effusion.")


def report_xml(n: int, images: list[str], normal: bool, findings: str | None = None, impression: str | None = None) -> str:
    """One ecgen-radiology XML as distributed (the elements the loader reads, in their real nesting)."""
    f, i = (NORMAL if normal else ABNORMAL)
    f, i = f if findings is None else findings, i if impression is None else impression
    mesh = "<major>normal</major>" if normal else "<major>Cardiomegaly/mild</major><major>Pleural Effusion/right</major>"
    parents = "".join(f'<parentImage id="{im}"><figureId>F1</figureId></parentImage>' for im in images)
    return (f'<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="CXR{n}"/><MedlineCitation><Article><Abstract>'
            f'<AbstractText Label="COMPARISON">None.</AbstractText><AbstractText Label="INDICATION">Cough</AbstractText>'
            f'<AbstractText Label="FINDINGS">{f}</AbstractText><AbstractText Label="IMPRESSION">{i}</AbstractText>'
            f'</Abstract></Article></MedlineCitation><MeSH>{mesh}</MeSH>{parents}</eCitation>')


def iu_xray_tree(root: Path, n_reports: int = 24, size: int = 40, seed: int = 0) -> Path:
    """IU X-ray's layout: ``NLMCXR_png/CXR<n>_1_IM-<k>-1001.png`` (frontal) and ``-2001`` (lateral) per report and
    ``ecgen-radiology/<n>.xml``; every other report abnormal, drawn with a bright blob (something to learn)."""
    rng = np.random.default_rng(seed)
    (root / "NLMCXR_png").mkdir(parents=True, exist_ok=True)
    (root / "ecgen-radiology").mkdir(parents=True, exist_ok=True)
    for n in range(1, n_reports + 1):
        normal = n % 2 == 1
        images = [f"CXR{n}_1_IM-{n:04d}-1001", f"CXR{n}_1_IM-{n:04d}-2001"]
        for image in images:
            pixels = rng.integers(40, 120, (size, size + 6), dtype=np.uint8)
            if not normal:
                pixels[size // 4: size // 2, size // 4: size // 2] = 230
            Image.fromarray(pixels, "L").save(root / "NLMCXR_png" / f"{image}.png")
        (root / "ecgen-radiology" / f"{n}.xml").write_text(report_xml(n, images, normal))
    return root


def test_items_pair_each_report_with_its_first_image_and_label(tmp_path):
    root = iu_xray_tree(tmp_path / "iu", n_reports=12)
    (root / "ecgen-radiology" / "13.xml").write_text(report_xml(13, [], True))                 # no image: skipped
    (root / "ecgen-radiology" / "14.xml").write_text(report_xml(14, ["CXR1_1_IM-0001-1001"], True, "", ""))  # no text
    data = IUXRay(root, size=32)
    assert len(data) == 12 and data.report_ids[:3] == ["CXR1", "CXR2", "CXR3"] and data.report_ids[-1] == "CXR12"
    assert data.labels.tolist() == [0, 1] * 6 and IU_CLASSES == ("normal", "abnormal")
    item = data[1]
    assert item["image"].shape == (3, 32, 32) and item["label"].item() == 1
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    grey = item["image"] * std + mean                                      # the grey image in three channels,
    assert torch.allclose(grey[0], grey[2], atol=1e-6) and torch.allclose(grey[0], grey[1], atol=1e-6)   # ImageNet-normalised
    assert item["meta"]["image_id"] == "CXR2_1_IM-0002-1001"               # the first image, not the lateral
    assert item["reports"] == [" ".join(ABNORMAL)] and data.reports[1] == item["reports"]
    assert "Cardiomegaly/mild" in item["meta"]["mesh_major"]
    bright = IUXRay(root, size=None)[1]["image"][0]                         # abnormal: the bright blob
    assert bright.shape == (40, 46) and bright[10:20, 10:20].mean() > bright[30:, 30:].mean() + 1.0
    vocab = data.vocabulary()
    assert "effusion" in vocab.stoi and vocab.stoi["<pad>"] == 0
    assert len(IUXRay(root, size=32, limit=5)) == 5


def test_a_missing_image_and_an_escaping_image_id_are_clear_errors(tmp_path):
    root = iu_xray_tree(tmp_path / "iu", n_reports=4)
    (root / "NLMCXR_png" / "CXR3_1_IM-0003-1001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"report CXR3 names image CXR3_1_IM-0003-1001.*missing"):
        IUXRay(root)
    root = iu_xray_tree(tmp_path / "iu2", n_reports=2)
    (root / "ecgen-radiology" / "3.xml").write_text(report_xml(3, ["../../outside"], False))
    with pytest.raises(ValueError, match="report CXR3.*escapes the dataset root"):
        IUXRay(root)
    with pytest.raises(FileNotFoundError, match="NLMCXR_png"):
        IUXRay(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="limit"):
        IUXRay(root, limit=0)


def test_reports_come_from_the_archive_when_the_xml_folder_is_absent(tmp_path):
    root = iu_xray_tree(tmp_path / "iu", n_reports=6)
    archive = tmp_path / "NLMCXR_reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted((root / "ecgen-radiology").glob("*.xml")):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"ecgen-radiology/{path.name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    for path in (root / "ecgen-radiology").glob("*.xml"):
        path.unlink()
    (root / "ecgen-radiology").rmdir()
    data = IUXRay(root, size=16, reports=archive)
    assert data.report_ids == [f"CXR{n}" for n in range(1, 7)]
    with pytest.raises(FileNotFoundError, match="no folder .*ecgen-radiology and no report archive"):
        IUXRay(root, reports=tmp_path / "absent.tgz")


def test_the_split_is_by_report_and_keeps_the_requested_sizes(tmp_path):
    root = iu_xray_tree(tmp_path / "iu", n_reports=20)
    train, test = iu_xray_split(root, size=16, n_train=12, n_test=8, seed=3)
    assert (len(train), len(test)) == (12, 8)
    assert not set(train.report_ids) & set(test.report_ids)
    assert train[0]["image"].shape == (3, 16, 16) and len(train.reports) == 12
    assert iu_xray_split(root, size=16, n_train=12, n_test=8, seed=3)[1].report_ids == test.report_ids
    with pytest.raises(ValueError, match="n_test"):
        iu_xray_split(root, n_train=4, n_test=0)


def test_parent_image_ids_are_read_from_the_report():
    report = parse_report_xml(report_xml(7, ["CXR7_1_IM-0007-1001", "CXR7_1_IM-0007-2001"], False))
    assert report.images == ("CXR7_1_IM-0007-1001", "CXR7_1_IM-0007-2001") and report.uid == "CXR7"
    assert not report.normal and report.has_finding("cardiomegaly")
