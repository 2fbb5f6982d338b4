"""Per-image shortcut readings: the causal drop is 0 without a marker; CAM contributions add up to the logit."""
import numpy as np
import pytest
import torch

from helpers import textured_densenet
from medxai_lib.data import RadiographPhantom
from medxai_lib.evaluate.studies.blocks import UNIT_KEYS, auroc_columns, seed_columns, shortcut_report, shortcut_units
from medxai_lib.explain import cam, cam_contribution


@pytest.fixture(scope="module")
def setting():
    test = RadiographPhantom(8, size=64, seed=5, marker_correlation=0.0)
    return textured_densenet(1), test, test.counterfactual(marker=False)


def test_units_shapes_and_the_causal_drop(setting):
    net, test, clean = setting
    units = shortcut_units(net, test, clean, tolerance=2, device="cpu")
    assert set(units) == set(UNIT_KEYS) and all(len(v) == len(test) for v in units.values())
    has = units["has_marker"]
    assert 0 < has.sum() < len(test)
    assert np.all(units["logit_drop"][~has] == 0)                 # nothing erased, nothing changes
    assert np.any(units["logit_drop"][has] != 0)
    assert np.isnan(units["lesion_pointing"][units["label"] == 0]).all()
    report = shortcut_report(units)
    assert report["logit_drop_when_removed"] == pytest.approx(units["logit_drop"][has].mean())


def test_contributions_are_cam_read_offs_that_sum_to_the_logit(setting):
    net, test, clean = setting
    (images,) = test.tensors("image")
    maps = cam(net, images)
    units = shortcut_units(net, test, clean, device="cpu", maps=maps)
    whole = cam_contribution(maps, torch.ones(len(test), 1, 64, 64))[:, 0]
    with torch.no_grad():
        logits = net(images)[:, 0] - net.classifier.bias[0]
    assert torch.allclose(whole, logits, atol=1e-4)
    # the mirror region is the marker box flipped left-right: zero for images without a marker
    assert np.all(units["mirror_contribution"][~units["has_marker"]] == 0)


def test_bad_inputs(setting):
    net, test, clean = setting
    with pytest.raises(ValueError, match="test_without_confounder"):
        shortcut_units(net, test, RadiographPhantom(3, size=64, seed=1, marker_correlation=0.0), device="cpu")
    with pytest.raises(ValueError, match="maps"):
        shortcut_units(net, test, clean, device="cpu", maps=torch.zeros(2, 1, 4, 4))


def test_seed_columns_and_auroc_columns(setting):
    net, test, clean = setting
    a = shortcut_units(net, test, clean, device="cpu")
    b = dict(a, prob=1 - a["prob"])
    cols = seed_columns([a, b], "prob")
    assert cols.shape == (len(test), 2) and np.allclose(cols.sum(1), 1)
    auc = auroc_columns([a, b])
    assert auc.shape == (len(test), 3) and np.array_equal(auc[:, -1], a["label"])
    with pytest.raises(ValueError, match="key"):
        seed_columns([a], "nope")
