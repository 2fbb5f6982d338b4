"""Facts the phantom generators guarantee, moved out of notebook 00's checked cell (they are not findings).

Already covered elsewhere, not repeated here: radiograph/skin/fundus determinism and evidence only in
abnormal radiographs (test_phantom_radiograph.py), every fundus grade following ``dr_grade`` and hair's
AUROC window (test_phantoms_quality.py), the real retina's vessel share (test_samples.py). This file holds
what those do not: histology determinism, the laterality marker never entering the evidence at the
correlation notebook 00 shows, and hair entering neither the label nor any other concept.
"""
import numpy as np
import torch

from medxai_lib.data import CONCEPTS, HistologyPhantom, RadiographPhantom, SkinLesionPhantom


def test_histology_same_seed_same_pixels_masks_and_reports():
    a, b, c = (HistologyPhantom(4, size=48, seed=s) for s in (3, 3, 4))
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["attribute_masks"], y["attribute_masks"])
        assert x["reports"] == y["reports"] and int(x["label"]) == int(y["label"])
    assert not any(torch.equal(a[i]["image"], c[i]["image"]) for i in range(len(a)))


def test_laterality_marker_is_never_evidence():
    ds = RadiographPhantom(60, size=96, seed=2, marker_correlation=0.5)
    twin = ds.counterfactual(marker=False)
    with_marker = {0: 0, 1: 0}
    for i in range(len(ds)):
        item, clean = ds[i], twin[i]
        label = int(item["label"])
        assert torch.equal(item["mask"], clean["mask"])                       # the marker changes no evidence mask
        assert not ((item["mask"] > 0) & (item["confounder_mask"] > 0)).any()  # and never overlaps it
        assert (item["mask"].sum() > 0) == (label == 1)
        with_marker[label] += int(item["confounder_mask"].sum() > 0)
    assert with_marker[0] > 0 and with_marker[1] > with_marker[0]            # in both classes, more often if abnormal


def test_hair_enters_neither_the_label_nor_any_other_concept():
    ds = SkinLesionPhantom(30, size=64, seed=1, normalize=False)
    hairless = ds.counterfactual(n_hairs=0)
    hair = CONCEPTS.index("hair")
    others = [k for k in range(len(CONCEPTS)) if k != hair]
    changed = 0
    for i in range(len(ds)):
        item, twin = ds[i], hairless[i]
        assert int(item["label"]) == int(twin["label"])
        assert torch.equal(item["concepts"][others], twin["concepts"][others])
        under_hair = item["concepts"][hair] > 0
        diff = (item["image"] - twin["image"]).abs().amax(0)
        assert diff[~under_hair].max() == 0                       # pixels change only under the hair mask
        changed += int(under_hair.any() and diff[under_hair].mean() > 0.05)
    assert changed >= 0.5 * sum(s.n_hairs > 0 for s in ds.specs)   # and hair is visible where drawn
    assert np.isin(ds.labels, (0, 1)).all()
