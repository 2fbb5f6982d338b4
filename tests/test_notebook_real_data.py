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
    # the five readability probes, the two mechanism tests and the three comparisons of MDNet's reports with the
    # model seeds in the interval: phantom only (they need its attribute grades and regions)
    assert len(skips) == 10 and all("real" in reason for reason in skips.values())
    assert sum("attribute probe" in s for s in skips) == 5
    assert any("attribute regions" in reason for reason in skips.values())
    assert any("attribute grades" in reason for reason in skips.values())          # attributes and retrieval need grades
    assert any("per-block contributions" in s for s in sentences)                # the identity, on real X-rays
    assert any("template of the true class" in s for s in sentences)             # the report baseline claim
    assert any("above the majority class" in s for s in sentences)               # the diagnosis claim
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "16 training / 8 test images, 1 report(s) each" in text and "'normal'" in text and "'abnormal'" in text
    assert "not measured here" in text                                           # attention and retrieval: phantom only
    assert warnings_in_outputs(out) == []


# ---- notebook 06 on DRIVE + Kaggle DR (the paper's setting) -------------------------------------------
def _fundus_photo(rng: np.random.Generator, size: tuple[int, int], spots: int) -> np.ndarray:
    """An orange disc on black with a few dark vessels and ``spots`` bright yellow lesions (uint8 RGB)."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    inside = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.45 * min(h, w)) ** 2
    image = np.zeros((h, w, 3), np.uint8)
    image[inside] = (170, 70, 30)
    for row in rng.integers(h // 4, 3 * h // 4, 3):
        image[row, w // 5:4 * w // 5] = (90, 20, 10)
    for _ in range(spots):
        y, x = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 3, 2 * w // 3)
        image[y - 1:y + 2, x - 1:x + 2] = (250, 230, 90)
    return image


def koch_tree(root: Path, n_patients: int = 30, n_drive: int = 6, seed: int = 0) -> Path:
    """``DRIVE/`` (training and test splits: TIFF images, GIF vessel maps and FOV masks, 2nd_manual for test) and
    ``KaggleDR/`` (trainLabels.csv, train/<patient>_<eye>.jpeg; grades cycle 0-4, lesions grow with the grade)
    side by side, as distributed."""
    rng = np.random.default_rng(seed)
    for split, first in (("training", 21), ("test", 1)):
        for n in range(first, first + n_drive):
            base = root / "DRIVE" / split
            photo = _fundus_photo(rng, (60, 56), 0)
            vessels = (photo[..., 0] == 90).astype(np.uint8) * 255
            fov = (photo[..., 0] > 0).astype(np.uint8) * 255
            for folder, name, pixels in (("images", f"{n:02d}_{split}.tif", photo), ("1st_manual", f"{n:02d}_manual1.gif", vessels),
                                         ("mask", f"{n:02d}_{split}_mask.gif", fov)) + ((("2nd_manual", f"{n:02d}_manual2.gif", vessels),)
                                                                                        if split == "test" else ()):
                (base / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(base / folder / name)
    kaggle = root / "KaggleDR"
    (kaggle / "train").mkdir(parents=True)
    lines = ["image,level"]
    for patient in range(n_patients):
        for k, eye in enumerate(("left", "right")):
            grade = (patient + k) % 5
            Image.fromarray(_fundus_photo(rng, (48, 64), 2 * grade)).save(kaggle / "train" / f"{10 + patient}_{eye}.jpeg")
            lines.append(f"{10 + patient}_{eye},{grade}")
    (kaggle / "trainLabels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_notebook_06_on_drive_and_kaggle_dr_fixtures(tmp_path, monkeypatch):
    root = koch_tree(tmp_path / "retina")
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "1")
    out = run_notebook("06_koch_descriptors_gan", tmp_path, data_root=str(root), image_size=64, n_detector_train=24,
                       n_detector_val=12, detector_epochs=1, independent_epochs=1, n_activation=4, n_source=4,
                       n_healthy=6, n_test=6, n_realism=6, gan_steps=2, gan_width=8, gan_batch=2, max_copies=2)
    parsed = assert_checked_cells_speak(out, {"CLAIM", "SKIPPED"})
    claims = [p["sentence"] for p in parsed if p["kind"] == "CLAIM"]
    skips = {p["sentence"]: p["reason"] for p in parsed if p["kind"] == "SKIPPED"}
    assert any("absolute grade error" in s for s in claims)                      # the detector, on Kaggle DR grades
    assert any("restoring the target boxes" in s for s in claims)                # the independent regressor, on DRIVE syntheses
    assert any("puts its change inside the target boxes" in s for s in claims)   # anatomy
    restoring = next(p for p in parsed if p["kind"] == "CLAIM" and "restoring the target boxes" in p["sentence"])
    assert restoring["control"] == "the same boxes placed elsewhere"             # no 'none' descriptors without lesion kinds
    masks = [s for s, reason in skips.items() if "not lesion masks" in reason]
    assert len(masks) >= 10 and any("descriptor regions overlap" in s for s in masks) and any("grade weighting" in s for s in masks)
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "Kaggle DR + DRIVE under" in text and "from 4 diseased fundi" in text
    assert warnings_in_outputs(out) == []


def test_koch_data_root_without_both_folders_names_the_missing_one(tmp_path):
    from medxai_lib.data import koch_folders
    (tmp_path / "DRIVE").mkdir()
    with pytest.raises(FileNotFoundError, match="KaggleDR/"):
        koch_folders(tmp_path)
    assert koch_folders(None) is None
