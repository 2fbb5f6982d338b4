"""Koch's-postulate checks (re-detection, severity, anatomy, placements) and the explorer fallback."""
import numpy as np
import pytest
import torch

from medxai_lib.evaluate.studies.inoculation import (anatomy_scores, copies_at, redetection,
                                             spread_positions)
from medxai_lib.explain.descriptors import Descriptor, DescriptorBank
from medxai_lib.models.detector import DRDetector


def _descriptor(box=(10, 10, 14, 14), size=48):
    h, w = box[3] - box[1], box[2] - box[0]
    feats = {"conv1b": np.ones((2, 2, 2), np.float32)}
    return Descriptor(box, size, np.ones((h, w), bool), np.ones((h, w), np.float32), feats,
                      {"conv1b": np.eye(2, dtype=np.float32)}, "hard_exudate")


def test_spread_positions_do_not_overlap_and_stay_in_the_fov():
    fov = torch.zeros(48, 48, dtype=torch.bool)
    fov[4:44, 4:44] = True
    corners = spread_positions(fov, 4, 3, 10, seed=1, gap=1)
    assert len(corners) == 10 and corners == spread_positions(fov, 4, 3, 10, seed=1, gap=1)
    taken = np.zeros((48, 48), int)
    for x, y in corners:
        assert fov[y:y + 3, x:x + 4].all()
        taken[y:y + 3, x:x + 4] += 1
    assert taken.max() == 1
    bank = copies_at(_descriptor(), corners[:3])
    assert [d.box[:2] for d in bank] == corners[:3]


def test_anatomy_scores_count_only_the_region():
    a = torch.rand(2, 3, 32, 32)
    region = torch.ones(2, 1, 32, 32)
    same = anatomy_scores(a, a, region)
    assert (same["l1"] == 0).all() and same["ssim"] == pytest.approx(np.ones(2))
    b = a.clone()
    b[:, :, :16] = 0
    region[:, :, :16] = 0                       # the change lies outside the region: it is not counted
    assert (anatomy_scores(b, a, region)["l1"] == 0).all()
    assert (anatomy_scores(b, a, torch.ones(2, 1, 32, 32))["l1"] > 0).all()
    with pytest.raises(ValueError, match="region"):
        anatomy_scores(a, a, region[:, :, :8])


def test_redetection_scores_a_map_peak_inside_the_boxes():
    torch.manual_seed(0)
    detector = DRDetector(width=4, dense=8).eval()
    images = torch.rand(2, 3, 48, 48)
    fov = torch.ones(2, 1, 48, 48)
    everywhere = DescriptorBank([Descriptor((0, 0, 48, 48), 48, np.ones((48, 48), bool), np.ones((48, 48), np.float32),
                                            {}, {}, "unknown")])
    result = redetection(detector, images, [everywhere, everywhere], fov)
    assert result.pointing == 1.0 and result.chance == pytest.approx(1.0) and result.energy_in_boxes == pytest.approx(1.0)
    small = redetection(detector, images, [DescriptorBank([_descriptor()]), DescriptorBank()], fov)
    assert len(small.per_image) == 1 and small.chance == pytest.approx(36 / 48 ** 2)   # box grown by 1 px
    with pytest.raises(ValueError, match="empty"):
        redetection(detector, images, [DescriptorBank(), DescriptorBank()], fov)


def test_explorer_draws_one_static_figure_without_a_frontend(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import ipywidgets
    from medxai_lib.viz.explorer import explore, widgets_enabled
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "1")
    assert not widgets_enabled()
    seen = []

    def draw(threshold, copies):
        seen.append((threshold, copies))
        import matplotlib.pyplot as plt
        return plt.figure()

    figure = explore(draw, threshold=ipywidgets.FloatSlider(value=0.3, min=0, max=1), copies=2)
    assert seen == [(0.3, 2)] and figure is not None
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "0")
    assert not widgets_enabled()                # plain Python, no kernel: still static


def test_attribution_explorer_static_figure_and_errors(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from helpers import phantom_images, textured_densenet
    from medxai_lib.viz.explorer import attribution_explorer, draw_attribution
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "1")
    model, images = textured_densenet(num_classes=2), phantom_images(2, size=48)
    figure = attribution_explorer(model, images, ["grad_cam", "saliency"], ["features.denseblock2", "features"], 2)
    assert figure.axes[1].get_title().startswith("grad_cam @ features, class 0\nmax |map| = ")
    assert len(figure.axes) == 3, "the heatmap needs its colour bar"
    a = draw_attribution(model, images, 1, "grad_cam", "features", 1).medxai_heatmap
    b = draw_attribution(model, images, 1, "grad_cam", "features", 0).medxai_heatmap
    assert a.shape == (48, 48) and not torch.allclose(a, b)
    live = b if float(b.abs().max()) > 0 else a
    assert float(live.abs().max()) == pytest.approx(1.0) and float(live.min()) >= 0   # Grad-CAM >= 0: 0 stays 0
    from medxai_lib.explain import attribute
    target = 0 if live is b else 1
    raw = attribute(model, images[1:2], "grad_cam", layer="features", classes=[target])
    title = draw_attribution(model, images, 1, "grad_cam", "features", target).axes[1].get_title()
    assert f"max |map| = {float(raw.abs().max()):.3g}" in title
    signed = draw_attribution(model, images, 0, "input_x_gradient", "ignored", 0)
    assert signed.axes[1].get_title().startswith("input_x_gradient, class 0")
    assert signed.axes[1].images[-1].get_clim() == (-1, 1), "a signed map needs a scale centred on 0"
    with pytest.raises(ValueError, match="image"):
        draw_attribution(model, images, 5)
    with pytest.raises(ValueError, match="methods"):
        attribution_explorer(model, images, ["magic"], ["features"])
