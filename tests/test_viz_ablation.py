"""Notebook 02's ablation figure: the control's interval is the claims' interval over groups x lesions."""
import matplotlib
import numpy as np

matplotlib.use("Agg")

from medxai_lib.evaluate.stats import Draws, bootstrap  # noqa: E402
from medxai_lib.viz.dissection import plot_ablation_effects  # noqa: E402


def test_the_control_bar_carries_the_hierarchical_ci_over_groups_and_lesions():
    rng = np.random.default_rng(0)
    effects = {"border": rng.normal(-0.3, 0.1, 40)}
    random = {"border": rng.normal(0.0, 0.1, (12, 40)) + rng.normal(0, 0.2, (12, 1))}   # groups differ a lot
    fig = plot_ablation_effects(effects, random, seed=3)
    signed = fig.axes[1]
    bars = [c for c in signed.containers if hasattr(c, "has_yerr") and c.has_yerr]
    grey = bars[1].lines[2][0].get_segments()[0]                 # the control's vertical error bar
    expected = bootstrap(Draws(random["border"], over="random unit group"), seed=3)
    assert np.allclose(sorted(grey[:, 1]), [expected.lo, expected.hi])
    images_only = bootstrap(random["border"].mean(0), seed=3)      # the interval the figure used to draw
    assert expected.hi - expected.lo > 2 * (images_only.hi - images_only.lo)
    labels = [t.get_text() for t in signed.get_xticklabels()]
    assert labels == ["border\n(vs non-concept)"]
