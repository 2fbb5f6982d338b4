"""Network dissection on a hand-built case, angular coverage, unit ablation, global explanations."""
import numpy as np
import pytest
import torch

from medxai_lib.evaluate.studies.dissection import NetworkDissection, angular_coverage, layer_activations
from medxai_lib.evaluate.studies.taxonomy import embedding_separation
from medxai_lib.explain import taxonomy_table
from medxai_lib.explain.ablation import ablate_units, ablation_effect, random_units
from medxai_lib.explain.tabular import kernel_shap
from medxai_lib.models.cnn import AttentionGatedCNN, SkinCNN


def test_dissection_iou_hand_case():
    # 2 images, 2 units on a 4x4 grid, concept masks at the same resolution
    acts = torch.zeros(2, 2, 4, 4)
    acts[:, 0, :2, :2] = 1.0           # unit 0 fires on the top-left quadrant
    acts[:, 1, 2:, :] = 1.0            # unit 1 fires on the bottom half
    acts += torch.arange(16.0).view(1, 1, 4, 4) * 1e-4   # break ties deterministically
    concepts = torch.zeros(2, 2, 4, 4)
    concepts[:, 0, :2, :2] = 1         # concept A = top-left quadrant
    concepts[:, 1, :, 2:] = 1          # concept B = right half
    d = NetworkDissection(quantile=0.25, min_iou=0.3).fit(acts, concepts, ["A", "B"])
    # unit 0: top 25% of its 32 values are exactly its 8 firing pixels (> threshold) -> 4 per image
    # (the threshold sits at the 75th percentile, so the 4 largest per image exceed it)
    fired0 = (acts[:, 0] > d.thresholds_[0])
    inter = (fired0 & (concepts[:, 0] > 0)).sum().item()
    union = (fired0 | (concepts[:, 0] > 0)).sum().item()
    assert d.iou_[0, 0].item() == pytest.approx(inter / union)
    assert d.iou_[0, 0] > d.iou_[0, 1] and d.ranked("A")[0] == 0
    # both images have the same masks, so masks shuffled across images score as well: no detector
    assert d.null_threshold_[0] == pytest.approx(float(d.iou_[0, 0])) and d.units_for("A") == []
    fired1 = acts[:, 1] > d.thresholds_[1]
    inter = (fired1 & (concepts[:, 1] > 0)).sum().item()
    union = (fired1 | (concepts[:, 1] > 0)).sum().item()
    assert d.iou_[1, 1].item() == pytest.approx(inter / union)
    assert d.best_concept()[0][1] == "A" and list(d.table().columns) == ["A", "B"]
    with pytest.raises(ValueError, match="quantile"):
        NetworkDissection(quantile=1.5)
    with pytest.raises(ValueError, match="concept_names"):
        NetworkDissection().fit(acts, concepts, ["A"])


def test_angular_coverage_hand_case():
    size = 16
    border = torch.zeros(1, 1, size, size)
    border[0, 0, 7:9, :] = 1                       # a horizontal band through the centre
    acts = torch.zeros(1, 2, size, size)
    acts[0, 0, :, 12:] = 1                         # unit 0: east side
    acts[0, 1, :, :4] = 1                          # unit 1: west side
    cov = angular_coverage(acts, torch.tensor([0.5, 0.5]), border, torch.tensor([[0.5, 0.5]]), [0, 1], n_sectors=4)
    # sectors of 90 degrees starting at -180 (west): 0 = W..N, 1 = N..E, 2 = E..S, 3 = S..W
    assert torch.allclose(cov.sum(1), torch.ones(2))
    assert set(cov[0].nonzero().flatten().tolist()) <= {1, 2} and set(cov[1].nonzero().flatten().tolist()) <= {0, 3}


def test_ablation_is_temporary_and_changes_the_output():
    torch.manual_seed(0)
    model = SkinCNN(2, width=4).eval()
    x = torch.randn(3, 3, 32, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        clean = model(x)
        with ablate_units(model, "features.conv2", [0, 1, 2]):
            ablated = model(x)
            acts = layer_activations(model, x, "features.conv2")
        after = model(x)
    assert (acts[:, :3] == 0).all() and not torch.allclose(clean, ablated)
    assert torch.equal(clean, after)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.features.conv2._forward_hooks
    effect = ablation_effect(model, x, "features.conv2", [0, 1], target=1)
    assert effect.shape == (3,)
    with pytest.raises(ValueError, match="units"):
        with torch.no_grad(), ablate_units(model, "features.conv1", [99]):
            model(x)
    assert not model.features.conv1._forward_hooks  # removed even after the error
    assert len(random_units(10, 3, exclude=[0, 1], seed=0)) == 3
    with pytest.raises(ValueError, match="count"):
        random_units(4, 3, exclude=[0, 1])


def test_attention_model_attention_sums_to_one():
    model = AttentionGatedCNN(2, width=4).eval()
    logits, attention = model.attend(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 2) and attention.shape == (2, 1, 4, 4)
    assert torch.allclose(attention.sum((1, 2, 3)), torch.ones(2), atol=1e-6)
    model(torch.randn(2, 3, 32, 32))
    assert model.last_attention.shape == (2, 1, 4, 4)


def test_global_explanation_helpers():
    rng = np.random.default_rng(0)
    z = np.r_[rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))]
    labels = np.r_[np.zeros(20), np.ones(20)]
    assert embedding_separation(z, labels) > 0.9
    assert abs(embedding_separation(z, rng.integers(0, 2, 40))) < 0.2
    with pytest.raises(ValueError, match="two groups"):
        embedding_separation(z, np.zeros(40))


def test_kernel_shap_on_a_linear_function():
    weights = np.array([1.0, -2.0, 0.0])
    predict = lambda X: np.stack([1 - X @ weights, X @ weights], 1)  # noqa: E731
    X = np.array([[1.0, 1.0, 1.0]])
    attr = kernel_shap(predict, X, np.zeros(3), target=1, n_samples=200)
    assert np.allclose(attr[0], weights, atol=1e-3)
    with pytest.raises(ValueError, match="background"):
        kernel_shap(predict, X, np.zeros(2))


def test_taxonomy_table_covers_every_axis():
    table = taxonomy_table(include_other=True)
    assert set(table["stage"]) == {"pre-model", "in-model", "post-model"}
    assert set(table["scope"]) == {"local", "global"} and set(table["form"]) == {"surrogate", "visualization", "neither"}
    assert set(table["attribution"]) == {True, False}
    assert table.loc["attention_gate", "stage"] == "in-model" and not table.loc["attention_gate", "attribution"]
    assert len(taxonomy_table()) < len(table)


# ---- mean ablation and every control group ---------------------------------------------------------
def _small_skin_net():
    torch.manual_seed(0)
    return SkinCNN(2, 3, 8).eval(), torch.rand(6, 3, 32, 32)


def test_mean_ablation_writes_each_unit_its_own_mean_and_leaves_the_others():
    net, x = _small_skin_net()
    means = layer_activations(net, x, "features.conv2").mean((0, 2, 3))
    seen = {}
    handle = net.features.conv3.register_forward_pre_hook(lambda m, i: seen.update(input=i[0].detach().clone()))
    with ablate_units(net, "features.conv2", [1, 4], value=means), torch.no_grad():
        net(x)
    handle.remove()
    plain = layer_activations(net, x, "features.conv2")
    pooled = torch.nn.functional.max_pool2d(plain, 2)          # conv3 sees pool2(conv2)
    got = seen["input"]
    assert torch.allclose(got[:, [1, 4]], means[[1, 4]].view(1, 2, 1, 1).expand_as(got[:, [1, 4]]))
    keep = [k for k in range(plain.shape[1]) if k not in (1, 4)]
    assert torch.allclose(got[:, keep], pooled[:, keep], atol=1e-6)
    with pytest.raises(ValueError, match="per-channel values"):
        with ablate_units(net, "features.conv2", [1], value=means[:3]), torch.no_grad():
            net(x)


def test_unit_groups_enumerates_when_few_and_samples_distinct_groups_when_many():
    from math import comb

    from medxai_lib.explain.ablation import unit_groups
    every = unit_groups(10, 3, 200, exclude=[0, 1, 2])          # 7 units left: C(7, 3) = 35 groups, all of them
    assert len(every) == comb(7, 3) and len({tuple(g) for g in every}) == 35
    assert all(set(g).isdisjoint({0, 1, 2}) for g in every)
    sampled = unit_groups(30, 3, 200, seed=1)                    # C(30, 3) = 4060 > 200: a sample
    assert len(sampled) == 200 == len({tuple(g) for g in sampled})
    assert sampled == unit_groups(30, 3, 200, seed=1) != unit_groups(30, 3, 200, seed=2)
    with pytest.raises(ValueError, match="count"):
        unit_groups(5, 4, 10, exclude=[0, 1])


def test_every_group_control_has_one_row_per_group():
    net, x = _small_skin_net()
    from medxai_lib.explain.ablation import ablate_groups_vs_random
    result = ablate_groups_vs_random(net, x, "features.conv2", {"a": [0, 1]}, 16, exclude=list(range(10)), n_draws=50,
                                     target=1, every_group=True)
    assert result.random["a"].shape == (15, 6) and len(result.draws["a"]) == 15       # C(6, 2) = 15


def test_weakest_side_preference_and_best_single_unit_by_hand():
    from medxai_lib.evaluate.studies.dissection import best_single_unit, side_preference
    recall = torch.zeros(2, 4, 8)
    recall[0, :, 0] = 0.9                  # unit 0: strongly west
    recall[1, :, 2], recall[1, :, 6] = 0.4, 0.3    # unit 1: weakly prefers sector 2 over its opposite 6
    recall[1, :, 3] = 0.25
    select = torch.tensor([True, True, False, False])
    pref, opp, sectors = side_preference(recall, select, reduce="weakest")
    assert sectors == [0, 2] and np.allclose(pref, 0.4) and np.allclose(opp, 0.3)
    mean_pref, mean_opp, _ = side_preference(recall, select)
    assert np.allclose(mean_pref, 0.65) and np.allclose(mean_opp, 0.15)
    assert best_single_unit(recall, select, share=0.2) == 1       # 3 sectors >= 0.2 beat unit 0's one
    with pytest.raises(ValueError, match="reduce"):
        side_preference(recall, select, reduce="max")


def test_ablation_ranks_by_hand():
    from medxai_lib.evaluate.studies.dissection import ablation_ranks
    table = ablation_ranks({"g": np.array([-0.3, 0.3])}, {"g": np.array([[0.1, -0.1], [0.5, 0.5], [0.2, 0.0]])})
    row = table.loc["g"]
    assert row["mean |ΔP| of the group"] == 0.3 and row["control groups"] == 3
    assert row["share of control groups below it"] == round(2 / 3, 3) and row["largest control group"] == 0.5
