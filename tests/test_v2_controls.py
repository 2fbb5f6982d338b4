"""Controls and metrics behind claim standard v2: the label-flip null for a surrogate judged on the black box's
errors (notebook 01), signed-map figures that draw maps >= 0 on a sequential scale, and the localisation metrics'
stated direction, chance level and difference from Quantus."""
import matplotlib
import numpy as np
import pytest
import torch
from sklearn.tree import DecisionTreeClassifier

from medxai_lib.evaluate.studies.taxonomy import compare_surrogates, label_flip_null
from medxai_lib.viz.signed import plot_signed_maps

matplotlib.use("Agg")


def _task(systematic: bool, seed: int = 0):
    """A rule y = [x0 > 0]; the black box errs on 30 units, either where x1 > 1.2 (learnable) or at random."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] > 0).astype(int)
    where = np.flatnonzero(X[:, 1] > 1.2)[:30] if systematic else rng.choice(600, 30, replace=False)
    black_box = y.copy()
    black_box[where] = 1 - black_box[where]
    return X, black_box, y


def test_systematic_errors_beat_the_null_and_random_errors_do_not():
    tree = DecisionTreeClassifier(max_leaf_nodes=12, random_state=0)
    for systematic in (True, False):
        X, black_box, y = _task(systematic)
        null = label_flip_null(X, black_box, y, tree, n_draws=8)
        distilled = compare_surrogates(X, black_box, y, {"t": tree})["t"].fidelity(on_errors=True)[0]
        assert null.shape == (8, 30) and set(np.unique(null)) <= {0.0, 1.0}
        if systematic:
            assert distilled > null.mean() + 0.3
        else:
            assert abs(distilled - null.mean()) < 0.15


def test_the_flip_share_is_the_black_box_error_rate_and_deterministic():
    X, black_box, y = _task(True)
    tree = DecisionTreeClassifier(max_depth=1, random_state=0)
    a, b = label_flip_null(X, black_box, y, tree, n_draws=3, seed=4), label_flip_null(X, black_box, y, tree, n_draws=3, seed=4)
    assert np.array_equal(a, b) and a.shape[1] == int((black_box != y).sum())


@pytest.mark.parametrize("kwargs, match", [(dict(n_draws=0), "n_draws"), (dict(labels=np.zeros(600, int)), "no errors|two classes"),
                                           (dict(black_box=np.zeros(5, int)), "black_box, labels")])
def test_bad_input(kwargs, match):
    X, black_box, y = _task(True)
    args = dict(features=X, black_box=black_box, labels=y, learner=DecisionTreeClassifier(), n_draws=2) | kwargs
    with pytest.raises(ValueError, match=match):
        label_flip_null(**args)


def test_sequential_columns_start_at_zero_and_signed_ones_are_centred():
    images = torch.rand(2, 3, 16, 16)
    columns = {"signed": torch.randn(2, 1, 4, 4), "grad-cam": torch.rand(2, 1, 4, 4)}
    fig = plot_signed_maps(images, columns, shared=False, normalized_images=False, sequential=["grad-cam"])
    heat = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name in ("RdBu_r", "magma")]
    limits = {im.get_cmap().name: im.get_clim() for im in heat}
    assert limits["magma"][0] == 0 and limits["RdBu_r"][0] == -limits["RdBu_r"][1]
    with pytest.raises(ValueError, match="sequential"):
        plot_signed_maps(images, columns, sequential=["missing"], normalized_images=False)


def test_every_localisation_metric_states_its_direction_chance_level_and_quantus_difference():
    from medxai_lib.evaluate.metrics import localisation
    functions = {"pointing game": localisation.pointing_game, "energy in mask": localisation.energy_in_mask,
                 "top-k IoU": localisation.topk_iou, "AUPRC": localisation.auprc}
    assert set(localisation.SCORE_DIRECTION) == set(functions)
    for name, fn in functions.items():
        doc = fn.__doc__
        assert f"Good direction: {localisation.SCORE_DIRECTION[name]}" in doc and "Chance level" in doc and "Quantus" in doc


def test_the_pointing_game_takes_the_first_of_tied_maxima_and_energy_clips_negative_mass():
    from medxai_lib.evaluate.metrics.localisation import energy_in_mask, pointing_game
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 3, 3] = 1
    constant = torch.ones(1, 1, 4, 4)                       # every pixel a tied maximum; Quantus would count a hit
    assert pointing_game(constant, mask).item() == 0.0
    signed = torch.full((1, 1, 4, 4), -1.0)
    signed[0, 0, 3, 3] = 1.0
    assert energy_in_mask(signed, mask).item() == 1.0       # the raw sum would be 1 / (1 - 15) < 0


def test_importance_summary_takes_every_refit_as_a_draw():
    """A null whose refits disagree: with the mean over refits as a fixed control the feature "beats" it; with
    every refit as a draw (two-stage bootstrap) the null's CI is wider and the feature no longer clears it."""
    from medxai_lib.evaluate.stats import Draws
    from medxai_lib.evaluate.studies.taxonomy import importance_summary
    rng = np.random.default_rng(0)
    values = 0.05 + 0.01 * rng.standard_normal((200, 1))
    refit_level = np.array([-0.15, 0.2, -0.1, 0.18, -0.12])[:, None, None]      # 5 refits, mean 0.002
    refits = refit_level + 0.01 * rng.standard_normal((5, 200, 1))
    fixed = importance_summary(values, refits.mean(0), ["f"], seed=0).loc["f"]
    drawn = importance_summary(values, Draws(refits, over="refit"), ["f"], seed=0).loc["f"]
    assert fixed["null"] == pytest.approx(drawn["null"])
    assert drawn["null CI high"] - drawn["null CI low"] > 10 * (fixed["null CI high"] - fixed["null CI low"])
    assert bool(fixed["beats null"]) and not bool(drawn["beats null"])


def test_permuted_label_null_keeps_every_refit_on_request():
    from sklearn.linear_model import LogisticRegression

    from medxai_lib.evaluate.studies.taxonomy import permuted_label_null
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((80, 3)), rng.integers(0, 2, 80)
    kept = permuted_label_null(LogisticRegression(), X[:60], y[:60], X[60:], y[60:], n_refits=3, n_repeats=2, seed=0,
                               keep_draws=True)
    mean = permuted_label_null(LogisticRegression(), X[:60], y[:60], X[60:], y[60:], n_refits=3, n_repeats=2, seed=0)
    assert kept.shape == (3, 20, 3) and np.allclose(kept.mean(0), mean)
