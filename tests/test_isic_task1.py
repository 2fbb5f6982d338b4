"""ISIC 2018 Task 1 loader on fixture trees in the distributed layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medxai_lib.data import ISIC2018Task1
from medxai_lib.data.real.skin import ISIC_TASK1_INPUT, ISIC_TASK1_MASKS


def isic_task1_tree(root: Path, n_images: int = 6, seed: int = 0, size: tuple[int, int] = (40, 30)) -> Path:
    """ISIC 2018 Task 1's layout: JPEG images (a dark elliptical lesion on lighter skin) and their
    ``_segmentation.png`` masks (255 on the lesion), plus the licence files the input folder ships with."""
    rng = np.random.default_rng(seed)
    (root / ISIC_TASK1_INPUT).mkdir(parents=True, exist_ok=True)
    (root / ISIC_TASK1_MASKS).mkdir(parents=True, exist_ok=True)
    (root / ISIC_TASK1_INPUT / "LICENSE.txt").write_text("CC-BY-NC\n")
    (root / ISIC_TASK1_INPUT / "ATTRIBUTION.txt").write_text("ISIC Archive\n")
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    for k in range(n_images):
        cx, cy = w / 2 + rng.uniform(-4, 4), h / 2 + rng.uniform(-3, 3)
        lesion = ((xx - cx) / (w / 4)) ** 2 + ((yy - cy) / (h / 4)) ** 2 < 1
        pixels = np.clip(rng.normal(190, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        pixels[lesion] = (pixels[lesion] * 0.4).astype(np.uint8)
        image_id = f"ISIC_{1000 + k:07d}"
        Image.fromarray(pixels).save(root / ISIC_TASK1_INPUT / f"{image_id}.jpg")
        Image.fromarray((lesion * 255).astype(np.uint8)).save(root / ISIC_TASK1_MASKS / f"{image_id}_segmentation.png")
    return root


def test_items_are_images_with_their_lesion_masks(tmp_path):
    ds = ISIC2018Task1(isic_task1_tree(tmp_path), size=32)
    assert len(ds) == 6 and ds.has_masks
    assert ds.image_ids == sorted(ds.image_ids) and ds.image_ids[0] == "ISIC_0001000"
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert set(torch.unique(item["mask"]).tolist()) == {0.0, 1.0}
    # the mask marks the dark lesion: the image is darker inside it than outside
    grey = item["image"].mean(0)
    inside = item["mask"][0] > 0
    assert grey[inside].mean() < grey[~inside].mean() - 0.5
    assert 0.05 < item["mask"].mean() < 0.5


def test_limit_keeps_the_first_images(tmp_path):
    ds = ISIC2018Task1(isic_task1_tree(tmp_path), size=16, limit=2)
    assert ds.image_ids == ["ISIC_0001000", "ISIC_0001001"]


def test_an_image_without_its_mask_is_an_error_naming_both(tmp_path):
    root = isic_task1_tree(tmp_path)
    (root / ISIC_TASK1_MASKS / "ISIC_0001003_segmentation.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"ISIC_0001003\.jpg has no mask .*ISIC_0001003_segmentation\.png"):
        ISIC2018Task1(root)


def test_a_mask_of_another_size_is_refused_when_read(tmp_path):
    root = isic_task1_tree(tmp_path)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / ISIC_TASK1_MASKS / "ISIC_0001002_segmentation.png")
    ds = ISIC2018Task1(root, size=16)
    with pytest.raises(ValueError, match="ISIC_0001002_segmentation.png is 5 x 5 px"):
        ds[2]


def test_a_missing_folder_or_an_empty_input_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=ISIC_TASK1_INPUT):
        ISIC2018Task1(tmp_path)
    (tmp_path / ISIC_TASK1_INPUT).mkdir()
    (tmp_path / ISIC_TASK1_MASKS).mkdir()
    (tmp_path / ISIC_TASK1_INPUT / "LICENSE.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no ISIC_xxxxxxx.jpg"):
        ISIC2018Task1(tmp_path)


def test_bad_limit_and_index(tmp_path):
    root = isic_task1_tree(tmp_path)
    with pytest.raises(ValueError, match="limit"):
        ISIC2018Task1(root, limit=0)
    with pytest.raises(IndexError, match="index"):
        ISIC2018Task1(root, size=16)[6]


def test_files_not_named_like_an_isic_id_are_ignored(tmp_path):
    """Ids come from the input folder's listing and must match ISIC_xxxxxxx: any other name (here one
    starting with ``..``) is not an id, so no path outside the two folders is built from it."""
    root = isic_task1_tree(tmp_path / "isic", n_images=2)
    (root / ISIC_TASK1_INPUT / "..ISIC_0000001.jpg").write_bytes(b"not an image")
    assert ISIC2018Task1(root, size=16).image_ids == ["ISIC_0001000", "ISIC_0001001"]
