"""Scoreboard figures: signed maps on a diverging scale centred on 0 shared along a row, ranks with the
good direction in the column titles, sanity curves with the trained model first and the legend outside."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from medxai_lib.evaluate.studies.scoreboard import MapScores, ranks, scoreboard  # noqa: E402
from medxai_lib.viz.scoreboard import (plot_deletion_insertion, plot_method_maps, plot_randomisation,  # noqa: E402
                                       plot_rank_table)


def test_method_maps_share_one_symmetric_diverging_scale_per_signed_row():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 16, 16, generator=g)
    signed = torch.randn(3, 16, 16, generator=g)
    signed[1] *= 10                                             # a louder image must not get its own scale
    maps = {"signed map": signed, "unsigned map": torch.rand(3, 16, 16, generator=g)}
    masks = torch.zeros(3, 1, 16, 16)
    masks[:, :, 4:8, 4:8] = 1
    fig = plot_method_maps(images, maps, masks, signed=["signed map"], column_titles=["a", "b", "c"])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["evidence mask"]
    cues = plot_method_maps(images, maps, masks, signed=["signed map"], mask_label="malignancy cues")
    assert [t.get_text() for t in cues.legends[0].get_texts()] == ["malignancy cues"]
    heat = [ax.get_images()[1] for ax in fig.axes[:6]]          # image axes: 2 rows x 3 columns
    row0 = {im.get_clim() for im in heat[:3]}
    assert len(row0) == 1                                       # one scale along the row
    lo, hi = row0.pop()
    assert lo == pytest.approx(-hi) and hi > 3                  # symmetric, set by the loud image too
    assert heat[0].get_cmap().name == "RdBu_r" and heat[3].get_cmap().name == "magma"
    assert heat[3].get_clim()[0] >= 0
    assert len(fig.axes) == 6 + 2                               # one colour bar per row
    with pytest.raises(ValueError, match="maps"):
        plot_method_maps(images, {"bad": signed[:2]})


def _scores():
    rng = np.random.default_rng(0)
    return MapScores(["a", "b", "random"], {"energy in mask": rng.normal([0.5, 0.48, 0.1], 0.05, (40, 3)),
                                            "deletion AUC": rng.normal([0.3, 0.6, 0.9], 0.05, (40, 3))})


def test_rank_table_marks_directions_and_baselines():
    scores = _scores()
    metrics = ["energy in mask", "deletion AUC"]
    board, r = scoreboard(scores, metrics, n_boot=300), ranks(scores, metrics, n_boot=300)
    fig = plot_rank_table(board, r, {"energy in mask": "higher", "deletion AUC": "lower"}, baselines=["random"])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "higher is better" in labels[0] and "lower is better" in labels[1]
    italic = [t.get_text() for t in ax.get_yticklabels() if t.get_fontstyle() == "italic"]
    assert italic == ["random"]
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("#1") for t in texts) and len(texts) == 6


def test_curves_and_randomisation_figures():
    rng = np.random.default_rng(0)
    curves = {"a": (rng.random((5, 9)), rng.random((5, 9))), "random": (rng.random((5, 9)), rng.random((5, 9)))}
    fig = plot_deletion_insertion(curves, {"a": (0.3, 0.7), "random": (0.5, 0.5)})
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
    assert "AUC 0.30" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert fig.axes[0].get_lines()[1].get_linestyle() == "--"                 # a baseline map is dashed
    grid, axes = plt.subplots(2, 2)
    out = plot_deletion_insertion(curves, {"a": (0.3, 0.7), "random": (0.5, 0.5)}, deletion_to="to a blurred copy",
                                  insertion_from="a grey image", levels={"intact": 0.8, "grey image": 0.1}, axes=axes[1])
    assert out is grid and [len(ax.get_lines()) for ax in axes[1]] == [4, 4]    # 2 curves + 2 reference levels
    assert "to a blurred copy" in axes[1][0].get_xlabel() and "a grey image" in axes[1][1].get_xlabel()
    assert [t.get_text() for t in axes[1][0].texts] == ["intact: 0.80", "grey image: 0.10"]
    assert not axes[0][0].get_lines()                                           # the other row is untouched
    with pytest.raises(ValueError, match="axes"):
        plot_deletion_insertion(curves, {"a": (0.3, 0.7), "random": (0.5, 0.5)}, axes=axes[0][:1])
    table = pd.DataFrame({"method": ["m"] * 3, "randomised": ["trained", "top", "stem"], "step": [0, 1, 2],
                          "spearman": [1.0, 0.5, np.nan], "ssim": [1.0, 0.4, np.nan], "collapsed": [0.0, 0.0, 1.0]})
    fig = plot_randomisation(table)
    assert fig.axes[0].get_xlabel() == "randomised from the top block down to"
    assert plot_randomisation(table, xlabel="one block re-initialised").axes[0].get_xlabel() == "one block re-initialised"
    assert fig.axes[0].get_xticklabels()[0].get_text().startswith("trained")
    assert fig.legends and all(ax.get_legend() is None for ax in fig.axes)   # the legend sits outside the panels


def test_randomisation_figure_keeps_identical_curves_visible():
    rows = [{"method": m, "randomised": s, "step": k, "spearman": 1.0 - k / 2, "ssim": 1.0, "collapsed": k / 2}
            for m in ("grad_cam", "guided_grad_cam") for k, s in enumerate(("trained", "top", "stem"))]
    fig = plot_randomisation(pd.DataFrame(rows))
    first, second = fig.axes[2].get_lines()[:2]
    assert first.get_linewidth() > second.get_linewidth() + 1          # the earlier curve is drawn wider
    assert first.get_marker() != second.get_marker()
