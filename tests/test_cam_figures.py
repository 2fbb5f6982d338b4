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
    fig = plot_ci_rows({"x": {"p": (0.5, 0.4, 0.6)}, "ctrl": {"p": (0.1, 0.05, 0.15)}}, ["p"], highlight=["ctrl"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "ctrl"]
    assert ax.get_xlim() == pytest.approx((0, 0.6 * 1.3))                # zoomed to the data, not 0..1
