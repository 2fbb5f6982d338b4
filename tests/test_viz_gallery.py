"""Figures: one evidence contour colour across every viz function, a legend entry for every colour,
panels large enough to read (>= 180 px at the notebooks' 72 dpi)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from medxai_lib.viz import (CATEGORY_COLOURS, CONFOUNDER_COLOUR, EVIDENCE_COLOUR, draw_contour,  # noqa: E402
                            notebook_style, plot_feature_maps, plot_gallery, plot_map_grid, plot_with_masks)


@pytest.fixture(autouse=True)
def _close_figures():
    notebook_style()
    yield
    plt.close("all")


def _square(batch: int = 2, size: int = 32) -> torch.Tensor:
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, 8:20, 10:22] = 1
    return mask


def _contour_colours(fig: plt.Figure) -> set[tuple[float, ...]]:
    colours = set()
    for ax in fig.axes:
        for artist in ax.collections:
            if hasattr(artist, "levels"):              # a ContourSet
                colours |= {tuple(np.round(c, 3)) for c in np.atleast_2d(artist.get_edgecolor())}
    return colours


def _legend(fig: plt.Figure) -> dict[str, tuple[float, ...]]:
    assert fig.legends, "figure has no legend"
    legend = fig.legends[0]
    return {t.get_text(): tuple(np.round(to_rgba(h.get_facecolor() if hasattr(h, "get_facecolor") and not
                                                 hasattr(h, "get_xdata") else h.get_color())[:3], 3))
            for t, h in zip(legend.get_texts(), legend.legend_handles)}


def _rgb(colour: str) -> tuple[float, ...]:
    return tuple(np.round(to_rgba(colour)[:3], 3))


def test_evidence_contours_share_one_colour_across_the_viz_functions():
    images, masks = torch.rand(2, 3, 32, 32), _square()
    evidence = {_rgb(EVIDENCE_COLOUR) + (1.0,)}
    figures = [plot_map_grid(images, {"map": torch.rand(2, 1, 8, 8)}, masks=masks, normalized_images=False),
               plot_gallery(images, ["a", "b"], masks=masks, ncols=2, normalized_images=False),
               plot_feature_maps(images, torch.rand(2, 4, 8, 8), [0, 1], masks=masks),
               plot_with_masks(images, {"evidence": masks}, normalized_images=False)]
    for fig in figures:
        assert _contour_colours(fig) == evidence, fig
    with_confounder = plot_gallery(images, ["a", "b"], masks=masks, extra_masks=1 - masks, ncols=2,
                                   normalized_images=False)
    assert _contour_colours(with_confounder) == evidence | {_rgb(CONFOUNDER_COLOUR) + (1.0,)}
    assert _legend(with_confounder) == {"evidence": _rgb(EVIDENCE_COLOUR), "confounder": _rgb(CONFOUNDER_COLOUR)}
    assert EVIDENCE_COLOUR not in CATEGORY_COLOURS and CONFOUNDER_COLOUR not in CATEGORY_COLOURS


def test_plot_with_masks_names_every_colour_in_its_legend():
    images, masks = torch.rand(2, 3, 32, 32), _square()
    kinds = torch.cat([masks, 1 - masks, torch.zeros_like(masks)], 1)
    fig = plot_with_masks(images, {"evidence": masks, "kinds": kinds, "marker": masks},
                          channel_names={"kinds": ["a", "b", "c"]}, colours={"marker": CONFOUNDER_COLOUR},
                          normalized_images=False)
    assert _legend(fig) == {"evidence": _rgb(EVIDENCE_COLOUR), "a": _rgb(CATEGORY_COLOURS[0]),
                            "b": _rgb(CATEGORY_COLOURS[1]), "c": _rgb(CATEGORY_COLOURS[2]),
                            "marker": _rgb(CONFOUNDER_COLOUR)}
    # an empty channel draws no contour; the two others do, in their legend colours
    assert _contour_colours(fig) == {_rgb(c) + (1.0,) for c in (EVIDENCE_COLOUR, CATEGORY_COLOURS[0],
                                                                 CATEGORY_COLOURS[1], CONFOUNDER_COLOUR)}


@pytest.mark.parametrize("batch, n_masks, title", [(1, 2, "t"), (3, 2, None), (5, 2, "t"), (1, 0, None)])
def test_plot_with_masks_panels_are_at_least_180_px(batch, n_masks, title):
    masks = {f"m{j}": _square(batch) for j in range(n_masks)}
    fig = plot_with_masks(torch.rand(batch, 3, 32, 32), masks, row_titles=["r"] * batch, title=title,
                          normalized_images=False)
    fig.canvas.draw()
    sides = [min(ax.get_window_extent().width, ax.get_window_extent().height) for ax in fig.axes]
    assert len(sides) == batch * (1 + n_masks) and min(sides) >= 180, sides


def test_plot_with_masks_bad_arguments_are_named():
    images, masks = torch.rand(2, 3, 32, 32), _square()
    with pytest.raises(ValueError, match=r"masks\['m'\]"):
        plot_with_masks(images, {"m": masks[:1]})
    with pytest.raises(ValueError, match=r"channel_names\['m'\]"):
        plot_with_masks(images, {"m": torch.cat([masks, masks], 1)}, channel_names={"m": ["one"]})
    with pytest.raises(ValueError, match=r"colours\['m'\]"):
        plot_with_masks(images, {"m": masks}, colours={"m": ["red", "blue"]})


def test_draw_contour_draws_only_a_non_empty_mask():
    fig, ax = plt.subplots()
    draw_contour(ax, torch.zeros(1, 16, 16))
    assert not ax.collections
    draw_contour(ax, np.pad(np.ones((4, 4)), 6))
    assert _contour_colours(fig) == {_rgb(EVIDENCE_COLOUR) + (1.0,)}
    with pytest.raises(ValueError, match="mask"):
        draw_contour(ax, torch.zeros(2, 3, 16, 16))


def test_inoculation_step_draws_one_eye_with_its_mask_and_inoculation():
    from medxai_lib.data import FundusPhantom
    from medxai_lib.models.detector import DRDetector
    from medxai_lib.models.pathogan import UNetGenerator
    from medxai_lib.viz.fundus import plot_inoculation_step
    torch.manual_seed(0)
    item = FundusPhantom(1, size=64, seed=3)[0]
    healthy = FundusPhantom(1, size=64, seed=4, healthy=True)[0]
    fig = plot_inoculation_step(DRDetector(width=4, dense=8).eval(), item, UNetGenerator((4, 8), width=8, z_dim=6).eval(),
                                healthy["vessels"][None], healthy["fov"][None], 0.5, source="image 0")
    assert len([ax for ax in fig.axes if ax.images]) == 4
    assert fig._suptitle.get_text().startswith("threshold 0.5: ") and "o_O detector's grade of the inoculated eye" in fig._suptitle.get_text()
    assert "circular" in fig._suptitle.get_text()                 # the grade of the detector in the loss is labelled


def test_notebook_style_follows_the_style_guide_and_names_bad_arguments():
    import matplotlib
    notebook_style()
    assert matplotlib.rcParams["figure.dpi"] == 100
    for bad in ({"dpi": 72}, {"image_format": "gif"}, {"jpeg_quality": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            notebook_style(**bad)
