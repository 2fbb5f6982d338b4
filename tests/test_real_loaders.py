"""Real-data loaders on tiny fixture trees built in the distributed layouts (no committed binaries)."""
import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from medxai_lib.data import DRIVE, HAM10000, HAM_CLASSES, STARE, ISIC2018Task3, KaggleDR, MedMNIST, group_split

RNG = np.random.default_rng(0)


def _rgb(path, w=40, h=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _grey(path, w=40, h=30, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray((RNG.random((h, w)) > 0.7).astype(np.uint8) * 255)
    if gz:
        raw = path.with_suffix("")  # write the plain file, then gzip it
        img.save(raw, format="PPM") if raw.suffix == ".ppm" else img.save(raw)
        path.write_bytes(gzip.compress(raw.read_bytes()))
        raw.unlink()
    else:
        img.save(path)


# ---- HAM10000 / ISIC 2018 -------------------------------------------------------------------------
@pytest.fixture
def ham_root(tmp_path):
    rows = [("HAM_0000001", "ISIC_0000001", "mel", 1), ("HAM_0000001", "ISIC_0000002", "mel", 2),
            ("HAM_0000002", "ISIC_0000003", "nv", 1), ("HAM_0000003", "ISIC_0000004", "bkl", 2)]
    lines = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for lesion, image, dx, part in rows:
        _rgb(tmp_path / f"HAM10000_images_part_{part}" / f"{image}.jpg")
        lines.append(f"{lesion},{image},{dx},histo,55.0,male,back")
    (tmp_path / "HAM10000_metadata.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_ham10000_reads_both_folders_and_keeps_lesion_ids(ham_root):
    ds = HAM10000(ham_root, size=32)
    assert len(ds) == 4 and ds[0]["image"].shape == (3, 32, 32)
    assert ds.labels.tolist() == [HAM_CLASSES.index(d) for d in ("mel", "mel", "nv", "bkl")]
    train, test = group_split(ds.lesion_ids, (0.5, 0.5), seed=0)
    assert not {ds.lesion_ids[i] for i in train} & {ds.lesion_ids[i] for i in test}
    assert len(train) + len(test) == 4


def test_ham10000_errors_name_the_row_or_file(ham_root):
    (ham_root / "HAM10000_images_part_2" / "ISIC_0000004.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="line 5: no image ISIC_0000004.jpg"):
        HAM10000(ham_root)
    _rgb(ham_root / "HAM10000_images_part_2" / "ISIC_0000004.jpg")
    (ham_root / "HAM10000_images_part_1" / "ISIC_0000003.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="ISIC_0000003.jpg"):
        HAM10000(ham_root)[2]
    csv = ham_root / "HAM10000_metadata.csv"
    csv.write_text(csv.read_text().replace(",nv,", ",naevus,"))
    with pytest.raises(ValueError, match="unknown dx 'naevus'"):
        HAM10000(ham_root)
    csv.write_text("lesion_id,image\nx,y\n")
    with pytest.raises(ValueError, match="missing columns"):
        HAM10000(ham_root)


def test_isic2018_one_hot(tmp_path):
    folder = tmp_path / "ISIC2018_Task3_Training_Input"
    for name in ("ISIC_1", "ISIC_2"):
        _rgb(folder / f"{name}.jpg")
    csv = tmp_path / "ISIC2018_Task3_Training_GroundTruth.csv"
    csv.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,0.0,1.0,0.0,0.0,0.0,0.0,0.0\n"
                   "ISIC_2,0.0,0.0,0.0,0.0,0.0,0.0,1.0\n")
    ds = ISIC2018Task3(tmp_path, size=16)
    assert ds.labels.tolist() == [HAM_CLASSES.index("nv"), HAM_CLASSES.index("vasc")]
    csv.write_text(csv.read_text() + "ISIC_3,1.0,0.0,0.0,0.0,0.0,0.0,0.0\n")
    with pytest.raises(FileNotFoundError, match="line 4: missing image"):
        ISIC2018Task3(tmp_path)
    csv.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,1.0,1.0,0.0,0.0,0.0,0.0,0.0\n")
    with pytest.raises(ValueError, match="line 2: expected a one-hot row"):
        ISIC2018Task3(tmp_path)


# ---- DRIVE / STARE / Kaggle DR ---------------------------------------------------------------------
@pytest.fixture
def drive_root(tmp_path):
    for split, numbers in (("training", (21, 22)), ("test", (1,))):
        for n in numbers:
            _rgb(tmp_path / split / "images" / f"{n:02d}_{split}.tif", 60, 50)
            _grey(tmp_path / split / "1st_manual" / f"{n:02d}_manual1.gif", 60, 50)
            _grey(tmp_path / split / "mask" / f"{n:02d}_{split}_mask.gif", 60, 50)
            if split == "test":
                _grey(tmp_path / split / "2nd_manual" / f"{n:02d}_manual2.gif", 60, 50)
    return tmp_path


def test_drive(drive_root):
    ds = DRIVE(drive_root, "training", size=32)
    item = ds[0]
    assert len(ds) == 2 and item["image"].shape == (3, 32, 32)
    assert set(item["vessels"].unique().tolist()) <= {0.0, 1.0} and item["fov"].shape == (1, 32, 32)
    assert len(DRIVE(drive_root, "test", observer=2)) == 1
    (drive_root / "training" / "mask" / "22_training_mask.gif").unlink()
    with pytest.raises(FileNotFoundError, match="22_training_mask.gif"):
        DRIVE(drive_root, "training")
    with pytest.raises(ValueError, match="observer"):
        DRIVE(drive_root, "training", observer=2)
    _grey(drive_root / "test" / "mask" / "01_test_mask.gif", 30, 30)
    with pytest.raises(ValueError, match="size differs"):
        DRIVE(drive_root, "test")[0]


def test_stare_plain_and_gzipped(tmp_path):
    Image.fromarray(RNG.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "im0001.ppm")
    raw = tmp_path / "im0002.ppm"
    Image.fromarray(RNG.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(raw)
    (tmp_path / "im0002.ppm.gz").write_bytes(gzip.compress(raw.read_bytes()))
    raw.unlink()
    for stem in ("im0001", "im0002"):
        _grey(tmp_path / "labels-ah" / f"{stem}.ah.ppm", 40, 30)
    _grey(tmp_path / "labels-vk" / "im0001.vk.ppm.gz", 40, 30, gz=True)
    ds = STARE(tmp_path, "ah", size=24)
    assert len(ds) == 2 and ds[1]["vessels"].shape == (1, 24, 24)
    with pytest.raises(FileNotFoundError, match="im0002.vk.ppm"):
        STARE(tmp_path, "vk")
    (tmp_path / "im0001.ppm").write_bytes(b"P6 broken")
    with pytest.raises(ValueError, match="im0001.ppm"):
        ds[0]


def test_kaggle_dr(tmp_path):
    for name in ("10_left", "10_right", "13_left"):
        _rgb(tmp_path / "train" / f"{name}.jpeg")
    (tmp_path / "trainLabels.csv").write_text("image,level\n10_left,0\n10_right,2\n13_left,4\n")
    ds = KaggleDR(tmp_path, size=16)
    assert ds.labels.tolist() == [0, 2, 4] and ds.patient_ids == ["10", "10", "13"]
    assert ds[1]["meta"]["eye"] == "right"
    (tmp_path / "trainLabels.csv").write_text("image,level\n10_left,0\n99_left,1\n")
    with pytest.raises(FileNotFoundError, match="line 3: missing image"):
        KaggleDR(tmp_path)
    (tmp_path / "trainLabels.csv").write_text("image,level\n10_left,7\n")
    with pytest.raises(ValueError, match="level must be 0-4"):
        KaggleDR(tmp_path)


# ---- MedMNIST ---------------------------------------------------------------------------------------
def test_medmnist_any_set_any_size(tmp_path):
    path = tmp_path / "dermamnist_64.npz"
    np.savez(path, train_images=RNG.integers(0, 255, (5, 64, 64, 3), dtype=np.uint8),
             train_labels=np.arange(5)[:, None], val_images=RNG.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8),
             val_labels=np.zeros((2, 1)), test_images=RNG.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8),
             test_labels=np.zeros((2, 1)))
    ds = MedMNIST(path, "train")
    assert len(ds) == 5 and ds[0]["image"].shape == (3, 64, 64) and ds.labels.tolist() == [0, 1, 2, 3, 4]
    grey = tmp_path / "pneumoniamnist.npz"
    np.savez(grey, train_images=RNG.integers(0, 255, (3, 28, 28), dtype=np.uint8), train_labels=np.ones((3, 1)))
    assert MedMNIST(grey)[0]["image"].shape == (1, 28, 28)
    with pytest.raises(ValueError, match="missing arrays"):
        MedMNIST(grey, "test")
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_images=RNG.integers(0, 255, (3, 28, 28), dtype=np.uint8), train_labels=np.ones((2, 1)))
    with pytest.raises(ValueError, match="3 train_images but 2 train_labels"):
        MedMNIST(bad)
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt.npz"):
        MedMNIST(tmp_path / "corrupt.npz")
    with pytest.raises(FileNotFoundError, match="missing MedMNIST file"):
        MedMNIST(tmp_path / "nothing.npz")


def test_group_split_never_shares_a_group():
    groups = [f"p{i // 3}" for i in range(60)]
    parts = group_split(groups, (0.6, 0.2, 0.2), seed=1)
    seen = [{groups[i] for i in p} for p in parts]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sum(len(p) for p in parts) == 60 and abs(len(parts[0]) - 36) <= 3
    with pytest.raises(ValueError, match="fractions"):
        group_split(groups, (0.5, 0.6))
