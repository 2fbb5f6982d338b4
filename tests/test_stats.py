"""The statistics behind every claim (medxai_lib.evaluate.stats): calibrated under a null, powerful under a
real effect, wider when random draws vary, deterministic, fast, and clear about bad input."""
import time

import numpy as np
import pytest

from medxai_lib.evaluate.claims import claim
from medxai_lib.evaluate.stats import (Draws, bootstrap, bootstrap_many, difference, fmt, format_ci,
                                       mean_statistic, percentile_ci)


def _holds_rate(make, n):
    return float(np.mean([claim("x", *make(i), seed=i, show=False).verdict == "holds" for i in range(n)]))


@pytest.mark.parametrize("paired", [True, False])
def test_under_a_null_holds_comes_out_at_most_5_percent_of_the_time(paired):
    rng = np.random.default_rng(11)
    rate = _holds_rate(lambda i: (rng.normal(0, 1, 100), {"c": rng.normal(0, 1, 100)}), 400) if paired else \
        float(np.mean([claim("x", rng.normal(0, 1, 100), {"c": rng.normal(0, 1, 100)}, paired=False, seed=i,
                             show=False).verdict == "holds" for i in range(400)]))
    assert rate <= 0.05


def test_a_real_effect_of_one_sd_with_100_units_holds_at_least_90_percent_of_the_time():
    rng = np.random.default_rng(12)
    rate = float(np.mean([claim("x", rng.normal(1, 1, 100), {"c": rng.normal(0, 1, 100)}, paired=False, seed=i,
                                show=False).verdict == "holds" for i in range(200)]))
    assert rate >= 0.9


def test_random_draws_left_out_of_the_ci_make_a_null_hold_often():
    """Two models per side, each with its own seed effect: averaging the draws and bootstrapping units only
    calls the null a win about a third of the time; resampling draws x units keeps it at <= 5%."""
    rng = np.random.default_rng(13)
    hierarchical, units_only = [], []
    for i in range(300):
        a = rng.normal(0, 0.5, (5, 1)) + rng.normal(0, 1, (5, 100))
        b = rng.normal(0, 0.5, (5, 1)) + rng.normal(0, 1, (5, 100))
        hierarchical.append(claim("x", Draws(a, over="seed A"), {"c": Draws(b, over="seed B")}, seed=i,
                                  show=False).verdict == "holds")
        units_only.append(claim("x", a.mean(0), {"c": b.mean(0)}, seed=i, show=False).verdict == "holds")
    assert np.mean(hierarchical) <= 0.05 < 0.2 < np.mean(units_only)


def test_hierarchical_cis_widen_when_draws_vary_and_not_when_they_do_not():
    """Six model seeds scored on the same 200 images: the images' own values are shared by the seeds."""
    rng = np.random.default_rng(14)
    images = rng.normal(0, 1, (1, 200))
    steady = images + rng.normal(0, 0.01, (6, 200))            # the seeds agree on every image
    varying = steady + rng.normal(0, 0.5, (6, 1))              # each seed shifts every image
    width = lambda e: e.hi - e.lo  # noqa: E731
    assert width(bootstrap(Draws(varying))) > 3 * width(bootstrap(varying.mean(0)))
    same = bootstrap(Draws(steady)), bootstrap(steady.mean(0))
    assert width(same[0]) == pytest.approx(width(same[1]), rel=0.1)
    assert same[0].value == pytest.approx(steady.mean())


def test_one_draw_is_the_ordinary_bootstrap():
    values = np.random.default_rng(15).normal(0, 1, 80)
    one, plain = bootstrap(Draws(values[None], over="model seed")), bootstrap(values)
    assert one.value == plain.value and one.lo == pytest.approx(plain.lo, abs=0.03)


def test_deterministic_for_a_seed_and_different_for_another():
    values = Draws(np.random.default_rng(16).normal(0, 1, (5, 50)))
    assert bootstrap(values, seed=3) == bootstrap(values, seed=3)
    assert bootstrap(values, seed=3) != bootstrap(values, seed=4)


def test_five_draws_by_200_units_by_2000_replicates_in_well_under_a_second():
    rng = np.random.default_rng(17)
    start = time.perf_counter()
    claim("x", Draws(rng.normal(0, 1, (5, 200)), over="model seed"),
          {"a": Draws(rng.normal(0, 1, (5, 200)), over="model seed"), "b": rng.normal(0, 1, 200)}, show=False)
    assert time.perf_counter() - start < 0.5


def test_paired_difference_cancels_what_the_units_share():
    rng = np.random.default_rng(18)
    base = rng.normal(0, 1, 150)
    a, b = base + 0.1 + rng.normal(0, 0.01, 150), base
    paired, unpaired = difference(a, b), difference(a, b, paired=False)
    assert paired.lo > 0 > unpaired.lo and paired.value == pytest.approx(0.1, abs=0.005)


def test_custom_statistic_per_draw():
    y = np.tile(np.arange(2), 50)
    scores = np.stack([np.stack([y + s * 0.1, y], -1) for s in range(3)])           # (S, N, 2)
    acc = lambda s: ((s[..., 0] > 0.5) == (s[..., 1] > 0.5)).mean(1)                # noqa: E731
    assert bootstrap(Draws(scores), statistic=acc).value == 1.0


def test_many_columns_at_once_match_one_by_one():
    values = np.random.default_rng(19).normal(0, 1, (60, 3))
    mean, lo, hi = bootstrap_many(values, seed=2)
    assert np.allclose(mean, values.mean(0)) and (lo < mean).all() and (mean < hi).all()
    assert lo[0] == pytest.approx(bootstrap(values[:, 0], seed=2).lo, abs=0.05)


def test_formatting():
    assert fmt(0.12345) == "0.123" and fmt(1e-5) == "1.00e-05" and fmt(0) == "0.000"
    assert format_ci(0.5, 0.25, 0.75) == "0.500 [0.250, 0.750]"
    assert str(bootstrap(np.ones(10))) == "1.000 [1.000, 1.000]"
    assert percentile_ci(np.arange(101)) == pytest.approx((2.5, 97.5))
    assert mean_statistic(np.ones((4, 10, 3))).shape == (4,) and mean_statistic(np.arange(6.0).reshape(2, 3)).tolist() == [1.0, 4.0]


@pytest.mark.parametrize("values, match", [
    ([[1.0, 2.0], [1.0]], "ragged"),
    (np.ones((0, 4)), "non-empty"),
    (np.ones((3, 0)), "non-empty"),
    (np.ones(4), r"\(S, N\)"),
    ([[1.0, np.nan]], "NaN"),
])
def test_bad_draws_raise_clear_errors(values, match):
    with pytest.raises(ValueError, match=match):
        Draws(values)


def test_other_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="values: expected a non-empty"):
        bootstrap([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap([1.0, np.inf])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap([1.0, 2.0], n_boot=10)
    with pytest.raises(ValueError, match="paired"):
        difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="over"):
        Draws(np.ones((2, 3)), over="")
    with pytest.raises(ValueError, match="statistic"):
        bootstrap(np.ones((4,)), statistic=lambda s: s)


def test_wilson_interval_matches_hand_computed_values_and_checks_input():
    from medxai_lib.evaluate.stats import wilson_ci
    lo, hi = wilson_ci(10, 10)                     # all hits: z^2 / (n + z^2) below 1
    z2 = 1.959963984540054 ** 2
    assert lo == pytest.approx(10 / (10 + z2), rel=1e-9) and hi == 1.0
    lo, hi = wilson_ci(0, 100)
    assert lo == 0.0 and hi == pytest.approx(z2 / (100 + z2), rel=1e-9)
    lo, hi = wilson_ci(30, 100)                    # statsmodels' proportion_confint(30, 100, method="wilson")
    assert (lo, hi) == (pytest.approx(0.2189, abs=1e-4), pytest.approx(0.3958, abs=1e-4))
    for bad in ((11, 10), (-1, 10), (1, 0)):
        with pytest.raises(ValueError):
            wilson_ci(*bad)


def test_unit_ci_uses_wilson_only_where_the_bootstrap_degenerates():
    from medxai_lib.evaluate.studies.blocks import unit_ci
    assert unit_ci(np.ones(100)) == "1.000 [0.963, 1.000] (Wilson)"
    assert unit_ci(np.zeros(20)).endswith("(Wilson)")
    mixed = unit_ci(np.r_[np.ones(60), np.zeros(40)])
    assert "Wilson" not in mixed and mixed.startswith("0.600 [")
    assert "Wilson" not in unit_ci(np.full(10, 0.3))       # constant but not a proportion: the bootstrap as it is
