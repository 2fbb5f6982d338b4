from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medxai_lib.data import MuraDataset, first_studies, radiograph_splits

STUDIES = {  # split -> (relative study dir, label, image sizes (w, h))
    "train": [("XR_WRIST/patient00001/study1_positive", 1, [(40, 60), (50, 30)]),
              ("XR_WRIST/patient00002/study1_negative", 0, [(64, 64)]),
              ("XR_ELBOW/patient00003/study1_negative", 0, [(30, 50), (30, 50), (20, 40)])],
    "valid": [("XR_HAND/patient11185/study1_positive", 1, [(48, 32)]),
              ("XR_HAND/patient11186/study2_negative", 0, [(32, 48), (32, 32)])],
}


def build_mura(root: Path) -> Path:
    """A tiny MURA-v1.1 tree in the distributed layout (header-less CSVs, study folders)."""
    base = root / "MURA-v1.1"
    rng = np.random.default_rng(0)
    for split, studies in STUDIES.items():
        paths, labelled = [], []
        for rel, label, sizes in studies:
            folder = base / split / rel
            folder.mkdir(parents=True)
            for k, (w, h) in enumerate(sizes, 1):
                Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(folder / f"image{k}.png")
                paths.append(f"MURA-v1.1/{split}/{rel}/image{k}.png")
            labelled.append(f"MURA-v1.1/{split}/{rel}/,{label}")
        (base / f"{split}_image_paths.csv").write_text("\n".join(paths) + "\n")
        (base / f"{split}_labeled_studies.csv").write_text("\n".join(labelled) + "\n")
    return root


@pytest.fixture
def mura_root(tmp_path):
    return build_mura(tmp_path)


def test_reads_layout_and_images_inherit_study_labels(mura_root):
    ds = MuraDataset(mura_root, "train", size=32, channels=3)
    assert len(ds) == 6
    assert ds.labels.tolist() == [1, 1, 0, 0, 0, 0]
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and "mask" not in item
    assert item["meta"] == {"body_part": "WRIST", "patient": "patient00001", "study": "study1_positive", "view": 1}
    assert len(set(ds.study_ids)) == 3
    # the dataset folder itself is accepted as root too
    assert len(MuraDataset(mura_root / "MURA-v1.1", "valid", size=16, channels=1)) == 3


def test_baseline_transform_pads_to_square_then_normalises(mura_root):
    ds = MuraDataset(mura_root, "train", size=60, channels=1)
    raw = ds.load_grey(0)  # 60 high, 40 wide -> padded by 10 columns on each side
    assert raw.shape == (1, 60, 40)
    out = ds[0]["image"]
    expected_centre = (raw[0, :, 0] - 0.449) / 0.226
    assert torch.allclose(out[0, :, 10], expected_centre, atol=1e-5)
    assert torch.allclose(out[0, :, 9], (raw[0, :, 1] - 0.449) / 0.226, atol=1e-5)  # reflected column


def test_body_part_filter(mura_root):
    ds = MuraDataset(mura_root, "train", size=16, body_parts=("ELBOW",))
    assert len(ds) == 3 and {r["body_part"] for r in ds.records} == {"ELBOW"}


def test_missing_image_is_named(mura_root):
    victim = mura_root / "MURA-v1.1/train/XR_ELBOW/patient00003/study1_negative/image2.png"
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="image2.png"):
        MuraDataset(mura_root, "train")


def test_corrupt_image_is_named(mura_root):
    victim = mura_root / "MURA-v1.1/valid/XR_HAND/patient11185/study1_positive/image1.png"
    victim.write_bytes(b"not a png at all")
    ds = MuraDataset(mura_root, "valid", size=16)
    with pytest.raises(ValueError, match="patient11185/study1_positive/image1.png"):
        ds[0]


def test_csv_row_pointing_nowhere_is_named(mura_root):
    csv = mura_root / "MURA-v1.1/valid_labeled_studies.csv"
    csv.write_text(csv.read_text() + "MURA-v1.1/valid/XR_HAND/patient99999/study1_positive/,1\n")
    with pytest.raises(FileNotFoundError, match="patient99999"):
        MuraDataset(mura_root, "valid")


def test_image_without_study_and_bad_rows(mura_root):
    csv = mura_root / "MURA-v1.1/train_labeled_studies.csv"
    rows = csv.read_text().splitlines()
    csv.write_text("\n".join(rows[1:]) + "\n")  # drop the first study's label
    with pytest.raises(ValueError, match="belongs to no study"):
        MuraDataset(mura_root, "train")
    csv.write_text("\n".join(rows[:1] + ["MURA-v1.1/train/XR_WRIST/patient00002/study1_negative/,maybe"]) + "\n")
    with pytest.raises(ValueError, match="label 0/1"):
        MuraDataset(mura_root, "train")


def test_bad_root_and_split(tmp_path, mura_root):
    with pytest.raises(FileNotFoundError, match="MURA-v1.1"):
        MuraDataset(tmp_path / "nothing")
    with pytest.raises(ValueError, match="split"):
        MuraDataset(mura_root, "test")


def test_radiograph_splits_use_mura_when_root_given(mura_root, monkeypatch):
    train, val = radiograph_splits(mura_root, size=16, channels=1)
    assert isinstance(train, MuraDataset) and len(val) == 3
    monkeypatch.setenv("MEDXAI_DATA", str(mura_root))
    train, _ = radiograph_splits(None, size=16, channels=1, max_images=2)
    assert len(train) == 3 and len(set(train.study_ids)) == 1  # one whole study kept (largest stratum first)
    monkeypatch.delenv("MEDXAI_DATA")
    train, _ = radiograph_splits(None, size=32, n_train_studies=4, n_val_studies=2)
    assert train.has_masks
    with pytest.raises(FileNotFoundError, match="data_root"):
        radiograph_splits("/no/such/folder")
