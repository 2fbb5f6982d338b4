"""The histology phantom's readability settings (magnification, strength, common_axis) and the attribute probe."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from medxai_lib.data import ATTRIBUTES, HistologyPhantom
from medxai_lib.data.phantoms.histology import READABLE, HistologySpec, render_histology
from medxai_lib.train.mdnet import MDNetConfig, fit_attribute_probe, probe_grades


def _spec(seed: int, **grades: int) -> HistologySpec:
    return HistologySpec(0, "p", tuple((a, grades.get(a, 0)) for a in ATTRIBUTES), True, seed)


def _nuclei(image: np.ndarray) -> tuple[np.ndarray, int]:
    labels, n = ndimage.label(image[0] < 0.6)        # nuclei are purple-blue, the stroma pink: red channel
    return labels, n


def test_magnification_scales_the_nuclei_and_their_spacing():
    areas, counts = {}, {}
    for m in (1.0, 2.0):
        found = [_nuclei(render_histology(_spec(s), 96, magnification=m)[0]) for s in range(4)]
        areas[m] = np.mean([np.bincount(lab.ravel())[1:].mean() for lab, _ in found])
        counts[m] = np.mean([n for _, n in found])
    assert 3.0 < areas[2.0] / areas[1.0] < 5.5            # twice the radius: about four times the area
    assert 2.5 < counts[1.0] / counts[2.0] < 5.5           # twice the spacing: about a quarter as many nuclei


def test_strength_multiplies_what_a_grade_does():
    def dark_share(strength) -> float:     # mitotic figures are almost black, inside the mitosis region
        shares = []
        for s in range(6):
            image, masks = render_histology(_spec(s, mitosis=2), 96, magnification=2.0, strength=strength)
            shares.append(((image.max(0) < 0.25) & masks[ATTRIBUTES.index("mitosis")]).sum() / max(masks[3].sum(), 1))
        return float(np.mean(shares))
    assert dark_share(3.0) > 1.5 * dark_share(1.0) > 0
    assert dark_share({"mitosis": 3.0}) == dark_share(3.0)            # one attribute's strength, by name
    assert dark_share({"polarity": 3.0}) == dark_share(1.0)           # another attribute's leaves mitosis alone
    same = render_histology(_spec(1, mitosis=2), 64), render_histology(_spec(1, mitosis=2), 64, strength=1.0, magnification=1.0)
    assert np.array_equal(same[0][0], same[1][0])        # the defaults are strength 1, magnification 1


def test_common_axis_orients_ordered_nuclei_and_changes_nothing_else():
    def orientations(axis: float | None, seed: int) -> np.ndarray:
        image, masks = render_histology(_spec(seed), 96, magnification=2.0, common_axis=axis)
        labels, n = _nuclei(image)
        angles = []
        for k in range(1, n + 1):
            ys, xs = np.nonzero(labels == k)
            if len(xs) >= 12:
                cov = np.cov(np.stack([xs, ys]))
                w, v = np.linalg.eigh(cov)
                angles.append(np.arctan2(v[1, 1], v[0, 1]) % np.pi)
        return np.array(angles), masks
    for axis in (0.0, np.pi / 2):
        angles, masks = orientations(axis, 3)
        deviation = np.abs((angles - axis + np.pi / 2) % np.pi - np.pi / 2)
        assert np.median(deviation) < 0.35, axis
    assert np.array_equal(orientations(None, 3)[1], orientations(0.0, 3)[1])   # the same regions either way


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="magnification"):
        HistologyPhantom(2, size=32, magnification=0)
    with pytest.raises(ValueError, match="strength"):
        HistologyPhantom(2, size=32, strength=-1)
    with pytest.raises(ValueError, match="strength: unknown attributes"):
        HistologyPhantom(2, size=32, strength={"colour": 2.0})
    with pytest.raises(ValueError, match="strength.*mitosis"):
        HistologyPhantom(2, size=32, strength={"mitosis": 11.0})
    with pytest.raises(ValueError, match="elongation"):
        HistologyPhantom(2, size=32, elongation=0.5)
    with pytest.raises(ValueError, match="common_axis"):
        HistologyPhantom(2, size=32, common_axis="horizontal")


def test_attribute_probe_learns_a_readable_attribute_and_checks_its_grades():
    train = HistologyPhantom(160, size=32, seed=5, grade_correlation=0.0, **READABLE)
    test = HistologyPhantom(96, size=32, seed=6, grade_correlation=0.0, **READABLE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                 # the same weights on every machine
    model, history, cached = fit_attribute_probe(train, MDNetConfig(epochs=8, batch_size=16, lr=4e-3), device="cpu")
    torch.set_num_threads(threads)
    assert not cached and history[-1]["probe"] < history[0]["probe"]
    grades = probe_grades(model, torch.stack([test[i]["image"] for i in range(len(test))]))
    assert grades.shape == (len(test), len(ATTRIBUTES)) and set(np.unique(grades)) <= {0, 1, 2}
    crowding = ATTRIBUTES.index("crowding")                 # a density cue: readable even at this size
    majority = np.bincount(train.grades[:, crowding], minlength=3).argmax()
    assert (grades[:, crowding] == test.grades[:, crowding]).mean() > (test.grades[:, crowding] == majority).mean() + 0.1
    with pytest.raises(ValueError, match="grades"):
        fit_attribute_probe(train, MDNetConfig(epochs=1), grades=2, device="cpu")
    with pytest.raises(ValueError, match="outputs"):
        probe_grades(model, torch.zeros(1, 3, 32, 32), grades=4)
