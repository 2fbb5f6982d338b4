"""Per-image shortcut readings: the causal drop is 0 without a marker; CAM contributions add up to the logit."""
import numpy as np
import pytest
import torch

from helpers import textured_densenet
from medxai_lib.data import RadiographPhantom
from medxai_lib.evaluate.metrics.study_metrics import auroc_statistic
from medxai_lib.evaluate.stats import bootstrap
from medxai_lib.evaluate.studies.blocks import UNIT_KEYS, auroc_draws, seed_columns, seed_draws, shortcut_report, shortcut_units
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


def test_seed_columns_and_model_seed_draws(setting):
    net, test, clean = setting
    a = shortcut_units(net, test, clean, device="cpu")
    b = dict(a, prob=1 - a["prob"])
    cols = seed_columns([a, b], "prob")
    assert cols.shape == (len(test), 2) and np.allclose(cols.sum(1), 1)
    keep = np.arange(len(test)) % 2 == 0
    draws = seed_draws([a, b], "prob", "model seed", keep)
    assert draws.values.shape == (2, keep.sum()) and draws.over == "model seed"
    assert np.array_equal(draws.values, cols[keep].T)
    auc = auroc_draws([a, b], "model seed")
    assert auc.values.shape == (2, len(test), 2) and np.array_equal(auc.values[1, :, 1], a["label"])
    per_model = auroc_statistic(auc.values)                       # model b ranks exactly in reverse
    assert per_model[0] + per_model[1] == pytest.approx(1.0)
    assert bootstrap(auc, auroc_statistic).value == pytest.approx(per_model.mean())      # the mean over models
    with pytest.raises(ValueError, match="key"):
        seed_columns([a], "nope")
