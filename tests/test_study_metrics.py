"""Bootstrap-ready AUROC / kappa statistics, the per-body-part table, and the intensity baseline."""
import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from medxai_lib.evaluate.claims import claim
from medxai_lib.evaluate.metrics.study_metrics import (auroc_statistic, intensity_baseline, intensity_features,
                                               kappa_statistic, study_table, study_units)


def _samples(n=300, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(0, noise, n))))
    return np.stack([np.round(p, 2), y], 1)          # rounding makes ties


def test_statistics_match_sklearn_per_draw():
    units = _samples()
    draws = units[np.random.default_rng(1).integers(0, len(units), (5, len(units)))]
    for d, auc, kap in zip(draws, auroc_statistic(draws), kappa_statistic(draws)):
        assert auc == pytest.approx(roc_auc_score(d[:, 1], d[:, 0]))
        assert kap == pytest.approx(cohen_kappa_score(d[:, 1].astype(int), (d[:, 0] > 0.5).astype(int)))


def test_degenerate_draws_and_bad_shapes():
    one_class = np.array([[[0.2, 1.0], [0.9, 1.0]]])
    assert auroc_statistic(one_class)[0] == 0.5
    assert kappa_statistic(np.array([[[0.9, 1.0], [0.8, 1.0]]]))[0] == 0.0
    # a constant prediction agrees with the label exactly as often as chance: kappa is 0, not float round-off
    # (1 - 1/3 and 2/3 differ in the last bit, which printed "0.000 [-2.42e-16, 2.66e-16]" in notebook 03)
    constant = np.array([[[0.1, 1.0], [0.1, 0.0], [0.1, 0.0]]])
    assert kappa_statistic(constant)[0] == 0.0
    assert kappa_statistic(np.array([[[0.9, 1.0], [0.1, 0.0], [0.1, 1.0]]]))[0] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="samples"):
        auroc_statistic(np.zeros((3, 4)))


def test_claim_with_auroc_statistic_separates_good_from_noisy_scores():
    good, noisy = _samples(noise=0.5), _samples(noise=0.5)
    noisy[:, 0] = np.random.default_rng(3).random(len(noisy))
    assert claim("good ranks better", good, {"noise": noisy}, statistic=auroc_statistic, show=False).holds
    assert not claim("noise ranks better", noisy, {"good": good}, statistic=auroc_statistic, show=False).holds


def test_study_units_and_table():
    probs = np.array([0.9, 0.7, 0.2, 0.4, 0.6, 0.1, 0.8, 0.3])
    labels = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    ids = ["a", "a", "b", "c", "d", "e", "f", "g"]
    parts = ["HAND", "HAND", "HAND", "HAND", "WRIST", "WRIST", "WRIST", "ELBOW"]
    units, sids = study_units(probs, labels, ids)
    assert sids == ["a", "b", "c", "d", "e", "f", "g"] and units[0].tolist() == [0.8, 1.0]
    table = study_table(probs, labels, ids, parts, n_boot=200)
    assert list(table.index) == ["all", "ELBOW", "HAND", "WRIST"]
    assert table.loc["all", "studies"] == 7 and table.loc["all", "AUROC"].startswith("1.00")
    assert table.loc["ELBOW", "AUROC"] == "n/a (one class)"


def test_perfect_separation_gets_a_wilson_interval_not_a_zero_width_bootstrap():
    from medxai_lib.evaluate.stats import wilson_ci
    # 8 abnormal and 6 normal studies, perfectly separated: (almost) every resample gives AUROC 1 and kappa 1, so
    # the percentile interval would be [1.000, 1.000]; Wilson over min(8, 6) = 6 disjoint pairs instead
    labels = np.array([1] * 8 + [0] * 6)
    probs = np.where(labels == 1, 0.9, 0.1) + np.linspace(0, 0.05, 14)
    table = study_table(probs, labels, [f"s{i}" for i in range(14)], ["HAND"] * 14, n_boot=200)
    lo, hi = wilson_ci(6, 6)
    assert table.loc["HAND", "AUROC"] == f"1.000 [{lo:.3f}, {hi:.3f}] (Wilson, 6 pairs)" and lo < 0.7
    assert table.loc["HAND", "kappa"] == "1.000 (all 14 studies right; no bootstrap interval)"
    mixed = study_table(np.array([0.9, 0.2, 0.6, 0.7]), np.array([1, 0, 1, 0]), list("abcd"), ["X"] * 4, n_boot=200)
    assert "Wilson" not in mixed.loc["X", "AUROC"] and "[" in mixed.loc["X", "AUROC"]


def test_intensity_baseline_finds_a_brightness_cue():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120)
    images = torch.tensor(rng.normal(0, 1, (120, 1, 8, 8)), dtype=torch.float32)
    images[labels == 1, :, :2, :2] += 4.0                 # abnormal images carry a bright patch
    assert intensity_features(images).shape == (120, 8)
    probs = intensity_baseline(images[:80], labels[:80], images[80:])
    assert roc_auc_score(labels[80:], probs) > 0.9
    with pytest.raises(ValueError, match="train_labels"):
        intensity_baseline(images[:10], np.zeros(10), images[10:])


def test_several_models_give_the_mean_of_their_statistics():
    a, b = _samples(seed=0), _samples(seed=0, noise=3.0)
    b[:, 1] = a[:, 1]
    both = np.stack([a[:, 0], b[:, 0], a[:, 1]], 1)[None]
    assert auroc_statistic(both)[0] == pytest.approx((auroc_statistic(a[None])[0] + auroc_statistic(b[None])[0]) / 2)
    assert kappa_statistic(both)[0] == pytest.approx((kappa_statistic(a[None])[0] + kappa_statistic(b[None])[0]) / 2)


def test_too_few_studies_and_image_sample():
    from medxai_lib.data import RadiographPhantom
    from medxai_lib.evaluate.metrics.study_metrics import image_sample, too_few_studies
    assert too_few_studies(_samples()) == ""
    assert too_few_studies(np.array([[0.2, 1.0], [0.4, 0.0]])) == "only 1 abnormal and 1 normal validation studies (< 10 per class)"
    data = RadiographPhantom(4, size=32, seed=0)
    images, labels = image_sample(data, 3, seed=1)
    assert images.shape == (3, 1, 32, 32) and len(labels) == 3
    assert image_sample(data)[0].shape[0] == len(data)
