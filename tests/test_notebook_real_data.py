"""The notebooks on real-data fixture trees (tiny, built in tmp_path in the distributed layouts): each
runs to the end with ``data_root`` set, every checked cell prints CLAIM / IDENTITY / SKIPPED lines (never
nothing), and no library warning reaches the outputs. One test function per notebook and dataset."""
from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import papermill as pm
import pytest
from PIL import Image

from medxai_lib.evaluate.claims import parse_line

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def run_notebook(name: str, tmp_path: Path, **parameters: object) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with papermill into ``tmp_path`` (the test's cache dir is set
    by conftest); returns the executed notebook's path."""
    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters, cwd=str(NOTEBOOKS),
                        kernel_name="python3", progress_bar=False)
    return out


def checked_cells(path: Path) -> list[list[str]]:
    """The non-empty printed lines of each ``# NBVAL_CHECK_OUTPUT`` cell (one list per cell)."""
    cells = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            cells.append([line for line in text.splitlines() if line.strip()])
    return cells


def warnings_in_outputs(path: Path) -> list[str]:
    """Every stderr line of the executed notebook that looks like a warning."""
    found = []
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                found += [line for line in out.get("text", "").splitlines() if "warn" in line.lower()]
    return found


def assert_checked_cells_speak(path: Path, allowed: set[str]) -> list[dict[str, str]]:
    """Every checked cell prints at least one line and every line parses as one of ``allowed`` kinds."""
    cells = checked_cells(path)
    assert cells, f"{path.name}: no checked cells"
    parsed = []
    for i, lines in enumerate(cells):
        assert lines, f"{path.name}: checked cell {i} printed nothing"
        for line in lines:
            result = parse_line(line)
            assert result is not None and result["kind"] in allowed, f"{path.name}: unexpected line {line!r}"
            parsed.append(result)
    return parsed


# ---- notebook 02 on HAM10000 -------------------------------------------------------------------------
def ham10000_tree(root: Path, n_lesions: int = 30, seed: int = 0) -> Path:
    """HAM10000's layout: the metadata CSV and two image folders of small random JPEGs; every third lesion
    a melanoma, some lesions with two images (split by lesion)."""
    rng = np.random.default_rng(seed)
    lines = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    image_no = 0
    for lesion in range(n_lesions):
        dx = "mel" if lesion % 3 == 0 else ("nv", "bkl", "bcc")[lesion % 3 - 1 + (lesion % 2)]
        for _ in range(1 + (lesion % 4 == 0)):
            image_no += 1
            folder = root / f"HAM10000_images_part_{1 + image_no % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
            if dx == "mel":   # a dark blob, so the tiny model has something to learn
                pixels[8:22, 12:28] //= 3
            Image.fromarray(pixels).save(folder / f"ISIC_{image_no:07d}.jpg")
            lines.append(f"HAM_{lesion:07d},ISIC_{image_no:07d},{dx},histo,50.0,female,back")
    (root / "HAM10000_metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_notebook_02_on_a_ham10000_fixture(tmp_path):
    root = ham10000_tree(tmp_path / "ham10000")
    out = run_notebook("02_skin_lesion_feature_maps", tmp_path, data_root=str(root), image_size=32, width=4, epochs=1,
                       n_val_lesions=40, units_per_concept=2, n_random_draws=2, quantiles=[0.02, 0.05])
    parsed = assert_checked_cells_speak(out, {"CLAIM", "SKIPPED"})
    kinds = [p["kind"] for p in parsed]
    assert "SKIPPED" in kinds                                # mask-based checks skip
    assert all("mask" in p["reason"] for p in parsed if p["kind"] == "SKIPPED")
    # without masks the held-out ablation test runs, as a claim against random unit groups (as draws)
    held_out = [p for p in parsed if p["kind"] == "CLAIM" and "on half the images" in p["sentence"]]
    assert held_out and held_out[0]["control"] == "random unit groups of that size", "the held-out ablation claim is missing"
    assert warnings_in_outputs(out) == []


# ---- notebook 03 on MURA-v1.1 ------------------------------------------------------------------------
def test_notebook_03_on_a_mura_fixture(tmp_path, monkeypatch):
    from test_mura import build_mura        # a tiny MURA-v1.1 tree: 3 + 2 studies, header-less CSVs
    root = build_mura(tmp_path / "mura")
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "1")
    out = run_notebook("03_cam_vs_gradcam_mura", tmp_path, data_root=str(root), image_size=64, epochs=1, batch_size=4)
    parsed = assert_checked_cells_speak(out, {"CLAIM", "IDENTITY", "SKIPPED"})
    kinds = [p["kind"] for p in parsed]
    assert "SKIPPED" in kinds and "IDENTITY" in kinds       # mask / marker checks skip, the identities run
    reasons = " ".join(p["reason"] for p in parsed if p["kind"] == "SKIPPED")
    assert "evidence masks" in reasons and "markers" in reasons
    assert "validation studies (< 10 per class)" in reasons  # 2 studies: no CI can be claimed
    assert all(p["holds"] == "True" for p in parsed if p["kind"] == "IDENTITY")
    assert warnings_in_outputs(out) == []


def test_image_reader_takes_read_only_arrays_without_warning():
    import warnings

    from medxai_lib.data.real.common import to_tensor
    array = np.asarray(Image.fromarray(np.full((6, 8, 3), 255, np.uint8)))   # PIL hands out read-only arrays
    assert not array.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = to_tensor(array, 4)
    assert tensor.shape == (3, 4, 4) and np.allclose(tensor.numpy(), 1.0)


# ---- notebook 04 on ISIC 2018 Task 1 -----------------------------------------------------------------
def test_notebook_04_on_an_isic2018_task1_fixture(tmp_path, monkeypatch):
    from test_isic_task1 import isic_task1_tree    # JPEG lesions with their _segmentation.png masks
    root = isic_task1_tree(tmp_path / "isic2018", n_images=8)
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "1")
    out = run_notebook("04_attribution_and_perturbation", tmp_path, data_root=str(root), image_size=64,
                       n_train_studies=40, n_val_studies=20, epochs=1, n_test_studies=90, per_kind=3,
                       n_sanity_images=6, rise_masks=16, lime_samples=10, n_boot=200, skin_lesions=8,
                       skin_train=40, skin_epochs=1)
    parsed = assert_checked_cells_speak(out, {"CLAIM", "SKIPPED"})
    radiograph = [p for p in parsed if p["kind"] == "SKIPPED" and "MURA" in p["reason"]]
    assert len(radiograph) >= 5, "the radiograph checks should print SKIPPED with the reason"
    lesion = [p for p in parsed if p["kind"] == "CLAIM" and "lesion mask" in p["sentence"]]
    assert len(lesion) == 2, "the energy and AUPRC lesion claims should be decided on the real masks"
    assert all(p["control"] in ("random", "centre prior", "Sobel edges", "the image (dark = high)") for p in lesion)
    cue = [p for p in parsed if "cue mask" in p["sentence"]]
    assert len(cue) == 1 and cue[0]["kind"] == "SKIPPED" and "not its malignancy cues" in cue[0]["reason"]
    assert warnings_in_outputs(out) == []


# ---- notebook 05 on IU X-ray (images + reports) -------------------------------------------------------
def test_notebook_05_on_an_iu_xray_fixture(tmp_path, monkeypatch):
    from test_iu_xray_images import iu_xray_tree           # NLMCXR_png/ PNGs beside ecgen-radiology/ XMLs
    root = iu_xray_tree(tmp_path / "iu_xray", n_reports=24)
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "1")
    out = run_notebook("05_mdnet_reports", tmp_path, data_root=str(root), image_size=32, n_train=16, n_test=8,
                       epochs=1, batch_size=8, n_seeds=1, meteor=False, workers=1)
    parsed = assert_checked_cells_speak(out, {"CLAIM", "IDENTITY", "SKIPPED"})
    sentences = [p["sentence"] for p in parsed]
    skips = {p["sentence"]: p["reason"] for p in parsed if p["kind"] == "SKIPPED"}
    assert len(skips) == 2 and all("real" in reason for reason in skips.values())   # the two mechanism tests: phantom only
    assert any("attribute regions" in reason for reason in skips.values())
    assert any("per-block contributions" in s for s in sentences)                # the identity, on real X-rays
    assert any("template of the true class" in s for s in sentences)             # the report baseline claim
    assert any("above the majority class" in s for s in sentences)               # the diagnosis claim
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "16 training / 8 test images, 1 report(s) each" in text and "'normal'" in text and "'abnormal'" in text
    assert "not measured here" in text                                           # attention and retrieval: phantom only
    assert warnings_in_outputs(out) == []
