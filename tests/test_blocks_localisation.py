"""Per-unit localisation with controls, the grid ceiling, the frame share and the held-out choice of a map set."""
import numpy as np
import pytest
import torch

from medxai_lib.evaluate.studies.blocks import (abnormal_views, bootstrap_mean_ci, centre_prior, chosen_on_half, ci_table,
                                        cross_fitted_choice, first_view_per_study,
                                        frame_area, frame_share, grid_oracle, localisation_units)


def _masks(n=6, size=32):
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        masks[i, 0, 4 + i:8 + i, 20:24] = 1
    return masks


def test_first_view_per_study():
    assert first_view_per_study(["a", "a", "b", "c", "c", "a"]) == [0, 2, 3]


def test_centre_prior_peaks_in_the_centre_and_is_symmetric():
    prior = centre_prior(2, 33, sigma=0.2)
    assert prior.shape == (2, 1, 33, 33) and prior[0, 0].argmax().item() == 16 * 33 + 16
    assert torch.allclose(prior, prior.flip(-1)) and torch.allclose(prior, prior.transpose(-1, -2))
    with pytest.raises(ValueError, match="sigma"):
        centre_prior(1, 8, sigma=0)


def test_units_perfect_map_random_expectation_and_oracle_ceiling():
    masks = _masks()
    units = localisation_units({"perfect": masks, "oracle 4x4": grid_oracle(masks, 4)}, masks)
    assert units["perfect"]["pointing"].tolist() == [1.0] * 6 and np.allclose(units["perfect"]["energy"], 1.0)
    assert np.allclose(units["random map"]["energy"], 16 / 1024)           # the mask's area share
    assert np.allclose(units["random map"]["pointing"], 16 / 1024)
    # a 4x4 grid cannot concentrate on a 4x4-pixel mask of a 32-px image: energy well below 1
    assert 0.05 < units["oracle 4x4"]["energy"].mean() < 0.5
    assert grid_oracle(masks, 4).sum((1, 2, 3)).allclose(masks.sum((1, 2, 3)) / 64)


def test_units_reject_mismatched_batches():
    with pytest.raises(ValueError, match="maps_by_name"):
        localisation_units({"x": torch.zeros(3, 1, 8, 8)}, _masks())
    with pytest.raises(ValueError, match="maps_by_name"):
        localisation_units({}, _masks())


def test_bootstrap_ci_brackets_the_mean_and_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(2.0, 1.0, 400)
    mean, lo, hi = bootstrap_mean_ci(values, seed=1)
    assert mean == pytest.approx(values.mean()) and lo < mean < hi
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    with pytest.raises(ValueError, match="values"):
        bootstrap_mean_ci(np.array([1.0, np.nan]))


def test_ci_table():
    rng = np.random.default_rng(0)
    good = {"pointing": (rng.random(200) < 0.9).astype(float), "energy": rng.random(200)}
    bad = {"pointing": (rng.random(200) < 0.3).astype(float), "energy": rng.random(200) * 0.5}
    table = ci_table({"good": good, "bad": bad})
    assert list(table.index) == ["good", "bad"] and table.loc["good", "pointing"] == f"{good['pointing'].mean():.3f} [0.800, 0.895]"


def test_frame_share():
    maps = torch.zeros(2, 1, 6, 6)
    maps[0, 0, 0, :] = 1.0                     # all mass on the top row
    maps[1] = 1.0                              # uniform
    share = frame_share(maps)[:, 0]
    assert share[0] == 1.0 and share[1] == pytest.approx(frame_area(6)) and frame_area(6) == pytest.approx(20 / 36)
    assert frame_share(torch.zeros(1, 1, 6, 6)).item() == 0.0
    with pytest.raises(ValueError, match="width"):
        frame_share(maps, width=3)


def test_empty_masks_are_refused_and_abnormal_views_skip_them():
    masks = _masks()
    masks[3] = 0
    with pytest.raises(ValueError, match="empty"):
        localisation_units({"m": masks}, masks)

    class Tiny:            # studies a (2 views), b (normal), c (empty mask), d
        labels = np.array([1, 1, 0, 1, 1])
        study_ids = ["a", "a", "b", "c", "d"]

        def __getitem__(self, i):
            return {"mask": masks[i]}
    assert abnormal_views(Tiny()) == [0, 4]


def test_replicate_padding_copies_weights_and_changes_only_the_border():
    from helpers import phantom_images, textured_densenet
    from medxai_lib.evaluate.studies.blocks import replicate_padding
    net = textured_densenet(1)
    twin = replicate_padding(net)
    assert twin is not net and all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), twin.state_dict().values()))
    assert net.features.conv0.padding_mode == "zeros" and twin.features.conv0.padding_mode == "replicate"
    x = phantom_images(2)
    with torch.no_grad():
        a, b = net.features.conv0(x), twin.features.conv0(x)
    assert torch.allclose(a[..., 4:-4, 4:-4], b[..., 4:-4, 4:-4]) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="model"):
        replicate_padding(torch.nn.Linear(2, 2))


def test_chosen_on_half_picks_on_the_selection_and_returns_the_other_half():
    select = np.arange(6) % 2 == 0
    units = {"a": {"pointing": np.array([1, 0, 1, 0, 1, 0.]), "energy": np.zeros(6)},      # best on the even units
             "b": {"pointing": np.array([0, 1, 0, 1, 0, 1.]), "energy": np.ones(6)},       # best on the odd ones
             "control": {"pointing": np.full(6, 0.5), "energy": np.full(6, 0.5)}}
    best, held = chosen_on_half(units, ["a", "b"], "pointing", select)
    assert best == "a"                                        # chosen on the even units, not on all of them
    assert held["a"]["pointing"].tolist() == [0, 0, 0] and held["control"]["energy"].tolist() == [0.5] * 3
    assert chosen_on_half(units, ["a", "b"], "energy", select)[0] == "b"
    with pytest.raises(ValueError, match="select"):
        chosen_on_half(units, ["a", "b"], "pointing", np.ones(6, dtype=bool))
    with pytest.raises(ValueError, match="candidates"):
        chosen_on_half(units, ["a", "z"], "pointing", select)


def test_cross_fitted_choice_scores_every_unit_with_a_candidate_chosen_without_it():
    select = np.arange(6) % 2 == 0
    units = {"a": {"pointing": np.array([1, 0, 1, 0, 1, 0.])},          # best on the even units
             "b": {"pointing": np.array([0, 1, 0, 1, 0, 1.])},          # best on the odd units
             "control": {"pointing": np.arange(6.)}}
    (first, second), chosen, values = cross_fitted_choice(units, ["a", "b"], "pointing", select)
    assert (first, second) == ("a", "b")
    # odd units (tested with "a", chosen on the even ones), then even units (tested with "b"): the winner's curse
    # shows as 0 everywhere, where choosing and testing on the same units would have scored 1
    assert chosen["pointing"].tolist() == [0, 0, 0, 0, 0, 0]
    assert values["control"]["pointing"].tolist() == [1, 3, 5, 0, 2, 4]          # the same units, in the same order
