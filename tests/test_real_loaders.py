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
def _drive(root):
    for split, numbers in (("training", (21, 22)), ("test", (1,))):
        for n in numbers:
            _rgb(root / split / "images" / f"{n:02d}_{split}.tif", 60, 50)
            _grey(root / split / "1st_manual" / f"{n:02d}_manual1.gif", 60, 50)
            _grey(root / split / "mask" / f"{n:02d}_{split}_mask.gif", 60, 50)
            if split == "test":
                _grey(root / split / "2nd_manual" / f"{n:02d}_manual2.gif", 60, 50)
    return root


@pytest.fixture
def drive_root(tmp_path):
    return _drive(tmp_path)


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


# ---- notebook 06's real setting: FundusItems, estimated_fov, kaggle_dr_splits ----------------------------
def _kaggle(root, n_patients=12):
    for p in range(n_patients):
        for k, eye in enumerate(("left", "right")):
            pixels = np.zeros((30, 40, 3), np.uint8)
            pixels[5:25, 8:32] = (180, 80, 40)          # a bright field of view on black
            Image.fromarray(pixels).save(_path(root / "train" / f"{p}_{eye}.jpeg"))
    (root / "trainLabels.csv").write_text("image,level\n" + "".join(f"{p}_{eye},{(p + k) % 5}\n" for p in range(n_patients)
                                                                   for k, eye in enumerate(("left", "right"))))
    return root


def _path(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_estimated_fov_keeps_the_bright_disc_and_checks_its_input():
    from medxai_lib.data import estimated_fov
    image = torch.zeros(3, 10, 10)
    image[:, 2:8, 3:7] = 0.6
    image[:, 0, 0] = 0.05                              # sensor noise in the black surround stays outside
    fov = estimated_fov(image)
    assert fov.shape == (1, 10, 10) and fov.sum() == 24 and fov[0, 0, 0] == 0
    with pytest.raises(ValueError, match="image"):
        estimated_fov(torch.zeros(10, 10))


def test_estimated_disc_finds_the_phantom_disc_and_checks_its_input():
    from medxai_lib.data import FundusPhantom, estimated_disc
    eyes = FundusPhantom(40, size=96, seed=5, normalize=False, cache=False)
    iou = []
    for item in eyes:
        found, true = estimated_disc(item["image"], item["fov"]), item["disc"]
        assert found.shape == (1, 96, 96) and (found <= item["fov"]).all()
        iou.append(float((found * true).sum() / ((found + true) > 0).sum()))
    assert min(iou) > 0.4 and np.mean(iou) > 0.6                       # measured: min 0.48, mean 0.68 over 200 eyes
    image, fov = torch.full((3, 20, 20), 0.3), torch.zeros(1, 20, 20)
    fov[:, 2:18, 2:18] = 1
    image[:, 12:15, 4:7] = 0.9                                          # the brightest spot is the disc
    disc = estimated_disc(image, fov, radius=0.1)
    ys, xs = torch.nonzero(disc[0], as_tuple=True)
    assert abs(ys.float().mean() - 13) <= 1 and abs(xs.float().mean() - 5) <= 1
    narrow = torch.zeros(1, 20, 20)
    narrow[:, 9:11, 2:18] = 1                                           # narrower than the disc: searched whole
    assert (estimated_disc(image, narrow, radius=0.1) <= narrow).all()
    with pytest.raises(ValueError, match="empty field of view"):
        estimated_disc(image, torch.zeros(1, 20, 20))
    with pytest.raises(ValueError, match="fov"):
        estimated_disc(image, torch.ones(1, 10, 10))
    with pytest.raises(ValueError, match="radius"):
        estimated_disc(image, fov, radius=0.7)
    with pytest.raises(ValueError, match="image"):
        estimated_disc(torch.zeros(20, 20), fov)


def test_fundus_items_give_the_phantom_format(tmp_path, drive_root):
    from medxai_lib.data import FundusItems
    raw = FundusItems(DRIVE(drive_root, "training", size=16), normalize=False)
    item = raw[1]
    assert len(raw) == 2 and 0 <= item["image"].min() and item["image"].max() <= 1
    assert set(item) == {"image", "fov", "vessels", "disc", "meta"}    # DRIVE's own FOV mask and vessels, no lesions
    assert item["disc"].shape == (1, 16, 16) and 0 < item["disc"].sum() and (item["disc"] <= item["fov"]).all()
    assert raw[-1] is raw[1]                                           # decoded once, then kept
    kaggle = FundusItems(KaggleDR(_kaggle(tmp_path / "kaggle"), size=16), [3, 0])
    assert kaggle.labels.tolist() == [(1 + 1) % 5, 0] and kaggle.patient_ids == ["1", "0"]
    it = kaggle[0]
    assert it["image"].min() < 0 and "label" in it and it["fov"].sum() > 0        # normalised; FOV estimated
    with pytest.raises(IndexError):
        kaggle[2]
    with pytest.raises(ValueError, match="indices"):
        FundusItems(KaggleDR(tmp_path / "kaggle", size=16), [99])
    with pytest.raises(AttributeError, match="labels"):
        raw.labels


def test_kaggle_dr_splits_keep_patients_whole_and_sources_diseased(tmp_path):
    from medxai_lib.data import kaggle_dr_splits
    root = _kaggle(tmp_path)
    train, val, source = kaggle_dr_splits(root, size=16, n_train=8, n_val=6, n_source=5, seed=3)
    parts = [set(p.patient_ids) for p in (train, val, source)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(train) == 8 and len(val) == 6 and 0 < len(source) <= 5
    assert set(source.labels.tolist()) <= {2, 3} and source[0]["image"].min() >= 0      # raw [0, 1] sources
    again = kaggle_dr_splits(root, size=16, n_train=8, n_val=6, n_source=5, seed=3)
    assert again[0].indices.tolist() == train.indices.tolist()                          # deterministic by seed
    assert kaggle_dr_splits(root, size=16, n_train=8, n_val=6, seed=3)[2] is None
    with pytest.raises(ValueError, match="n_val"):
        kaggle_dr_splits(root, n_val=0)
    with pytest.raises(ValueError, match="too few"):
        kaggle_dr_splits(root, size=16, n_train=30, n_val=6)


def test_fundus_sets_on_a_real_root_and_the_detector_recipe_on_kaggle_dr(tmp_path, monkeypatch):
    from medxai_lib.data import fundus_sets
    from medxai_lib.train.recipes import TrainedDetector, dr_detector
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "retina"
    _kaggle(root / "KaggleDR")
    _drive(root / "DRIVE")
    sets = fundus_sets(root, size=16, n_source=3, n_test=5, n_detector_train=8, n_detector_val=6)
    assert sets.real and len(sets.healthy) == 2 and len(sets.test) == 1 and len(sets.source) <= 3
    assert "vessels" in sets.healthy[0] and sets.healthy[0]["image"].max() <= 1
    detector = dr_detector(seed=0, image_size=32, n_train=8, n_val=6, epochs=1, data_root=root)
    assert len(detector.train) == 8 and not (set(detector.train.patient_ids) & set(detector.val.patient_ids))
    other = TrainedDetector(None, *kaggle_splits_of(root, 9), None)
    with pytest.raises(ValueError, match="data"):
        dr_detector(seed=0, image_size=32, n_train=8, n_val=6, epochs=1, arch="bn_cnn", data=other, data_root=root)
    from medxai_lib.data import FundusPhantom
    phantom = TrainedDetector(None, FundusPhantom(3, size=32, seed=9), FundusPhantom(2, size=32, seed=1009), None)
    with pytest.raises(ValueError, match="data"):              # a phantom-trained detector's data on a real root
        dr_detector(seed=0, image_size=32, n_train=8, n_val=6, epochs=1, arch="bn_cnn", data=phantom, data_root=root)
    with pytest.raises(ValueError, match="no grade 2-3 eye outside"):
        fundus_sets(root, size=16, n_detector_train=22, n_detector_val=2)


def kaggle_splits_of(root, seed):
    from medxai_lib.data import kaggle_dr_splits
    return kaggle_dr_splits(root / "KaggleDR", size=32, n_train=8, n_val=6, seed=seed)[:2]
