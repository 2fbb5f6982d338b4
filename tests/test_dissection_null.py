"""Network dissection with a shuffled-mask null, the quantile sweep, rim coverage by sector, group
ablation against size-matched random units, and the skin recipe's cache key (hand-built cases)."""
import numpy as np
import pytest
import torch

from medxai_lib.evaluate.claims import claim
from medxai_lib.evaluate.studies.dissection import (NetworkDissection, ablation_table, compare_dissections, iou_counts, mean_ci,
                                            quantile_verdicts, ratio_of_sums, sector_recall, sectors_covered,
                                            shuffled_order, side_preference, unit_thresholds)
from medxai_lib.explain.ablation import ablate_groups_vs_random, ablation_effects, random_unit_draws, rank_units


def _spot_world(n=12, size=12, seed=0):
    """Per image: concept "spot" = one random 3x3 square, concept "centre" = the same central 3x3 block.
    Unit 0 fires exactly on the spot, unit 1 on the centre block (the same place in every image), unit 2
    on a random 3x3 square unrelated to the spot. Each unit fires on 9 of 144 pixels."""
    rng = np.random.default_rng(seed)
    acts, concepts = torch.zeros(n, 3, size, size), torch.zeros(n, 2, size, size)
    for i in range(n):
        y, x = rng.integers(0, size - 2, 2)
        concepts[i, 0, y:y + 3, x:x + 3] = 1
        acts[i, 0, y:y + 3, x:x + 3] = 1
        y2, x2 = rng.integers(0, size - 2, 2)
        acts[i, 2, y2:y2 + 3, x2:x2 + 3] = 1
    concepts[:, 1, 4:7, 4:7] = 1
    acts[:, 1, 4:7, 4:7] = 1
    acts += torch.rand(acts.shape, generator=torch.Generator().manual_seed(seed)) * 1e-3   # break ties
    return acts, concepts


Q = 9 / 144   # the firing share that matches the units' 9 active pixels


def test_iou_counts_match_a_hand_computation_also_for_a_shuffled_order():
    acts, concepts = _spot_world()
    thresholds = torch.tensor([0.5, 0.5, 0.5])
    order = shuffled_order(len(acts), seed=3)
    inter, union = iou_counts(acts, thresholds, concepts, [order], batch_size=5)
    assert inter.shape == union.shape == (2, 12, 3, 2)
    fired = acts > 0.5
    for i in (0, 7):
        for k in range(3):
            for c in range(2):
                for j, src in enumerate((i, int(order[i]))):
                    mask = concepts[src, c] > 0.5
                    assert inter[j, i, k, c] == (fired[i, k] & mask).sum()
                    assert union[j, i, k, c] == (fired[i, k] | mask).sum()
    with pytest.raises(ValueError, match="mask_order"):
        iou_counts(acts, thresholds, concepts, [torch.zeros(12, dtype=torch.long)])
    with pytest.raises(ValueError, match="thresholds"):
        iou_counts(acts, thresholds[:2], concepts)


def test_shuffled_order_is_a_permutation_without_fixed_points():
    for n in (2, 3, 10, 101):
        for seed in range(5):
            order = shuffled_order(n, seed).numpy()
            assert sorted(order) == list(range(n)) and not (order == np.arange(n)).any()
    with pytest.raises(ValueError, match="n"):
        shuffled_order(1, 0)


def test_the_null_separates_a_tracking_unit_from_a_location_prior():
    acts, concepts = _spot_world(n=40)
    d = NetworkDissection(quantile=Q, min_iou=0.04, n_shuffles=4).fit(acts, concepts, ["spot", "centre"])
    # unit 0 tracks the spot: IoU 1, far above the spot's null (shuffled spots rarely overlap)
    assert d.iou_[0, 0] == pytest.approx(1.0) and d.null_threshold_[0] < 0.3
    assert d.units_for("spot") == [0]
    # unit 1 fires on the centre block in every image: IoU 1 with "centre" -- and so does every shuffle,
    # so the null is 1 too and unit 1 is no detector, although it passes Bau's 0.04 by far
    assert d.iou_[1, 1] == pytest.approx(1.0) and d.null_threshold_[1] == pytest.approx(1.0)
    assert not d.detected_[1] and d.units_for("centre") == []
    # unit 2 fires on a random square: it gets a label (its best concept), but stays below that concept's null
    unit, label, iou = d.best_concept()[2]
    assert not d.detected_[2] and iou <= float(d.null_threshold_[d.concept_names_.index(label)])
    assert d.concept_units() == [0] and d.ranked("centre")[0] == 1
    table = d.summary()
    assert table.loc["spot", "detectors"] == 1 and table.loc["centre", "detectors"] == 0
    assert table.loc["centre", "units with IoU > 0.04"] >= 1          # Bau's threshold alone would count unit 1
    assert table.loc["centre", "area (share of image)"] == pytest.approx(9 / 144, abs=1e-4)
    # per-image counts give back the IoU through ratio_of_sums; the shuffled counts give the null's IoU
    counts = d.image_counts(0, "spot")
    assert ratio_of_sums(counts[None])[0] == pytest.approx(float(d.iou_[0, 0]))
    null_unit = d.best_null_unit("spot")
    shuffled = d.image_counts(null_unit, "spot", shuffled=True)
    assert ratio_of_sums(shuffled[None])[0] == pytest.approx(float(d.null_iou_[0, null_unit, 0]), abs=1e-6)
    result = claim("spot unit beats shuffled", counts, {"shuffled": shuffled}, statistic=ratio_of_sums, show=False)
    assert result.holds
    with pytest.raises(ValueError, match="concept"):
        d.units_for("hair")


def test_dissection_refuses_bad_arguments():
    acts, concepts = _spot_world()
    with pytest.raises(ValueError, match="quantile"):
        NetworkDissection(quantile=0)
    with pytest.raises(ValueError, match="null_quantile"):
        NetworkDissection(null_quantile=1.0)
    with pytest.raises(ValueError, match="n_shuffles"):
        NetworkDissection(n_shuffles=0)
    with pytest.raises(ValueError, match="concept_names"):
        NetworkDissection().fit(acts, concepts, ["one"])
    with pytest.raises(ValueError, match="activations"):
        NetworkDissection().fit(acts[:5], concepts)


def test_unit_thresholds_are_the_top_quantile():
    acts = torch.arange(200.0).view(2, 1, 10, 10)
    assert unit_thresholds(acts, 0.1).item() == pytest.approx(float(np.quantile(np.arange(200.0), 0.9)))
    with pytest.raises(ValueError, match="quantile"):
        unit_thresholds(acts, 1.0)


def test_quantile_sweep_summary_has_one_row_per_quantile_and_concept():
    acts, concepts = _spot_world(n=20)
    half = Q / 2
    _, sweep = quantile_verdicts({"net": acts}, concepts, ["spot", "centre"], [half, Q], [("net", "spot")], n_shuffles=2)
    assert list(sweep.index.get_level_values("quantile").unique()) == [half, Q]
    assert sweep.loc[(Q, "spot"), "detectors"] == 1
    # firing on half as many pixels as the spot has caps the IoU at 0.5
    assert sweep.loc[(half, "spot"), "best IoU (any unit)"] <= 0.5 + 1e-6


def test_quantile_verdicts_decide_each_claim_at_each_share():
    acts, concepts = _spot_world(n=120)
    nets = {"trained": acts, "untrained": acts[:, 2:]}          # the "untrained" net has only the random unit
    table, _ = quantile_verdicts(nets, concepts, ["spot", "centre"], [Q, 0.5], [("trained", "spot"), ("untrained", "spot")],
                                 margin=0.05, n_shuffles=2)
    assert list(table.columns) == [f"{100 * Q:g}%", "50%"] and len(table) == 2
    at_q = table[f"{100 * Q:g}%"]
    # the tracking unit at its own firing share: IoU 1, one detector; the random unit: no detector, refuted
    assert at_q.iloc[0].startswith("holds: 1.000 vs ") and at_q.iloc[0].endswith("(1 detectors)")
    assert at_q.iloc[1].startswith("refuted:") and at_q.iloc[1].endswith("(0 detectors)")
    # firing on half of every image caps the 9-pixel spot's IoU at 9 / 72
    assert table["50%"].iloc[0].split(": ")[1].startswith("0.125 vs ")
    # a dissection already fitted at one of the shares is reused there, with the same table as fitting again
    done = NetworkDissection(quantile=Q, n_shuffles=2).fit(acts, concepts, ["spot", "centre"])
    reused, _ = quantile_verdicts(nets, concepts, ["spot", "centre"], [Q, 0.5], [("trained", "spot"), ("untrained", "spot")],
                                  margin=0.05, fitted={"trained": done}, n_shuffles=2)
    assert reused.equals(table)
    for wrong in (NetworkDissection(quantile=Q, n_shuffles=3).fit(acts, concepts, ["spot", "centre"]),   # other settings
                  NetworkDissection(quantile=0.3, n_shuffles=2).fit(acts, concepts, ["spot", "centre"]),  # no such share
                  NetworkDissection(quantile=Q, n_shuffles=2).fit(acts[:, :2], concepts, ["spot", "centre"]),  # other units
                  NetworkDissection(quantile=Q, n_shuffles=2)):                                           # not fitted
        with pytest.raises(ValueError, match="fitted"):
            quantile_verdicts(nets, concepts, ["spot", "centre"], [Q], [("trained", "spot")], fitted={"trained": wrong}, n_shuffles=2)
    with pytest.raises(ValueError, match="tested"):
        quantile_verdicts(nets, concepts, ["spot", "centre"], [Q], [("other", "spot")])
    with pytest.raises(ValueError, match="quantiles"):
        quantile_verdicts(nets, concepts, ["spot", "centre"], [1.5], [("trained", "spot")])
    with pytest.raises(ValueError, match="quantile"):
        quantile_verdicts(nets, concepts, ["spot", "centre"], [Q], [("trained", "spot")], quantile=Q)


def _rim_world(n=24, size=32, seed=0):
    """Rings (radius 5-7) at random centres; unit 0 fires on each ring's west half, unit 1 on its east half,
    unit 2 nowhere in particular (noise)."""
    rng = np.random.default_rng(seed)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    acts, border, centres = torch.zeros(n, 3, size, size), torch.zeros(n, 1, size, size), torch.zeros(n, 2)
    for i in range(n):
        cx, cy = rng.uniform(9, size - 9, 2)
        rim = ((torch.hypot(xs - cx, ys - cy) > 5) & (torch.hypot(xs - cx, ys - cy) < 7)).float()
        border[i, 0], centres[i] = rim, torch.tensor([cx / size, cy / size])
        acts[i, 0], acts[i, 1] = rim * (xs < cx), rim * (xs >= cx)
    return acts + torch.rand(acts.shape, generator=torch.Generator().manual_seed(seed)) * 1e-3, border, centres


def test_quantile_verdicts_test_one_sidedness_of_border_units():
    acts, border, centres = _rim_world()
    select = torch.arange(len(acts)) % 2 == 0
    table, _ = quantile_verdicts({"net": acts}, border, ["border"], [0.02, 0.4], [("net", "border")],
                              rim=(border, centres, select), n_shuffles=2)
    row = table.loc["net: border units fire on one side of the rim"]
    # at 2% each half-ring unit fires on its half only: its preferred sector is covered, the opposite one never
    assert row["2%"].startswith("holds:") and " vs 0.000 (2 detectors)" in row["2%"]
    # firing on 40% of the image, each unit also fires on noise, covering much of the opposite side too
    assert float(row["40%"].split(" vs ")[1].split()[0]) > 0.2


def test_compare_dissections_reports_the_better_network():
    acts, concepts = _spot_world(n=30)
    good = NetworkDissection(quantile=Q).fit(acts, concepts, ["spot", "centre"])
    bad = NetworkDissection(quantile=Q).fit(acts[:, 2:], concepts, ["spot", "centre"])   # the random unit only
    table = compare_dissections(good, bad)
    assert bool(table.loc["spot", "training clearly better"]) and table.loc["spot", "trained: best IoU"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same concepts"):
        compare_dissections(good, NetworkDissection(quantile=Q).fit(acts, concepts, ["a", "b"]))


def _ring_world(size=32):
    """One image, a ring around the centre; unit 0 fires on the west half, unit 1 on the east half."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    r = torch.hypot(xs - size / 2, ys - size / 2)
    border = ((r > 8) & (r < 11)).float()[None, None]
    acts = torch.zeros(1, 3, size, size)
    acts[0, 0, :, : size // 2] = 1
    acts[0, 1, :, size // 2:] = 1
    return acts, border, torch.tensor([[0.5, 0.5]])


def test_sector_recall_sees_which_side_of_the_rim_a_unit_fires_on():
    acts, border, centres = _ring_world()
    thresholds = torch.full((3,), 0.5)
    west = sector_recall(acts, thresholds, border, centres, [0])[0]
    east = sector_recall(acts, thresholds, border, centres, [1])[0]
    both = sector_recall(acts, thresholds, border, centres, [0, 1])[0]
    # sectors from west (-180 deg) in steps of 45 deg: 0, 1, 6, 7 are west of the centre; 2..5 east
    assert torch.allclose(west[[0, 1, 6, 7]], torch.ones(4)) and torch.allclose(west[2:6], torch.zeros(4))
    assert torch.allclose(east, 1 - west) and torch.allclose(both, torch.ones(8))
    assert torch.allclose(sector_recall(acts, thresholds, border, centres, [2])[0], torch.zeros(8))
    with pytest.raises(ValueError, match="units"):
        sector_recall(acts, thresholds, border, centres, [])
    with pytest.raises(ValueError, match="border, centres"):
        sector_recall(acts, thresholds, border, centres[:, :1], [0])


def test_side_preference_and_sector_count_statistic():
    # two units on 6 images: unit 0 prefers sector 1, unit 1 sector 6
    recall = torch.zeros(2, 6, 8)
    recall[0, :, 1], recall[0, :, 5] = 0.8, 0.1
    recall[1, :, 6], recall[1, :, 2] = 0.6, 0.2
    select = torch.tensor([True, False] * 3)
    tested, control, preferred = side_preference(recall, select)
    assert preferred == [1, 6] and np.allclose(tested, 0.7) and np.allclose(control, 0.15) and len(tested) == 3
    with pytest.raises(ValueError, match="select"):
        side_preference(recall, torch.ones(6, dtype=torch.bool))
    samples = np.zeros((3, 4, 8))
    samples[0, :, :3] = 0.5
    samples[1, :2, 0] = 0.3                       # mean 0.15 < 0.2: not covered
    assert sectors_covered(0.2)(samples).tolist() == [3.0, 0.0, 0.0]


def test_mean_ci_and_ablation_table():
    m, lo, hi = mean_ci(np.array([1.0, 2.0, 3.0, 4.0]), seed=0)
    assert m == 2.5 and 1.0 <= lo < m < hi <= 4.0
    assert mean_ci(np.full(5, 0.3)) == pytest.approx((0.3, 0.3, 0.3))
    with pytest.raises(ValueError, match="values"):
        mean_ci(np.array([]))
    effects = {"a": np.array([-0.2, -0.4])}
    random = {"a": np.array([[0.1, -0.1], [0.3, 0.1]])}
    table = ablation_table(effects, random, {"first": np.array([True, False])})
    assert table.loc["a", "ΔP units (first)"].startswith("-0.200") and table.loc["a", "|ΔP| random"].startswith("0.150")


class _Sum(torch.nn.Module):
    """Logit of class 1 = sum over channels of w_c * mean activation of a 1x1 conv's channel c."""

    def __init__(self, weights):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, len(weights), 1, bias=False)
        torch.nn.init.ones_(self.conv.weight)
        self.register_buffer("w", torch.tensor(weights))

    def forward(self, x):
        score = (self.conv(x).mean((2, 3)) * self.w).sum(1)
        return torch.stack([torch.zeros_like(score), score], 1)


def test_group_ablation_matches_a_hand_computation_and_draws_size_matched_groups():
    model = _Sum([2.0, -1.0, 0.0, 0.0, 0.0, 0.0]).eval()
    x = torch.full((4, 1, 5, 5), 0.5)
    p0 = torch.sigmoid(torch.tensor(0.5 * (2.0 - 1.0)))
    effects = ablation_effects(model, x, "conv", [[0], [1], [2, 3]], target=1)
    assert torch.allclose(effects[0], torch.sigmoid(torch.tensor(-0.5)) - p0)
    assert torch.allclose(effects[1], torch.sigmoid(torch.tensor(1.0)) - p0) and torch.allclose(effects[2], torch.zeros(4))
    result = ablate_groups_vs_random(model, x, "conv", {"pos": [0], "pair": [0, 1]}, 6, exclude=[0, 1], n_draws=3,
                                     target=1, seed=0)
    assert result.random["pos"].shape == (3, 4) and result.random["pair"].shape == (3, 4)
    assert all(len(g) == 1 and not {0, 1} & set(g) for g in result.draws["pos"])
    assert all(len(g) == 2 and not {0, 1} & set(g) for g in result.draws["pair"])
    assert torch.allclose(result.random["pos"], torch.zeros(3, 4))        # units 2-5 carry no weight
    assert torch.allclose(result.effects["pos"], effects[0].cpu())
    importance = rank_units(model, x, "conv", 6, target=1)
    assert importance.argsort(descending=True)[:2].tolist() == [0, 1] and importance[2:].abs().max() == 0
    signed = rank_units(model, x, "conv", 6, target=1, signed=True)
    assert signed[0] < 0 < signed[1] and torch.allclose(signed[:2], effects[:2, 0])
    with pytest.raises(ValueError, match="groups"):
        ablate_groups_vs_random(model, x, "conv", {"empty": []}, 6, exclude=[], n_draws=2, target=1)
    with pytest.raises(ValueError, match="n_draws"):
        random_unit_draws(6, 2, 0)


def test_skin_recipe_keeps_its_cache_key_at_the_default_hair_density(monkeypatch):
    import medxai_lib.train.recipes as recipes
    seen = []

    def fake_fit(net, train, val, config, device, cache_key):
        seen.append((cache_key, train.specs[0].n_hairs if hasattr(train, "specs") else None))
        raise RuntimeError("stop")

    monkeypatch.setattr(recipes, "fit", fake_fit)
    for kwargs in ({}, {"hair_density": 2.0}, {"hair_density": 6.0}):
        with pytest.raises(RuntimeError, match="stop"):
            recipes.skin_classifier(0, 32, 6, 4, 4, 1, device="cpu", **kwargs)
    default, explicit, hairy = (key for key, _ in seen)
    assert default == explicit == {"data": "skin-phantom", "size": 32, "train": 6, "seed": 0,
                                   "renderer": recipes.SKIN_RENDERER_VERSION}
    assert hairy == {**default, "hair_density": 6.0}
