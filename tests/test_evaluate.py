import numpy as np
import pytest
import torch

from medxai_lib.evaluate import binary_metrics, energy_in_mask, mask_fraction, pointing_game, study_level


def _mask(points, size=8):
    m = torch.zeros(1, 1, size, size)
    for y, x in points:
        m[0, 0, y, x] = 1
    return m


def test_pointing_game_hand_cases():
    maps = torch.zeros(2, 2, 8, 8)
    maps[0, 0, 2, 3] = 1  # inside
    maps[0, 1, 6, 6] = 1  # far away
    maps[1, 0, 2, 5] = 1  # two pixels right of the mask
    maps[1, 1] = 0.5      # constant: first pixel, a miss
    masks = torch.cat([_mask([(2, 3)]), _mask([(2, 3)])])
    assert pointing_game(maps, masks).tolist() == [[True, False], [False, False]]
    assert pointing_game(maps, masks, tolerance=2).tolist() == [[True, False], [True, False]]


def test_pointing_game_upsamples_low_resolution_maps():
    maps = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])  # bottom-right cell
    quadrant = [(y, x) for y in range(4, 8) for x in range(4, 8)]
    assert pointing_game(maps, _mask(quadrant)).tolist() == [[True]]
    assert pointing_game(maps, _mask([(0, 0)])).tolist() == [[False]]


def test_energy_and_mask_fraction():
    maps = torch.zeros(1, 1, 4, 4)
    maps[0, 0, 0, 0], maps[0, 0, 3, 3], maps[0, 0, 1, 1] = 3.0, 1.0, -5.0
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 0, 0] = 1
    assert energy_in_mask(maps, mask).item() == pytest.approx(0.75)
    assert energy_in_mask(torch.zeros(1, 1, 4, 4), mask).item() == 0
    assert mask_fraction(mask).item() == pytest.approx(1 / 16)
    assert mask_fraction(mask, tolerance=1).item() == pytest.approx(4 / 16)


def test_localisation_bad_input():
    with pytest.raises(ValueError, match="maps"):
        pointing_game(torch.zeros(1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="masks"):
        pointing_game(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="batch sizes"):
        energy_in_mask(torch.zeros(2, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), tolerance=-1)


def test_binary_metrics_hand_computed():
    probs = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    out = binary_metrics(probs, labels)
    # predictions 1,1,0,1,0,0: 4/6 right; p_o = 4/6, p_e = 0.5*0.5 + 0.5*0.5 = 0.5 -> kappa 1/3
    assert out["accuracy"] == pytest.approx(4 / 6) and out["kappa"] == pytest.approx(1 / 3)
    assert out["auroc"] == pytest.approx(8 / 9)  # one discordant pair (0.3 vs 0.6) out of 9
    assert np.isnan(binary_metrics(probs[:3], labels[:3])["auroc"])
    with pytest.raises(ValueError, match="labels"):
        binary_metrics(probs, labels * 2)


def test_study_level_averages_views():
    probs = np.array([0.2, 0.6, 0.9, 0.1])
    sp, sl, ids = study_level(probs, np.array([1, 1, 0, 0]), ["a", "a", "b", "b"])
    assert ids == ["a", "b"] and sl.tolist() == [1, 0] and np.allclose(sp, [0.4, 0.5])
    with pytest.raises(ValueError, match="different labels"):
        study_level(probs, np.array([1, 0, 0, 0]), ["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="lengths"):
        study_level(probs, np.array([1, 0]), ["a", "a", "b", "b"])
