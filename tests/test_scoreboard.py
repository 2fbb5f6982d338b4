"""The notebook-04 scoreboard: baseline maps, batched deletion/insertion, bootstrap cells, ranks with
ties, one view per study, and the randomisation test's handling of collapsed maps."""
import numpy as np
import pytest
import torch
from torch import nn

from medxai_lib.evaluate.metrics.baselines import DARK_IMAGE, baseline_maps, centre_prior, intensity_maps, random_maps, sobel_maps
from medxai_lib.evaluate.metrics.faithfulness import deletion_insertion, deletion_insertion_many
from medxai_lib.evaluate.metrics.sanity import collapsed, randomisation_test, similarity_or_nan
from medxai_lib.evaluate.studies.scoreboard import (MapScores, by_group, formatted, one_view_per_study,
                                            ranks, score_maps, scoreboard)
from medxai_lib.evaluate.stats import format_ci
from medxai_lib.explain import grad_cam, guided_backprop

from helpers import phantom_images, textured_densenet


# ---- baselines ------------------------------------------------------------------------------------

def test_sobel_of_a_step_edge_peaks_on_the_edge_and_is_zero_on_flat_parts():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:] = 1.0                                   # a vertical step between columns 3 and 4
    edges = sobel_maps(x, smooth=0)
    assert edges.shape == (1, 8, 8)
    assert torch.allclose(edges[0, :, 3], torch.full((8,), 4.0)) and torch.allclose(edges[0, :, 4], torch.full((8,), 4.0))
    assert edges[0, :, :2].abs().max() == 0 and edges[0, :, 6:].abs().max() == 0
    rgb = sobel_maps(x.repeat(1, 3, 1, 1), smooth=0)    # channels are summed
    assert torch.allclose(rgb, 3 * edges)
    smooth = sobel_maps(x, smooth=1.0)
    assert smooth[0, :, 2].min() > 0 and smooth.sum().item() == pytest.approx(edges.sum().item(), rel=1e-3)
    with pytest.raises(ValueError, match="images"):
        sobel_maps(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="smooth"):
        sobel_maps(x, smooth=-1)


def test_centre_prior_and_random_maps():
    prior = centre_prior(2, (9, 9), sigma=0.2)
    assert prior.shape == (2, 9, 9) and torch.equal(prior[0], prior[1])
    assert prior[0].argmax().item() == 4 * 9 + 4 and prior[0, 4, 4] == pytest.approx(1.0)
    assert torch.allclose(prior[0], prior[0].T) and prior[0, 0, 0] < prior[0, 2, 2]
    a, b = random_maps(3, (5, 5), seed=1), random_maps(3, (5, 5), seed=1)
    assert torch.equal(a, b) and not torch.equal(a, random_maps(3, (5, 5), seed=2))
    with pytest.raises(ValueError, match="sigma"):
        centre_prior(1, (4, 4), sigma=0)
    assert set(baseline_maps(torch.zeros(2, 1, 6, 6))) == {"random", "centre prior", "Sobel edges", "the image"}


def test_the_image_as_a_map_is_its_channel_mean_bright_or_dark():
    x = torch.tensor([[[[1.0, -1.0]], [[3.0, 1.0]]]])                     # (1, 2, 1, 2): channel means 2, 0
    assert torch.equal(intensity_maps(x), torch.tensor([[[2.0, 0.0]]]))
    assert torch.equal(baseline_maps(x, dark=True)[DARK_IMAGE], torch.tensor([[[-2.0, -0.0]]]))
    assert "the image" not in baseline_maps(x, dark=True)
    with pytest.raises(ValueError, match="images"):
        intensity_maps(torch.zeros(2, 6, 6))
    with pytest.raises(TypeError, match="dark"):
        intensity_maps(x, dark=1)


# ---- batched deletion / insertion -----------------------------------------------------------------

def test_deletion_insertion_many_equals_the_per_map_curves_and_shares_identical_orders():
    model, x = textured_densenet(3), phantom_images(3, size=48)
    g = torch.Generator().manual_seed(0)
    maps = {"a": torch.rand(3, 48, 48, generator=g), "b": torch.rand(3, 48, 48, generator=g)}
    maps["a rescaled"] = 3 * maps["a"] + 1              # the same pixel order as "a"
    targets = torch.tensor([0, 2, 1])
    out = deletion_insertion_many(model, x, maps, targets, n_steps=7, batch_size=10)
    for name, m in maps.items():
        deletion, _ = deletion_insertion(model, x, m, targets, "deletion", 7)
        insertion, _ = deletion_insertion(model, x, m, targets, "insertion", 7)
        assert torch.allclose(out[name][0], deletion, atol=1e-6) and torch.allclose(out[name][1], insertion, atol=1e-6)
    assert torch.equal(out["a"][0], out["a rescaled"][0])
    assert not torch.allclose(out["a"][0], out["b"][0])
    with pytest.raises(ValueError, match="maps\\['a'\\]"):
        deletion_insertion_many(model, x, {"a": maps["a"][:2]}, targets)
    with pytest.raises(ValueError, match="NaN"):
        deletion_insertion_many(model, x, {"a": maps["a"] * float("nan")}, targets)
    with pytest.raises(TypeError, match="targets"):
        deletion_insertion_many(model, x, maps, targets.float())


# ---- the scoreboard -------------------------------------------------------------------------------

class _LooksAtTopLeft(nn.Module):
    """One logit = the mean brightness of the top-left 4x4 corner."""

    def forward(self, x):
        return x[..., :4, :4].mean((1, 2, 3))[:, None] * 4


def test_score_maps_rewards_the_map_that_marks_the_evidence():
    images = torch.ones(4, 1, 12, 12)
    masks = torch.zeros(4, 1, 12, 12)
    masks[..., :4, :4] = 1
    good = masks[:, 0] + 0.01 * torch.rand(4, 12, 12, generator=torch.Generator().manual_seed(0))
    bad = 1 - good
    scores = score_maps(_LooksAtTopLeft(), images, masks, torch.zeros(4, dtype=torch.long),
                        {"good": good, "bad": bad}, n_steps=6, insertion_baseline=0.0)
    assert scores.methods == ["good", "bad"]
    for metric in ("pointing game", "energy in mask", "AUPRC"):
        assert (scores.column(metric, "good") > scores.column(metric, "bad")).all(), metric
    assert scores.column("pointing game", "good").tolist() == [1.0] * 4
    assert scores.column("top-k IoU", "good").tolist() == [7 / 16] * 4     # top 5% = 7 of 144 px, mask 16 px
    assert (scores.column("deletion AUC", "good") < scores.column("deletion AUC", "bad")).all()
    assert (scores.column("insertion AUC", "good") > scores.column("insertion AUC", "bad")).all()
    assert scores.curves["good"][0].shape == (4, 7)
    with pytest.raises(ValueError, match="non-empty evidence mask"):
        score_maps(_LooksAtTopLeft(), images, torch.zeros_like(masks), torch.zeros(4, dtype=torch.long), {"good": good})


def _scores(columns, metric="energy in mask"):
    names = list(columns)
    return MapScores(names, {metric: np.stack([columns[n] for n in names], 1)})


def test_ranks_tie_methods_whose_difference_ci_includes_zero():
    rng = np.random.default_rng(0)
    base = rng.normal(size=80)
    scores = _scores({"best": base + 1.0, "twin": base + 1.0 + rng.normal(0, 0.3, 80),
                      "middle": base + 0.5 + rng.normal(0, 0.05, 80), "worst": base - 1.0})
    r = ranks(scores, ["energy in mask"], n_boot=500)["energy in mask"]
    assert r.to_dict() == {"best": 1, "twin": 1, "middle": 3, "worst": 4}
    # a constant gap on paired data is significant however small
    paired = _scores({"a": base + 0.001, "b": base})
    assert ranks(paired, ["energy in mask"], n_boot=300)["energy in mask"].tolist() == [1, 2]
    lower = MapScores(["x", "y"], {"deletion AUC": np.stack([np.full(30, 0.2), np.full(30, 0.6)], 1)
                                   + rng.normal(0, 0.01, (30, 2))})
    assert ranks(lower, ["deletion AUC"], n_boot=300)["deletion AUC"].tolist() == [1, 2]   # lower is better
    with pytest.raises(ValueError, match="direction"):
        ranks(scores, ["sparseness"])


def test_scoreboard_cells_and_groups():
    rng = np.random.default_rng(1)
    scores = _scores({"m": rng.normal(0.5, 0.1, 60), "n": rng.normal(0.2, 0.1, 60)})
    board = scoreboard(scores, ["energy in mask"], n_boot=500)
    mean, lo, hi = board.loc["m", ("energy in mask", "mean")], board.loc["m", ("energy in mask", "lo")], \
        board.loc["m", ("energy in mask", "hi")]
    assert lo < mean < hi and hi - lo < 0.1
    text = formatted(board)
    assert text.loc["m", "energy in mask"] == format_ci(mean, lo, hi)
    groups = ["a"] * 20 + ["b"] * 40
    table = by_group(scores, groups, "energy in mask", n_boot=300)
    assert list(table.columns) == ["a (n=20)", "b (n=40)", "all (n=60)"]
    with pytest.raises(ValueError, match="groups"):
        by_group(scores, groups[:10], "energy in mask")


def test_one_view_per_study_takes_first_views_of_each_kind():
    studies = ["p1/s1", "p1/s1", "p2/s1", "p3/s1", "p4/s1", "p5/s1", "p5/s1", "p6/s1"]
    labels = [1, 1, 0, 1, 1, 1, 1, 1]
    kinds = ["lytic", "lytic", "normal", "fracture", "lytic", "fracture", "fracture", "hardware"]
    assert one_view_per_study(studies, labels, kinds, 1) == [3, 7, 0]
    with pytest.raises(ValueError, match="per_kind"):
        one_view_per_study(studies, labels, kinds, 2)          # only one hardware study
    with pytest.raises(ValueError, match="lengths"):
        one_view_per_study(studies, labels[:3], kinds, 1)


# ---- sanity: collapsed maps -----------------------------------------------------------------------

def test_collapsed_maps_have_no_similarity():
    a = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    b = a.clone()
    b[1] = 0.0                                           # collapsed
    b[2] = 2 * a[2] + 1
    assert collapsed(b).tolist() == [False, True, False]
    rho, ssim = similarity_or_nan(a, b)
    assert rho[0] == pytest.approx(1.0) and rho[2] == pytest.approx(1.0) and ssim[0] == pytest.approx(1.0)
    assert np.isnan(rho[1]) and np.isnan(ssim[1])
    from scipy.stats import spearmanr
    c = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    rho, _ = similarity_or_nan(a, c)
    assert rho == pytest.approx([spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a.numpy(), c.numpy())])


def test_randomisation_test_separates_grad_cam_from_guided_backprop_and_leaves_the_model_alone():
    model = textured_densenet(2)
    x = phantom_images(4, size=48)
    size = x.shape[-2:]
    explainers = {
        "grad_cam": lambda m, inp: torch.nn.functional.interpolate(grad_cam(m, inp, "features", 0), size=size,
                                                                   mode="bilinear")[:, 0],
        "guided_backprop": lambda m, inp: guided_backprop(m, inp, 0)[:, 0, 0]}
    before = [p.clone() for p in model.parameters()]
    result = randomisation_test(model, x, explainers, seed=0)
    assert result.steps[0] == "trained" and result.steps[1] == "classifier" and len(result.steps) > 5
    assert np.allclose(result.spearman["guided_backprop"][0], 1.0)
    final_gb = result.final("guided_backprop")
    final_gc = result.final("grad_cam", collapsed_as=0.0)
    assert not result.reference_collapsed["grad_cam"].any()
    assert np.isfinite(final_gc).all() and np.nanmean(final_gb) > np.mean(final_gc) + 0.2
    assert np.isnan(result.final("grad_cam")[result.collapsed["grad_cam"][-1]]).all()
    table = result.table()
    assert set(table.columns) >= {"method", "randomised", "spearman", "ssim", "collapsed"}
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    independent = randomisation_test(model, x, explainers, order=["classifier", "features.denseblock1"],
                                     mode="independent")
    assert independent.steps == ["trained", "classifier", "features.denseblock1"]
    with pytest.raises(ValueError, match="mode"):
        randomisation_test(model, x, explainers, mode="sideways")
    with pytest.raises(ValueError, match="order"):
        randomisation_test(model, x, explainers, order=["features.nothing"])


# ---- computing maps once, caching results -------------------------------------------------------------

def test_compute_maps_matches_attribute_and_cached_computes_once(tmp_path, monkeypatch):
    from medxai_lib.evaluate.studies.scoreboard import compute_maps
    from medxai_lib.runtime import cached, tensor_digest
    from medxai_lib.explain import as_heatmap, attribute
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path))
    model, x = textured_densenet(2), phantom_images(2, size=32)
    targets = torch.tensor([0, 1])
    maps, seconds = compute_maps(model, x, targets, {"grad_cam": {"layer": "features"}, "saliency": {}})
    expected = as_heatmap(attribute(model, x, "saliency", classes=targets), (32, 32))[:, 0]
    assert torch.allclose(maps["saliency"], expected) and maps["grad_cam"].shape == (2, 32, 32)
    assert set(seconds) == {"grad_cam", "saliency"} and all(s >= 0 for s in seconds.values())
    one_by_one, _ = compute_maps(model, x, targets, {"grad_cam": {"layer": "features"}}, batch_size=1)
    assert torch.allclose(one_by_one["grad_cam"], maps["grad_cam"], atol=1e-6)       # batching changes nothing
    with pytest.raises(ValueError, match="batch_size"):
        compute_maps(model, x, targets, {"saliency": {}}, batch_size=0)
    with pytest.raises(ValueError, match="unknown"):
        compute_maps(model, x, targets, {"gradcam": {}})
    calls = []
    key = {"images": tensor_digest(x), "n": 1}
    first, hit1 = cached("demo", key, lambda: calls.append(1) or {"value": 3})
    second, hit2 = cached("demo", key, lambda: calls.append(1) or {"value": 4})
    assert (first, hit1, second, hit2, len(calls)) == ({"value": 3}, False, {"value": 3}, True, 1)
    other, hit3 = cached("demo", {**key, "n": 2}, lambda: {"value": 5})
    assert (other, hit3) == ({"value": 5}, False)
    assert tensor_digest(x) != tensor_digest(x + 1e-3)
    with pytest.raises(ValueError, match="name"):
        cached("no spaces please", key, dict)
