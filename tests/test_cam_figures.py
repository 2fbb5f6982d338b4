"""Figures for notebook 03: one shared symmetric scale for signed CAMs; CI rows; per-map scaled grids."""
import matplotlib

matplotlib.use("Agg")
import pytest
import torch

from medxai_lib.viz.cam_figures import plot_ci_rows, plot_signed_cams, shared_limit
from medxai_lib.viz.overlays import plot_map_grid


def test_signed_cams_share_one_symmetric_scale():
    images = torch.zeros(2, 1, 32, 32)
    columns = {"a": torch.full((2, 1, 4, 4), 0.5), "b": torch.full((2, 1, 4, 4), -2.0)}
    assert shared_limit(columns, quantile=1.0) == 2.0
    fig = plot_signed_cams(images, columns, ["x", "y"], masks=torch.ones(2, 1, 32, 32), title="t")
    heat = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "RdBu_r"]
    assert len(heat) == 4 and {im.get_clim() for im in heat} == {(-2.0, 2.0)}
    assert any("shared scale" in ax.get_ylabel() for ax in fig.axes)      # the colour bar says so
    with pytest.raises(ValueError, match="row_titles"):
        plot_signed_cams(images, columns, ["only one"])


def test_maps_and_ci_rows_draw_what_they_are_given():
    images = torch.zeros(3, 1, 32, 32)
    fig = plot_map_grid(images, {"m": torch.rand(3, 1, 4, 4)}, masks=torch.zeros(3, 1, 32, 32), row_titles=list("abc"),
                        clip=False)
    assert len(fig.axes) == 3 * 2 + 1 and fig.axes[1].get_title() == "m"


def test_map_grid_scaled_by_each_panels_maximum_keeps_zero_dark_and_prints_the_maximum():
    images = torch.zeros(2, 1, 8, 8)
    tiny = torch.zeros(2, 1, 8, 8)
    tiny[0, 0, 2, 2], tiny[1, 0, 5, 5] = 2e-6, 3.0                          # a near-zero map and a strong one
    tiny[0, 0, 0, 0] = 1e-6
    fig = plot_map_grid(images, {"m": tiny}, clip=False, scale="max")
    panels = [ax for ax in fig.axes if ax.get_images()][:4]               # row-major: image, map, image, map
    shown = panels[1].get_images()[-1].get_array()
    assert shown.max() == pytest.approx(1.0) and shown[0, 0] == pytest.approx(0.5) and shown[7, 7] == 0.0
    assert [t.get_text() for t in panels[1].texts] == ["max 2.00e-06"] and [t.get_text() for t in panels[3].texts] == ["max 3.000"]
    assert "maximum" in fig.axes[-1].get_ylabel()                         # the colour bar says how panels are scaled
    minmax = plot_map_grid(images, {"m": tiny}, clip=False)
    assert not [ax for ax in minmax.axes if ax.texts]                       # the default prints no maxima
    with pytest.raises(ValueError, match="maps >= 0"):
        plot_map_grid(images, {"m": tiny - 1.0}, scale="max")
    with pytest.raises(ValueError, match="scale"):
        plot_map_grid(images, {"m": tiny}, scale="log")
    fig = plot_ci_rows({"x": {"p": (0.5, 0.4, 0.6)}, "ctrl": {"p": (0.1, 0.05, 0.15)}}, ["p"], highlight=["ctrl"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "ctrl"]
    assert ax.get_xlim() == pytest.approx((0, 0.6 * 1.3))                # zoomed to the data, not 0..1
