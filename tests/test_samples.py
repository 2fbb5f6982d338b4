import numpy as np
import torch

from medxai_lib.data import samples


def test_real_sample_images():
    assert samples.retina(64).shape == (3, 64, 64)
    micro = samples.microaneurysms()
    assert micro.shape == (1, 102, 102) and 0 <= micro.min() and micro.max() <= 1
    assert samples.immunohistochemistry(32).shape == (3, 32, 32)
    assert samples.cell().ndim == 3
    table = samples.breast_cancer()
    assert table.X.shape == (569, 30) and set(np.unique(table.y)) == {0, 1} and len(table.feature_names) == 30


def test_retina_vessel_map_and_fov():
    vessels, fov = samples.retina_vessels(256)
    assert vessels.shape == fov.shape == (1, 256, 256)
    assert 0.6 < fov.mean() < 0.85                        # a disc of radius ~0.47 covers ~70%
    share = vessels.sum() / fov.sum()
    assert 0.03 < share < 0.25                            # vessels are a minority of the field of view
    assert not (vessels > fov).any()
    # vessels are darker than the background in the green channel
    green = samples.retina(256)[1]
    inside = fov[0] > 0
    assert green[(vessels[0] > 0) & inside].mean() < green[(vessels[0] == 0) & inside].mean()
