"""The taxonomy (notebook 01): tags follow the registry's documented rules, and the facts behind the rules hold
for the code; the tabular Shapley tools, the surrogate comparison, per-unit permutation importance,
counterfactual effects and the signed-map figure."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score
from sklearn.tree import DecisionTreeClassifier

from medxai_lib.data import SkinLesionPhantom
from medxai_lib.evaluate.studies.taxonomy import (counterfactual_change, cue_importance_per_unit,
                                                     importance_summary, permutation_importance_per_unit,
                                                     separation_per_unit)
from medxai_lib.evaluate.studies.taxonomy import EXTRA_COLOURS, compare_surrogates, lesion_cue_features
from medxai_lib.explain import registry
from medxai_lib.explain.registry import (FACTS, METHODS, MethodFacts, attribute, expected_tags, tag_violations,
                                         taxonomy_table)
from medxai_lib.explain.tabular import conditional_linear_shap, kernel_shap, linear_shap
from medxai_lib.models.cnn import AttentionGatedCNN, SkinCNN
from medxai_lib.models.mdnet import MDNet

# ---------------------------------------------------------------- the tags against the rules

FAST = {"lime": {"n_samples": 16, "n_segments": 8}, "rise": {"n_masks": 16}, "occlusion": {"window": 8, "stride": 8},
        "smooth_grad": {"n_samples": 2}, "integrated_gradients": {"n_steps": 4}, "gradient_shap": {"n_samples": 2}}


def test_every_tag_follows_the_documented_rules():
    assert tag_violations() == []
    table = taxonomy_table(include_other=True)
    assert set(table.index) == set(FACTS), "every method in the table needs its facts, and only those"


def test_a_wrong_tag_is_caught():
    table = taxonomy_table(include_other=True)
    for method, axis, wrong in (("permutation_importance", "form", "visualization"),
                                ("unit_ablation", "form", "visualization"), ("pca", "access", "model-agnostic"),
                                ("tsne", "stage", "post-model"), ("mdnet_report", "attribution", True),
                                ("grad_cam", "access", "model-agnostic")):
        broken = table.copy()
        broken.loc[method, axis] = wrong
        assert tag_violations(broken) == [f"{method}: {axis} is {wrong!r}, rules say {expected_tags(FACTS[method])[axis]!r}"]


def test_the_rules_by_hand():
    assert expected_tags(MethodFacts(False, False, False, False, False, "embedding")) == {
        "access": "data only", "stage": "pre-model", "scope": "global", "form": "visualization", "attribution": False}
    assert expected_tags(MethodFacts(True, False, True, True, False, "text")) == {
        "access": "model-specific", "stage": "in-model", "scope": "local", "form": "neither", "attribution": False}
    assert expected_tags(MethodFacts(True, True, False, True, True, "input map"))["form"] == "surrogate"
    assert expected_tags(MethodFacts(True, True, False, False, False, "feature scores"))["attribution"] is True
    with pytest.raises(ValueError, match="output"):
        MethodFacts(True, True, False, True, False, "picture")


def test_the_seed_examples_sit_where_seed_000_puts_them():
    table = taxonomy_table(include_other=True)
    assert table.loc["mdnet_report", ["stage", "attribution"]].tolist() == ["in-model", False]
    assert table.loc["pca", "stage"] == table.loc["tsne", "stage"] == "pre-model"
    assert table.loc["cam", "form"] == "visualization" and table.loc["lime", "form"] == "surrogate"
    assert table.loc["permutation_importance", "form"] == table.loc["unit_ablation", "form"] == "neither"
    assert "data only" not in set(taxonomy_table()["access"])      # notebook 04's table: attribution methods only


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SkinCNN(2, 3, 4).eval(), torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_black_box_fact_and_output_shape_hold_for_each_registered_method(tiny, name):
    """A model-agnostic method runs on a function that hides layers, weights and gradients; a model-specific
    one refuses it. Local methods return one map per image, of the documented kind."""
    model, images = tiny
    facts, layer = FACTS[name], ("features" if METHODS[name].needs_layer else None)
    out = attribute(model, images, name, layer=layer, classes=1, **FAST.get(name, {}))
    assert out.shape[0] == len(images) and facts.per_input
    if facts.output == "input map":
        assert out.ndim == 5 and out.shape[-2:] == images.shape[-2:]
    else:
        assert out.ndim == 4 and out.shape[-1] < images.shape[-1]
    black_box = lambda x: model(x).detach()  # noqa: E731
    if facts.black_box:
        assert attribute(black_box, images, name, classes=1, **FAST.get(name, {})).shape == out.shape
    else:
        with pytest.raises(TypeError, match=rf"^model: method '{name}' is model-specific \(it reads the model's "
                                            r"layers, weights or gradients\), so it needs a torch\.nn\.Module, "
                                            r"got function; .*model-agnostic method \(lime, occlusion, rise\)"):
            attribute(black_box, images, name, layer=layer, classes=1, **FAST.get(name, {}))


def test_lime_fits_a_surrogate_and_occlusion_does_not(tiny):
    """LIME's map is a linear model's coefficients, one per superpixel: constant on each superpixel."""
    from medxai_lib.explain.perturbation import superpixels
    model, images = tiny
    lime_map = attribute(model, images, "lime", classes=1, n_samples=32, n_segments=8)[0, 0, 0]
    segments = torch.as_tensor(superpixels(images[0], 8))
    assert all(len(torch.unique(lime_map[segments == s])) == 1 for s in torch.unique(segments))
    occlusion_map = attribute(model, images, "occlusion", classes=1, window=8, stride=4)[0, 0, 0]
    assert len(torch.unique(occlusion_map)) > len(torch.unique(segments))


def test_in_model_facts_hold():
    torch.manual_seed(0)
    gated, images = AttentionGatedCNN(2, 3, 4).eval(), torch.randn(2, 3, 32, 32)
    logits, attention = gated.attend(images)
    assert torch.allclose(gated(images), logits) and torch.equal(gated.last_attention, attention.detach())
    mdnet = MDNet(vocab_size=12, num_classes=4, width=4).eval()
    tokens, word_attention = mdnet.generate(torch.randn(2, 3, 64, 64), bos=1, eos=2, max_len=4)
    assert len(tokens) == 2 and len(word_attention) == 2 and FACTS["mdnet_report"].per_input


def test_pre_model_methods_take_no_model():
    """The methods whose facts say ``takes_model=False`` (hence "data only", "pre-model") are exactly the
    projections, and the code the registry names for them is built and run from the data alone: no
    parameter of the constructor or of ``fit_transform`` takes a model, and it returns one 2-D embedding
    of the whole data set (one row per sample: the fact ``output="embedding"``, ``per_input=False``).
    Every registered attribution method, by contrast, takes the model first."""
    pre_model = sorted(name for name, facts in FACTS.items() if not facts.takes_model)
    assert pre_model == ["pca", "tsne"]
    table, code = taxonomy_table(include_other=True), registry._other_techniques()
    data = np.random.default_rng(0).normal(size=(30, 5))
    data[:15] += 4.0                                                  # two clusters
    for name in pre_model:
        assert FACTS[name].output == "embedding" and not FACTS[name].per_input
        assert table.loc[name, ["access", "stage", "scope"]].tolist() == ["data only", "pre-model", "global"]
        fn = code[name].fn
        for signature in (inspect.signature(fn), inspect.signature(fn.fit_transform)):
            assert not {"model", "estimator", "predict", "f"} & set(signature.parameters), (name, signature)
        assert code[name].output == "2-D embedding of the data"
        options = {"perplexity": 5.0, "random_state": 0} if name == "tsne" else {}
        projection = fn(n_components=2, **options).fit_transform(data)
        assert projection.shape == (30, 2) and np.isfinite(projection).all()
        centres = projection[:15].mean(0), projection[15:].mean(0)   # the embedding keeps the data's structure
        assert np.linalg.norm(centres[0] - centres[1]) > projection[:15].std(0).max()
    for name, info in METHODS.items():
        assert next(iter(inspect.signature(info.fn).parameters)) == "model", name


def test_black_box_facts_of_the_tabular_methods():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    f = lambda A: np.stack([1 / (1 + np.exp(A[:, 0])), 1 / (1 + np.exp(-A[:, 0]))], 1)  # noqa: E731  numpy only
    assert kernel_shap(f, X[:2], X.mean(0), n_samples=50).shape == (2, 3)

    from sklearn.base import BaseEstimator

    class OnlyPredicts(BaseEstimator):        # an "estimator" that exposes nothing but its outputs
        def fit(self, *_):
            return self

        def predict(self, A):
            return (A[:, 0] > 0).astype(int)

    y = (X[:, 0] > 0).astype(int)
    result = permutation_importance(OnlyPredicts(), X, y, scoring="accuracy", n_repeats=3, random_state=0)
    assert result.importances_mean[0] > 0.2 and np.allclose(result.importances_mean[1:], 0)

# ---------------------------------------------------------------- Shapley values of linear models


def test_linear_shap_by_hand_and_errors():
    assert np.allclose(linear_shap([2.0, -1.0], [[3.0, 1.0]], [1.0, 1.0]), [[4.0, 0.0]])
    with pytest.raises(ValueError, match="coef"):
        linear_shap([1.0], [[1.0, 2.0]], [0.0, 0.0])


def test_kernel_shap_on_logistic_log_odds_is_the_closed_form_and_not_on_the_probability():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4))            # correlated features
    y = (X @ [1.0, -2.0, 0.5, 0.0] + rng.normal(size=200) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    background, rows = X.mean(0), X[:3]
    log_odds = lambda A: np.stack([-model.decision_function(A), model.decision_function(A)], 1)  # noqa: E731
    closed = linear_shap(model.coef_[0], rows, background)
    assert np.allclose(kernel_shap(log_odds, rows, background, n_samples=100), closed, atol=1e-3 * np.abs(closed).max())
    probability = kernel_shap(lambda A: model.predict_proba(A)[:, ::-1], rows, background, target=1, n_samples=100)
    assert np.abs(probability - closed).max() > 0.1 * np.abs(closed).max()


def test_conditional_shap_by_hand_two_correlated_features():
    """f = x1, x = (1, 1), unit variances, correlation rho: v({}) = 0, v({1}) = 1, v({2}) = rho, v({1,2}) = 1,
    so phi = (1 - rho/2, rho/2): the unused but correlated feature 2 gets credit."""
    rho = 0.8
    phi = conditional_linear_shap([1.0, 0.0], [[1.0, 1.0]], [0.0, 0.0], [[1.0, rho], [rho, 1.0]])
    assert np.allclose(phi, [[1 - rho / 2, rho / 2]])


def test_conditional_shap_is_the_closed_form_for_independent_features_and_efficient_otherwise():
    rng = np.random.default_rng(0)
    coef, mean, X = rng.normal(size=5), rng.normal(size=5), rng.normal(size=(4, 5))
    diagonal = np.diag(rng.uniform(0.5, 2.0, 5))
    assert np.allclose(conditional_linear_shap(coef, X, mean, diagonal), linear_shap(coef, X, mean), atol=1e-12)
    A = rng.normal(size=(5, 5))
    correlated = A @ A.T + 0.1 * np.eye(5)
    phi = conditional_linear_shap(coef, X, mean, correlated)
    assert np.allclose(phi.sum(1), (X - mean) @ coef)                      # efficiency: sums to f(x) - E f
    assert np.abs(phi - linear_shap(coef, X, mean)).max() > 0.05


def test_conditional_shap_rejects_bad_input():
    with pytest.raises(ValueError, match="cov"):
        conditional_linear_shap([1.0, 0.0], [[1.0, 1.0]], [0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="F <= 14"):
        conditional_linear_shap(np.ones(15), np.ones((1, 15)), np.zeros(15), np.eye(15))
    with pytest.raises(ValueError, match="coef, X, mean, cov"):
        conditional_linear_shap([1.0], [[1.0, 1.0]], [0.0, 0.0], np.eye(2))

# ---------------------------------------------------------------- surrogates


def _black_box_with_an_error_pocket(n=600, seed=0):
    """Labels follow x0 > 0; the black box agrees except where x1 > 1 (an error pocket a surrogate can find)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    labels = (X[:, 0] > 0).astype(int)
    black_box = np.where(X[:, 1] > 1.0, 1 - labels, labels)
    return X, black_box, labels


def test_a_distilled_surrogate_reproduces_the_black_box_errors_and_a_label_twin_does_not():
    X, black_box, labels = _black_box_with_an_error_pocket()
    result = compare_surrogates(X, black_box, labels, {"tree": DecisionTreeClassifier(max_depth=4, random_state=0)})["tree"]
    assert np.array_equal(result.errors, black_box != labels) and result.errors.sum() > 50
    on_errors = result.fidelity(on_errors=True)
    assert on_errors[0] > 0.8 and on_errors[1] < 0.1
    overall = result.fidelity()
    assert overall[0] > overall[1] and overall[1] == pytest.approx(1 - result.errors.mean(), abs=0.05)
    assert result.model.predict(X).shape == (len(X),)


def test_compare_surrogates_spreads_a_rare_kind_of_error_without_a_warning():
    """Three false positives only: too few for 5 (decision x label) strata, so the folds are stratified on the
    errors instead (sklearn would warn); every error is still predicted out of fold."""
    import warnings
    X, _, labels = _black_box_with_an_error_pocket(300)
    black_box = labels.copy()
    black_box[np.flatnonzero(labels == 0)[:3]] = 1                      # 3 false positives
    black_box[np.flatnonzero(labels == 1)[:20]] = 0                     # 20 false negatives
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare_surrogates(X, black_box, labels, {"tree": DecisionTreeClassifier(max_depth=2, random_state=0)})
    assert result["tree"].errors.sum() == 23 and result["tree"].distilled_agrees.shape == (300,)


def test_compare_surrogates_rejects_bad_input():
    X, black_box, labels = _black_box_with_an_error_pocket(60)
    with pytest.raises(ValueError, match="black_box, labels"):
        compare_surrogates(X, black_box[:-1], labels, {"t": DecisionTreeClassifier()})
    with pytest.raises(ValueError, match="features"):
        compare_surrogates(X[:, 0], black_box, labels, {"t": DecisionTreeClassifier()})
    with pytest.raises(ValueError, match="learners"):
        compare_surrogates(X, black_box, labels, {})


def test_lesion_cue_features_follow_the_specs():
    ds = SkinLesionPhantom(12, size=32, seed=3)
    table = lesion_cue_features(ds)
    assert len(table) == len(ds) and table.shape[1] == 14
    for row, spec in zip(table.itertuples(), ds.specs):
        assert [getattr(row, f"has_{c}") for c in EXTRA_COLOURS] == [float(c in spec.colours) for c in EXTRA_COLOURS]
        assert row.n_colours == len(spec.colours) + 1 and row.radius == spec.radius
    with pytest.raises(TypeError, match="dataset"):
        lesion_cue_features([1, 2, 3])

# ---------------------------------------------------------------- permutation importance, counterfactuals, separation


def test_separation_per_unit_averages_to_the_silhouette():
    rng = np.random.default_rng(0)
    z, labels = rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
    z[labels == 1] += 2.0
    assert separation_per_unit(z, labels).mean() == pytest.approx(silhouette_score(z, labels))
    with pytest.raises(ValueError, match="two groups"):
        separation_per_unit(z, np.zeros(50))


def test_permutation_importance_per_unit_finds_the_used_feature_only():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X[:, :1], y)
    predict = lambda A: model.predict_proba(A[:, :1])  # noqa: E731  ignores features 1 and 2
    per_unit = permutation_importance_per_unit(predict, X, y, n_repeats=5, seed=0)
    assert per_unit.shape == X.shape and per_unit[:, 0].mean() > 0.3
    assert np.all(per_unit[:, 1:] == 0)
    summary = importance_summary(per_unit, np.zeros_like(per_unit), ["used", "a", "b"])
    assert summary.loc["used", "rank"] == "1" and summary.loc["a", "rank"] == summary.loc["b", "rank"] == ""
    with pytest.raises(ValueError, match="n_repeats"):
        permutation_importance_per_unit(predict, X, y, n_repeats=0)


def test_importance_summary_ranks_nothing_inside_the_noise():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, size=(100, 2))
    summary = importance_summary(noise, rng.normal(0, 1, size=(100, 2)), ["x", "y"])
    assert (summary["rank"] == "").all()
    lo, hi = summary.loc["x", ["CI low", "CI high"]]
    assert lo < summary.loc["x", "importance"] < hi
    with pytest.raises(ValueError, match="names"):
        importance_summary(noise, noise, ["x"])


class _CountsDarkPixels(torch.nn.Module):
    """'Malignant' = many very dark pixels (hair and black), on un-normalised images."""

    def forward(self, x):
        dark = (x.mean(1) < 0.25).float().mean((1, 2))
        return torch.stack([-dark, dark], 1) * 50


def test_cue_importance_and_counterfactuals_see_what_the_model_uses():
    ds = SkinLesionPhantom(30, size=32, seed=0, normalize=False)
    per_unit = cue_importance_per_unit(_CountsDarkPixels(), ds, ["n_hairs", "ruler"], n_repeats=2, device="cpu")
    assert set(per_unit) == {"accuracy drop", "null drop", "|change of P|"}
    assert all(v.shape == (30, 2) for v in per_unit.values())
    assert per_unit["|change of P|"][:, 0].mean() > per_unit["|change of P|"][:, 1].mean()
    delta = counterfactual_change(_CountsDarkPixels(), ds, {"hairy": {"n_hairs": 8}, "bald": {"n_hairs": 0}}, device="cpu")
    assert delta["hairy"].mean() > 0 > delta["bald"].mean() and delta["original"].shape == (30,)
    with pytest.raises(ValueError, match="target"):
        counterfactual_change(_CountsDarkPixels(), ds, {}, target=5, device="cpu")
    with pytest.raises(TypeError, match="dataset"):
        counterfactual_change(_CountsDarkPixels(), [ds[0]], {}, device="cpu")
    with pytest.raises(ValueError, match="n_repeats"):
        cue_importance_per_unit(_CountsDarkPixels(), ds, ["n_hairs"], n_repeats=0, device="cpu")

# ---------------------------------------------------------------- signed maps


def test_signed_maps_are_centred_on_zero_with_a_shared_or_own_scale():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from medxai_lib.viz.signed import plot_signed_maps
    images = torch.rand(2, 3, 32, 32)
    columns = {"small": torch.randn(2, 1, 8, 8) * 0.1, "large": torch.randn(2, 1, 1, 32, 32) * 10}
    for shared in (True, False):
        fig = plot_signed_maps(images, columns, shared=shared, normalized_images=False)
        limits = [ax.images[-1].get_clim() for ax in fig.axes if ax.images and len(ax.images) == 2]
        assert len(limits) == 4 and all(lo == -hi and hi > 0 for lo, hi in limits)
        assert (len({hi for _, hi in limits}) == 1) == shared
        plt.close(fig)
    with pytest.raises(ValueError, match="columns"):
        plot_signed_maps(images, {"bad": torch.randn(3, 1, 8, 8)})


def test_permuted_label_null_averages_refits_and_shrinks_towards_zero():
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from medxai_lib.evaluate.studies.taxonomy import permuted_label_null
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression()
    one = permuted_label_null(model, X[:120], y[:120], X[120:], y[120:], n_refits=1, n_repeats=3, seed=5)
    single = clone(model).fit(X[:120], np.random.default_rng(5).permutation(y[:120]))
    assert np.allclose(one, permutation_importance_per_unit(single.predict_proba, X[120:], y[120:], 3, seed=5))
    many = permuted_label_null(model, X[:120], y[:120], X[120:], y[120:], n_refits=20, n_repeats=3, seed=5)
    real = permutation_importance_per_unit(clone(model).fit(X[:120], y[:120]).predict_proba, X[120:], y[120:], 3, seed=5)
    assert many.shape == (80, 4) and np.abs(many.mean(0)).max() < real.mean(0)[0] / 5
    with pytest.raises(ValueError, match="n_refits"):
        permuted_label_null(model, X, y, X, y, n_refits=0)
